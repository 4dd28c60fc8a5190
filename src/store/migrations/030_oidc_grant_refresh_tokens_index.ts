import { sql } from '../kysely.ts'
import type { GatehouseMigration } from './helpers.ts'

/**
 * A grant's refresh tokens alone: a refresh counts its grant's refresh tokens now and then (a realm's
 * `refresh_tokens_per_grant_limit`, src/store/oidc.ts `endRefreshTokensPastLimit`), which the grant index answered by
 * visiting each of the grant's access tokens too, one a refresh until they are pruned. Only refresh tokens are
 * indexed, so the other records' writes pay nothing.
 */
export const oidcGrantRefreshTokensIndex: GatehouseMigration = {
  async up(db) {
    await db.schema.createIndex('oidc_records_grant_refresh_tokens').on('oidc_records').column('grant_id').where(sql.ref('model'), '=', 'RefreshToken').execute()
  },
}
