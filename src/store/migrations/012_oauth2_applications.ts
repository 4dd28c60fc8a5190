import type { GatehouseMigration } from './helpers.ts'
import { withId } from './helpers.ts'

/**
 * OAuth2 applications as the platform has them, each served as a client of one realm of the OpenID Connect
 * provider. Only a SHA-256 of a confidential application's secret is kept.
 */
export const oauth2Applications: GatehouseMigration = {
  async up(db, dialect) {
    await withId(db.schema.createTable('oauth2_applications'), dialect)
      .addColumn('realm', 'varchar(100)', (c) => c.notNull())
      .addColumn('client_id', 'varchar(100)', (c) => c.notNull().unique())
      .addColumn('client_secret_hash', 'varchar(64)')
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('client_type', 'varchar(16)', (c) => c.notNull())
      .addColumn('authorization_grant_type', 'varchar(32)', (c) => c.notNull())
      .addColumn('redirect_uris', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('user_id', 'integer', (c) => c.references('users.id').onDelete('set null'))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('modified_at', 'bigint', (c) => c.notNull())
      .execute()
  },
}
