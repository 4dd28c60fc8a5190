import { readFileSync } from 'node:fs'
import { join } from 'node:path'

// The repository's root, found without the gateway's modules: the benchmark reads the pages too.
const repoRoot = new URL('../../', import.meta.url).pathname

/** The fenced code blocks of a page of the repository (`docs/forward-auth.md`) in a language, with the heading each is under. */
export function codeBlocks(page: string, language: string): { code: string; section: string }[] {
  const blocks: { code: string; section: string }[] = []
  let section = ''
  let fence: { language: string; lines: string[] } | undefined
  for (const line of readFileSync(join(repoRoot, page), 'utf8').split('\n')) {
    if (fence && line.startsWith('```')) {
      if (fence.language === language) blocks.push({ code: fence.lines.join('\n'), section })
      fence = undefined
    } else if (fence) fence.lines.push(line)
    else if (line.startsWith('```')) fence = { language: line.slice(3).trim(), lines: [] }
    else if (line.startsWith('#')) section = line.replace(/^#+\s*/, '')
  }
  return blocks
}

/** `text` with each of `replacements` made, every one of which must find its text (a page that changed fails here). */
export function replaced(text: string, replacements: [from: string, to: string][]): string {
  return replacements.reduce((result, [from, to]) => {
    if (!result.includes(from)) throw new Error(`the documented text no longer contains ${JSON.stringify(from)}`)
    return result.replaceAll(from, to)
  }, text)
}
