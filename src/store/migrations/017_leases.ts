import type { GatehouseMigration } from './helpers.ts'

/**
 * Leases (src/store/leases.ts): which one of the processes on the database does a periodic job, until when. One row
 * per job, by name.
 */
export const leases: GatehouseMigration = {
  async up(db) {
    await db.schema.createTable('leases')
      .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('holder', 'varchar(64)', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute()
  },
}
