import { fstatSync, openSync, readFileSync, readSync, realpathSync, statSync, type BigIntStats } from 'node:fs'
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import { setTimeout } from 'node:timers/promises'
import type { SqliteDatabase, SqliteStatement } from 'kysely'
import { SqliteCheckpointer } from './sqlite-checkpointer.ts'


/** The longest statement text kept prepared: the gateway's own are far shorter. */
const MAX_CACHED_SQL_LENGTH = 16 * 1024

/**
 * How long a start waits for another process's lock before it says so: a serving process's write holds it for far
 * less, another's migrations or a long write (an import) for longer.
 */
const START_WAIT_SILENT_MS = 250
/**
 * A statement that finds another process's lock is tried again after 1, 2, then every 4 ms, each wait shortened at
 * random by up to half (so the processes waiting on one lock do not all retry together). Short: the process holding
 * the lock takes it again within microseconds of its commit when it has more writes queued, so a waiting process
 * gets it only by trying often; with two processes writing all the time, the slowest writes took about twice as
 * long with 20 ms between tries as with 4. A try that fails costs some 10 µs.
 */
const LOCK_RETRY_MAX_MS = 4
/** SQLite's primary result code for a lock held by another connection (SQLITE_BUSY and its extended codes). */
const SQLITE_BUSY = 5
const MAX_BUSY_TIMEOUT_MS = 2 ** 31 - 1
/** How often the file is looked for at its path (one `stat`). */
const FILE_CHECK_MS = 1000
/**
 * The first copy of the WAL index's header, at the start of the `-shm` file (SQLite's walformat.html): a commit
 * changes it (its change counter and last frame) before the commit is visible to any reader.
 */
const WAL_INDEX_HEADER_BYTES = 48
/**
 * The `-shm` files this process reads WAL index headers from, by path, each open for as long as the process lives,
 * never closed: closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's own included
 * (its connections, the checkpointer's thread), and a file at the path may be replaced under a connection that still
 * uses the one it had (a restore run beside a serving process). A replaced one stays open beside the new one.
 */
const walIndexFiles = new Map<string, { fd: number; ino: number; dev: number }>()

/** A descriptor of the `-shm` file at `path` as it is now, shared by this process's connections to its database. */
function walIndexFile(path: string): number {
  const now = statSync(path)
  const known = walIndexFiles.get(path)
  if (known && known.ino === now.ino && known.dev === now.dev) return known.fd
  const fd = openSync(path, 'r')
  const opened = fstatSync(fd)
  walIndexFiles.set(path, { fd, ino: opened.ino, dev: opened.dev })
  return fd
}

/**
 * The file this connection has open is no longer the one at its path: deleted, or another put in its place. In WAL
 * mode SQLite goes on writing to the file it has open, where no later start (nor any other process) finds what was
 * written: 503 until the file is back, rather than writes that are lost. The same for its `-wal` and `-shm`: commits
 * stay in the WAL until a checkpoint copies them into the database file (on a gateway that writes little, the whole
 * database may be there), so a WAL deleted under the process takes them with it when the process dies; and a process
 * that opens the file then (a CLI command, a restarted worker) makes a new WAL and index of its own, unseen by this one.
 */
export class DatabaseFileGone extends Error {}

/**
 * Adapts Node's built-in `node:sqlite` to the better-sqlite3 shape that Kysely's SqliteDialect expects,
 * so the embedded backend needs no native add-on. node:sqlite binds neither booleans nor Dates,
 * so they are converted here, in one place.
 */
