import type { GatehouseMigration } from './helpers.ts'

/**
 * Failed password checks by client address (src/directory/lockout.ts), shared by every gateway process on the
 * database: the failures in the address's current window, and when it last failed at all.
 */
export const loginAddressFailures: GatehouseMigration = {
  async up(db) {
    await db.schema.createTable('login_address_failures')
      .addColumn('address', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('window_start', 'bigint', (c) => c.notNull())
      .addColumn('failures', 'integer', (c) => c.notNull())
      .addColumn('last_failure_at', 'bigint', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('login_address_failures_last_failure_at').on('login_address_failures').column('last_failure_at').execute()
  },
}
