import { booleanType, type GatehouseMigration } from './helpers.ts'

/**
 * Whether a single sign-on had the person log in during it (docs/sso.md#fresh-sign-ins): a sign-in under way keeps
 * that it asked the provider for a fresh login (`prompt=login`), and the session it starts keeps whether the provider
 * gave one, so that a realm login asking for a fresh login takes no session a provider's own session answered
 * silently. Null for every other session (a password login is fresh), and for sessions and sign-ins from before:
 * not fresh.
 */
export const signInFreshness: GatehouseMigration = {
  async up(db, dialect) {
    await db.schema.alterTable('sso_logins').addColumn('prompt_login', booleanType(dialect)).execute()
    await db.schema.alterTable('sessions').addColumn('sso_fresh_login', booleanType(dialect)).execute()
  },
}
