/**
 * Keycloak's "Admin URL" for keycloak-connect, which takes no back-channel logout token: it sends its own session's id
 * with the code (`client_session_state`, GrantManager `obtainFromCode`), and ends that session when the realm POSTs a
 * signed `LOGOUT` action naming it to `<admin URL>/k_logout` (middleware/admin.js). Keycloak keeps the id as a note of
 * the client session (TokenEndpoint) and sends it when the user session ends (ResourceAdminManager
 * `logoutClientSession`); Gatehouse keeps it in a record of its own under the grant of the sign-in, which the end of
 * the realm session finds through the session's `authorizations`. The delivery is back-channel logout's
 * (backchannel-logout.ts).
 */
import type { KoaContextWithOIDC } from 'oidc-provider'
import type { OidcRecordRepository } from '../store/oidc.ts'

/**
 * The record of the adapter session a sign-in's grant was redeemed for, keyed by the grant's id. It names no grant
 * (`grant_id`) nor account, so that it outlives the end of the grant and of the account it tells of.
 */
export const ADAPTER_SESSION_MODEL = 'AdapterSession'

/** An adapter session id as keycloak-connect's (an Express session id) or a servlet's: printable, bounded. */
const ADAPTER_SESSION_STATE = /^[\x21-\x7E]{1,255}$/

/** Where the admin call goes: `k_logout` under the admin URL's path (Keycloak's `UriBuilder.path`), its query kept. */
export function adminLogoutUrl(adminUrl: string): string {
  const url = new URL(adminUrl)
  url.pathname = `${url.pathname.replace(/\/$/, '')}/k_logout`
  return url.href
}

/**
 * After a code is redeemed at the token endpoint by a client with an admin URL, keeps the `client_session_state` it
 * sent (Keycloak keeps the latest of a client session's), as long as the realm's longest sessions last. The token
 * endpoint has authenticated the client by then; the answer waits for the record, so that a logout that follows
 * finds it. A value that is not an adapter session id is not kept (Keycloak refuses no sign-in for it either).
 */
export function rememberAdapterSessions(options: { records: OidcRecordRepository; hasAdminUrl(clientId: string): boolean; keptSeconds: number }) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
    await next()
    const oidc = ctx.oidc as KoaContextWithOIDC['oidc'] | undefined
    if (oidc?.route !== 'token' || ctx.status !== 200 || oidc.params?.grant_type !== 'authorization_code') return
    const clientId = oidc.client?.clientId
    const grantId = oidc.entities.AuthorizationCode?.grantId
    const state = (oidc.body as Record<string, unknown> | undefined)?.client_session_state
    if (!clientId || !grantId || typeof state !== 'string' || !ADAPTER_SESSION_STATE.test(state) || !options.hasAdminUrl(clientId)) return
    await options.records.upsert({ model: ADAPTER_SESSION_MODEL, id: grantId, payload: { clientId, state }, expiresAt: Date.now() + options.keptSeconds * 1000 })
  }
}

/**
 * The adapter session a grant of `clientId` was redeemed for, taken (its record deleted: it is told once); undefined
 * when it kept none.
 */
export async function takeAdapterSession(records: OidcRecordRepository, grantId: string, clientId: string): Promise<string | undefined> {
  const record = await records.find(ADAPTER_SESSION_MODEL, grantId)
  if (!record || record.payload.clientId !== clientId || typeof record.payload.state !== 'string') return undefined
  await records.destroy(ADAPTER_SESSION_MODEL, grantId)
  return record.payload.state
}
