import type { GatehouseMigration } from './helpers.ts'

/**
 * The gateway session a realm's browser session (an OpenID Connect provider `Session` record) belongs to: the
 * SHA-256 of the `gateway_sessionid` of the same browser, as the `sessions` table keys it. Ending that gateway session
 * ends the realm's sessions linked to it, with the tokens issued under them (src/auth/session-manager.ts). Only
 * sessions have one, so the index covers those rows alone.
 */
export const oidcGatewaySession: GatehouseMigration = {
  async up(db) {
    await db.schema.alterTable('oidc_records').addColumn('gateway_session', 'varchar(64)').execute()
    await db.schema.createIndex('oidc_records_gateway_session').on('oidc_records').columns(['model', 'gateway_session']).where('gateway_session', 'is not', null).execute()
  },
}
