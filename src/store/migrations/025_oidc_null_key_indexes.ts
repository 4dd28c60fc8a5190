import type { GatehouseMigration } from './helpers.ts'

/**
 * The grant and account indexes of the OpenID Connect provider's records cover only the rows that have one: a
 * client_credentials token (one record per grant, the records written most after a refresh's two) has neither, nor do
 * interactions, and each of them added an entry for NULL to both. Every lookup by grant or account compares the column
 * with a value (`=`, `in`), which excludes NULL, so both backends still use them (as 014_oidc_token_indexes did for
 * uid and user code).
 */
export const oidcNullKeyIndexes: GatehouseMigration = {
  async up(db) {
    await db.schema.dropIndex('oidc_records_grant_id').execute()
    await db.schema.dropIndex('oidc_records_account_id').execute()
    await db.schema.createIndex('oidc_records_grant_id').on('oidc_records').column('grant_id').where('grant_id', 'is not', null).execute()
    await db.schema.createIndex('oidc_records_account_id').on('oidc_records').column('account_id').where('account_id', 'is not', null).execute()
  },
}
