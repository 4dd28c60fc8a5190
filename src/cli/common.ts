import { Command, Option } from 'commander'
import { printable } from '../logging/printable.ts'

/** A mistake in how a command was called: reported in one line, exit status 2. */
export class UsageError extends Error {}

/**
 * A command's action, loaded from its module when the command runs: `--help`, and a mistake in the arguments, load
 * the commands' definitions only, and each command what it runs (`users list` no HTTP server, `config check` no
 * database). `load` is written as `() => import('./file.ts')`, which the bundle makes a chunk of its own
 * (src/vendor/gatehouse-bundle.ts).
 */
export function lazyAction<Module extends Record<Name, (...args: never[]) => unknown>, Name extends keyof Module & string>(load: () => Promise<Module>, name: Name) {
  return async (...args: Parameters<Module[Name]>): Promise<void> => {
    await (await load())[name](...args)
  }
}

/** An option's parser for a whole number above 0 (an id, a lifetime in seconds). */
export function positiveInteger(flag: string) {
  return (value: string): number => {
    if (!/^[1-9][0-9]{0,11}$/.test(value)) throw new UsageError(`${flag} must be a positive whole number, got "${value}"`)
    return Number(value)
  }
}

export interface StorageOptions {
  config?: string
  demo?: boolean
  dataDir?: string
  database?: string
}

/** Every command reaches the same database the server would: --database, GATEHOUSE_DATABASE_URL, the config file, or --data-dir. */
export function addStorageOptions(command: Command): Command {
  return command
    .addOption(new Option('--config <file>', 'configuration file (YAML)').env('GATEHOUSE_CONFIG'))
    .addOption(new Option('--data-dir <dir>', 'directory of the embedded SQLite database (default: ./data)').env('GATEHOUSE_DATA_DIR'))
    .addOption(new Option('--database <url>', 'PostgreSQL URL, postgres://... (instead of SQLite)').env('GATEHOUSE_DATABASE_URL'))
    .hook('preAction', refuseEmptyStorage)
    .hook('preAction', warnOfPasswordInArguments)
}

/**
 * `--demo` on a command that reads the configuration's services or realms: the demo configuration, as `serve --demo`
 * reads it when no `--config` is given, so that the documented commands work beside `npm start` as written.
 */
export function addDemoOption(command: Command): Command {
  return command.option('--demo', 'read the demo configuration, as serve --demo does (unless --config is given)')
}

/** Each storage option with the environment variable that may give it instead. */
const STORAGE_SOURCES = [
  ['config', '--config', 'GATEHOUSE_CONFIG'], ['dataDir', '--data-dir', 'GATEHOUSE_DATA_DIR'], ['database', '--database', 'GATEHOUSE_DATABASE_URL'],
] as const

/** Where a storage option's value came from, as the refusals name it: the option, or the variable that gave it. */
function sourceOf(command: Command, [key, option, variable]: (typeof STORAGE_SOURCES)[number]): string {
  return command.getOptionValueSource(key) === 'env' ? variable : option
}

/**
 * An empty `--config`, `--data-dir` or `--database`, or the variable for one set but empty (`GATEHOUSE_DATABASE_URL=`
 * left in a compose file), is refused naming where it came from: an empty file name would otherwise run on the
 * built-in defaults, an empty directory be reported as the configuration's `storage.data_dir`, an empty URL as a
 * `--database` the command was never given. A data directory and a database URL given together are refused too: the
 * URL would win, and a command meant for the SQLite file (`users disable`, say) change PostgreSQL's accounts instead.
 * `config` commands read no database.
 */
function refuseEmptyStorage(command: Command): void {
  if (command.parent?.name() === 'config') return
  for (const source of STORAGE_SOURCES) {
    if (command.getOptionValue(source[0]) === '') throw new UsageError(`${sourceOf(command, source)} is empty; give a value, or leave it out`)
  }
  const [, dataDir, database] = STORAGE_SOURCES
  if (command.getOptionValue('dataDir') !== undefined && command.getOptionValue('database') !== undefined) {
    throw new UsageError(`${sourceOf(command, dataDir)} names the SQLite database and ${sourceOf(command, database)} a PostgreSQL one; give one of them`)
  }
}

