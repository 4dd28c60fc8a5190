import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import type { DatabaseConnection, Dialect, Driver, PostgresPool, QueryResult, TransactionBuilder, TransactionSettings } from 'kysely'
import type { DatabaseSync } from 'node:sqlite'
import type pg from 'pg'
import { DatabaseLockHeld, DatabaseUnavailable, NUL_MESSAGE, TransactionConflict, ValidationFailed } from '../errors.ts'
import { printable } from '../logging/printable.ts'
import { DatabaseNotMigrated, DatabaseUnusable, DataDirUnusable, ForeignKeyViolation, MigrationFailed, UniqueViolation } from './errors.ts'
import { CompiledQuery, Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from './kysely.ts'
import type { Tables } from './schema.ts'
import type { DialectName } from './migrations/helpers.ts'
import { migrationNames, migrationProvider } from './migrations/index.ts'
import { DatabaseFileGone, NodeSqliteDatabase } from './sqlite-driver.ts'

/** How a write transaction starts on SQLite: it takes the write lock at once (`beginTransaction`). */
const BEGIN_WRITE = 'begin immediate'

/**
 * Makes the data directory when it is missing, and opens the database file in it in WAL mode. A directory or file
 * this process may not read and write is named with the reason before SQLite opens it: SQLite would say only
 * "unable to open database file", or open a read-only file and refuse the first write.
 */
async function openSqliteFile(dir: string, file: string, busyTimeoutMs: number, existing: boolean): Promise<NodeSqliteDatabase> {
  try {
    // The database holds the realms' private signing keys and every password hash: only its owner may read what
    // is made here (SQLite gives the -wal and -shm files the database file's mode). What exists is left as it is.
    makeDirectory(resolve(dir))
  } catch (error) {
    throw new DataDirUnusable(dir, whyNotMade(error) ?? (error as Error).message, error)
  }
  const problem = dataDirProblem(dir, file)
  if (problem) throw new DataDirUnusable(dir, problem, undefined)
  try {
    if (!existsSync(file)) closeSync(openSync(file, 'a', PRIVATE_FILE))
  } catch (error) {
    throw new DataDirUnusable(dir, (error as Error).message, error)
  }
  let sqlite: NodeSqliteDatabase | undefined
  try {
    sqlite = new NodeSqliteDatabase(file, busyTimeoutMs)
    // Asked before WAL mode is turned on, which would write to a file that is to be left as it is.
    if (existing && !hasMigrationTable(sqlite.raw)) throw new DatabaseNotMigrated(`sqlite:${file}`)
    // Opening waits for another process's migrations as long as migrating does.
    await sqlite.useWal(MIGRATION_WAIT_MS, (holders) => sayWaitingForSqlite(`sqlite:${file}`, holders))
    return sqlite
  } catch (error) {
    sqlite?.close()
    if (error instanceof DatabaseNotMigrated) throw error
    // A file that is not a database (a wrong file restored as a backup) fails here, in words that do not say which file.
    throw new DatabaseUnusable(`sqlite:${file}`, error)
  }
}

/**
 * `mkdir -p`, one directory at a time: Node's recursive mkdir retries for ever where making a directory fails with
 * ENOENT though its parent exists (in /proc, or a parent removed meanwhile).
 */
export function makeDirectory(dir: string): void {
  try {
    mkdirSync(dir, PRIVATE_DIR)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST' && statSync(dir).isDirectory()) return
    const parent = dirname(dir)
    if (code !== 'ENOENT' || parent === dir || existsSync(parent)) throw error
    makeDirectory(parent)
    mkdirSync(dir, PRIVATE_DIR)
  }
}

export function whyNotMade(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'EEXIST') return 'it is a file, not a directory'
  if (code === 'ENOENT') return 'no directory can be made there'
  if (code === 'ENOTDIR') return 'a part of its path is a file, not a directory'
  if (code === 'EACCES') return 'permission denied'
  return undefined
}

/**
 * Whoever may write to the data directory may put their own database in it, or a link where the database file goes,
 * with their own accounts and signing keys; whoever may write to the file, change what it holds. As PostgreSQL
 * refuses such a data directory, so does Gatehouse: it must be the running user's, and neither it nor the database
 * file writable by its group or other users. (A link the owner put there is theirs to put, and is followed.)
 */
function othersMayWrite(dir: string, file: string): string | undefined {
  const uid = process.geteuid?.()
  const stats = statSync(dir)
  if (uid !== undefined && stats.uid !== uid) return `it belongs to user ${stats.uid}, not to the user running Gatehouse (${uid}); run Gatehouse as its owner`
  if (stats.mode & 0o022) return `other users may write to it (mode ${(stats.mode & 0o7777).toString(8)}); chmod go-w it (0700)`
  const fileStats = statSync(file, { throwIfNoEntry: false })
  if (fileStats && fileStats.mode & 0o022) return `other users may write to ${basename(file)} (mode ${(fileStats.mode & 0o7777).toString(8)}); chmod go-w it (0600)`
  return undefined
}

/** Why an existing data directory, or its database file, may not be used (permissions, ownership), if it may not. */
export function dataDirProblem(dir: string, file: string): string | undefined {
  return accessProblem(dir, file) ?? othersMayWrite(dir, file)
}

function accessProblem(dir: string, file: string): string | undefined {
  const readWrite = constants.R_OK | constants.W_OK
  if (!accessible(dir, readWrite | constants.X_OK)) return 'permission denied (it must be readable and writable)'
  if (existsSync(file) && !accessible(file, readWrite)) return `permission denied on ${basename(file)} (it must be readable and writable)`
  return undefined
}

/** Whether this process may use `path` as `mode` (fs.constants' R_OK, W_OK, X_OK) asks. */
export function accessible(path: string, mode: number): boolean {
  try {
    accessSync(path, mode)
    return true
  } catch {
    return false
  }
}

const PRIVATE_DIR = 0o700
const PRIVATE_FILE = 0o600

let postgres: Promise<typeof pg> | undefined

/** node-postgres, loaded for the first postgres:// database: SQLite starts without it. */
function loadPostgres(): Promise<typeof pg> {
  return postgres ??= import('pg').then(({ default: loaded }) => {
    // PostgreSQL BIGINT (our epoch-millisecond times) arrives as a string by default; every value we store fits a double.
    loaded.types.setTypeParser(loaded.types.builtins.INT8, (value) => Number(value))
    return loaded
  })
}

export interface DatabaseTimeouts {
  /** Opening a connection, or waiting for a free one in the pool. */
  connectMs: number
  /**
   * One query (PostgreSQL: on the client and on the server), or, on SQLite, waiting for another process's lock.
   * Infinity: no bound, for an administrator's command over a whole database (`copy-database`).
   */
  queryMs: number
  /** PostgreSQL: how long a transaction may sit idle (IDLE_IN_TRANSACTION_MS unless given; Infinity: no bound). */
  idleInTransactionMs?: number | undefined
}

