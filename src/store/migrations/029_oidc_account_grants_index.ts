import { sql } from '../kysely.ts'
import type { GatehouseMigration } from './helpers.ts'

/**
 * An account's grants alone: every login counts its account's live grants (a realm's `grants_per_user_limit`,
 * src/store/oidc.ts `grantsPastLimit`), which the account index answered by visiting each of the account's tokens
 * too, a refresh token kept for every rotation. Only grants are indexed, so the other records' writes pay nothing.
 */
export const oidcAccountGrantsIndex: GatehouseMigration = {
  async up(db) {
    await db.schema.createIndex('oidc_records_account_grants').on('oidc_records').column('account_id').where(sql.ref('model'), '=', 'Grant').execute()
  },
}
