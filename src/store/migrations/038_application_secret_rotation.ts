import type { GatehouseMigration } from './helpers.ts'

/**
 * The secret an application had before its last rotation, and until when it still authenticates (the grace its
 * clients are given to take the new one, as Keycloak's rotated client secret has): a SHA-256, as the current one.
 */
export const applicationSecretRotation: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('oauth2_applications').addColumn('previous_client_secret_hash', 'varchar(64)').execute()
    await db.schema.alterTable('oauth2_applications').addColumn('previous_secret_expires_at', 'bigint').execute()
  },
}
