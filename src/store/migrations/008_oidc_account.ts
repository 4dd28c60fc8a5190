import { sql } from '../kysely.ts'
import type { GatehouseMigration } from './helpers.ts'

/**
 * The account each OpenID Connect provider record belongs to (the `accountId` of sessions, grants, codes and
 * tokens), as a column of its own, so that everything a user holds can be revoked at once when their password
 * changes (src/store/oidc.ts). Existing records get it from their payload.
 */
export const oidcAccount: GatehouseMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('oidc_records').addColumn('account_id', 'varchar(255)').execute()
    const fromPayload = dialect === 'postgres' ? sql`payload::json ->> 'accountId'` : sql`cast(json_extract(payload, '$.accountId') as text)`
    await db.updateTable('oidc_records').set({ account_id: fromPayload }).execute()
    await db.schema.createIndex('oidc_records_account_id').on('oidc_records').column('account_id').execute()
  },
}