export const defaultTimeouts: DatabaseTimeouts = { connectMs: 1000, queryMs: 2000 }

/** As `storage.pool_connections`' default, for the stores opened without a configuration (the tests'). */
const DEFAULT_POOL_CONNECTIONS = 10

export interface DatabaseLocation {
  /** A `postgres://` URL; when absent, the embedded SQLite file in `dataDir` is used. */
  url?: string | undefined
  dataDir: string
  timeouts?: DatabaseTimeouts | undefined
  /** PostgreSQL: the pool's most connections (`storage.pool_connections`). */
  poolConnections?: number | undefined
}

/** Whether the database answered its last query; what a readiness check reports. */
export interface DatabaseStatus {
  reachable: boolean
  /** Since when it has been (un)reachable, epoch ms. */
  since: number
}

/** What an operator needs to know of an outage, at most once per REPORT_INTERVAL_MS while it lasts. */
export interface OutageReport {
  state: 'unavailable' | 'still_unavailable' | 'available'
  /** When the outage began, epoch ms. */
  since: number
  /** Queries that failed since the previous report. */
  failures: number
  /** The last failure's message (a driver message: no query text, no credentials). */
  error: string | undefined
  /**
   * Outages since the previous report that began and ended between reports (within a minute of one), unreported, and
   * their failed queries: counted in the next report, so that each report's `failures` are its own outage's. With
   * some, when the first of them began (epoch ms) and the last one's error.
   */
  earlierOutages: number
  earlierFailures: number
  earlierSince?: number
  earlierError?: string | undefined
}

/**
 * What a statement waited for, held by another transaction: a `row` (PostgreSQL's error context names it); the
 * `advisory` lock a transaction of Gatehouse's own takes to go one at a time (a user's sessions under
 * `sessions_per_user_limit`, the settings, a signing key), held by another such transaction; or a `table` (or another
 * object) another client locked whole (`LOCK TABLE`, `ALTER TABLE`, `VACUUM FULL`).
 */
export type HeldLock = 'row' | 'advisory' | 'table'

/**
 * PostgreSQL: statements that gave up waiting for a lock another transaction holds, at most one report of each kind
 * of lock per REPORT_INTERVAL_MS. The database answered each: no outage.
 */
export interface LockWaitReport {
  lock: HeldLock
  /** Statements that gave up waiting for this kind of lock since its previous report, the one reported included. */
  waits: number
  /** PostgreSQL's message for the last one (`canceling statement due to lock timeout`). */
  error: string
  /** What it waited for, in PostgreSQL's words (`while updating tuple (0,1) in relation "users"`), where it says. */
  where: string | undefined
}

const REPORT_INTERVAL_MS = 60_000
/** A transaction left open this long by a client that vanished or froze is ended by PostgreSQL, releasing its locks. */
const IDLE_IN_TRANSACTION_MS = 10_000
/** TCP keepalive on every PostgreSQL connection, so a peer that disappeared without closing is noticed. */
const KEEPALIVE_DELAY_MS = 10_000
/** For connections whose statements may rightly take long, or wait (LISTEN, migrations). */
const UNBOUNDED = { query_timeout: undefined, statement_timeout: undefined, idle_in_transaction_session_timeout: undefined }
/**
 * PostgreSQL: the server's own timeouts end a little sooner than the client's query timeout, by this much (or a quarter
 * of the query timeout when that is under 0.8 s), so that the server says why a statement ended, and which lock it
 * waited for, before the client's timeout, which cannot tell a lock held by another client from a server that does not
 * answer, gives up on it: statement_timeout one margin sooner, lock_timeout two. A lock waited for from the start of a
 * statement ends on lock_timeout (55P03); one that the statement came to late (after other work, or after another
 * lock) ends on statement_timeout (57014), with the row it waited for in the error's context (isLockWait).
 */
const SERVER_TIMEOUT_MARGIN_MS = 200
const MIGRATION_CONNECT_MS = 10_000
/** How long a process starting next to another waits for the other's SQLite migrations. */
const MIGRATION_WAIT_MS = 60_000
/**
 * PostgreSQL: how long one of a migration's statements waits for a lock (another session's long transaction on a
 * table it changes, a `pg_dump`), before the migration rolls back and tries again, until MIGRATION_WAIT_MS have
 * passed. A waiting ALTER TABLE holds up every request that reads the table behind it: a short wait bounds that, and
 * a migration cut short by a signal leaves no statement waiting on the server for longer.
 */
const MIGRATION_LOCK_WAIT_MS = 1_000
/** The advisory lock Kysely's Migrator holds on PostgreSQL while it migrates (its PostgresAdapter's, not exported). */
const MIGRATION_LOCK_ID = BigInt('3853314791062309107')
/** How long a start waits for another process's migrations: as long as the Migrator waits for its lock. */
const MIGRATIONS_UNDER_WAY_WAIT_MS = 3_600_000
/** How often a start waiting for another process's migrations asks whether their lock is free. */
const MIGRATION_LOCK_POLL_MS = 250
/** How often a start that waits for another process's migrations says it still does. */
const MIGRATION_WAIT_REPORT_MS = 60_000
/** PostgreSQL's SQLSTATE for a connection refused by max_connections, or by a role's or a database's connection limit. */
const TOO_MANY_CONNECTIONS = '53300'
/** How long a pool refused a connection for the server's limit keeps to those it holds before it opens another. */
const CONNECTION_LIMIT_HOLD_MS = 1_000
/** PostgreSQL's SQLSTATE for a lock not obtained within lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03'
/** PostgreSQL's SQLSTATE for a statement canceled: by statement_timeout, among others. */
const QUERY_CANCELED = '57014'
/**
 * A tuple's id, `(0,2)`, as PostgreSQL's context for a wait on another transaction's row names it (`while updating tuple
 * (0,2) in relation "users"`, `while inserting index tuple ...`, `while locking tuple ...`): numbers, so the same in
 * whatever language the server writes its messages. Gatehouse's statements call no functions of their own, so the
 * only other context they get is that of a foreign key's action ("SQL statement ..."), which names no tuple.
 */
