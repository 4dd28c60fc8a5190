import { isUtf8 } from 'node:buffer'
import { fileURLToPath } from 'node:url'
import { isAlias, isCollection, isNode, isPair, isScalar, LineCounter, Parser, parseDocument, visit, type CST, type Document, type YAMLError } from 'yaml'
import { z } from 'zod'
import { substituteEnvironment, type Substituted } from './environment.ts'
import { ConfigError } from './config-error.ts'
import { readBytesAtMost, startsAsUtf16 } from './read-at-most.ts'
import { ConfigSchema, type Config } from './schema.ts'
import { pinnedConfigText } from './pinned-texts.ts'

export { ConfigError }

export const demoConfigFile = fileURLToPath(new URL('./demo.yaml', import.meta.url))

/**
 * Reads and validates a YAML file, its `${NAME}` references taken from `env`, reporting every problem at once with
 * its path.
 */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const substitution = substituteEnvironment(parseConfigFile(file), env)
  return validateConfig(substitution.value, file, substitution)
}

/**
 * The settings of a file (as `sso.0.client_secret`) whose whole value comes from the environment: a secret given
 * so is not in the file. For the warning about files other users may read, which a file that no longer parses
 * leaves unsaid.
 */
export function settingsFromEnvironment(file: string): ReadonlySet<string> {
  try {
    return substituteEnvironment(parseConfigFile(file), {}).fromEnvironment
  } catch {
    return new Set()
  }
}

/** A file's settings as written, before `${NAME}` is substituted; undefined for a file that cannot be read or parsed. */
export function configFileAsWritten(file: string): unknown {
  try {
    return parseConfigFile(file)
  } catch {
    return undefined
  }
}

/** Whether the file holds no settings (nothing, only comments, or a document that is null: `---`, `~`), which parses as the defaults. */
export function configFileIsEmpty(file: string): boolean {
  try {
    const { contents } = parseDocument(readConfigText(file))
    return contents === null || (isScalar(contents) && contents.value === null)
  } catch {
    return false
  }
}

/**
 * The last file parsed, its text and what it parsed to (never changed by its readers): `serve` loads its
 * configuration, then reads the same file as written for its warnings, and each parse of it cost 10-15 ms of a
 * start's CPU, more than the rest of those checks together.
 */
let lastParsed: { file: string; text: string; value: unknown } | undefined

/** A configuration is a few kilobytes; more than this is a file named by mistake (/dev/zero, a log, an image). */
const MAX_CONFIG_BYTES = 1024 * 1024

function parseConfigFile(file: string): unknown {
  const text = readConfigText(file)
  if (lastParsed?.file === file && lastParsed.text === text) return lastParsed.value
  refuseDeepNesting(file, text)
  const lines = new LineCounter()
  // Merge keys (`<<: *defaults`), as docker compose and Ansible read them: services that share settings say so once.
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true, merge: true, lineCounter: lines })
  if (document.errors.length) throw new ConfigError(file, document.errors.map((error) => describeYamlError(error, lines)))
  // The parser only warns of a tag it does not know (`!env NAME`, `!secret`, `!include`) and takes the text after it as
  // the value: a client's secret written `!env SECRET` would be the word SECRET. Any warning is refused with the file.
  if (document.warnings.length) throw new ConfigError(file, document.warnings.map((warning) => describeYamlError(warning, lines)))
  if (nestingOf(document.contents, { anchors: new Map(), known: new Map() }) > MAX_NESTING) {
    throw new ConfigError(file, [`nested more than ${MAX_NESTING} levels deep, counting what its aliases (*name) repeat; a configuration needs a few`])
  }
  let value: unknown
  try {
    value = document.toJS() ?? {}
  } catch (error) {
    // The parser's own words repeat the alias, which is the value as written: a password that starts with "*", unquoted.
    throw new ConfigError(file, [unresolvedAlias(document, lines) ?? `YAML: ${(error as Error).message}`])
  }
  const endless = selfContainingPath(value)
  if (endless !== undefined) {
    throw new ConfigError(file, [`${endless || '(top level)'}: an alias inside the anchor it names (*name within &name) makes the value endless; write it out`])
  }
  const settings = withoutExtensions(value)
  lastParsed = { file, text, value: settings }
  return settings
}

