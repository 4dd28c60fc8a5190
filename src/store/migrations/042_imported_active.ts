import { booleanType, type GatehouseMigration } from './helpers.ts'

/**
 * Whether `users import` last made the account active or disabled (src/directory/accounts.ts importAccounts): an
 * update enables an account the file enables only while it is still disabled as an import left it; one disabled in
 * Gatehouse since stays disabled. Null: no import set it.
 */
export const importedActive: GatehouseMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('users').addColumn('imported_active', booleanType(dialect)).execute()
  },
}
