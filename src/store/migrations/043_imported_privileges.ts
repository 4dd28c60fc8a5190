import { booleanType, type GatehouseMigration } from './helpers.ts'

/**
 * Whether `users import` last made the account a superuser, and a Platform Auditor, or not (src/directory/accounts.ts
 * importAccounts), as 041 keeps whether it made it active: an update gives either only while the account still lacks
 * it as an import left it; one taken away in Gatehouse since stays away. Null: no import set it.
 */
export const importedPrivileges: GatehouseMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('users').addColumn('imported_superuser', booleanType(dialect)).execute()
    await db.schema.alterTable('users').addColumn('imported_auditor', booleanType(dialect)).execute()
  },
}
