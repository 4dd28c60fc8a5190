import { createHmac, createSecretKey, hash, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto'
import { decodeJwt, type JWK, type JWTPayload } from 'jose'
import epochTime from './provider-clock.ts'
import { REFRESH_SIGNING_ALG, type RealmKeySet } from './keys.ts'
import { jwsSignature, signedJws, type JwsSignature } from './signing-keys.ts'

/**
 * Keycloak's JWT shapes for the two tokens oidc-provider issues in other shapes, so that adapters that decode
 * them (keycloak-js reads `refreshTokenParsed`, keycloak-connect checks the refresh token's `exp` and the ID
 * token's `typ` and `azp`) work unchanged:
 * - refresh tokens are opaque in oidc-provider; Keycloak's are JWTs signed with the realm's HMAC key
 *   (TokenManager, RefreshToken). Gatehouse wraps oidc-provider's refresh token id in such a JWT as its `jti`;
 *   the record stays oidc-provider's, so rotation, reuse detection, logout and revocation work unchanged.
 * - oidc-provider's ID tokens lack Keycloak's `typ: "ID"`, `azp`, `at_hash` and a `sid` shared by every
 *   client of a browser session; Gatehouse signs them again with the same realm key, in Keycloak's claim order.
 */

/** The fields of oidc-provider's RefreshToken model that go into Keycloak's refresh token. */
export interface RefreshTokenRecord {
  jti: string
  /** Set on records read back; a token just issued has only its lifetime (`expiration`, seconds). */
  iat?: number | undefined
  exp?: number | undefined
  expiration: number
  accountId: string
  clientId: string
  scope?: string | undefined
  nonce?: string | undefined
  sid?: string | undefined
  sessionUid?: string | undefined
}

/** Keycloak's `typ` for a refresh token: `Offline` when it carries `offline_access` (it outlives the session). */
export function refreshTokenType(scope: string | undefined): 'Refresh' | 'Offline' {
  return (scope ?? '').split(' ').includes('offline_access') ? 'Offline' : 'Refresh'
}

/**
 * Keycloak's session id (`sid`, `session_state`): for a password login, the id Gatehouse gave its session; for a
 * browser login, oidc-provider's session `uid`, which stays the same for every client of that browser session
 * (oidc-provider's own `sid` differs per client, and keycloak-js compares one `sid` with one session cookie).
 */
export function keycloakSid(token: { sid?: string | undefined; sessionUid?: string | undefined }): string | undefined {
  return token.sid ?? token.sessionUid
}

/** The `KEYCLOAK_SESSION` cookie value the login status iframe compares with a token's `sid` (Keycloak 26.1+). */
export function sessionCookieValue(sid: string): string {
  return hash('sha256', sid, 'base64url')
}

export class KeycloakTokens {
  readonly #issuer: string
  readonly #idKey: { signature: JwsSignature; kid: string }
  readonly #idAlg: string
  readonly #refreshKey: { key: KeyObject; header: string }

  constructor(issuer: string, accessKeys: RealmKeySet, refreshKeys: RealmKeySet) {
    this.#issuer = issuer
    this.#idAlg = accessKeys.alg
    this.#idKey = { signature: jwsSignature(activeJwk(accessKeys), accessKeys.alg), kid: accessKeys.activeKid }
    this.#refreshKey = { key: refreshKey(activeJwk(refreshKeys)), header: refreshHeader(refreshKeys.activeKid) }
  }

  /** Keycloak's refresh token for oidc-provider's refresh token record (its `jti` is the record's id). */
  async refreshToken(record: RefreshTokenRecord): Promise<string> {
    // The header is the same for every token of the key: encoded once (`refreshHeader`), as `jwsInput` would.
    const { key, header } = this.#refreshKey
    const sid = keycloakSid(record)
    const iat = record.iat ?? epochTime()
    const payload: JWTPayload = {
      exp: record.exp ?? iat + record.expiration,
      iat,
      jti: record.jti,
      iss: this.#issuer,
      aud: this.#issuer,
      sub: record.accountId,
      typ: refreshTokenType(record.scope),
      azp: record.clientId,
      ...(record.nonce ? { nonce: record.nonce } : {}),
      ...(sid ? { sid } : {}),
      scope: record.scope ?? '',
    }
    const input = `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
    return `${input}.${hmacSignature(input, key)}`
  }

  /**
   * Keycloak's ID token from oidc-provider's, or from the claims of one it did not sign: the same claims plus `typ`,
   * `azp`, `at_hash` and the session's `sid`, in Keycloak's order, signed with the realm's current key. `authTime`
   * is the login time of the grant, which oidc-provider puts in the ID token only when the client asked for it at
   * the authorization step. The access token's session id and `acr` (its grant's: provider.ts `grantAcr`, which
   * oidc-provider's ID token leaves out but for a client that asked for it) are read from its claims when the caller
   * has them, rather than by decoding the token just signed.
   */
  async idToken(original: string | JWTPayload, accessToken: string | { value: string; claims: { sid?: unknown; acr?: unknown } } | undefined, authTime: number | undefined): Promise<string> {
    const claims = typeof original === 'string' ? decodeJwt(original) : original
    const access = typeof accessToken === 'string' ? decodeJwt(accessToken) : accessToken?.claims
    const accessValue = typeof accessToken === 'string' ? accessToken : accessToken?.value
    const { exp, iat, auth_time, iss, aud, sub, nonce, sid, acr, amr: _amr, at_hash: _atHash, jti: _jti, azp: _azp, typ: _typ, ...profile } = claims
    const { signature, kid } = this.#idKey
    const payload: JWTPayload = {
      exp, iat,
      ...(auth_time ?? authTime ? { auth_time: auth_time ?? authTime } : {}),
      jti: randomUUID(),
      iss, aud, sub,
      typ: 'ID',
      azp: Array.isArray(aud) ? aud[0] : aud,
      ...(nonce !== undefined ? { nonce } : {}),
      ...(access?.sid ?? sid ? { sid: access?.sid ?? sid } : {}),
      ...(accessValue ? { at_hash: halfHash(accessValue) } : {}),
      acr: acr ?? access?.acr ?? '1',
      ...inKeycloakOrder(profile),
    }
    // The token SignJWT makes (its claims serialized in the order given), without the deep copy and the checks of
    // registered claims SignJWT makes of claims that are all Gatehouse's or oidc-provider's own.
    return signedJws({ alg: this.#idAlg, typ: 'JWT', kid }, payload, signature)
  }
  /**
   * A logout token (OpenID Connect Back-Channel Logout 1.0 §2.4) for a client of a session that ended, as Keycloak's
   * `initLogoutToken` makes one: the client as audience, two minutes to live, the back-channel logout event, the user
   * and the session (`sid`, as in the session's ID tokens), no nonce; typed `logout+jwt` (§2.4, as Keycloak 24+), so
   * that it can never pass for an ID token. Signed with the realm's current key, as its ID tokens are.
   */
  async logoutToken(clientId: string, sub: string, sid: string | undefined): Promise<string> {
    const { signature, kid } = this.#idKey
    const iat = epochTime()
    const payload: JWTPayload = {
      iat,
      exp: iat + LOGOUT_TOKEN_SECONDS,
      jti: randomUUID(),
      iss: this.#issuer,
      aud: clientId,
      sub,
      ...(sid ? { sid } : {}),
      events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    }
    return signedJws({ alg: this.#idAlg, typ: 'logout+jwt', kid }, payload, signature)
  }

  /**
   * One of Keycloak's admin calls to a client's admin URL (AdminAction: LogoutAction, PushNotBeforeAction; their
   * members come from admin-url.ts): its own id, thirty seconds to live, the client as `resource`. Signed with the
   * realm's current key, as its ID tokens are; keycloak-connect verifies it with the realm's published key of its `kid`.
   */
  async adminAction(clientId: string, action: { action: string } & Record<string, unknown>): Promise<string> {
    const { signature, kid } = this.#idKey
    const payload = { id: randomUUID(), expiration: epochTime() + ADMIN_ACTION_SECONDS, resource: clientId, ...action }
    return signedJws({ alg: this.#idAlg, typ: 'JWT', kid }, payload, signature)
  }
}

/** How long an admin call holds (Keycloak's `Time.currentTime() + 30`). */
const ADMIN_ACTION_SECONDS = 30

/** The event a logout token carries (OpenID Connect Back-Channel Logout 1.0 §2.4). */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
/** A logout token's lifetime: the specification's "at most two minutes", which Keycloak uses. */
const LOGOUT_TOKEN_SECONDS = 120

/** What a verified refresh token says: its record's id (`jti`), its client and its expiry. */
export interface RefreshTokenClaims {
  jti: string
  azp: string
  exp: number
  /** The account it speaks for (absent from a service account's, which has none to judge). */
  sub?: string
}

/**
 * The claims of one of this realm's refresh tokens; undefined when the token is not one (shape, signature, issuer or
 * `typ` wrong). Expiry is left to the caller: oidc-provider judges it from its record.
 */
export async function verifyRefreshToken(jwt: string, issuer: string, refreshKeys: RealmKeySet): Promise<RefreshTokenClaims | undefined> {
  const payload = verifiedHmacPayload(jwt, refreshKeys)
  if (!payload) return undefined
  try {
    const claims = JSON.parse(payload.toString('utf8')) as JWTPayload
    const typed = claims.typ === 'Refresh' || claims.typ === 'Offline'
    if (!typed || claims.iss !== issuer || typeof claims.jti !== 'string' || typeof claims.azp !== 'string' || typeof claims.exp !== 'number') return undefined
    return { jti: claims.jti, azp: claims.azp, exp: claims.exp, ...typeof claims.sub === 'string' ? { sub: claims.sub } : {} }
  } catch {
    return undefined
  }
}

/**
 * Refresh tokens are signed and checked with node:crypto's HMAC, in step, rather than with jose's WebCrypto one, which
 * costs a thread-pool round trip and several times the CPU: every refresh checks one and signs another. The token is
 * the one jose's SignJWT makes (header and claims serialized in the order given), and checking is as strict as
 * jose's compactVerify for HS512: three base64url parts, a JSON header naming HS512 and one of the realm's refresh
 * keys, no `crit` extensions, and the exact signature (compared as text, so no other spelling of it passes).
 */
function hmacSignature(input: string, key: KeyObject): string {
  return createHmac('sha512', key).update(input).digest('base64url')
}

const BASE64URL = /^[A-Za-z0-9_-]*$/

/** The payload bytes of a JWT one of the realm's refresh keys signed; undefined for anything else. */
function verifiedHmacPayload(jwt: string, refreshKeys: RealmKeySet): Buffer | undefined {
  const parts = jwt.split('.')
  if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part))) return undefined
  const [encodedHeader, encodedPayload, signature] = parts as [string, string, string]
  const key = refreshHeaderKeys(refreshKeys).get(encodedHeader) ?? headerKey(encodedHeader, refreshKeys)
  if (!key) return undefined
  const expected = Buffer.from(hmacSignature(`${encodedHeader}.${encodedPayload}`, key))
  const given = Buffer.from(signature)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
  return Buffer.from(encodedPayload, 'base64url')
}

/** The refresh key a JWT's header (base64url) names, when it is a header jose would verify with it; undefined otherwise. */
function headerKey(encodedHeader: string, refreshKeys: RealmKeySet): KeyObject | undefined {
  let header: unknown
  try {
    header = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return undefined
  const { alg, kid, crit } = header as { alg?: unknown; kid?: unknown; crit?: unknown }
  if (alg !== REFRESH_SIGNING_ALG || crit !== undefined) return undefined
  const jwk = refreshKeys.privateJwks.find((k) => k.kid === kid)
  return jwk && refreshKey(jwk)
}

/** The header of the refresh tokens Gatehouse signs with key `kid`, base64url, as `jwsInput` writes it. */
function refreshHeader(kid: string | undefined): string {
  return Buffer.from(JSON.stringify({ alg: REFRESH_SIGNING_ALG, typ: 'JWT', kid })).toString('base64url')
}

/**
 * The headers Gatehouse signs refresh tokens with, by key set, each with the key `headerKey` finds for it: a refresh
 * token sent back carries one of them, which is then looked up here instead of decoded and parsed. Any other header,
 * one jose would also accept included, goes through `headerKey`, so the verdicts are the same.
 */
const refreshHeaderKeysOf = new WeakMap<RealmKeySet, ReadonlyMap<string, KeyObject>>()
function refreshHeaderKeys(refreshKeys: RealmKeySet): ReadonlyMap<string, KeyObject> {
  let byHeader = refreshHeaderKeysOf.get(refreshKeys)
  if (!byHeader) {
    const keys = new Map<string, KeyObject>()
    // The first key of a kid, as `headerKey`'s `find` takes it.
    for (const jwk of refreshKeys.privateJwks) if (!keys.has(refreshHeader(jwk.kid))) keys.set(refreshHeader(jwk.kid), refreshKey(jwk))
    refreshHeaderKeysOf.set(refreshKeys, (byHeader = keys))
  }
  return byHeader
}

/** A refresh (HMAC) key as a KeyObject, made once per key. Keyed by the key set's own JWK objects. */
const refreshKeys = new WeakMap<JWK, KeyObject>()
function refreshKey(jwk: JWK): KeyObject {
  let key = refreshKeys.get(jwk)
  if (!key) refreshKeys.set(jwk, (key = createSecretKey(Buffer.from(jwk.k!, 'base64url'))))
  return key
}

/** Keycloak writes the profile and email claims in the order its mappers run; other claims follow. */
const PROFILE_ORDER = ['email_verified', 'name', 'preferred_username', 'given_name', 'family_name', 'email']
function inKeycloakOrder(claims: Record<string, unknown>): Record<string, unknown> {
  const ordered: Record<string, unknown> = {}
  for (const name of PROFILE_ORDER) if (name in claims) ordered[name] = claims[name]
  return Object.assign(ordered, claims)
}

/** `at_hash` (OpenID Connect Core §3.1.3.6): the left half of the SHA-256 of the access token, base64url. */
export function halfHash(value: string): string {
  const digest = hash('sha256', value, 'buffer')
  return digest.subarray(0, digest.length / 2).toString('base64url')
}

function activeJwk(keys: RealmKeySet): JWK {
  return keys.privateJwks.find((k) => k.kid === keys.activeKid) as JWK
}
