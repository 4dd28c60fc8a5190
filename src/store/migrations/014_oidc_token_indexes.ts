import type { GatehouseMigration } from './helpers.ts'

/**
 * The uid and user code indexes of the OpenID Connect provider's records cover only the rows that have one
 * (sessions, interactions, device codes): tokens, the records written most (two for every refresh), have neither,
 * and writing each of them no longer adds an entry to these two indexes. Lookups by uid or user code compare the
 * column with a value, which excludes NULL, so both backends still use them.
 */
export const oidcTokenIndexes: GatehouseMigration = {
  async up(db) {
    await db.schema.dropIndex('oidc_records_uid').execute()
    await db.schema.dropIndex('oidc_records_user_code').execute()
    await db.schema.createIndex('oidc_records_uid').on('oidc_records').columns(['model', 'uid']).where('uid', 'is not', null).execute()
    await db.schema.createIndex('oidc_records_user_code').on('oidc_records').columns(['model', 'user_code']).where('user_code', 'is not', null).execute()
  },
}
