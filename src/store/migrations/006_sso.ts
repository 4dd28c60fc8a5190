import type { GatehouseMigration } from './helpers.ts'
import { withId } from './helpers.ts'

/**
 * Single sign-on. `sso_identities` links an account to the upstream identity it was made for: issuer and
 * subject together are the only stable identifier of a person at an OpenID Connect provider (OIDC Core
 * section 5.7), so a renamed upstream username still finds the same account. `sso_logins` holds sign-ins
 * under way, keyed by the SHA-256 of the browser's cookie; each is used at most once.
 */
export const sso: GatehouseMigration = {
  async up(db, dialect) {
    await withId(db.schema.createTable('sso_identities'), dialect)
      .addColumn('issuer', 'varchar(400)', (c) => c.notNull())
      .addColumn('subject', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('provider', 'varchar(64)', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('last_login_at', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('sso_identities_issuer_subject', ['issuer', 'subject'])
      .execute()
    await db.schema.createIndex('sso_identities_user_id').on('sso_identities').column('user_id').execute()

    await withId(db.schema.createTable('sso_logins'), dialect)
      .addColumn('key_hash', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('provider', 'varchar(64)', (c) => c.notNull())
      .addColumn('next_url', 'varchar(2048)', (c) => c.notNull().defaultTo(''))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .execute()
    await db.schema.createIndex('sso_logins_expires_at').on('sso_logins').column('expires_at').execute()
  },
}
