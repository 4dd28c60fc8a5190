import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseDocument } from 'yaml'
import { z } from 'zod'
import { ConfigSchema, type Config } from './schema.ts'

export const demoConfigFile = fileURLToPath(new URL('./demo.yaml', import.meta.url))

export class ConfigError extends Error {
  readonly problems: string[]
  constructor(source: string, problems: string[]) {
    // One problem fits on one line (a file that cannot be read, one wrong value); several are listed one a line.
    super(problems.length === 1 ? `${source}: ${problems[0]}` : `${source}: ${problems.length} problems\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.problems = problems
  }
}

/** Reads and validates a YAML file, reporting every problem at once with its path. */
export function loadConfigFile(file: string): Config {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    // Node's message names the file again (", open '...'"): it already starts the line.
    throw new ConfigError(file, [`cannot read: ${(error as Error).message.replace(/, open '.*'$/, '')}`])
  }
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true })
  if (document.errors.length) throw new ConfigError(file, document.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`))
  return validateConfig(document.toJS() ?? {}, file)
}

/**
 * Validates a plain object (no side effects) and freezes the result. Without zod's compiled fast path: a
 * configuration is parsed once or twice per process, and compiling that path for each of its objects took longer
 * than parsing without it (about 21 ms against 9 at a start).
 */
export function validateConfig(input: unknown, source = 'config'): Config {
  const result = ConfigSchema.safeParse(input, { jitless: true })
  if (!result.success) throw new ConfigError(source, result.error.issues.flatMap(unionBranch).map(describeIssue))
  return deepFreeze(result.data)
}

/**
 * A value a union refused (a team or role named alone, or as an object) is explained by the one branch of its own
 * type, as if that were the only choice: zod says only "Invalid input". A value of neither type gets the types it
 * may be.
 */
function unionBranch(issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== 'invalid_union' || !issue.errors.length) return [issue]
  const wrongType = (issues: z.core.$ZodIssue[]) => issues.find((i) => i.code === 'invalid_type' && i.path.length === 0)
  const ofItsType = issue.errors.filter((issues) => !wrongType(issues))
  if (!ofItsType.length) {
    const expected = issue.errors.map((issues) => (wrongType(issues) as { expected?: string } | undefined)?.expected ?? 'something else')
    return [{ ...issue, message: `Invalid input: expected ${expected.join(' or ')}` }]
  }
  // Choices of one type (a literal or a URL) leave no branch to prefer.
  const [branch] = ofItsType
  if (ofItsType.length > 1 || !branch) return [issue]
  return branch.flatMap((inner) => unionBranch({ ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue))
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)'
  return `${path}: ${issue.message}`
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
