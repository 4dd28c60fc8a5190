import type { GatehouseMigration } from './helpers.ts'
import { withId } from './helpers.ts'

/** Personal OAuth 2 tokens: only a SHA-256 of each token is kept, so a copy of the database yields none. */
export const tokens: GatehouseMigration = {
  async up(db, dialect) {
    await withId(db.schema.createTable('tokens'), dialect)
      .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('scope', 'varchar(8)', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('modified_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('last_used_at', 'bigint')
      .execute()
    await db.schema.createIndex('tokens_user_id').on('tokens').column('user_id').execute()
  },
}
