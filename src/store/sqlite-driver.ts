import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import { setTimeout } from 'node:timers/promises'
import type { SqliteDatabase, SqliteStatement } from 'kysely'
import { SqliteCheckpointer } from './sqlite-checkpointer.ts'

/** How often opening tries again to switch a new file to WAL while another process holds its lock. */
const WAL_RETRY_MS = 50

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

  /** `busyTimeoutMs`: how long a statement waits for another process's lock (the whole process waits with it: the API is synchronous). */
  constructor(filename: string, busyTimeoutMs: number) {
    this.busyTimeoutMs = busyTimeoutMs
    this.raw = new DatabaseSync(filename)
    this.raw.exec(`PRAGMA busy_timeout = ${Math.round(busyTimeoutMs)}`)
    this.raw.exec('PRAGMA synchronous = NORMAL')
    this.raw.exec('PRAGMA foreign_keys = ON')
    this.checkpointer = filename === '' || filename === ':memory:' ? undefined : new SqliteCheckpointer(this.raw, filename)
  }

  /**
   * Switches the file to WAL (a no-op once it is). On a new file another process starting next to this one may hold
   * the write lock for as long as its migrations take, and SQLite then refuses the switch at once, without waiting
   * (busy_timeout does not apply): it is tried again, at most `waitMs`.
   */
  async useWal(waitMs: number): Promise<void> {
    const giveUpAt = Date.now() + waitMs
    for (;;) {
      try {
        this.raw.exec('PRAGMA journal_mode = WAL')
        return
      } catch (error) {
        if (!/database is locked/.test((error as Error).message) || Date.now() >= giveUpAt) throw error
        await setTimeout(WAL_RETRY_MS)
      }
    }
  }

  /** Changes whenever another connection commits: a free way to know whether to look for news. */
  dataVersion(): number {
    this.#dataVersionStatement ??= this.raw.prepare('PRAGMA data_version')
    const row = this.#dataVersionStatement.get() as { data_version: number }
    return row.data_version
  }

  /** Database.close stops the checkpointer and waits for it first; this is for a close that skips it. */
  close(): void {
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
      this.#statements.set(sql, cached)
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

function toSqlite(parameters: ReadonlyArray<unknown>): SQLInputValue[] {
  return parameters.map((value) => {
    if (typeof value === 'boolean') return value ? 1 : 0
    if (value instanceof Date) return value.getTime()
    if (value === undefined) return null
    return value as SQLInputValue
  })
}
