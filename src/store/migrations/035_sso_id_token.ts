import type { GatehouseMigration } from './helpers.ts'

/**
 * Signing out at the upstream provider (docs/sso.md#signing-out): a session started by a single sign-on through a
 * provider with `sign_out_at_provider` keeps the provider's ID token, sent back to it as `id_token_hint` when the
 * person signs out of Gatehouse. Null for every other session.
 */
export const ssoIdToken: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('sessions').addColumn('sso_id_token', 'text').execute()
  },
}