const WAITED_TUPLE = /\(\d+,\d+\)/
/** A statement of Gatehouse's own that waits for an advisory lock (the store's, in src/store/). */
const TAKES_ADVISORY_LOCK = /\bpg_advisory_(xact_)?lock(_shared)?\(/
/** Characters PostgreSQL cannot store in text (SQLite can): refused for both, so both behave alike. */
const NUL = '\u0000'

/**
 * One open connection (pool) to either backend, with the one query layer on top. Every query is bounded in time
 * (DatabaseTimeouts), and every failure that means "the database cannot be reached or did not answer" becomes
 * DatabaseUnavailable (503), so a request never hangs on the database and never answers 500 for an outage.
 */
export class Database {
  readonly db: Kysely<Tables>
  readonly dialect: DialectName
  readonly description: string
  readonly #sqlite: NodeSqliteDatabase | undefined
  readonly #pgConfig: pg.ClientConfig | undefined
  readonly #pool: pg.Pool | undefined
  readonly #health = new Health()

  private constructor(dialect: DialectName, description: string, inner: Dialect, sqlite?: NodeSqliteDatabase, pgConfig?: pg.ClientConfig, pool?: pg.Pool) {
    this.dialect = dialect
    this.description = description
    this.#sqlite = sqlite
    this.#pgConfig = pgConfig
    this.#pool = pool
    const config = { dialect: new GuardedDialect(inner, this.#health, sqlite) }
    this.db = dialect === 'postgres' ? new ConflictRetryingKysely(config) : new Kysely<Tables>(config)
  }

  /**
   * With `existing`, a database nothing has migrated is refused (DatabaseNotMigrated) on the connection just opened,
   * and left as it was: for the commands that work on what is there, which must not make an empty one and answer from it.
   */
  static async open(location: DatabaseLocation, { existing = false }: { existing?: boolean } = {}): Promise<Database> {
    const url = location.url
    const timeouts = location.timeouts ?? defaultTimeouts
    if (url && /^postgres(ql)?:\/\//.test(url)) {
      const pg = await loadPostgres()
      const config: pg.ClientConfig = {
        connectionString: certificateCheckingSslMode(url),
        connectionTimeoutMillis: timeouts.connectMs,
        query_timeout: bounded(timeouts.queryMs),
        statement_timeout: serverTimeout(timeouts.queryMs, 1),
        idle_in_transaction_session_timeout: bounded(timeouts.idleInTransactionMs ?? IDLE_IN_TRANSACTION_MS),
        keepAlive: true,
        keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      }
      const pool = new pg.Pool({ ...config, max: location.poolConnections ?? DEFAULT_POOL_CONNECTIONS })
      // An idle client losing its connection must not crash the process; the pool drops it and the next query reconnects.
      pool.on('error', () => {})
      // Nor may a checked-out one: its query in flight fails on its own, but pg also emits 'error' on the
      // client, where the pool listens only while the client is idle.
      pool.on('connect', (client) => client.on('error', () => {}))
      const lockWaitMs = serverTimeout(timeouts.queryMs, 2)
      // Set once the connection is open (pg runs it before the query the connection was opened for), not as a
      // startup parameter as the other timeouts are: a pooler in front (PgBouncer) refuses a connection whose startup
      // parameters it was not told to accept, and a deployment's list would lack this one. Failing, it leaves a lock
      // wait to the statement timeout.
      if (lockWaitMs !== undefined) pool.on('connect', (client) => void client.query(`set lock_timeout = ${lockWaitMs}`).catch(() => {}))
      const database = new Database('postgres', redactUrl(url), new PostgresDialect({ pool: discardingBrokenClients(pool) }), undefined, config, pool)
      if (existing && await database.hasTables() === false) {
        await database.close()
        throw new DatabaseNotMigrated(database.description)
      }
      return database
    }
    if (url) throw new Error(`unsupported database URL scheme (expected postgres://): ${redactUrl(url)}`)
    const dir = resolve(location.dataDir)
    const file = sqliteFile(dir)
    const sqlite = await openSqliteFile(dir, file, timeouts.queryMs, existing)
    return new Database('sqlite', `sqlite:${file}`, new SqliteDialect({ database: sqlite }), sqlite)
  }

  /**
   * Applies every pending migration; safe to run from several processes at once. On PostgreSQL through a connection
   * of its own without the query timeouts: a migration may take longer than any request should, and a process
   * starting next to another waits for the other's migrations to finish (an advisory lock). Kysely takes no lock on
   * SQLite (it counts on one connection in all), so there the whole run is one immediate transaction: a process
   * starting next to another waits for it (saying so on stderr, as on PostgreSQL), then finds the migrations applied.
   */
  async migrate(): Promise<string[]> {
    if (!this.#sqlite) {
      // A database that does not answer is left to the migrations' own connection to say why (its driver's words).
      await this.#waitForMigrationsUnderWay().catch((error: unknown) => {
        if (!(error instanceof DatabaseUnavailable)) throw error
      })
      return await this.#hasEveryMigration() ? [] : this.#migrate()
    }
    const sqlite = this.#sqlite
    const raw = sqlite.raw
    // Waiting for another process's migrations is not a query: it may rightly take longer than the query timeout.
    await sqlite.startWhenUnlocked(() => raw.exec('BEGIN IMMEDIATE'), MIGRATION_WAIT_MS, (holders) => sayWaitingForSqlite(this.description, holders))
    try {
      sqlite.waitInsideSqlite(MIGRATION_WAIT_MS)
      // Every start but the first after an install or an upgrade finds the database up to date: one query under the
      // lock says so, and the Migrator (with the migrations' code) is left to the starts with something to do. Up to
      // date includes a database a newer version migrated further: see #hasEveryMigration.
      const applied = hasEveryMigration(raw) ? [] : await this.#migrate()
      try {
        raw.exec('COMMIT')
      } catch (error) {
        // Their commit failed (a full disk): rolled back below, none of them stays applied.
        throw applied.length ? new MigrationFailed(this.description, undefined, applied, error) : error
      }
      return applied
    } catch (error) {
      if (raw.isTransaction) raw.exec('ROLLBACK')
      throw error
    } finally {
      sqlite.waitInsideSqlite(0)
    }
  }

  /**
   * Whether the database has every migration this version knows. Those of a newer version beside them do not stop
   * it: during a rolling upgrade the old processes serve on the migrated database, so one of them restarting (or a
   * worker replaced) must start there too, as after a rollback. Kysely's Migrator would refuse them as "corrupted".
   */
  async #hasEveryMigration(): Promise<boolean> {
    return (await this.#pendingMigrations())?.length === 0
  }

  /** The migrations the database has yet to apply; undefined when that cannot be read. */
  async #pendingMigrations(): Promise<string[] | undefined> {
    try {
      return (await this.migrationStatus()).pending
    } catch {
      // A new database, without the Migrator's table yet (or one not answering, which migrating will say).
      return undefined
    }
  }

  /**
   * PostgreSQL: waits while another process holds the migrations' lock (up to MIGRATIONS_UNDER_WAY_WAIT_MS, as the
   * Migrator would), before this one looks at what it has to apply. A newer version may be migrating beside it (a
   * rolling upgrade, a worker replaced meanwhile): its one transaction holds the tables it changes until it commits,
   * and this start's first queries on them (the first superuser) would fail after the query timeout, ending the start
   * with a database "not available" that is only busy. Free (every start but those few), this costs one query.
   *
   * It asks again every MIGRATION_LOCK_POLL_MS rather than queueing for the lock on the server: a start stopped or
   * killed while it waits (a service manager's start timeout) leaves nothing behind, where a statement waiting for
   * the lock went on holding a connection of the server's max_connections for up to an hour after the process was
   * gone. And it says on stderr that it waits, for which server process, and once a minute that it still does, so a
   * hung migration is not a silent start.
   */
  async #waitForMigrationsUnderWay(): Promise<void> {
    const started = performance.now()
    let reported = -Infinity
    for (;;) {
      // A transaction's lock, the statement's own: it goes with the statement however that ends (a statement timeout
      // halfway), so the pooled connection never keeps it.
      const { rows } = await sql<{ free: boolean; holder: number | null }>`select pg_try_advisory_xact_lock(${sql.lit(MIGRATION_LOCK_ID)}) as free, (select pid from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database()) and objsubid = 1 and (classid::bigint << 32 | objid::bigint) = ${sql.lit(MIGRATION_LOCK_ID)} limit 1) as holder`.execute(this.db)
      if (rows[0]?.free) return
      const waited = performance.now() - started
      const holder = rows[0]?.holder ? ` (PostgreSQL server process ${rows[0].holder} holds their lock)` : ''
      if (waited >= MIGRATIONS_UNDER_WAY_WAIT_MS) {
        throw new Error(`another process has been migrating the database for ${MIGRATIONS_UNDER_WAY_WAIT_MS / 3_600_000} h, and still is${holder}; try again once it is done`)
      }
      if (waited - reported >= MIGRATION_WAIT_REPORT_MS) {
        const still = reported < 0 ? 'waiting' : `still waiting (${Math.round(waited / 60_000)} min)`
        process.stderr.write(`gatehouse: ${still} for another process's migrations of ${printable(this.description)} to be committed${holder}; giving up after ${MIGRATIONS_UNDER_WAY_WAIT_MS / 3_600_000} h\n`)
        reported = waited
      }
      await delay(MIGRATION_LOCK_POLL_MS)
    }
  }

  async #migrate(): Promise<string[]> {
    const pg = this.#pgConfig && await loadPostgres()
    const pool = pg && new pg.Pool({ ...this.#pgConfig, ...UNBOUNDED, lock_timeout: MIGRATION_LOCK_WAIT_MS, connectionTimeoutMillis: MIGRATION_CONNECT_MS, max: 1 })
    pool?.on('error', () => {})
    const db = pool ? new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) }) : this.db
    try {
      const migrator = gatehouseMigrator(db, this.dialect)
      const deadline = performance.now() + MIGRATION_WAIT_MS
      for (let attempt = 1; ; attempt++) {
        // On PostgreSQL every pending migration runs in one transaction: one that waited too long rolled them all back.
        const { error, results } = await migrator.migrateToLatest()
        if (!error) return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
        // The Migrator, once it had the lock, found migrations it does not know: a newer version applied its own, and
        // with them those this one was to apply, while this one waited. Then there is nothing left to do here.
        const pending = results ? undefined : await this.#pendingMigrations()
        if (pending?.length === 0) return []
        const failed = results?.find((r) => r.status === 'Error')
        if ((error as { code?: unknown }).code !== LOCK_NOT_AVAILABLE) {
          if (failed) throw new MigrationFailed(this.description, failed.migrationName, results!.map((r) => r.migrationName), error)
          // Failed with none of them its cause (their commit, on a full disk): what is still pending was rolled back.
          throw pending?.length ? new MigrationFailed(this.description, undefined, pending, error) : error
        }
        if (performance.now() >= deadline) {
          throw new Error(`a table the migrations change stayed locked by another session (a long transaction, a pg_dump) for ${MIGRATION_WAIT_MS / 1000} s; nothing was changed, try again once it ends`, { cause: error })
        }
        await delay(Math.min(200 * attempt, 2_000))
      }
    } finally {
      if (db !== this.db) await db.destroy()
    }
  }

  /** SQLite only: a counter that moves when another process commits (undefined on PostgreSQL). */
  dataVersion(): number | undefined {
    if (!this.#sqlite) return undefined
    try {
      return this.#sqlite.dataVersion()
    } catch (error) {
      throw this.#health.classify(error)
    }
  }

  /**
   * PostgreSQL only: a connection of its own (outside the pool, which must not lose a member to it) for LISTEN,
   * with the same timeouts and keepalive. The caller ends it.
   */
  async listenClient(): Promise<pg.Client | undefined> {
    if (!this.#pgConfig) return undefined
    const pg = await loadPostgres()
    const client = new pg.Client({ ...this.#pgConfig, ...UNBOUNDED })
    // Until the caller attaches its own: an error event without a listener would end the process.
    client.on('error', () => {})
    try {
      await client.connect()
    } catch (error) {
      await client.end().catch(() => {})
      throw error
    }
    return client
  }

  /**
   * Ends a connection of its own (`listenClient`'s) within the connect timeout. pg's end() waits for the server to
   * close its side, which a frozen server (or one whose host vanished) never does, and a stop waited with it for as
   * long as the database did not answer; past that bound the socket is cut, as pg cuts one whose query hangs.
   */
  async endClient(client: pg.Client): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const ended = client.end().then(() => true, () => true)
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#pgConfig?.connectionTimeoutMillis ?? defaultTimeouts.connectMs)
    })
    if (!await Promise.race([ended, late])) (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy()
    clearTimeout(timer)
  }

  /** Whether the last query reached the database, and since when: for readiness checks; costs nothing. */
  status(): DatabaseStatus {
    return this.#health.status()
  }

  /** PostgreSQL's connection pool: connections open, idle, and requests waiting for one. None on SQLite (one connection). */
  poolStatus(): { total: number; idle: number; waiting: number } | undefined {
    const pool = this.#pool
    return pool && { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }
  }

  /** Tells `listener` how long each query took (seconds), whether it succeeded or not, and its SQL. */
  onQuery(listener: (seconds: number, sql: string) => void): void {
    this.#health.queryListeners.push(listener)
  }

  /** Tells `listener` when an outage begins, at most once a minute while it lasts, and when it ends. */
  onOutage(listener: (report: OutageReport) => void): () => void {
    return this.#health.subscribe(listener)
  }

  /** PostgreSQL: tells `count` of each statement that gave up waiting for a lock, as it does (for the metrics). */
  onEachLockWait(count: (lock: HeldLock) => void): void {
    this.#health.lockWaitCounters.push(count)
  }

  /** PostgreSQL: tells `listener` of statements that gave up waiting for a lock, at most once a minute for each kind of lock. */
  onLockWait(listener: (report: LockWaitReport) => void): () => void {
    return this.#health.subscribeLockWaits(listener)
  }

  /**
   * One query that shows the database answers and how its schema compares with this version's migrations:
   * `pending` ones this version needs and the database lacks, `unknown` ones a newer version has applied.
   */
  async migrationStatus(): Promise<{ applied: number; pending: string[]; unknown: string[] }> {
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(this.db)
    const applied = new Set(rows.map((row) => row.name))
    const known = migrationNames
    return {
      applied: applied.size,
      pending: known.filter((name) => !applied.has(name)),
      unknown: [...applied].filter((name) => !known.includes(name)),
    }
  }

  /**
   * Whether anything migrated the database (Kysely's record of the migrations is there). Undefined when the database
   * cannot say (it does not answer): what is done with it next reports that in its own words.
   */
  async hasTables(): Promise<boolean | undefined> {
    try {
      const tables = await this.db.introspection.getTables({ withInternalKyselyTables: true })
      return tables.some((table) => table.name === 'kysely_migration')
    } catch {
      return undefined
    }
  }

  async ping(): Promise<boolean> {
    try {
      await this.db.selectFrom('settings').select('key').limit(1).execute()
      return true
    } catch {
      return false
    }
  }

  async close(): Promise<void> {
    // Before the main connection closes, so that is the last one and leaves the file checkpointed.
    await this.#sqlite?.checkpointer?.stop()
    await this.db.destroy()
  }
}

/**
 * A SQLite start kept waiting by another process's lock says so on stderr, as a PostgreSQL start waiting for another's
 * migrations does (Database#waitForMigrationsUnderWay), instead of being silent for up to MIGRATION_WAIT_MS.
 */
function sayWaitingForSqlite(description: string, holders: number[]): void {
  const holder = holders.length ? ` (process ${holders.join(', ')} holds its write lock)` : ''
  process.stderr.write(`gatehouse: waiting for another process's migrations of ${printable(description)} to be committed, or its write to end${holder}; giving up after ${MIGRATION_WAIT_MS / 1000} s\n`)
}

/**
 * A time limit as node-postgres takes it: none (undefined) for Infinity, or for one beyond what a timer (and the
 * server's setting) holds, which Node would cut to 1 ms.
 */
function bounded(ms: number): number | undefined {
  return ms < 2 ** 31 ? ms : undefined
}

/** PostgreSQL: a server-side timeout `margins` SERVER_TIMEOUT_MARGIN_MS shorter than the query timeout, in whole ms. */
function serverTimeout(queryMs: number, margins: 1 | 2): number | undefined {
  const ms = bounded(queryMs - margins * Math.min(SERVER_TIMEOUT_MARGIN_MS, queryMs / 4))
  return ms === undefined ? undefined : Math.max(1, Math.round(ms))
}

/** Where the embedded SQLite database of a data directory is. */
export function sqliteFile(dataDir: string): string {
  return join(resolve(dataDir), 'gatehouse.sqlite')
}

function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string }
  return e?.code === '23505' || /UNIQUE constraint failed/.test(String(e?.message))
}

function isForeignKeyViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string }
  return e?.code === '23503' || /FOREIGN KEY constraint failed/.test(String(e?.message))
}

/**
 * PostgreSQL's "not now, try the whole transaction again": 40P01 deadlock_detected (two transactions took row or
 * advisory locks in opposite orders, and the server ended one of them) and 40001 serialization_failure. SQLite has
 * neither: its writers take turns on one lock, waited for (whenUnlocked).
 */
const PG_CONFLICT = new Set(['40P01', '40001'])

function isConflict(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code
  return typeof code === 'string' && PG_CONFLICT.has(code)
}

/** How many times a transaction is run in all before its conflict is answered (TransactionConflict, 503). */
const CONFLICT_ATTEMPTS = 3
/** The wait before attempt n + 1 is up to n times this, at random: the two that collided should not meet again. */
const CONFLICT_BACKOFF_MS = 25

/**
 * Kysely whose transactions, when PostgreSQL ends one as a deadlock or a serialization failure, are run again as a
 * whole (the callback from its start, on a new transaction), up to CONFLICT_ATTEMPTS in all. That is safe because a
 * transaction's callback, by the store's contract (Store.transaction), works through its transaction only: what
 * an attempt did is rolled back with it, and nothing outside was done twice. A conflict on every attempt is thrown
 * as TransactionConflict. Only transactions are run again: a statement on its own that loses a deadlock is answered
 * TransactionConflict at once, as its caller may have acted on the statements before it.
 */
