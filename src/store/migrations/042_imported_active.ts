import { booleanType, type GatehouseMigration } from './helpers.ts'

/**
 * The file's word at the last `users import` on whether the account is active (src/directory/accounts.ts
 * importedFlag): an update changes the account only when the file's word changed since, so that an administrator's
 * latest enable or disable in Gatehouse stands until the source changes its own. Null: no import recorded one.
 */
export const importedActive: GatehouseMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('users').addColumn('imported_active', booleanType(dialect)).execute()
  },
}