export class NodeSqliteDatabase implements SqliteDatabase {
  readonly raw: DatabaseSync
  readonly busyTimeoutMs: number
  /** Checkpoints the WAL off the event loop once this process writes enough (none for an in-memory database). */
  readonly checkpointer: SqliteCheckpointer | undefined
  /** Prepared statements by SQL text, with whether each returns rows (asking SQLite that builds its column list). */
  readonly #statements = new Map<string, { statement: StatementSync; reader: boolean }>()
  #dataVersionStatement: StatementSync | undefined
  #journalModeStatement: StatementSync | undefined
  /** The `-shm` file SQLite uses: beside the file the path led to when it was opened (SQLite follows a symbolic link). */
  readonly #walIndexPath: string | undefined
  /** The data_version read last, while the WAL index's header stayed `#walIndexHeader`; undefined: to be read. */
  #knownDataVersion: number | undefined
  /** The `-shm` file, open for reading once the database is in WAL mode (`#walIndexChanged`); null for one in memory. */
  #walIndex: number | null | undefined
  readonly #walIndexHeader = Buffer.alloc(WAL_INDEX_HEADER_BYTES)
  readonly #walIndexRead = Buffer.alloc(WAL_INDEX_HEADER_BYTES)
  readonly #filename: string
  #opened: BigIntStats | undefined
  /** The `-wal` and `-shm` files this connection uses, once it is in WAL mode and both exist. */
  #walFilesOpened: { path: string; stats: BigIntStats }[] | undefined
  /** Which file is no longer at its path, for the error. */
  #goneFile: string | undefined
  #fileCheck: NodeJS.Timeout | undefined
  /** When the file was last looked at (performance.now()). */
  #checkedAt = performance.now()
  #fileGone = false

  /** `busyTimeoutMs`: how long a statement waits for another process's lock (whenUnlocked), then fails as "database is locked". */
  constructor(filename: string, busyTimeoutMs: number) {
    this.busyTimeoutMs = busyTimeoutMs
    this.raw = new DatabaseSync(filename)
    // Opening comes before anything is served, so it may wait inside SQLite: the first statement reads the file,
    // which a process creating it next to this one may hold a moment (before the file is in WAL mode, readers wait too).
    this.waitInsideSqlite(busyTimeoutMs)
    this.raw.exec('PRAGMA synchronous = NORMAL')
    this.raw.exec('PRAGMA foreign_keys = ON')
    // SQLite's own lower() folds ASCII only, where PostgreSQL's folds every script: the lists' case-insensitive
    // lookups (`?name__iexact=Übersee`, `search`) found names on one backend and not on the other. Deterministic, as
    // the index on lower(username) needs; usernames are ASCII, which both fold alike, so that index is unchanged.
    this.raw.function('lower', { deterministic: true }, (value) => typeof value === 'string' ? value.toLowerCase() : typeof value === 'number' || typeof value === 'bigint' ? String(value) : value)
    // From here SQLite's own wait for a lock (its busy handler) would sleep the thread, and with it every request of
    // the process: a statement fails at once instead, and whenUnlocked waits for the lock on a timer.
    this.waitInsideSqlite(0)
    const onDisk = filename !== '' && filename !== ':memory:'
    if (!onDisk) this.#walIndex = null
    // Resolved now, as SQLite just did: a link pointed elsewhere later must not lead the check to another file's index.
    this.#walIndexPath = onDisk ? `${realpathSync(filename)}-shm` : undefined
    this.checkpointer = onDisk ? new SqliteCheckpointer(this.raw, filename) : undefined
    this.#filename = filename
    if (onDisk) {
      this.#opened = statSync(filename, { bigint: true })
      this.#fileCheck = setInterval(() => this.#checkFile(), FILE_CHECK_MS).unref()
    }
  }