/**
 * How deep a file's mappings and lists may nest. A configuration nests a few levels; the parser, and every reader of
 * the value after it, go one call deeper for each, and a file nested 100,000 deep (a line of `[` or of `- `, 200 kB)
 * ran them out of stack, said as `Maximum call stack size exceeded`. The file's syntax tree, which its parser builds
 * without recursion, is measured first; then the document, with the values its aliases repeat.
 */
const MAX_NESTING = 64

function refuseDeepNesting(file: string, text: string): void {
  const lines = new LineCounter()
  const pending: { token: CST.Token; depth: number }[] = []
  for (const token of new Parser(lines.addNewLine).parse(text)) if (token.type === 'document' && token.value) pending.push({ token: token.value, depth: 1 })
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { token, depth } = next
    if (!('items' in token)) continue
    if (depth > MAX_NESTING) {
      const { line, col } = lines.linePos(token.offset)
      throw new ConfigError(file, [`YAML, line ${line}, column ${col}: nested more than ${MAX_NESTING} levels deep; a configuration needs a few`])
    }
    for (const item of token.items) for (const child of [item.key, item.value]) if (child) pending.push({ token: child, depth: depth + 1 })
  }
}

/**
 * How many levels of mappings and lists `node` holds, an alias counted as the value it names: a count kept for each
 * node, so that neither aliases of aliases nor a value repeated many times (`[*a, *a]`, over and over) cost more than
 * one pass. The nodes are met in the file's order, in which an anchor comes before its aliases (the latest of a name
 * is the one they name), so its count is known when they are met; an alias inside its own anchor counts nothing
 * here, and is refused once the value is built (selfContainingPath).
 */
function nestingOf(node: unknown, seen: { anchors: Map<string, unknown>; known: Map<unknown, number> }): number {
  if (isAlias(node)) return seen.known.get(seen.anchors.get(node.source)) ?? 0
  if (isNode(node) && node.anchor) seen.anchors.set(node.anchor, node)
  if (!isCollection(node)) return 0
  let deepest = 0
  for (const item of node.items) {
    for (const part of isPair(item) ? [item.key, item.value] : [item]) deepest = Math.max(deepest, nestingOf(part, seen))
  }
  seen.known.set(node, deepest + 1)
  return deepest + 1
}

/**
 * The file's settings without its top-level `x-` keys, which hold anchors to merge (`x-defaults: &defaults`), as docker
 * compose's files do. No setting starts with `x-`; every other key stays, so a misspelt one is still refused.
 */
function withoutExtensions(value: unknown): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value
  return Object.fromEntries(Object.entries(value).filter(([key]) => !key.startsWith('x-')))
}

/**
 * The path of a mapping or list that holds itself, which YAML allows (`services: &x [*x]`) and no setting can be;
 * undefined when none does. Everything after reads the value to its leaves, and would recurse for good.
 */
function selfContainingPath(value: unknown, path: string[] = [], ancestors = new Set<object>()): string | undefined {
  if (!value || typeof value !== 'object') return undefined
  if (ancestors.has(value)) return path.join('.')
  ancestors.add(value)
  for (const [key, item] of Object.entries(value)) {
    const found = selfContainingPath(item, [...path, key], ancestors)
    if (found !== undefined) return found
  }
  ancestors.delete(value)
  return undefined
}

/**
 * The file's text: a file over the limit is refused, read no further than it (read-at-most.ts). Read as UTF-8, a
 * file in another encoding (Latin-1, a Windows code page) had each of its other bytes made U+FFFD: a password, a
 * name or a path quietly changed. It is refused instead, as `users import` refuses a file that is not UTF-8.
 */
/** The text `file` was last parsed from, if it was the last file parsed. */
export function lastConfigText(file: string): string | undefined {
  return lastParsed?.file === file ? lastParsed.text : undefined
}

