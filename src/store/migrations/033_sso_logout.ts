import type { GatehouseMigration } from './helpers.ts'

/**
 * Signing out through an upstream provider (docs/sso.md#signing-out). A session started by a single sign-on keeps the
 * provider it came through, the subject (`sub`) and the provider's own session (`sid`, when its ID token had one) that
 * a back-channel logout token names. `sso_logout_tokens` holds the logout tokens taken (by the SHA-256 of issuer and `jti`) until they
 * could no longer be taken anyway, so a replayed one is refused on every process sharing the database.
 */
export const ssoLogout: GatehouseMigration = {
  async up(db) {
    // One column per statement: SQLite's ALTER TABLE adds one at a time.
    await db.schema.alterTable('sessions').addColumn('sso_provider', 'varchar(64)').execute()
    await db.schema.alterTable('sessions').addColumn('sso_subject', 'varchar(255)').execute()
    await db.schema.alterTable('sessions').addColumn('sso_sid', 'varchar(255)').execute()
    await db.schema.createIndex('sessions_sso_sid').on('sessions').columns(['sso_provider', 'sso_sid']).execute()
    await db.schema.createIndex('sessions_sso_subject').on('sessions').columns(['sso_provider', 'sso_subject']).execute()

    await db.schema.createTable('sso_logout_tokens')
      .addColumn('key_hash', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('sso_logout_tokens_expires_at').on('sso_logout_tokens').column('expires_at').execute()
  },
}
