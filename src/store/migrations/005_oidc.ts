import type { GatehouseMigration } from './helpers.ts'

/**
 * What the OpenID Connect provider keeps (src/oidc/adapter.ts): sessions, grants, codes, tokens, interactions.
 * One generic table keyed by model and id, with the few fields the provider looks records up by.
 */
export const oidc: GatehouseMigration = {
  async up(db) {
    await db.schema.createTable('oidc_records')
      .addColumn('model', 'varchar(40)', (c) => c.notNull())
      .addColumn('id', 'varchar(255)', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('grant_id', 'varchar(255)')
      .addColumn('uid', 'varchar(255)')
      .addColumn('user_code', 'varchar(255)')
      .addColumn('expires_at', 'bigint')
      .addColumn('consumed_at', 'bigint')
      .addPrimaryKeyConstraint('oidc_records_pkey', ['model', 'id'])
      .execute()
    await db.schema.createIndex('oidc_records_grant_id').on('oidc_records').column('grant_id').execute()
    await db.schema.createIndex('oidc_records_uid').on('oidc_records').columns(['model', 'uid']).execute()
    await db.schema.createIndex('oidc_records_user_code').on('oidc_records').columns(['model', 'user_code']).execute()
    await db.schema.createIndex('oidc_records_expires_at').on('oidc_records').column('expires_at').execute()
  },
}
