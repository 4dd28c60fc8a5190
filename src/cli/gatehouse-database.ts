import type { DatabaseSync } from 'node:sqlite'
import { migrationNames } from '../store/migrations/index.ts'

/**
 * Whether a SQLite file is a database of Gatehouse's, asked by `backup` of the database it copies and by `restore` of
 * the backup it puts in place: another application's database, or an empty file, copied as if it were one would be
 * found out only when every command after the restore fails. Kysely's record of the migrations tells: an older
 * version's database has this version's first migration and none it does not know, a newer version's has all of this
 * version's and more. A database with migrations this version does not know that lacks some it does is neither, and
 * Kysely's Migrator refuses it ("corrupted migrations").
 */

/** The file is a SQLite database, but not one this version of Gatehouse can use; the message says why, in a clause. */
export class NotGatehouseDatabase extends Error {
  constructor(reason: string) {
    super(reason)
    this.name = 'NotGatehouseDatabase'
  }
}

/**
 * Throws NotGatehouseDatabase for a database that is not Gatehouse's; returns the migrations of a newer version it
 * has, for the caller to warn of. SQLite's own errors (a file that is no database, a lock) are thrown as they come.
 * `servable: false` (backup) asks only whether it is Gatehouse's, not whether this version can serve it: a version
 * run from a schedule still copies the database a newer one made, whatever migrations that one renamed.
 */
export function requireGatehouseDatabase(sqlite: DatabaseSync, { servable = true } = {}): { newer: string[] } {
  if (!sqlite.prepare(`select 1 from sqlite_master where type = 'table' and name = 'kysely_migration'`).get()) {
    throw new NotGatehouseDatabase('it has no migrations table')
  }
  const applied = new Set((sqlite.prepare('select name from kysely_migration').all() as { name: string }[]).map((row) => row.name))
  const [first] = migrationNames
  if (!applied.has(first!)) throw new NotGatehouseDatabase(`its migrations table lacks Gatehouse's first migration, ${first}`)
  const known = new Set(migrationNames)
  const newer = [...applied].filter((name) => !known.has(name))
  const missing = migrationNames.filter((name) => !applied.has(name))
  if (servable && newer.length && missing.length) {
    throw new NotGatehouseDatabase(`it has migrations this version does not know (${list(newer)}) but lacks some it does (${list(missing)}); this version can neither serve it nor migrate it`)
  }
  return { newer }
}

/** A few names, and how many more: a message stays one line however many migrations there are. */
function list(names: string[]): string {
  const shown = 3
  return names.length > shown ? `${names.slice(0, shown).join(', ')} and ${names.length - shown} more` : names.join(', ')
}