class ConflictRetryingKysely extends Kysely<Tables> {
  override transaction(): TransactionBuilder<Tables> {
    return retryingConflicts(super.transaction())
  }
}

function retryingConflicts(builder: TransactionBuilder<Tables>): TransactionBuilder<Tables> {
  const retrying: Pick<TransactionBuilder<Tables>, 'execute' | 'setAccessMode' | 'setIsolationLevel'> = {
    setAccessMode: (mode) => retryingConflicts(builder.setAccessMode(mode)),
    setIsolationLevel: (level) => retryingConflicts(builder.setIsolationLevel(level)),
    async execute(work) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await builder.execute(work)
        } catch (error) {
          if (!(error instanceof TransactionConflict) || attempt === CONFLICT_ATTEMPTS) throw error
          await delay(Math.random() * CONFLICT_BACKOFF_MS * attempt)
        }
      }
    },
  }
  return retrying as TransactionBuilder<Tables>
}

/** Socket errors that mean the server is not there. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])
/** pg-pool's message for a request that waited the connect timeout for one of the pool's connections to come free. */
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect'
/** node-postgres's own messages for a connection that timed out, broke or was never made. */
const PG_CLIENT_FAILURE = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed)/
/**
 * SQLSTATEs for "not now" rather than "not like that": connection exceptions (08), shutting down or not accepting
 * connections (57P01-57P03), statement timeout (57014), insufficient resources (53), system errors (58), and a
 * server that takes no writes (25006: a standby, as the old primary is after a failover, until the pool reaches the
 * new one).
 */
const PG_UNAVAILABLE = /^(08|53|58|57P0[123]|57014|25006)/
/** SQLite result codes (the primary code, the low byte) for a database locked by another process too long, or unreadable. */
const SQLITE_UNAVAILABLE = new Set([5 /* BUSY */, 6 /* LOCKED */, 10 /* IOERR */, 13 /* FULL */, 14 /* CANTOPEN */, 15 /* PROTOCOL */])

