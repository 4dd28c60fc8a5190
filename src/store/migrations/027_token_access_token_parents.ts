import type { GatehouseMigration } from './helpers.ts'

/**
 * The OpenID Connect access token a personal token was created with, when it was: its id (`jti`), its grant, its realm
 * and its `iat`. Revoking that token, ending its grant (a logout, the revocation endpoint, an application deleted) or
 * moving its realm's not-before (`logout-all`) deletes the personal tokens created with it (src/auth/personal-tokens.ts),
 * as revoking a personal token deletes those created with it (migration 026).
 */
export const tokenAccessTokenParents: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('tokens').addColumn('parent_access_token', 'text').execute()
    await db.schema.alterTable('tokens').addColumn('parent_grant_id', 'text').execute()
    await db.schema.alterTable('tokens').addColumn('parent_realm', 'text').execute()
    await db.schema.alterTable('tokens').addColumn('parent_issued_at', 'bigint').execute()
    await db.schema.createIndex('tokens_parent_access_token').on('tokens').column('parent_access_token').execute()
    await db.schema.createIndex('tokens_parent_grant_id').on('tokens').column('parent_grant_id').execute()
    await db.schema.createIndex('tokens_parent_realm').on('tokens').column('parent_realm').execute()
  },
}
