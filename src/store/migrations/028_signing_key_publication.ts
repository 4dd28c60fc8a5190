import type { GatehouseMigration } from './helpers.ts'

/**
 * When a key published ahead of signing was published. Each process then counts its own publish-ahead time from it
 * (src/oidc/keys.ts), rather than taking the time the process that published it chose: a `keys rotate` run with
 * another configuration than the servers' could otherwise make them sign before services can have fetched the key.
 */
export const signingKeyPublication: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('signing_keys').addColumn('published_at', 'bigint').execute()
  },
}
