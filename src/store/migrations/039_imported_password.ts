import type { GatehouseMigration } from './helpers.ts'

/**
 * The SHA-256 of the password hash `users import` last stored for an account (src/directory/accounts.ts
 * importAccounts): while the account's hash is still that one, an update may give it the source's new one; once it is
 * another (changed, or replaced by Gatehouse's own at a sign-in), the account's is kept. Null: no import stored it.
 */
export const importedPassword: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('users').addColumn('imported_password_digest', 'varchar(64)').execute()
  },
}
