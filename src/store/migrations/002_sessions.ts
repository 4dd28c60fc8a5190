import type { GatehouseMigration } from './helpers.ts'
import { withId } from './helpers.ts'

/** Server-side login sessions; only a hash of each session identifier is stored. */
export const sessions: GatehouseMigration = {
  async up(db, dialect) {
    await withId(db.schema.createTable('sessions'), dialect)
      .addColumn('key_hash', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('ip', 'varchar(64)', (c) => c.notNull().defaultTo(''))
      .addColumn('user_agent', 'varchar(256)', (c) => c.notNull().defaultTo(''))
      .execute()
    await db.schema.createIndex('sessions_user_id').on('sessions').column('user_id').execute()
    await db.schema.createIndex('sessions_expires_at').on('sessions').column('expires_at').execute()
  },
}
