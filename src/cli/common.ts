import { Command, Option } from 'commander'
import { isUtf8 } from 'node:buffer'
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { createApp, type App, type AppOptions } from '../app.ts'
import { demoConfigFile, loadConfigFile, validateConfig } from '../config/load.ts'
import { isPostgresUrl, POSTGRES_URL_FORM, type Config } from '../config/schema.ts'
import { MAX_PASSWORD_LENGTH } from '../directory/accounts.ts'
import { NUL_MESSAGE } from '../errors.ts'
import { printable } from '../logging/printable.ts'
import { Database, dataDirProblem, sqliteFile, urlPasswords, type DatabaseLocation } from '../store/database.ts'
import { DatabaseNotMigrated, DataDirUnusable } from '../store/errors.ts'
import { openStore, type Store } from '../store/store.ts'

/** A mistake in how a command was called: reported in one line, exit status 2. */
export class UsageError extends Error {}

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
function warnOfPasswordInArguments(command: Command): void {
  const url = command.getOptionValue('database') as string | undefined
  if (command.getOptionValueSource('database') !== 'cli' || url === undefined || urlPasswords(url).length === 0) return
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

export function resolveConfig(options: StorageOptions): Config {
  const base = options.config !== undefined ? loadConfigFile(options.config) : options.demo ? loadConfigFile(demoConfigFile) : validateConfig({})
  if (options.database !== undefined && !isPostgresUrl(options.database)) {
    // Not echoed: a value that is not a URL cannot be told where its password is, to hide it.
    throw new UsageError(`--database (or GATEHOUSE_DATABASE_URL) ${POSTGRES_URL_FORM}`)
  }
  if (options.dataDir !== undefined && options.database === undefined && base.storage.database !== undefined) {
    throw new UsageError('--data-dir (or GATEHOUSE_DATA_DIR) names the SQLite database, and the configuration file\'s storage.database a PostgreSQL one; give one of them')
  }
  return validateConfig({
    ...structuredClone(base),
    storage: {
      ...base.storage,
      data_dir: options.dataDir ?? base.storage.data_dir,
      ...(options.database ?? base.storage.database ? { database: options.database ?? base.storage.database } : {}),
    },
  })
}

/** Where the configuration keeps its data, with its time limits. */
export function storageLocation(config: Config): DatabaseLocation {
  const { database, data_dir: dataDir, pool_connections: poolConnections, timeouts } = config.storage
  return { url: database, dataDir, poolConnections, timeouts: { connectMs: timeouts.connect_seconds * 1000, queryMs: timeouts.query_seconds * 1000 } }
}

export async function openConfiguredStore(config: Config): Promise<Store> {
  return openStore(storageLocation(config))
}

/**
 * Only `serve` and `migrate` make a database. Any other command given a mistyped `--data-dir` (or a database URL
 * nothing has migrated) would make an empty one and answer from it (`users list` printing `[]`), or write an account
 * where no gateway reads it: it is refused instead, naming where it looked and how to make one there. A database that
 * has the tables but not yet this version's newest migrations is still upgraded, as `serve` would. Whether it has
 * tables is asked on the store's own connection, before anything is written (`existing`): one open per command.
 */
async function openExistingStore(location: DatabaseLocation): Promise<Store> {
  return await openExisting(location, () => openStore(location, { existing: true }))
}

/** The database itself, without the store's repositories and without migrating it: for `copy-database`'s source. */
export async function openExistingDatabase(location: DatabaseLocation): Promise<Database> {
  return await openExisting(location, () => Database.open(location, { existing: true }))
}

async function openExisting<T>(location: DatabaseLocation, open: () => Promise<T>): Promise<T> {
  if (!location.url) requireDatabaseFile(resolve(location.dataDir))
  try {
    return await open()
  } catch (error) {
    if (error instanceof DatabaseNotMigrated) {
      // The URL is not repeated (its password shown as *** could not be pasted), and a bare `gatehouse migrate` would
      // make SQLite's tables in ./data when the URL came from --database: the database is named as this command named it.
      const where = location.url ? ', naming the database as this command did' : ` --data-dir ${resolve(location.dataDir)}`
      throw new UsageError(`the database ${error.description} has no Gatehouse tables; create them with: gatehouse migrate${where} (serve creates them too)`)
    }
    throw error
  }
}

/** The data directory and its database file are there; looked at without opening anything, which would make them. */
function requireDatabaseFile(dir: string): void {
  if (!existsSync(dir)) {
    throw new DataDirUnusable(dir, `it does not exist; create it and its database with: gatehouse migrate --data-dir ${dir} (serve creates them too)`, undefined)
  }
  // Opening the store says what else is wrong with it (a file, not a directory; one it may not write).
  if (!statSync(dir).isDirectory()) return
  // One this user may not look into hides its database: "create one with migrate" would be the wrong advice.
  const problem = dataDirProblem(dir, sqliteFile(dir))
  if (problem) throw new DataDirUnusable(dir, problem, undefined)
  if (!existsSync(sqliteFile(dir))) {
    throw new DataDirUnusable(dir, `it holds no database (gatehouse.sqlite); create one with: gatehouse migrate --data-dir ${dir} (serve creates one too)`, undefined)
  }
}

/**
 * Runs a command body with the app wired as the server wires it, and closes everything afterwards. The database's
 * clock is read first: what a command stamps or signs (a personal token's time of issue, a realm's not-before, the
 * logout tokens and admin calls sent when sessions end) is dated by it, as the gateway processes date theirs, whatever
 * this machine's clock says.
 */
export async function withApp<T>(options: StorageOptions, body: (app: App) => Promise<T>, appOptions: AppOptions = {}): Promise<T> {
  const config = resolveConfig(options)
  const store = await openExistingStore(storageLocation(config))
  try {
    const app = await createApp(config, store, appOptions)
    app.audit.start({ periodic: false, stdout: false })
    let auditError: unknown
    app.audit.onError = (error) => (auditError = error)
    let result: T
    try {
      result = await body(app)
    } finally {
      await app.close()
    }
    // The change is made and cannot be taken back; a script must not take an unrecorded one for a clean run: one still
    // waiting (the database away), or one the database refused and the trail left out.
    if (app.audit.waiting > 0 || auditError !== undefined) {
      const reason = (auditError as Error)?.message ?? String(auditError)
      throw new Error(`done, but the audit trail could not record it: ${reason.split('\n', 1)[0]}`)
    }
    return result
  } finally {
    await store.close()
  }
}

/**
 * The most bytes a password's UTF-8 may take (three for each UTF-16 unit), with a CRLF: more is refused as it comes,
 * so a stream that never ends (a wrong file, `/dev/zero`) is not read into memory until the process runs out of it.
 */
const MAX_PASSWORD_BYTES = MAX_PASSWORD_LENGTH * 3 + 2

/**
 * The password on standard input, without its final line break. Bytes that are not UTF-8 would turn into U+FFFD
 * and a NUL would make a password no login could send (every request with one is refused): both are refused here.
 * So are a second line (`printf 'pw\n\n'`, two lines piped by mistake), another control character than a tab, and a
 * byte-order mark in front (an editor's): kept, they made a password no one typing it at a login could give.
 */
export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('--password-stdin expects the password on standard input (e.g. echo "$PW" | gatehouse ...)')
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer)
    size += (chunk as Buffer).length
    if (size > MAX_PASSWORD_BYTES) throw new UsageError(`the password on standard input: Ensure this field has no more than ${MAX_PASSWORD_LENGTH} characters.`)
  }
  const bytes = Buffer.concat(chunks)
  if (!isUtf8(bytes)) throw new UsageError('the password on standard input is not UTF-8')
  const text = bytes.toString('utf8').replace(/\r?\n$/, '')
  if (text.includes('\u0000')) throw new UsageError(`the password on standard input: ${NUL_MESSAGE}`)
  if (/[\r\n]/.test(text)) throw new UsageError('the password on standard input is more than one line: give it alone, on one line')
  if (/[\u0001-\u0008\u000b-\u001f\u007f]/.test(text)) throw new UsageError('the password on standard input holds a control character, which no login form can send')
  if (text.startsWith('\ufeff')) throw new UsageError('the password on standard input starts with a byte-order mark (U+FEFF): save the file without one')
  return text
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
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  for (const cells of rows) process.stdout.write(cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd() + '\n')
}