function readConfigText(file: string): string {
  const pinned = pinnedConfigText(file)
  if (pinned !== undefined) return pinned
  let bytes: Buffer | undefined
  try {
    bytes = readBytesAtMost(file, MAX_CONFIG_BYTES)
  } catch (error) {
    // Node's message names the file again (", open '...'"): it already starts the line.
    throw new ConfigError(file, [`cannot read: ${(error as Error).message.replace(/, open '.*'$/, '')}`])
  }
  if (bytes === undefined) throw new ConfigError(file, ['larger than 1 MiB, the limit of a configuration file: is it the file meant?'])
  if (!isUtf8(bytes)) throw new ConfigError(file, [`not UTF-8${startsAsUtf16(bytes) ? ' (it is UTF-16)' : ''}: save it as UTF-8`])
  return bytes.toString('utf8')
}

function unresolvedAlias(document: Document, lines: LineCounter): string | undefined {
  let problem: string | undefined
  visit(document, {
    Alias(_key, alias) {
      if (alias.resolve(document)) return undefined
      const { line, col } = lines.linePos(alias.range?.[0] ?? 0)
      problem = `YAML, line ${line}, column ${col}: an alias (a value that starts with "*") names no anchor before it; quote a value that starts with "*"`
      return visit.BREAK
    },
  })
  return problem
}

/**
 * A syntax error with where it starts, as an editor counts (from 1); the parser's own message has no position. The
 * parser quotes the text it could not place (`Unexpected scalar token in YAML stream: "..."`): an indicator such as
 * `]` is kept, longer text is not, as it is the file's own (a value, or pages of a database or binary named by
 * mistake, with what they hold); its position says where it is.
 */
function describeYamlError(error: YAMLError, lines: LineCounter): string {
  const { line, col } = lines.linePos(error.pos[0])
  const tag = error.code === 'TAG_RESOLVE_FAILED' ? /tag: (\S+)/.exec(error.message)?.[1] : undefined
  if (tag !== undefined) return `YAML, line ${line}, column ${col}: the tag ${tag} is not one Gatehouse reads (it would take the text after it as the value); a value from the environment is written "\${NAME}"`
  if (error.code === 'MULTIPLE_DOCS') return `YAML, line ${line}, column ${col}: a second document begins here (a line "---" after settings); a configuration file holds one`
  const message = error.message.split('\n')[0]!.replace(/: (".*")$/, (quoted, text: string) => (text.length <= 5 ? quoted : ''))
  return `YAML, line ${line}, column ${col}: ${message}`
}

/**
 * Validates a plain object (no side effects) and freezes the result. From a file, the problems of its `${NAME}`
 * references come first, with the schema's of every other setting: all are reported at once. Without zod's compiled
 * fast path: a configuration is parsed once or twice per process, and compiling that path for each of its objects
 * took longer than parsing without it (about 21 ms against 9 at a start).
 */
export function validateConfig(input: unknown, source = 'config', substitution: Omit<Substituted, 'value' | 'fromEnvironment'> = NO_SUBSTITUTION): Config {
  let result: ReturnType<typeof ConfigSchema.safeParse>
  try {
    result = ConfigSchema.safeParse(input, { jitless: true })
  } catch (error) {
    // A check that threw rather than saying what it refused (a value one of them did not expect): the file is still
    // named, in one line, rather than the process stopping on the exception's bare words ("Invalid URL").
    throw new ConfigError(source, [`could not be checked (${(error as Error)?.message ?? String(error)}): a value is written in a way no check expected; compare it with gatehouse config reference`])
  }
  const issues = result.success ? [] : result.error.issues.flatMap(unionBranch).flatMap(keyProblems).filter((issue) => !substitution.unresolved.has(pathOf(issue)))
  const problems = [...substitution.problems, ...issues.map((issue) => describeIssue(issue, substitution.substituted))]
  if (problems.length || !result.success) throw new ConfigError(source, problems)
  return deepFreeze(result.data)
}

