import type { GatehouseMigration } from './helpers.ts'

/**
 * An account's not-before times (epoch ms, 0 for none), as Keycloak's `notBefore` of a user: the sessions and OpenID
 * Connect codes and tokens of the account issued before `not_before`, and its personal tokens created before
 * `tokens_not_before`, are refused (src/store/users.ts `issuedBefore`). The changes that end them move them
 * (src/directory/accounts.ts `notBeforeChanges`), which catches what was written while the change ran.
 */
export const accountNotBefore: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('users').addColumn('not_before', 'bigint', (c) => c.notNull().defaultTo(0)).execute()
    await db.schema.alterTable('users').addColumn('tokens_not_before', 'bigint', (c) => c.notNull().defaultTo(0)).execute()
  },
}