  /**
   * Throws DatabaseFileGone while the file open is not the one at its path: as the timer last found it (every
   * FILE_CHECK_MS), or looked at now before a write transaction (`writing`), and when the timer is late, its event
   * loop held (a command parsing a large file): a restore may have put another file in its place meanwhile, and what
   * was written then would go to the file set aside, with the command saying it succeeded.
   */
  assertFileInPlace(writing = false): void {
    if (this.#fileCheck && (writing || performance.now() - this.#checkedAt > FILE_CHECK_MS * 2)) this.#checkFile()
    if (!this.#fileGone) return
    if (this.#goneFile === this.#filename) throw new DatabaseFileGone(`the database file ${this.#filename} was deleted or replaced while in use: put it back, or restart`)
    // Stopping closes the connection, whose last checkpoint copies the WAL it has open into the database file.
    throw new DatabaseFileGone(`the database's ${this.#goneFile} was deleted or replaced while in use: stop every process on the database and start again`)
  }

  #checkFile(): void {
    this.#checkedAt = performance.now()
    try {
      const now = statSync(this.#filename, { bigint: true, throwIfNoEntry: false })
      this.#fileGone = !sameFile(now, this.#opened!)
      this.#goneFile = this.#filename
      if (this.#fileGone) return
      const walFile = this.#walFiles()?.find(({ path, stats }) => !sameFile(statSync(path, { bigint: true, throwIfNoEntry: false }), stats))
      this.#fileGone = walFile !== undefined
      this.#goneFile = walFile?.path
    } catch {
      // The path cannot be looked at (its directory made unreadable, say): nor can it be told to be the same file.
      this.#fileGone = true
      this.#goneFile = this.#filename
    }
  }

  /**
   * The `-wal` and `-shm` files as they were first found while this connection was in WAL mode; once it is, no other
   * connection removes them while this one is open, nor does SQLite put others in their place.
   */
  #walFiles(): { path: string; stats: BigIntStats }[] | undefined {
    if (this.#walFilesOpened) return this.#walFilesOpened
    try {
      this.#journalModeStatement ??= this.raw.prepare('PRAGMA journal_mode')
      if ((this.#journalModeStatement.get() as { journal_mode: string }).journal_mode !== 'wal') return undefined
    } catch {
      // Locked by another process a moment, say: looked at again at the next check.
      return undefined
    }
    const base = this.#walIndexPath!.slice(0, -'-shm'.length)
    const files = [`${base}-wal`, `${base}-shm`].map((path) => ({ path, stats: statSync(path, { bigint: true, throwIfNoEntry: false }) }))
    if (files.some(({ stats }) => stats === undefined)) return undefined
    this.#walFilesOpened = files as { path: string; stats: BigIntStats }[]
    return this.#walFilesOpened
  }

  /**
   * Switches the file to WAL (a no-op once it is). On a new file another process starting next to this one may hold
   * the write lock for as long as its migrations take, and SQLite then refuses the switch at once, without waiting
   * (busy_timeout does not apply): it is tried again, at most `waitMs` (startWhenUnlocked).
   */
  useWal(waitMs: number, onWaiting: (holders: number[]) => void = () => {}): Promise<void> {
    return this.startWhenUnlocked(() => this.raw.exec('PRAGMA journal_mode = WAL'), waitMs, onWaiting)
  }

  /**
   * For a start, before anything is served: runs `statement` (the switch to WAL, a BEGIN IMMEDIATE) until it no longer
   * finds another process's lock in its way, trying again as often as a request's statement does (lockRetryDelay: a
   * serving process writing all the time leaves the lock free only for moments), for at most `waitMs`; then its "database
   * is locked" surfaces. Once the lock has been in the way for START_WAIT_SILENT_MS, `onWaiting` is told, once, with
   * the other processes holding a write lock on the file (writeLockHolders), so that a start kept waiting by another's
   * migrations says so at once instead of being silent for as long as they take. Waits on a timer, not inside SQLite:
   * a signal meanwhile stops the process.
   */
  async startWhenUnlocked(statement: () => void, waitMs: number, onWaiting: (holders: number[]) => void): Promise<void> {
    const started = performance.now()
    let told = false
    for (let attempt = 0; ; attempt++) {
      try {
        statement()
        return
      } catch (error) {
        const waited = performance.now() - started
        if (!isBusy(error) || waited >= waitMs) throw error
        if (!told && waited >= START_WAIT_SILENT_MS) {
          told = true
          onWaiting(writeLockHolders(this.#filename))
        }
        await setTimeout(lockRetryDelay(attempt))
      }
    }
  }

  /**
   * How long a statement waits for another process's lock inside SQLite, the whole thread asleep (0: not at all).
   * Only for a start, before the process serves requests (migrations); set back to 0 after.
   */
  waitInsideSqlite(ms: number): void {
    // SQLite's busy_timeout is a C int: the largest stands for no bound (Infinity).
    this.raw.exec(`PRAGMA busy_timeout = ${Math.round(Math.min(ms, MAX_BUSY_TIMEOUT_MS))}`)
  }

  /**
   * Runs `statement` (one call into this connection), and while another process holds the lock it needs, runs it
   * again after a short timer, the event loop free meanwhile, until `busyTimeoutMs` has passed since `since` (by
   * default the first try; the caller's asking for the connection, so that a wait in line for it counts too); then
   * the "database is locked" error surfaces. `pause` is how the time between tries is spent: by default holding the
   * connection; the driver gives it back meanwhile (database.ts `GuardedConnection`), so that the statements behind
   * this one, reads that need no lock above all, run rather than queue behind a wait for the lock. Only what is undone as a whole when it fails is tried again: a
   * statement outside a transaction (SQLite rolls back its own implicit one), and a BEGIN (nothing was done yet).
   * Inside a transaction a write that finds the lock held fails (SQLITE_BUSY, or SQLITE_BUSY_SNAPSHOT once the other
   * process committed: the transaction read a state that is gone) and would fail in that transaction however often
   * it ran: the error is the caller's, who rolls the transaction back. Gatehouse's transactions take the write lock
   * at their BEGIN, so it is the BEGIN that waits.
   */
  async whenUnlocked<T>(statement: () => T | Promise<T>, since = performance.now(), pause: (ms: number) => Promise<unknown> = setTimeout): Promise<T> {
    const giveUpAt = since + this.busyTimeoutMs
    for (let attempt = 0; ; attempt++) {
      const inTransaction = this.raw.isTransaction
      try {
        return await statement()
      } catch (error) {
        const left = giveUpAt - performance.now()
        if (inTransaction || this.raw.isTransaction || !isBusy(error) || left <= 0) throw error
        await pause(Math.min(left, lockRetryDelay(attempt)))
      }
    }
  }

  /**
   * Changes whenever another connection commits: a free way to know whether to look for news. A lock in the way
   * (rare in WAL mode: another process recovering the WAL's index, say) answers NaN, unequal to every version, so
   * the caller reads the news, a read that waits for the lock off the event loop (whenUnlocked).
   */
  dataVersion(): number {
    // Read before the version: a commit between the two changes the header again, and the next call reads again.
    if (!this.#walIndexChanged() && this.#knownDataVersion !== undefined) return this.#knownDataVersion
    this.#dataVersionStatement ??= this.raw.prepare('PRAGMA data_version')
    try {
      const row = this.#dataVersionStatement.get() as { data_version: number }
      this.#knownDataVersion = row.data_version
      return row.data_version
    } catch (error) {
      this.#knownDataVersion = undefined
      if (isBusy(error)) return Number.NaN
      throw error
    }
  }

  /**
   * Whether the WAL index's header changed since the last call: unchanged, no connection committed in between, and
   * data_version cannot have moved. One `pread` where data_version takes two file-lock system calls and a statement,
   * run for every turn of the event loop that brings requests (src/store/event-bus.ts). The header is read as SQLite's
   * readers read it, without a lock, from the file their shared memory maps: the `-shm` beside the file the path
   * led to when the connection opened (`#walIndexPath`), once the database is in WAL mode (before, a `-shm` there would be
   * another's leftover; once in it, no other connection can take it out while this one is open). A read torn by a
   * commit under way differs from the one before, and so counts as a change; so does any read that fails.
   */
  #walIndexChanged(): boolean {
    if (this.#walIndex === undefined) {
      try {
        this.#journalModeStatement ??= this.raw.prepare('PRAGMA journal_mode')
        if ((this.#journalModeStatement.get() as { journal_mode: string }).journal_mode !== 'wal') return true
        this.#walIndex = walIndexFile(this.#walIndexPath!)
      } catch {
        return true
      }
    }
    if (this.#walIndex === null) return true
    try {
      if (readSync(this.#walIndex, this.#walIndexRead, 0, WAL_INDEX_HEADER_BYTES, 0) !== WAL_INDEX_HEADER_BYTES) return true
    } catch {
      return true
    }
    if (this.#walIndexRead.equals(this.#walIndexHeader)) return false
    this.#walIndexRead.copy(this.#walIndexHeader)
    return true
  }

  /** Database.close stops the checkpointer and waits for it first; this is for a close that skips it. */
  close(): void {
    clearInterval(this.#fileCheck)
    // Its descriptor stays open (walIndexFiles).
    this.#walIndex = null
    void this.checkpointer?.stop()
    this.#statements.clear()
    this.raw.close()
  }

  prepare(sql: string): SqliteStatement {
    let cached = this.#statements.get(sql)
    if (!cached) {
      const statement = this.raw.prepare(sql)
      cached = { statement, reader: statement.columns().length > 0 }
      if (this.#statements.size > 500) this.#statements.clear()
      // A statement this long holds megabytes prepared, and is no statement run again and again: not kept.
      if (sql.length <= MAX_CACHED_SQL_LENGTH) this.#statements.set(sql, cached)
    }
    const prepared = cached.statement
    return {
      reader: cached.reader,
      all: (parameters) => prepared.all(...toSqlite(parameters)),
      run: (parameters) => {
        const result = prepared.run(...toSqlite(parameters))
        this.checkpointer?.wrote()
        return { changes: result.changes, lastInsertRowid: result.lastInsertRowid }
      },
      iterate: (parameters) => prepared.iterate(...toSqlite(parameters)),
    }
  }
}

/** How long to wait before trying a statement again that found another process's lock (LOCK_RETRY_MAX_MS). */
function lockRetryDelay(attempt: number): number {
  return Math.min(LOCK_RETRY_MAX_MS, 2 ** attempt) * (1 - Math.random() / 2)
}

/**
 * Linux: the other processes holding a write lock on `file` or on its `-shm`, as /proc/locks lists them: SQLite's write
 * lock is one on the database file before it is in WAL mode, and one on the `-shm` file in it (readers hold read locks
 * only), `file` a link followed as SQLite follows it. None where /proc/locks cannot be read (another system) or the
 * files are not there.
 */
export function writeLockHolders(file: string): number[] {
  let locks: string
  try {
    locks = readFileSync('/proc/locks', 'latin1')
  } catch {
    return []
  }
  // SQLite opens a link's target, and keeps its `-shm` beside the target, not beside the link.
  let real: string
  try {
    real = realpathSync(file)
  } catch {
    return []
  }
  const files = new Set([real, `${real}-shm`].flatMap((path) => {
    const stats = statSync(path, { throwIfNoEntry: false })
    return stats ? [procLocksId(stats.dev, stats.ino)] : []
  }))
  const holders = new Set<number>()
  // `1: POSIX  ADVISORY  WRITE 4242 08:01:1835011 120 120`; a lock waited for has `->` after its number.
  for (const line of locks.split('\n')) {
    const [, kind, , access, pid, id] = line.trim().split(/\s+/)
    const holder = Number(pid)
    if (kind !== 'POSIX' || access !== 'WRITE' || !files.has(id!) || !(holder > 0) || holder === process.pid) continue
    holders.add(holder)
  }
  return [...holders]
}

/** A file as /proc/locks names it: its device's major and minor number in hex (glibc's encoding of st_dev), and its inode. */
function procLocksId(dev: number, ino: number): string {
  const device = BigInt(dev)
  const major = ((device >> 8n) & 0xfffn) | ((device >> 32n) & ~0xfffn)
  const minor = (device & 0xffn) | ((device >> 12n) & ~0xffn)
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino}`
}

function sameFile(now: BigIntStats | undefined, opened: BigIntStats): boolean {
  return now !== undefined && now.ino === opened.ino && now.dev === opened.dev
}

function isBusy(error: unknown): boolean {
  const e = error as { code?: unknown; errcode?: unknown }
  return e?.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number' && (e.errcode & 0xff) === SQLITE_BUSY
}

function toSqlite(parameters: ReadonlyArray<unknown>): SQLInputValue[] {
  return parameters.map((value) => {
    if (typeof value === 'boolean') return value ? 1 : 0
    if (value instanceof Date) return value.getTime()
    if (value === undefined) return null
    return value as SQLInputValue
  })
}
