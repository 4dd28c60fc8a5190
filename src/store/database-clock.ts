import type { RawBuilder } from 'kysely'
import { sql } from './kysely.ts'
import type { DialectName } from './migrations/helpers.ts'

/**
 * The database's clock in epoch ms, read by the statement it is part of. Gateway processes on several machines may
 * disagree on the time; what must be ordered across them (which processes are alive, an account's not-before) is
 * judged by this one clock. Whole milliseconds, rounded down as Date.now() rounds: a time read after it on the same
 * machine is never earlier.
 */
export function databaseNow(dialect: DialectName): RawBuilder<number> {
  return dialect === 'postgres'
    ? sql<number>`floor(extract(epoch from clock_timestamp()) * 1000)::bigint`
    : sql<number>`cast(unixepoch('subsec') * 1000 as integer)`
}
