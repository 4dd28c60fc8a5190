import type { RawBuilder } from 'kysely'
import { sql } from './kysely.ts'
import type { DialectName } from './migrations/helpers.ts'

/**
 * The database's clock in epoch ms, read by the statement it is part of. Gateway processes on several machines may
 * disagree on the time; what must be ordered across them (which processes are alive, an account's not-before) is
 * judged by this one clock. Whole milliseconds, rounded down as Date.now() rounds: a time read after it on the same
 * machine is never earlier. (SQLite keeps whole milliseconds already; `round` only undoes the float's error.)
 */
export function databaseNow(dialect: DialectName): RawBuilder<number> {
  return dialect === 'postgres'
    ? sql<number>`floor(extract(epoch from clock_timestamp()) * 1000)::bigint`
    : sql<number>`cast(round(unixepoch('subsec') * 1000) as integer)`
}

/**
 * The database's time as this process can know it without asking: never ahead of the database's clock, so that a
 * credential stamped with it before a revocation is stamped before the revocation's not-before (taken in the
 * database, `databaseNow`), whatever this machine's clock says. On SQLite the database's clock is this machine's.
 * On PostgreSQL each reading of the database's time (the heartbeat, every second, and the times of the events read
 * and written) was taken before its answer arrived: that time plus the monotonic time since the answer is a bound
 * from below. A reading is used for two heartbeats at most, so how far the two clocks' rates differ (parts per
 * million) adds well under a millisecond; while the database does not answer, the last one stays in use.
 */
export class DatabaseClock {
  readonly #local: boolean
  /** The database's time less performance.now(), from the readings; undefined before the first. */
  #offset: number | undefined
  /** The best offset read since the last heartbeat's reading. */
  #sinceMeasured = -Infinity

  constructor(dialect: DialectName) {
    this.#local = dialect !== 'postgres'
  }

  now(): number {
    return this.#local || this.#offset === undefined ? Date.now() : Math.floor(performance.now() + this.#offset)
  }

  /** A heartbeat's reading: it replaces the older ones, which the rates of the clocks may have drifted from. */
  measured(databaseTime: number): void {
    const offset = databaseTime - performance.now()
    this.#offset = Math.max(offset, this.#sinceMeasured)
    this.#sinceMeasured = offset
  }

  /** A database time read in passing (an event's): it raises the bound until the next heartbeat. */
  observed(databaseTime: number): void {
    const offset = databaseTime - performance.now()
    if (this.#offset === undefined) return
    this.#offset = Math.max(this.#offset, offset)
    this.#sinceMeasured = Math.max(this.#sinceMeasured, offset)
  }
}
