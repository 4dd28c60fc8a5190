/**
 * What the commands' actions share: the configuration and the database a command works on, found as serve finds
 * them, the app wired on them, and a password read from standard input. Loaded with the actions, never by the
 * commands' definitions (common.ts), which `--help` loads alone.
 */
import { isUtf8 } from 'node:buffer'
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { createApp, type App, type AppOptions } from '../app.ts'
import { demoConfigFile, loadConfigFile, validateConfig } from '../config/load.ts'
import { isPostgresUrl, POSTGRES_URL_FORM, type Config } from '../config/schema.ts'
import { MAX_PASSWORD_LENGTH } from '../directory/accounts.ts'
import { NUL_MESSAGE } from '../errors.ts'
import { Database, dataDirProblem, sqliteFile, type DatabaseLocation } from '../store/database.ts'
import { DatabaseNotMigrated, DataDirUnusable } from '../store/errors.ts'
import { openStore, type Store } from '../store/store.ts'
import { UsageError, type StorageOptions } from './common.ts'

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
