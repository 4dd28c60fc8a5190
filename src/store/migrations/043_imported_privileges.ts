import { booleanType, type GatehouseMigration } from './helpers.ts'

/**
 * The file's word at the last `users import` on whether the account is a superuser, and a Platform Auditor
 * (src/directory/accounts.ts importedFlag), as 042 keeps its word on whether it is active: an update gives or takes
 * either only when the file's word changed since. Null: no import recorded one.
 */
export const importedPrivileges: GatehouseMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('users').addColumn('imported_superuser', booleanType(dialect)).execute()
    await db.schema.alterTable('users').addColumn('imported_auditor', booleanType(dialect)).execute()
  },
}
