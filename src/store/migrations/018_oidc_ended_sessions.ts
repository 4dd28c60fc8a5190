import type { GatehouseMigration } from './helpers.ts'

/**
 * When a realm's browser session (an OpenID Connect provider `Session` record) was ended: its row stays, emptied, until
 * the session would have expired, so that a save of the session by a request that loaded it before the end is refused
 * instead of bringing it back (src/store/oidc.ts). No other record has one.
 */
export const oidcEndedSessions: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('oidc_records').addColumn('ended_at', 'bigint').execute()
  },
}
