/**
 * What the storage layer throws besides DatabaseUnavailable: typed, so callers test with `instanceof` rather than
 * match the text or SQLSTATE of whichever driver is underneath.
 */

/** An insert or update would break a unique constraint (PostgreSQL 23505, SQLite's "UNIQUE constraint failed"). */
export class UniqueViolation extends Error {
  constructor(cause: unknown) {
    super('A unique constraint of the database refused the write.', { cause })
    this.name = 'UniqueViolation'
  }
}

/**
 * An insert or update names a row of another table that is not there (PostgreSQL 23503, SQLite's "FOREIGN KEY
 * constraint failed"): deleted after the caller found it, by another request or process.
 */
export class ForeignKeyViolation extends Error {
  constructor(cause: unknown) {
    super('A foreign key of the database refused the write.', { cause })
    this.name = 'ForeignKeyViolation'
  }
}

/** The database cannot be migrated or checked at start (PostgreSQL unreachable, a login refused, a read-only file): which one, and why, in one line. */
export class DatabaseUnusable extends Error {
  constructor(description: string, cause: unknown) {
    super(`the database ${description} cannot be used: ${(cause as Error)?.message ?? String(cause)}`, { cause })
    this.name = 'DatabaseUnusable'
  }
}

/**
 * A migration failed while upgrading the database. Every pending migration runs in one transaction on either backend,
 * so none of them stays applied: the database is as the previous version left it, which still serves it.
 */
export class MigrationFailed extends Error {
  /** `migration`: the one that failed; undefined when the migrations failed together (their commit). */
  constructor(description: string, migration: string | undefined, pending: readonly string[], cause: unknown) {
    super(`the database ${description} was not upgraded: ${migration === undefined ? 'its migrations' : `migration ${migration}`} failed: ${(cause as Error)?.message ?? String(cause)}; ` +
      `none of the pending migrations (${pending.join(', ')}) was applied, so the database is as it was and the previous version still serves it`, { cause })
    this.name = 'MigrationFailed'
  }
}

/** Why a database could not be opened for use: a failed migration says so itself, anything else as DatabaseUnusable. */
export function unusableDatabase(description: string, error: unknown): Error {
  return error instanceof MigrationFailed ? error : new DatabaseUnusable(description, error)
}

/**
 * The database was opened for a command that works on what is there (`openStore(..., { existing: true })`) and nothing
 * has migrated it: it holds no Gatehouse tables, and none were made.
 */
export class DatabaseNotMigrated extends Error {
  readonly description: string

  constructor(description: string) {
    super(`the database ${description} has no Gatehouse tables`)
    this.description = description
    this.name = 'DatabaseNotMigrated'
  }
}

/** The SQLite data directory cannot be made or its database file opened: a mistake in where it points, said in one line. */
export class DataDirUnusable extends Error {
  constructor(dir: string, reason: string, cause: unknown) {
    super(`the data directory ${dir} cannot be used: ${reason}`, { cause })
    this.name = 'DataDirUnusable'
  }
}

/**
 * A copy from one database into another (src/store/transfer.ts) was refused before anything was written: a source
 * this version cannot read as a whole, or a target that holds data already. The message says which, in a clause.
 */
export class CopyRefused extends Error {
  constructor(reason: string) {
    super(reason)
    this.name = 'CopyRefused'
  }
}