/** Whether anything migrated a SQLite database; throws for a file that is not one. */
function hasMigrationTable(raw: DatabaseSync): boolean {
  return raw.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kysely_migration'").get() !== undefined
}

/** Whether a SQLite database has applied every one of this version's migrations (a newer version's may be there too). */
function hasEveryMigration(raw: DatabaseSync): boolean {
  let applied: Set<string>
  try {
    applied = new Set(raw.prepare('SELECT name FROM kysely_migration').all().map((row) => String(row.name)))
  } catch {
    // A new database, without the Migrator's table yet.
    return false
  }
  return migrationNames.every((name) => applied.has(name))
}

/**
 * PostgreSQL gave up a statement's wait for a lock another client holds: lock_timeout (55P03), or, for a row the
 * statement came to late, when lock_timeout had not yet run out, statement_timeout (57014) in the middle of the wait,
 * which the error's context says (WAITED_TUPLE). A statement timeout with no such context is a slow server: an outage.
 */
function isLockWait(error: unknown): boolean {
  const e = error as { code?: unknown; where?: unknown }
  if (e?.code === LOCK_NOT_AVAILABLE) return true
  return e?.code === QUERY_CANCELED && waitedForRow(e.where)
}

function waitedForRow(where: unknown): boolean {
  return typeof where === 'string' && WAITED_TUPLE.test(where)
}

/**
 * Which kind of lock a statement that gave up waiting (isLockWait) waited for: a row when the error's context names
 * one; else an advisory lock when the statement (`sql`) is one that takes it; else a table or another whole object,
 * which PostgreSQL gives no context for.
 */
function heldLock(error: unknown, sql: string | undefined): HeldLock {
  if (waitedForRow((error as { where?: unknown })?.where)) return 'row'
  return sql !== undefined && TAKES_ADVISORY_LOCK.test(sql) ? 'advisory' : 'table'
}

function meansUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseFileGone) return true
  const e = error as { code?: unknown; errcode?: unknown; message?: unknown }
  if (typeof e?.code === 'string' && (NETWORK_CODES.has(e.code) || PG_UNAVAILABLE.test(e.code))) return true
  if (e?.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number') return SQLITE_UNAVAILABLE.has(e.errcode & 0xff)
  return typeof e?.message === 'string' && PG_CLIENT_FAILURE.test(e.message)
}

/**
 * Tracks whether the database answers, and reports outages to subscribers without repeating itself per query: an
 * outage when it begins and ends, and at most one report a minute besides. An outage that begins within a minute of
 * the last report is reported once that minute is over, if it lasts: a database that refuses only writes (a full
 * disk, a standby) answers the reads between them, and each write would otherwise begin and end an outage of its own.
 * One that ends unreported is reported when it ends if that minute is over by then, and otherwise counted in the next
 * report (`earlierOutages`, `earlierFailures`), which comes once that minute is over though no outage follows (a
 * report of state `available`, with no failures of its own): a short outage after another is told late, never not.
 */
export class Health {
  #reachable = true
  #since = Date.now()
  #failures = 0
  #lastError: string | undefined
  /** By the monotonic clock: after a step back of the wall clock, no outage may go unreported for as long as the step. */
  #reportedAt = -Infinity
  /** Whether the outage under way has been reported (then its end is too). */
  #outageReported = false
  #earlierOutages = 0
  #earlierFailures = 0
  #earlierSince: number | undefined
  #earlierError: string | undefined
  /** Reports the outages held back once the minute since the last report is over. */
  #earlierReport: ReturnType<typeof setTimeout> | undefined
  readonly #listeners = new Set<(report: OutageReport) => void>()
  /** Each kind of lock's waits given up since its last report, and when that was (by the monotonic clock, as #reportedAt). */
  readonly #lockWaits = new Map<HeldLock, { waits: number; reportedAt: number }>()
  readonly #lockWaitListeners = new Set<(report: LockWaitReport) => void>()
  readonly queryListeners: ((seconds: number, sql: string) => void)[] = []
  /** Told of every statement that gave up waiting for a lock, unlike the reports, which are at most once a minute. */
  readonly lockWaitCounters: ((lock: HeldLock) => void)[] = []

