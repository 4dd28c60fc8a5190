import type { GatehouseMigration } from './helpers.ts'

/**
 * The token a personal token was created with, when one was: revoking or narrowing that token does the same to the
 * tokens it created (src/auth/personal-tokens.ts), so a leaked token cannot mint a successor that outlives its
 * revocation. Deleting a token deletes those it created, in the database too.
 */
export const tokenParents: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('tokens')
      .addColumn('parent_token_id', 'integer', (c) => c.references('tokens.id').onDelete('cascade'))
      .execute()
    await db.schema.createIndex('tokens_parent_token_id').on('tokens').column('parent_token_id').execute()
  },
}
