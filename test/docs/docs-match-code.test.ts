import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { describe, it } from 'node:test'
import type { Command, Option } from 'commander'
import { isPair, isSeq, parseAllDocuments, parseDocument, visit } from 'yaml'
import { z } from 'zod'
import { codeBlocks } from '../helpers/docs.ts'
import { adminAuth, json, startGateway } from '../helpers/gateway.ts'
import { gatehouseProgram } from '../../src/cli/program.ts'
import { substituteEnvironment } from '../../src/config/environment.ts'
import { ConfigError, validateConfig } from '../../src/config/load.ts'
import { ConfigSchema } from '../../src/config/schema.ts'
import * as errors from '../../src/errors.ts'
import { defaultSettings } from '../../src/settings/definitions.ts'

// The README and docs/*.md are read as an administrator reads them, and held against the code they describe, so that
// the two cannot part without a test failing.

const root = join(import.meta.dirname, '..', '..')
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
const text = (page: string) => readFileSync(join(root, page), 'utf8')
const readme = text('README.md')

/** The lines of a page outside fenced code blocks, each with its number. */
function prose(page: string): { line: string; number: number }[] {
  let fenced = false
  return text(page).split('\n').flatMap((line, i) => {
    if (line.startsWith('```')) fenced = !fenced
    return fenced || line.startsWith('```') ? [] : [{ line, number: i + 1 }]
  })
}

/** One section of the README, from its `## heading` to the next. */
function readmeSection(heading: string): string {
  const start = readme.indexOf(`\n## ${heading}\n`)
  assert.ok(start >= 0, `the README has a section "${heading}"`)
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
}

/** GitHub's anchors for a page's headings. */
function anchors(page: string): Set<string> {
  const slugs = new Set<string>()
  for (const { line } of prose(page)) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line)
    if (!heading) continue
    const slug = heading[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    let unique = slug
    for (let n = 1; slugs.has(unique); n++) unique = `${slug}-${n}`
    slugs.add(unique)
  }
  return slugs
}

/** What is left of a table cell once every parenthesised remark is taken out. */
function withoutRemarks(cell: string): string {
  let depth = 0
  let out = ''
  for (const char of cell) {
    if (char === '(') depth++
    else if (char === ')') depth = Math.max(0, depth - 1)
    else if (depth === 0) out += char
  }
  return out
}

