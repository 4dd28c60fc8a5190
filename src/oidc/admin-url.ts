/**
 * Keycloak's "Admin URL" for keycloak-connect, which takes no back-channel logout token: it sends its own session's id
 * with the code (`client_session_state`, GrantManager `obtainFromCode`), and ends that session when the realm POSTs a
 * signed `LOGOUT` action naming it to `<admin URL>/k_logout` (middleware/admin.js). Keycloak keeps the id as a note of
 * the client session (TokenEndpoint) and sends those of the client sessions that end together in one call
 * (ResourceAdminManager `logoutClientSessions`); Gatehouse keeps it in a record of its own under the grant of the
 * sign-in, which the end of the realm session finds through the session's `authorizations`.
 *
 * A `LOGOUT` without session ids, or a `PUSH_NOT_BEFORE` to `<admin URL>/k_push_not_before`, has keycloak-connect
 * refuse every token issued before the `notBefore` it carries (GrantManager `validateToken`: `iat < notBefore`); the
 * realm sends them for Keycloak's `logout-all` and `push-revocation` (ResourceAdminManager `logoutAll`,
 * `pushRealmRevocationPolicy`) with the realm's not-before, kept here too. The delivery is back-channel logout's
 * (backchannel-logout.ts).
 */
import type { KoaContextWithOIDC } from 'oidc-provider'
import { REALM_NOT_BEFORE_MODEL, type OidcRecordRepository } from '../store/oidc.ts'
import { providerNow } from './provider-clock.ts'

/**
 * The record of the adapter session a sign-in's grant was redeemed for, keyed by the grant's id. It names no grant
 * (`grant_id`) nor account, so that it outlives the end of the grant and of the account it tells of.
 */
export const ADAPTER_SESSION_MODEL = 'AdapterSession'

/** An adapter session id as keycloak-connect's (an Express session id) or a servlet's: printable, bounded. */
const ADAPTER_SESSION_STATE = /^[\x21-\x7E]{1,255}$/

/** Where an admin call goes: its endpoint under the admin URL's path (Keycloak's `UriBuilder.path`), its query kept. */
export function adminCallUrl(adminUrl: string, endpoint: 'k_logout' | 'k_push_not_before'): string {
  const url = new URL(adminUrl)
  url.pathname = `${url.pathname.replace(/\/$/, '')}/${endpoint}`
  return url.href
}

/** Keycloak's LogoutAction for client sessions that ended: their adapter sessions and realm sessions, no not-before. */
export function logoutSessionsAction(adapterSessionIds: readonly string[], keycloakSessionIds: readonly string[]) {
  return { action: 'LOGOUT', adapterSessionIds, notBefore: 0, ...(keycloakSessionIds.length ? { keycloakSessionIds } : {}) }
}

/** Keycloak's LogoutAction of a `logout-all`: no sessions named (Keycloak leaves the nulls out), the realm's not-before. */
export function logoutAllAction(notBefore: number) {
  return { action: 'LOGOUT', notBefore }
}

/** Keycloak's PushNotBeforeAction: the realm's not-before. */
export function pushNotBeforeAction(notBefore: number) {
  return { action: 'PUSH_NOT_BEFORE', notBefore }
}

/** The realm's not-before, epoch seconds; 0 when it never had one, as Keycloak's. `now`: the database's time. */
export async function realmNotBefore(records: OidcRecordRepository, realm: string, now: number): Promise<number> {
  const notBefore = (await records.find(REALM_NOT_BEFORE_MODEL, realm, now))?.payload.notBefore
  return typeof notBefore === 'number' ? notBefore : 0
}

/** Keeps the realm's not-before (epoch seconds) for good: it is pushed again at each `push-revocation`. */
export async function setRealmNotBefore(records: OidcRecordRepository, realm: string, notBefore: number): Promise<void> {
  await records.upsert({ model: REALM_NOT_BEFORE_MODEL, id: realm, payload: { notBefore } })
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
    await options.records.upsert({ model: ADAPTER_SESSION_MODEL, id: grantId, payload: { clientId, state }, expiresAt: providerNow() + options.keptSeconds * 1000 })
  }
}

/**
 * The adapter sessions these grants of `clientId` were redeemed for, taken (their records deleted: each is told once);
 * grants that kept none add nothing.
 */
export async function takeAdapterSessions(records: OidcRecordRepository, grantIds: Iterable<string>, clientId: string): Promise<string[]> {
  const states = new Set<string>()
  for (const grantId of new Set(grantIds)) {
    const record = await records.find(ADAPTER_SESSION_MODEL, grantId, providerNow())
    if (!record || record.payload.clientId !== clientId || typeof record.payload.state !== 'string') continue
    await records.destroy(ADAPTER_SESSION_MODEL, grantId)
    states.add(record.payload.state)
  }
  return [...states]
}
