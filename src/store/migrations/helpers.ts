import type { ColumnDefinitionBuilder, CreateTableBuilder, Kysely } from 'kysely'

export type DialectName = 'sqlite' | 'postgres'

/** A migration written once for both backends; the dialect only picks column types where they differ. */
export interface GatehouseMigration {
  up(db: Kysely<any>, dialect: DialectName): Promise<void>
}

/** An auto-incrementing integer primary key: SQLite's rowid alias or PostgreSQL's identity column. */
export function withId<T extends string>(table: CreateTableBuilder<T, never>, dialect: DialectName): CreateTableBuilder<T, 'id'> {
  return dialect === 'postgres'
    ? table.addColumn('id', 'integer', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    : table.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
}

export function booleanType(dialect: DialectName): 'boolean' | 'integer' {
  return dialect === 'postgres' ? 'boolean' : 'integer'
}

export function falseDefault(dialect: DialectName) {
  return (c: ColumnDefinitionBuilder) => c.notNull().defaultTo(dialect === 'postgres' ? false : 0)
}
