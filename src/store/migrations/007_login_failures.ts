import type { GatehouseMigration } from './helpers.ts'

/**
 * Failed password checks by username (src/directory/lockout.ts), shared by every gateway process on the database.
 * The username is the key whether or not an account has it, so unknown names lock the same way as known ones.
 */
export const loginFailures: GatehouseMigration = {
  async up(db) {
    await db.schema.createTable('login_failures')
      .addColumn('username', 'varchar(150)', (c) => c.primaryKey())
      .addColumn('failures', 'integer', (c) => c.notNull())
      .addColumn('last_failure_at', 'bigint', (c) => c.notNull())
      .addColumn('locked_until', 'bigint')
      .execute()
    await db.schema.createIndex('login_failures_last_failure_at').on('login_failures').column('last_failure_at').execute()
  },
}
