import type { GatehouseMigration } from './helpers.ts'

/**
 * Columns that hold a realm's name, as long as the configuration allows one (100 characters): a signing key's
 * purpose is the name behind a prefix (`oidc-hs512:<realm>`, src/oidc/keys.ts), and an audit entry names the realm
 * of its login. At 50 and 64 characters, PostgreSQL refused the keys of a realm whose name is longer than 39 (the
 * realm could sign nothing) and the entries of one longer than 64. SQLite holds a `varchar` to no length; widening
 * one on PostgreSQL rewrites no table.
 */
export const realmNameColumns: GatehouseMigration = {
  async up(db, dialect) {
    if (dialect !== 'postgres') return
    await db.schema.alterTable('signing_keys').alterColumn('purpose', (column) => column.setDataType('varchar(150)')).execute()
    await db.schema.alterTable('audit_entries').alterColumn('realm', (column) => column.setDataType('varchar(100)')).execute()
  },
}