describe('the docs match the code', () => {
  it('every relative link points at a file, and every anchor at a heading, that exist', () => {
    const broken: string[] = []
    for (const page of pages) {
      for (const { line, number } of prose(page)) {
        for (const [, target] of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
          if (/^[a-z]+:/.test(target!)) continue
          const [path, anchor] = target!.split('#') as [string, string | undefined]
          const file = path ? relative(root, join(root, dirname(page), path)) : page
          if (!existsSync(join(root, file))) broken.push(`${page}:${number}: ${target} (no file ${file})`)
          else if (anchor !== undefined && file.endsWith('.md') && !anchors(file).has(anchor)) {
            broken.push(`${page}:${number}: ${target} (no heading #${anchor} in ${file})`)
          }
        }
      }
    }
    assert.deepEqual(broken, [])
  })

  it('every page and heading named outside a link (a code comment, an option\'s description, a code block) exists', () => {
    const files = (dir: string): string[] => readdirSync(join(root, dir), { withFileTypes: true })
      .flatMap((entry) => entry.isDirectory() ? files(`${dir}/${entry.name}`) : [`${dir}/${entry.name}`])
    const broken: string[] = []
    let references = 0
    for (const file of [...pages, 'bin/gatehouse', ...files('src').filter((f) => /\.(ts|yaml|html)$/.test(f))]) {
      text(file).split('\n').forEach((line, i) => {
        for (const [named, name, anchor] of line.matchAll(/(?<![\w/.-])((?:\.\.\/)?(?:docs\/)?(?:README|[a-z-]+)\.md)(?:#([a-z0-9_-]+))?/g)) {
          // `docs/proxy.md` from the root, `proxy.md` (or `../README.md`) as a page of docs/ writes it.
          const page = name!.replace(/^\.\.\//, '')
          const target = page.includes('/') || page === 'README.md' ? page : `docs/${page}`
          references++
          if (!existsSync(join(root, target))) broken.push(`${file}:${i + 1}: ${named} (no file ${target})`)
          else if (anchor !== undefined && !anchors(target).has(anchor)) broken.push(`${file}:${i + 1}: ${named} (no heading #${anchor} in ${target})`)
        }
      })
    }
    assert.ok(references > 100, 'the sources and pages name pages')
    assert.deepEqual(broken, [])
  })

  it('the README\'s error table lists every error code with its status, and no code the code does not answer', () => {
    const classes = new Map<string, number>()
    for (const value of Object.values(errors)) {
      if (typeof value === 'function' && 'code' in value && typeof value.code === 'string') classes.set(value.code, (value as unknown as { status: number }).status)
    }
    const table = new Map<string, number[]>()
    for (const row of readmeSection('Errors').split('\n').filter((l) => /^\| \d/.test(l))) {
      const [, statuses, codes] = row.split(' | ').length >= 2 ? /^\| ([\d /]+) \| (.*) \|$/.exec(row)! : []
      for (const [, code] of withoutRemarks(codes!).matchAll(/`([a-z_]+)`/g)) table.set(code!, statuses!.split('/').map(Number))
    }
    // /readyz answers `not_ready` in its health body, not as an error (README, "Running in production").
    const health = 'not_ready'
    assert.deepEqual([...table.keys()].filter((code) => !classes.has(code) && code !== health), [], 'codes in the table that no error class has')
    const wrong = [...classes].filter(([code, status]) => !table.get(code)?.includes(status)).map(([code, status]) => `${status} ${code}`)
    assert.deepEqual(wrong, [], 'error codes missing from the table, or under another status')
  })

  it('the README documents every run-time setting with its default, and no other', () => {
    const rows = readmeSection('Gateway API').split('\n').flatMap((line) => {
      const row = /^\| `([a-z0-9_]+)` \| `([^`]*)` \|/.exec(line)
      return row ? [[row[1]!, JSON.parse(row[2]!) as unknown] as const] : []
    })
    assert.deepEqual(Object.fromEntries(rows), { ...defaultSettings })
  })

  it('every configuration option is in a YAML example or a reference table of the docs, and every example names real options', () => {
    const reference = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
    const known = new Set(optionPaths(reference, reference, '').map(canonical))
    const documented = new Map<string, string>()
    for (const { value, where } of configExamples(reference)) {
      for (const path of documentedPaths(value, '', known)) documented.set(canonical(path), where)
    }
    assert.deepEqual([...documented].filter(([path]) => !known.has(path)).map(([path, where]) => `${path} in ${where}`), [], 'documented options the schema does not have')
    // A reference table names an option by its path (`metrics.host`, `services[].pool.connections`), or within the
    // section of its parent by its own name (`timeout_seconds` of an SSO provider); prose by its path.
    const named = new Set(pages.flatMap((page) => prose(page).flatMap(({ line }) => [
      ...[...(/^\| ([^|]*) \|/.exec(line)?.[1] ?? '').matchAll(/`([a-z_.[\]]+)`/g)].map((m) => m[1]!),
      ...[...line.matchAll(/`([a-z_]+(?:\[\])?\.[a-z_.[\]]+)`/g)].map((m) => m[1]!),
    ])))
    const inTable = (path: string) => named.has(path) || named.has(path.replaceAll('[]', '')) || named.has(path.replace(/^.*\./, '')) ||
      [...named].some((name) => name.startsWith(`${path}.`))
    assert.deepEqual([...known].filter((path) => !documented.has(path) && !inTable(path) && !path.endsWith('*')), [], 'options no example or table shows')
  })

  it('every reference table gives each setting and configuration option its default', () => {
    const reference = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
    const wrong: string[] = []
    for (const page of pages) {
      for (const { line, number } of prose(page)) {
        const row = /^\| `([a-z_.[\]]+)` \| ([^|]*) \|/.exec(line)
        if (!row) continue
        const [, name, cell] = row as unknown as [string, string, string]
        const option = name in defaultSettings ? undefined : schemaAt(reference, reference, name)
        if (!(name in defaultSettings) && !option) continue
        const expected = option ? option.default : defaultSettings[name as keyof typeof defaultSettings]
        // `none`: the option is absent unless given; `10,000` is 10000.
        const written = cell.trim() === 'none' ? undefined : parseDocument(cell.replace(/`/g, '').replace(/(\d),(\d{3})/g, '$1$2')).toJS() as unknown
        if (!isDeepStrictEqual(written, expected)) wrong.push(`${page}:${number}: ${name} ${cell.trim()}, not ${JSON.stringify(expected)}`)
      }
    }
    assert.deepEqual(wrong, [])
  })

  it('a value a YAML example calls the default is the schema\'s default', () => {
    const reference = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
    const wrong: string[] = []
    let claims = 0
    for (const page of pages) {
      for (const { code, section } of codeBlocks(page, 'yaml')) {
        for (const document of parseAllDocuments(code)) {
          visit(document, {
            Pair(_, pair, ancestors) {
              // `# the default`, `# default; ...`, `# ... (the default)`: not `# default: X` or `# default matches ...`,
              // which say something else than that this value is it.
              const comment = (pair.value as { comment?: string } | null)?.comment?.trim() ?? ''
              if (!/^(the )?default($|[;,])|\(the default\)/.test(comment)) return
              const path = [...ancestors, pair].flatMap((node) => isPair(node) ? [`.${String(node.key)}`] : isSeq(node) ? ['[]'] : []).join('').slice(1)
              const option = schemaAt(reference, reference, path)
              if (!option || !('default' in option)) return
              claims++
              const value = (pair.value as { toJSON(): unknown }).toJSON()
              if (!isDeepStrictEqual(value, option.default)) wrong.push(`${page} (${section}): ${path}: ${JSON.stringify(value)} is called the default, which is ${JSON.stringify(option.default)}`)
            },
          })
        }
      }
    }
    assert.ok(claims > 3, 'the examples say which values are the defaults')
    assert.deepEqual(wrong, [])
  })

  it('every YAML example of the configuration is valid, but for what it leaves out', () => {
    const reference = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
    const problems: string[] = []
    for (const { value, where } of configExamples(reference)) {
      try {
        // As a file is loaded: `${NAME:-default}` takes its default, and a setting whose variable the example leaves
        // to the environment is not judged by the text of its reference.
        const substitution = substituteEnvironment(withoutPlaceholders(value), {})
        validateConfig(substitution.value, where, { ...substitution, problems: [] })
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error
        // An example shows one part of a section: the required options it leaves out are not its mistakes.
        problems.push(...error.problems.filter((p) => !/received undefined$/.test(p)).map((p) => `${where}: ${p}`))
      }
    }
    assert.deepEqual(problems, [])
  })

  it('the README\'s API table names only endpoints that answer, with their methods, and the docs name every route', async () => {
    const gw = await startGateway()
    try {
      const described = await json(await gw.fetch('/api/gateway/v1/openapi.json')) as { paths: Record<string, Record<string, unknown>> }
      const operations = Object.entries(described.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
      const table = readmeSection('Gateway API').split('\n').filter((line) => /^\| `/.test(line)).map((line) => line.split(' | ')[0]!)
      const missing: string[] = []
      for (const [, entry] of table.flatMap((cell) => [...cell.matchAll(/`([^`]+)`/g)])) {
        const [methods, path] = entry!.includes(' ') ? entry!.split(' ') as [string, string] : [undefined, entry!]
        if (!path.includes('/')) continue
        const full = path.startsWith('/') ? path : `/api/gateway/v1/${path}`
        const matching = operations.filter((operation) => pathPattern(full).test(operation.replace(/^\S+ /, '')))
        if (!matching.length) {
          // Not part of the API it describes (the description itself, /metrics): it must answer, at least.
          if ((await gw.fetch(full, { headers: adminAuth })).status === 404) missing.push(entry!)
          continue
        }
        for (const method of methods?.split('/') ?? []) {
          if (!matching.some((operation) => operation.startsWith(`${method} `))) missing.push(`${method} ${path}`)
        }
      }
      assert.deepEqual(missing, [], 'endpoints in the README\'s table that the API does not have')
      const named = pages.flatMap((page) => prose(page).flatMap(({ line }) => [...line.matchAll(/`([^`]+)`/g)]
        .map((m) => m[1]!.split(' ').at(-1)!).filter((path) => path.includes('/'))))
        .map((path) => path.startsWith('/') ? pathPattern(path) : pathPattern(`/api/gateway/v1/${path.replace(/^\.\.\.\//, '...')}`))
      const unnamed = Object.keys(described.paths).filter((path) => !named.some((pattern) => pattern.test(path)))
      assert.deepEqual(unnamed, [], 'API routes no page names')
    } finally {
      await gw.close()
    }
  })

  it('the docs name every environment variable Gatehouse reads, and no other', () => {
    const files = (dir: string): string[] => readdirSync(join(root, dir), { withFileTypes: true })
      .flatMap((entry) => entry.isDirectory() ? files(`${dir}/${entry.name}`) : [`${dir}/${entry.name}`])
    const variables = (text: string) => new Set(text.match(/\bGATEHOUSE_[A-Z_]+\b/g) ?? [])
    const read = variables(['bin/gatehouse', ...files('src'), ...files('test/helpers')].map(text).join('\n'))
    const documented = variables(pages.map(text).join('\n'))
    // A configuration example names a variable of the administrator's choosing (`bind_password_env: GATEHOUSE_...`).
    const chosen = new Set(pages.flatMap((page) => [...text(page).matchAll(/_env: (GATEHOUSE_[A-Z_]+)/g)].map((m) => m[1]!)))
    assert.deepEqual([...read].filter((name) => !documented.has(name)), [], 'variables read but not documented')
    assert.deepEqual([...documented].filter((name) => !read.has(name) && !chosen.has(name)), [], 'variables documented but never read')
  })

  it('docs/tokens.md shows a token with the fields and links the API gives one', async () => {
    const block = codeBlocks('docs/tokens.md', 'json').find(({ code }) => code.includes('"type": "token"'))
    assert.ok(block, 'docs/tokens.md shows a token')
    const shown = JSON.parse(block.code.replaceAll('{...}', '{}')) as { related: object }
    const gw = await startGateway()
    try {
      const created = await json(await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: adminAuth }))
      const token = await json(await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { headers: adminAuth }))
      assert.deepEqual(Object.keys(shown).sort(), Object.keys(token).sort())
      assert.deepEqual(Object.keys(shown.related).sort(), Object.keys(token.related).sort())
    } finally {
      await gw.close()
    }
  })

  it('docs/metrics.md lists every metric /metrics serves, and no other', async () => {
    const gw = await startGateway()
    try {
      const scraped = (await (await gw.fetch('/metrics')).text()).match(/^# TYPE gatehouse_\w+/gm)!.map((line) => line.slice('# TYPE '.length))
      const listed = prose('docs/metrics.md').flatMap(({ line }) => /^\| `(gatehouse_\w+)` \|/.exec(line)?.[1] ?? [])
      assert.deepEqual(listed.sort(), scraped.sort())
    } finally {
      await gw.close()
    }
  })

  it('the README\'s CLI section shows every command and option --help lists, and no other', () => {
    const lines = [...readmeSection('CLI').matchAll(/^bin\/gatehouse (.*)$/gm)].map((m) => m[1]!.replace(/\s+#.*$/, ''))
    const documented = new Map(lines.map((line) => {
      const words = line.split(/\s+/)
      const name = words.slice(0, words.findIndex((w) => !/^[a-z][a-z-]*$/.test(w)) >>> 0).join(' ')
      return [name, new Set(line.match(/--[a-z][a-z-]*/g) ?? [])] as const
    }))
    const storage = ['--config', '--data-dir', '--database']
    const commands = new Map(leaves(gatehouseProgram(), []).map(({ name, command }) => [name, command.options as readonly Option[]]))
    assert.deepEqual([...documented.keys()].sort(), [...commands.keys()].sort(), 'commands documented and commands that exist')
    const differences: string[] = []
    for (const [name, options] of commands) {
      const flags = new Set(options.map((o) => o.long!))
      // The storage options are said once, for every command, in the section's first paragraph.
      for (const flag of flags) if (!documented.get(name)!.has(flag) && !storage.includes(flag)) differences.push(`${name} ${flag} undocumented`)
      for (const flag of documented.get(name)!) if (!flags.has(flag)) differences.push(`${name} ${flag} does not exist`)
      if (!flags.has('--config')) differences.push(`${name} lacks --config`)
      for (const option of options) {
        if (option.envVar && !readme.includes(option.envVar)) differences.push(`${name} ${option.long}: ${option.envVar} undocumented`)
      }
    }
    // The program's own options (besides --help, which every command has) are said in the section's prose.
    for (const option of gatehouseProgram().options) if (!readmeSection('CLI').includes(`bin/gatehouse ${option.long}`)) differences.push(`${option.long} undocumented`)
    assert.deepEqual(differences, [])
  })

  it('the README names the Debian packages the tests need, as .ci/run installs them', () => {
    const installed = /^packages=\(([^)]*)\)$/m.exec(text('.ci/run'))
    assert.ok(installed, '.ci/run lists its packages')
    const named = /Debian packages that \[\.ci\/run\]\(\.ci\/run\) installs\s+\(([^)]*)\)/.exec(readme)
    assert.ok(named, 'the README lists the packages .ci/run installs')
    assert.deepEqual([...named[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!).sort(), installed[1]!.trim().split(/\s+/).sort())
  })

  it('the /readyz examples count the migrations this version has', () => {
    const migrations = readdirSync(join(root, 'src', 'store', 'migrations')).filter((f) => /^\d{3}_.+\.ts$/.test(f)).length
    const counts = pages.flatMap((page) => [...text(page).matchAll(/"applied": ?(\d+)/g)].map((m) => `${page}: ${m[1]}`))
    assert.ok(counts.length > 0, 'an example shows the count')
    assert.deepEqual(counts.filter((count) => !count.endsWith(`: ${migrations}`)), [])
  })

  it('every command line the docs show names a command that exists, with its options', () => {
    const commands = new Map(leaves(gatehouseProgram(), []).map(({ name, command }) => [name, new Set(command.options.map((o) => o.long!))]))
    const groups = new Set([...commands.keys()].map((name) => name.split(' ')[0]!))
    const shown = pages.flatMap((page) => [
      ...codeBlocks(page, 'sh').flatMap(({ code }) => code.split('\n')),
      // A terminal session: the commands are the lines after the prompt.
      ...codeBlocks(page, '').flatMap(({ code }) => code.split('\n').filter((line) => line.startsWith('$ '))),
      ...prose(page).flatMap(({ line }) => [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)),
    ].flatMap((line) => /(?:^|\s|bin\/)gatehouse ([a-z].*)$/.exec(line.replace(/\s#.*$/, ''))?.[1] ?? []).map((line) => ({ page, line })))
    const wrong: string[] = []
    for (const { page, line } of shown) {
      const words = line.split(/\s+/)
      if (!groups.has(words[0]!)) {
        wrong.push(`${page}: gatehouse ${line} (no command ${words[0]})`)
        continue
      }
      const name = [words[0], words[1]].join(' ')
      const flags = commands.get(name) ?? commands.get(words[0]!)
      if (!flags) {
        // A group alone (`gatehouse tokens`) is fine; one of its commands must exist.
        if (words[1] && /^[a-z-]+$/.test(words[1])) wrong.push(`${page}: gatehouse ${line} (no command ${name})`)
        continue
      }
      for (const flag of line.match(/--[a-z][a-z-]*/g) ?? []) if (!flags.has(flag)) wrong.push(`${page}: gatehouse ${line} (${name} has no ${flag})`)
    }
    assert.ok(shown.length > 20, 'the docs show command lines')
    assert.deepEqual(wrong, [])
  })
})

interface JsonSchema {
  $defs?: Record<string, JsonSchema>
  $ref?: string
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  allOf?: JsonSchema[]
  properties?: Record<string, JsonSchema>
  items?: JsonSchema
  additionalProperties?: JsonSchema | boolean
  not?: JsonSchema
  default?: unknown
}

/** Every option's path in the JSON Schema `config reference` prints: `server.tls.cert_file`, `services[].pool`. */
function optionPaths(node: JsonSchema | undefined, schema: JsonSchema, prefix: string, seen = new Set<JsonSchema>()): string[] {
  if (!node || seen.has(node)) return []
  const inner = new Set(seen).add(node)
  if (node.$ref) return optionPaths(schema.$defs?.[node.$ref.replace('#/$defs/', '')], schema, prefix, inner)
  return [
    ...[...node.anyOf ?? [], ...node.oneOf ?? [], ...node.allOf ?? []].flatMap((n) => optionPaths(n, schema, prefix, inner)),
    ...Object.entries(node.properties ?? {}).filter(([, value]) => !removed(value)).flatMap(([key, value]) => [prefix + key, ...optionPaths(value, schema, `${prefix}${key}.`, inner)]),
    ...optionPaths(node.items, schema, prefix.replace(/\.$/, '[].'), inner),
    // A map's keys are the administrator's (`named_groups: {developers: [...]}`): `*` stands for any of them.
    ...typeof node.additionalProperties === 'object' ? [`${prefix}*`] : [],
  ]
}

/**
 * The paths of a YAML example, as optionPaths spells them; `[...]` and `{...}` stand for what another page shows,
 * and below a map's key (`*`) whatever the administrator writes.
 */
function documentedPaths(value: unknown, prefix: string, known: Set<string>): string[] {
  if (Array.isArray(value)) return value.flatMap((item) => documentedPaths(item, prefix.replace(/\.$/, '[].'), known))
  if (!value || typeof value !== 'object') return []
  return Object.entries(value).filter(([key]) => key !== '...').flatMap(([key, item]) => {
    if (!known.has(canonical(prefix + key)) && known.has(canonical(`${prefix}*`))) return []
    return [prefix + key, ...documentedPaths(item, `${prefix}${key}.`, known)]
  })
}

/**
 * The YAML examples of the configuration file (those whose top-level keys are the configuration's), with where each
 * is; an example of access rules alone (`access: [...]`) as the gateway's, since rules are the same everywhere.
 */
function configExamples(reference: JsonSchema): { value: Record<string, unknown>; where: string }[] {
  return pages.flatMap((page) => codeBlocks(page, 'yaml').flatMap(({ code, section }) => parseAllDocuments(code).flatMap((document) => {
    const value = document.toJS() as unknown
    if (!value || typeof value !== 'object' || Array.isArray(value)) return []
    const keys = Object.keys(value)
    const config = keys.length === 1 && keys[0] === 'access' ? { gateway: value } : value as Record<string, unknown>
    return Object.keys(config).every((key) => key in (reference.properties ?? {})) ? [{ value: config, where: `${page} (${section})` }] : []
  })))
}

/** Access rules take the same fields wherever they are (docs/access.md), and a deny rule the fields of an allow. */
function canonical(path: string): string {
  return path.replace(/^.*\baccess\[\]\.(allow|deny)\b/, 'access[].allow').replace(/^.*\baccess(\[\])?$/, 'access')
}

function leaves(command: Command, path: string[]): { name: string; command: Command }[] {
  const own = command.commands.filter((c) => c.name() !== 'help')
  if (!own.length) return [{ name: path.join(' '), command }]
  return own.flatMap((c) => leaves(c, [...path, c.name()]))
}

/** A removed option the schema keeps only to say what replaced it (`z.never()`) is no option. */
function removed(node: JsonSchema): boolean {
  return node.not !== undefined && !Object.keys(node.not).length
}

/** An example without the sections it writes as `[...]` or `{...}`, which another page shows. */
function withoutPlaceholders(value: Record<string, unknown>): Record<string, unknown> {
  const placeholder = (item: unknown) => JSON.stringify(item) === '["..."]' || JSON.stringify(item) === '{"...":null}'
  return Object.fromEntries(Object.entries(value).filter(([, item]) => !placeholder(item)))
}

/** A documented path as a pattern for the API's: `{id}` is any one segment (or the API's own `{id}`), `...` anything. */
function pathPattern(path: string): RegExp {
  const parts = path.split(/(\{[^}]*\}|\.\.\.)/).map((part) =>
    part === '...' ? '.*' : part.startsWith('{') ? '(\\{[^}]*\\}|[^/{}]+)' : part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
  return new RegExp(`^${parts.join('')}$`)
}

/** The schema of the option at a path of the configuration (`server.timeouts.headers_seconds`, `services[].pool.connections`). */
function schemaAt(node: JsonSchema | undefined, schema: JsonSchema, path: string): JsonSchema | undefined {
  if (!node) return undefined
  if (node.$ref) return schemaAt(schema.$defs?.[node.$ref.replace('#/$defs/', '')], schema, path)
  if (!path) return node
  for (const choice of [...node.anyOf ?? [], ...node.oneOf ?? [], ...node.allOf ?? []]) {
    const found = schemaAt(choice, schema, path)
    if (found) return found
  }
  const [, key, rest] = /^([a-z_]+)(?:\[\])?\.?(.*)$/.exec(path) ?? []
  const property = key === undefined ? undefined : node.properties?.[key]
  if (!property) return undefined
  return path.startsWith(`${key}[]`) ? schemaAt(schemaAt(property, schema, '')?.items, schema, rest!) : schemaAt(property, schema, rest!)
}