  status(): DatabaseStatus {
    return { reachable: this.#reachable, since: this.#since }
  }

  subscribe(listener: (report: OutageReport) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  subscribeLockWaits(listener: (report: LockWaitReport) => void): () => void {
    this.#lockWaitListeners.add(listener)
    return () => this.#lockWaitListeners.delete(listener)
  }

  /** A query got an answer (an error from the server is an answer too). */
  answered(): void {
    if (this.#reachable) return
    this.#reachable = true
    if (this.#outageReported || performance.now() - this.#reportedAt >= REPORT_INTERVAL_MS) {
      this.#report('available')
    } else {
      this.#earlierOutages++
      this.#earlierFailures += this.#failures
      this.#earlierSince ??= this.#since
      this.#earlierError = this.#lastError
      this.#failures = 0
      this.#earlierReport ??= setTimeout(() => {
        this.#earlierReport = undefined
        // An outage under way by then is reported at its next failure, or its end, with these.
        if (this.#reachable && this.#earlierOutages) this.#report('available')
      }, Math.max(0, this.#reportedAt + REPORT_INTERVAL_MS - performance.now())).unref()
    }
    this.#since = Date.now()
  }

  /**
   * The error a caller should see: DatabaseUnavailable when it means the database did not answer, UniqueViolation for
   * a duplicate, ForeignKeyViolation for a row named that is gone, TransactionConflict for a deadlock or a
   * serialization failure (which ConflictRetryingKysely runs the transaction again for), DatabaseLockHeld (a
   * DatabaseUnavailable) for a lock another transaction held past lock_timeout. `sql`: the statement that failed, where
   * there was one, which says whether it waited for an advisory lock.
   */
  classify(error: unknown, sql?: string): unknown {
    if (error instanceof DatabaseUnavailable || error instanceof UniqueViolation || error instanceof ForeignKeyViolation || error instanceof TransactionConflict) return error
    // Every connection of the pool was in use and none came free within the connect timeout (pg-pool's wait for one):
    // the database is busy answering the others, not gone. The request is refused (503), but no outage is counted,
    // or /readyz would take a process out of its load balancer for being busy, and flap under a steady load. Held
    // connections that stopped answering (a frozen server) fail on their own query timeout, which does count.
    if ((error as { message?: unknown })?.message === POOL_WAIT_TIMEOUT) return new DatabaseUnavailable(undefined, error)
    if (isLockWait(error)) {
      this.answered()
      return this.#lockWaited(error, heldLock(error, sql))
    }
    if (!meansUnavailable(error)) {
      this.answered()
      if (isConflict(error)) return new TransactionConflict(error)
      return isUniqueViolation(error) ? new UniqueViolation(error) : isForeignKeyViolation(error) ? new ForeignKeyViolation(error) : error
    }
    const now = Date.now()
    this.#failures++
    this.#lastError = String((error as { message?: unknown })?.message ?? error).slice(0, 200)
    if (this.#reachable) {
      this.#reachable = false
      this.#since = now
      this.#outageReported = false
    }
    if (performance.now() - this.#reportedAt >= REPORT_INTERVAL_MS) {
      this.#report(this.#outageReported ? 'still_unavailable' : 'unavailable')
      this.#outageReported = true
    }
    return new DatabaseUnavailable(undefined, error)
  }

  /**
   * A lock another transaction held (a row of a `SELECT ... FOR UPDATE` left open in psql) was waited for as long as a
   * query may take. The server said so itself, so it is reachable: the request is refused as if it were not (503 with
   * Retry-After, nothing of it written), but no outage is counted, and the report says which kind of lock was held.
   */
  #lockWaited(error: unknown, lock: HeldLock): DatabaseLockHeld {
    const waited = this.#lockWaits.get(lock) ?? { waits: 0, reportedAt: -Infinity }
    this.#lockWaits.set(lock, waited)
    waited.waits++
    for (const count of this.lockWaitCounters) count(lock)
    if (performance.now() - waited.reportedAt >= REPORT_INTERVAL_MS) {
      const { message, where } = error as { message?: unknown; where?: unknown }
      const report: LockWaitReport = { lock, waits: waited.waits, error: String(message).slice(0, 200), where: typeof where === 'string' ? where.slice(0, 200) : undefined }
      waited.waits = 0
      waited.reportedAt = performance.now()
      for (const listener of this.#lockWaitListeners) listener(report)
    }
    return new DatabaseLockHeld(undefined, error)
  }

  #report(state: OutageReport['state']): void {
    const earlier = this.#earlierOutages ? { earlierSince: this.#earlierSince!, earlierError: this.#earlierError } : {}
    const report: OutageReport = { state, since: this.#since, failures: this.#failures, error: this.#lastError, earlierOutages: this.#earlierOutages, earlierFailures: this.#earlierFailures, ...earlier }
    this.#failures = 0
    this.#earlierOutages = 0
    this.#earlierFailures = 0
    this.#earlierSince = undefined
    this.#earlierError = undefined
    this.#reportedAt = performance.now()
    for (const listener of this.#listeners) listener(report)
  }
}

/**
 * Kysely's Migrator over this version's migrations. Migration numbers are handed out ahead of time to work landing in
 * any order, so a database may have a later one (012) before an earlier one (010) is added; each creates its own
 * tables, so order does not matter. Names compared as plain strings (they are all NNN_words), not with Kysely's
 * default localeCompare, which makes every start load ICU's collation data for nothing. `insideTransaction`: the
 * caller has begun one on `db`'s single connection, which the migrations join rather than open their own.
 */
export function gatehouseMigrator(db: Kysely<any>, dialect: DialectName, { insideTransaction = false } = {}): InstanceType<typeof Migrator> {
  return new Migrator({ db, provider: migrationProvider(dialect), allowUnorderedMigrations: true, nameComparator: compareNames, disableTransactions: insideTransaction })
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Kysely's pool, over node-postgres's: a client whose query timed out or lost its connection is closed instead of
 * being handed out again. Its query may still be running, or its transaction still open, on the server; a later
 * borrower must never find itself inside that. A statement the server itself gave up (statement_timeout: 57014, or
 * lock_timeout: 55P03, which counts as no outage anyway) is over, and the server said so on a connection that is
 * ready for the next: the client goes back to the pool as any other, rather than costing a new connection (and its
 * TLS handshake) at the moment the server is slowest. A transaction it was in is rolled back before the client is
 * released (Kysely's, and the copy's own, src/store/transfer.ts), and no statement of Gatehouse's leaves anything
 * of its own on the session halfway (the wait for migrations takes a transaction's lock).
 */
function discardingBrokenClients(pool: pg.Pool): PostgresPool {
  const most = pool.options.max
  let restore: NodeJS.Timeout | undefined
  const take = async () => {
    const deadline = performance.now() + (pool.options.connectionTimeoutMillis || defaultTimeouts.connectMs)
    for (;;) {
      try {
        return await pool.connect()
      } catch (error) {
        // PostgreSQL refused one connection more for its limit (max_connections, a role's or a database's) while the
        // pool holds others: the request waits for one of those, as when the pool is full, instead of failing, and
        // the pool grows no further for a moment. Too many processes for max_connections slow a burst, not fail it.
        if ((error as { code?: unknown }).code !== TOO_MANY_CONNECTIONS || pool.totalCount === 0 || performance.now() >= deadline) throw error
        pool.options.max = pool.totalCount
        clearTimeout(restore)
        restore = setTimeout(() => pool.options.max = most, CONNECTION_LIMIT_HOLD_MS)
        restore.unref()
      }
    }
  }
  return {
    async connect() {
      const client = await take()
      let broken = false
      return {
        query: ((sqlText: string, parameters: unknown[]) => client.query(sqlText, parameters).catch((error: unknown) => {
          if (meansUnavailable(error) && !endedByServer(error)) broken = true
          throw error
        })) as never,
        release: () => client.release(broken),
      }
    },
    end: () => pool.end(),
  }
}

/** Whether PostgreSQL ended the statement itself (statement_timeout, a cancel request) and answered so. */
function endedByServer(error: unknown): boolean {
  return (error as { code?: unknown })?.code === QUERY_CANCELED
}

/** Wraps a Kysely dialect so that every query passes through the guards of GuardedConnection. */
class GuardedDialect implements Dialect {
  readonly #inner: Dialect
  readonly #health: Health
  readonly #sqlite: NodeSqliteDatabase | undefined

  constructor(inner: Dialect, health: Health, sqlite: NodeSqliteDatabase | undefined) {
    this.#inner = inner
    this.#health = health
    this.#sqlite = sqlite
  }

  createDriver(): Driver {
    return new GuardedDriver(this.#inner.createDriver(), this.#health, this.#sqlite)
  }

  createQueryCompiler() {
    return this.#inner.createQueryCompiler()
  }

  createAdapter() {
    return this.#inner.createAdapter()
  }

  createIntrospector(db: Kysely<any>) {
    return this.#inner.createIntrospector(db)
  }
}

class GuardedDriver implements Driver {
  readonly #inner: Driver
  readonly #health: Health
  readonly #sqlite: NodeSqliteDatabase | undefined

  constructor(inner: Driver, health: Health, sqlite: NodeSqliteDatabase | undefined) {
    this.#inner = inner
    this.#health = health
    this.#sqlite = sqlite
  }

  init(): Promise<void> {
    return this.#guard(() => this.#inner.init())
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const asked = performance.now()
    const connection = await this.#guard(() => this.#inner.acquireConnection())
    if (!this.#sqlite) return new GuardedConnection(connection, this.#health, undefined)
    // SQLite's one connection, which Kysely's driver lends to one caller at a time: a statement waiting for another
    // process's lock gives it back between its tries, and takes its turn again after (nothing of it is held: only a
    // statement outside a transaction, or a BEGIN, is tried again).
    const pause = async (ms: number) => {
      await this.#inner.releaseConnection(connection)
      try {
        await delay(ms)
      } finally {
        await this.#inner.acquireConnection()
      }
    }
    return new GuardedConnection(connection, this.#health, { database: this.#sqlite, asked, pause })
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    // SQLite's default (deferred) transaction takes the write lock at its first write, and fails there, for good, if
    // another process holds it or wrote in between; taking it at the start lets the BEGIN wait for it instead (a
    // BEGIN is tried again as a whole: GuardedConnection).
    if (this.#sqlite) return connection.executeQuery(CompiledQuery.raw(BEGIN_WRITE)).then(() => {})
    return this.#guard(() => this.#inner.beginTransaction(innerOf(connection), settings))
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#guard(() => this.#inner.commitTransaction(innerOf(connection)))
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // SQLite may have rolled the transaction back itself on the error that ends it (a full disk, say): a ROLLBACK
    // then fails, and its "no transaction is active" would hide that error.
    if (this.#sqlite && !this.#sqlite.raw.isTransaction) return Promise.resolve()
    return this.#guard(() => this.#inner.rollbackTransaction(innerOf(connection)))
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.#inner.releaseConnection(innerOf(connection))
  }

  destroy(): Promise<void> {
    return this.#inner.destroy()
  }

  async #guard<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (error) {
      throw this.#health.classify(error)
    }
  }
}

/**
 * Every query of either backend passes here: text containing NUL is refused as bad input (whichever field it came
 * through), a SQLite statement waits for another process's lock off the event loop (whenUnlocked), and failures are
 * classified (DatabaseUnavailable for an outage).
 */
class GuardedConnection implements DatabaseConnection {
  readonly inner: DatabaseConnection
  readonly #health: Health
  readonly #sqlite: NodeSqliteDatabase | undefined
  /** When the connection was asked for, until its first statement: the wait for SQLite's lock is bounded from then. */
  #asked: number | undefined
  readonly #pause: ((ms: number) => Promise<void>) | undefined

  constructor(inner: DatabaseConnection, health: Health, sqlite: { database: NodeSqliteDatabase; asked: number; pause: (ms: number) => Promise<void> } | undefined) {
    this.inner = inner
    this.#health = health
    this.#sqlite = sqlite?.database
    this.#asked = sqlite?.asked
    this.#pause = sqlite?.pause
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    for (const parameter of compiledQuery.parameters) {
      if (typeof parameter === 'string' && parameter.includes(NUL)) throw new ValidationFailed({ non_field_errors: [NUL_MESSAGE] })
    }
    const started = performance.now()
    // A request's first statement (most are its only one) waits for the lock no longer than the timeout from when it
    // asked for the connection: the time in line behind others counts, so that a burst of writes while another
    // process holds the lock all fail at the timeout, not each a timeout after the one before it.
    const since = this.#asked ?? started
    this.#asked = undefined
    try {
      this.#sqlite?.assertFileInPlace(compiledQuery.sql === BEGIN_WRITE)
      const result = this.#sqlite
        ? await this.#sqlite.whenUnlocked(() => this.inner.executeQuery<R>(compiledQuery), since, this.#pause)
        : await this.inner.executeQuery<R>(compiledQuery)
      this.#health.answered()
      return result
    } catch (error) {
      throw this.#health.classify(error, compiledQuery.sql)
    } finally {
      const seconds = (performance.now() - started) / 1000
      for (const listener of this.#health.queryListeners) listener(seconds, compiledQuery.sql)
    }
  }

  streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(compiledQuery, chunkSize)
  }
}

function innerOf(connection: DatabaseConnection): DatabaseConnection {
  return connection instanceof GuardedConnection ? connection.inner : connection
}

/**
 * A database URL as messages and the log show it: the password masked, whether written before the host or as a
 * query parameter (libpq and pg take `?password=` and `?sslpassword=` too). Before the host, everything from the
 * username's colon to the last `@` is masked: a username may be empty (`postgres://:secret@host`), and a password
 * written without percent-encoding may hold `/`, `?` or `@` (such a URL fails to parse, and its message names it).
 * A query that holds `@` is masked too, wrongly but safely.
 */
export function redactUrl(url: string): string {
  return url.replace(PASSWORD_BEFORE_HOST, '$1:***@').replace(PASSWORD_IN_QUERY, '$1***')
}

/**
 * `sslmode=prefer`, `require` and `verify-ca` spelled as what pg makes of them today, `verify-full`: the server's
 * certificate and name checked against the system's CAs (or `sslrootcert`). pg warns at every start that its next
 * major version gives them libpq's weaker meanings (`require` checking no certificate); spelled out here, a
 * database URL keeps checking what it checks now whatever pg's version. `uselibpqcompat=true` asks for libpq's
 * meanings and is left to pg, as is `sslmode=no-verify`.
 */
export function certificateCheckingSslMode(url: string): string {
  if (LIBPQ_SSL_MODES.test(url)) return url
  return url.replace(LAX_SSL_MODE, '$1verify-full')
}

const LAX_SSL_MODE = /([?&]sslmode=)(?:prefer|require|verify-ca)(?=[&#]|$)/g
const LIBPQ_SSL_MODES = /[?&]uselibpqcompat=true(?=[&#]|$)/

/** The passwords a database URL holds, as written (redactUrl masks each). */
export function urlPasswords(url: string): string[] {
  const beforeHost = PASSWORD_BEFORE_HOST.exec(url)?.[2]
  return [beforeHost, ...[...url.matchAll(PASSWORD_IN_QUERY)].map((match) => match[2])].filter((password) => !!password) as string[]
}

const PASSWORD_BEFORE_HOST = /^([a-z][a-z0-9+.-]*:\/\/[^:@/?#]*):([^]*)@/i
const PASSWORD_IN_QUERY = /([?&](?:ssl)?password=)([^&#]*)/gi
