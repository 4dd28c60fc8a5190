import type { GatehouseMigration } from './helpers.ts'

/**
 * A back-channel logout token taken is known by its issuer and `jti` (`key_hash`) and now also by the SHA-256 of the
 * whole token (`token_hash`): the very token sent again, because the provider lost the first answer, is answered as
 * before, and another token reusing the `jti` is still refused (docs/sso.md#signing-out). Rows taken before this
 * have none, and are refused as before until they expire, minutes later.
 */
export const ssoLogoutTokenHash: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('sso_logout_tokens').addColumn('token_hash', 'varchar(64)').execute()
  },
}