/**
 * A process's arguments are readable by every user of the machine (`ps`, /proc/PID/cmdline), its environment only
 * by its own user: a database password belongs in GATEHOUSE_DATABASE_URL or in the file as `${NAME}`. Said on the
 * command line only: the workers of `serve --workers` get the URL through their environment, so it is said once.
 * The process then runs itself again (execve: the same pid, so a supervisor sees no change) with the URL moved to its
 * environment, so the password stays readable for the moment of a start rather than for as long as it serves.
 */
async function warnOfPasswordInArguments(command: Command): Promise<void> {
  const url = command.getOptionValue('database') as string | undefined
  if (command.getOptionValueSource('database') !== 'cli' || url === undefined) return
  // The database's code, loaded here only when the option is given: a command's definitions load none of it.
  const { urlPasswords } = await import('../store/database.ts')
  if (urlPasswords(url).length === 0) return
  process.stderr.write('gatehouse: warning: a password given in --database is readable by every user of this machine (ps); '
    + 'give it in GATEHOUSE_DATABASE_URL instead, or write storage.database in the configuration file with the password as ${NAME}\n')
  runAgainWithDatabaseInEnvironment(url)
}

/**
 * Replaces this process's image with the same command without `--database`, the URL in GATEHOUSE_DATABASE_URL
 * (which the option sets too, with the same precedence over the file). Where Node cannot (execve is missing on
 * Windows), the process runs on as it was: only its arguments show the password.
 */
function runAgainWithDatabaseInEnvironment(url: string): void {
  if (typeof process.execve !== 'function' || process.platform === 'win32') return
  const args = [process.argv0, ...process.execArgv, process.argv[1]!, ...withoutDatabase(process.argv.slice(2))]
  try {
    process.execve(process.execPath, args, { ...process.env, GATEHOUSE_DATABASE_URL: url })
  } catch {
    // The system refused the exec (a limit on processes, say): this process still serves what it was asked.
  }
}

/** The arguments without `--database URL` and `--database=URL`. */
export function withoutDatabase(args: string[]): string[] {
  const kept: string[] = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--') return [...kept, ...args.slice(i)]
    if (args[i] === '--database') i++
    else if (!args[i]!.startsWith('--database=')) kept.push(args[i]!)
  }
  return kept
}

/**
 * Set from the moment a secret shown only once (a generated password, a token's value) is written until it has been:
 * standard output failing then is the command's to report and undo, not a reader that stopped early (src/cli/main.ts).
 * It stays set once that write failed, since the stream reports the same failure again, as an event.
 */
let secretOwnsOutput = false

export function secretOwnsStandardOutput(): boolean {
  return secretOwnsOutput
}

/** Writes `text`, holding a secret shown only once, to standard output; rejects with the reason it could not. */
export async function writeSecret(text: string): Promise<void> {
  secretOwnsOutput = true
  await new Promise<void>((resolve, reject) => {
    process.stdout.write(text, (error) => (error ? reject(error) : resolve()))
  })
  secretOwnsOutput = false
}

/** Why a write failed, in one line: the system's code when it has one (EPIPE, ENOSPC). */
export function writeFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code
  const message = (error as Error)?.message ?? String(error)
  return code && !message.includes(code) ? `${message} (${code})` : message
}

/** How many rows a command reads from a store's list at a time. */
const LIST_PAGE = 500

/** Every item of a store's list, read a page at a time (`read` answers the page at `offset`, at most `limit` long). */
export async function everyPage<T>(read: (offset: number, limit: number) => Promise<T[]>): Promise<T[]> {
  const items: T[] = []
  for (let offset = 0; ; offset += LIST_PAGE) {
    const page = await read(offset, LIST_PAGE)
    items.push(...page)
    if (page.length < LIST_PAGE) return items
  }
}

/** A list for people (a table with a header row, aligned columns) or, with --json, for scripts (one JSON array). */
export function printList<T>(items: T[], json: boolean, header: string[], row: (item: T) => string[], asJson: (item: T) => unknown): void {
  if (json) {
    process.stdout.write(JSON.stringify(items.map(asJson), null, 2) + '\n')
    return
  }
  const rows = [header, ...items.map((item) => row(item).map(printable))]
  // A loop, not Math.max(...): spread into arguments, some 125,000 rows overflow the stack.
  const widths = header.map((_, i) => rows.reduce((widest, r) => Math.max(widest, r[i]!.length), 0))
  for (const cells of rows) process.stdout.write(cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd() + '\n')
}