const NO_SUBSTITUTION = { problems: [], substituted: new Set<string>(), unresolved: new Set<string>() }

function pathOf(issue: z.core.$ZodIssue): string {
  return issue.path.length ? issue.path.map(String).join('.') : '(top level)'
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

/** A map's key it refused (a client role's name) is explained by the key's own checks: zod says only "Invalid key in record". */
function keyProblems(issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== 'invalid_key' || !issue.issues.length) return [issue]
  return issue.issues.map((inner) => ({ ...inner, path: [...issue.path, ...inner.path] }) as z.core.$ZodIssue)
}

function describeIssue(issue: z.core.$ZodIssue, substituted: ReadonlySet<string>): string {
  const path = pathOf(issue)
  const hint = issue.code === 'unrecognized_keys'
    ? likelyMeant(issue.keys, keysAt(ConfigSchema, issue.path))
    // `port: ${PORT}` reads as a number, but substitution happens after parsing, in text.
    : issue.code === 'invalid_type' && substituted.has(path) ? ' (${NAME} gives text: write numbers and true or false in the file)' : ''
  const message = issue.code === 'unrecognized_keys' ? unrecognizedKeys(issue.keys) : issue.message
  return `${path}: ${message}${hint}`
}

const NAMED_UNKNOWN_KEYS = 5
/** What a key of a configuration file looks like; anything else is not echoed. */
const KEY_LIKE = /^[^\s:]{1,64}$/

/**
 * Unknown keys are named, a few at most and only those that read as keys: a file named by mistake (`config check
 * /etc/shadow`, where each line ending in a colon parses as a key) must not be printed back, hashes and all.
 */
function unrecognizedKeys(keys: string[]): string {
  const named = keys.filter((key) => KEY_LIKE.test(key))
  if (named.length < keys.length) return `${keys.length} unrecognized key${keys.length === 1 ? '' : 's'}; is this a Gatehouse configuration file?`
  const shown = named.slice(0, NAMED_UNKNOWN_KEYS).map((key) => `"${key}"`).join(', ')
  const rest = named.length > NAMED_UNKNOWN_KEYS ? ` and ${named.length - NAMED_UNKNOWN_KEYS} more` : ''
  return `Unrecognized key${keys.length === 1 ? '' : 's'}: ${shown}${rest}`
}

/** A misspelt key (`sevices:`) gets the known key nearest to it, when one is near enough to be what was meant. */
function likelyMeant(unknown: string[], known: string[]): string {
  const guesses = unknown.map((key) => {
    const [nearest] = known.map((name) => ({ name, distance: editDistance(key, name) })).sort((a, b) => a.distance - b.distance)
    return nearest && nearest.distance <= Math.max(1, Math.floor(key.length / 3)) ? nearest.name : undefined
  }).filter((name) => name !== undefined)
  return guesses.length ? ` (did you mean ${guesses.map((name) => `"${name}"`).join(', ')}?)` : ''
}

/** The keys an object at this path of the schema may have (of every branch, where it is a union). */
function keysAt(schema: z.core.$ZodType, path: PropertyKey[]): string[] {
  const def = schema._zod.def as z.core.$ZodTypeDef & Partial<{
    shape: Record<string, z.core.$ZodType>; innerType: z.core.$ZodType; in: z.core.$ZodType; element: z.core.$ZodType
    options: z.core.$ZodType[]; valueType: z.core.$ZodType
  }>
  const inner = def.innerType ?? def.in
  if (inner) return keysAt(inner, path)
  if (def.options) return def.options.flatMap((option) => keysAt(option, path))
  if (!path.length) return def.shape ? Object.keys(def.shape) : []
  const [step, ...rest] = path
  const child = def.element ?? def.valueType ?? def.shape?.[String(step)]
  return child ? keysAt(child, rest) : []
}

/** Levenshtein distance: the fewest single-letter insertions, deletions and substitutions from one word to the other. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    previous = current
  }
  return previous[b.length]!
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
