import { hash, randomUUID, subtle, type webcrypto } from 'node:crypto'
import { compactVerify, decodeJwt, importJWK, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { REFRESH_SIGNING_ALG, type RealmKeySet } from './keys.ts'

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
  readonly #idKey: Promise<{ key: CryptoKey; kid: string }>
  readonly #idAlg: string
  readonly #refreshKey: Promise<{ key: CryptoKey; kid: string }>

  constructor(issuer: string, accessKeys: RealmKeySet, refreshKeys: RealmKeySet) {
    this.#issuer = issuer
    this.#idAlg = accessKeys.alg
    this.#idKey = activeKey(accessKeys, (jwk) => importJWK(jwk, accessKeys.alg) as Promise<CryptoKey>)
    this.#refreshKey = activeKey(refreshKeys, refreshKey)
  }

  /** Keycloak's refresh token for oidc-provider's refresh token record (its `jti` is the record's id). */
  async refreshToken(record: RefreshTokenRecord): Promise<string> {
    const { key, kid } = await this.#refreshKey
    const sid = keycloakSid(record)
    const iat = record.iat ?? Math.floor(Date.now() / 1000)
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
    return new SignJWT(payload).setProtectedHeader({ alg: REFRESH_SIGNING_ALG, typ: 'JWT', kid }).sign(key)
  }

  /**
   * Keycloak's ID token from oidc-provider's: the same claims plus `typ`, `azp`, `at_hash` and the session's
   * `sid`, in Keycloak's order, signed again with the realm's current key. `authTime` is the login time of the
   * grant, which oidc-provider puts in the ID token only when the client asked for it at the authorization step.
   */
  async idToken(original: string, accessToken: string | undefined, authTime: number | undefined): Promise<string> {
    const claims = decodeJwt(original)
    const access = accessToken ? decodeJwt(accessToken) : undefined
    const { exp, iat, auth_time, iss, aud, sub, nonce, sid, acr, amr: _amr, at_hash: _atHash, jti: _jti, azp: _azp, typ: _typ, ...profile } = claims
    const { key, kid } = await this.#idKey
    const payload: JWTPayload = {
      exp, iat,
      ...(auth_time ?? authTime ? { auth_time: auth_time ?? authTime } : {}),
      jti: randomUUID(),
      iss, aud, sub,
      typ: 'ID',
      azp: Array.isArray(aud) ? aud[0] : aud,
      ...(nonce !== undefined ? { nonce } : {}),
      ...(access?.sid ?? sid ? { sid: access?.sid ?? sid } : {}),
      ...(accessToken ? { at_hash: halfHash(accessToken) } : {}),
      acr: acr ?? '1',
      ...inKeycloakOrder(profile),
    }
    return new SignJWT(payload).setProtectedHeader({ alg: this.#idAlg, typ: 'JWT', kid }).sign(key)
  }
}

/** What a verified refresh token says: its record's id (`jti`), its client and its expiry. */
export interface RefreshTokenClaims {
  jti: string
  azp: string
  exp: number
}

/**
 * The claims of one of this realm's refresh tokens; undefined when the token is not one (signature, issuer or
 * `typ` wrong). Expiry is left to the caller: oidc-provider judges it from its record.
 */
export async function verifyRefreshToken(jwt: string, issuer: string, refreshKeys: RealmKeySet): Promise<RefreshTokenClaims | undefined> {
  try {
    const { payload } = await compactVerify(jwt, (header) => {
      const jwk = refreshKeys.privateJwks.find((k) => k.kid === header.kid)
      if (!jwk) throw new Error('unknown key')
      return refreshKey(jwk)
    }, { algorithms: [REFRESH_SIGNING_ALG] })
    const claims = JSON.parse(new TextDecoder().decode(payload)) as JWTPayload
    const typed = claims.typ === 'Refresh' || claims.typ === 'Offline'
    if (!typed || claims.iss !== issuer || typeof claims.jti !== 'string' || typeof claims.azp !== 'string' || typeof claims.exp !== 'number') return undefined
    return { jti: claims.jti, azp: claims.azp, exp: claims.exp }
  } catch {
    return undefined
  }
}

/**
 * A refresh (HMAC) key as a CryptoKey, imported once per key: jose's importJWK gives a secret's raw bytes, which it
 * would import again for every signature it makes or checks. Keyed by the key set's own JWK objects.
 */
const refreshKeys = new WeakMap<JWK, Promise<CryptoKey>>()
function refreshKey(jwk: JWK): Promise<CryptoKey> {
  let key = refreshKeys.get(jwk)
  if (!key) refreshKeys.set(jwk, (key = subtle.importKey('jwk', jwk as webcrypto.JsonWebKey, { name: 'HMAC', hash: 'SHA-512' }, false, ['sign', 'verify'])))
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

async function activeKey(keys: RealmKeySet, imported: (jwk: JWK) => Promise<CryptoKey>): Promise<{ key: CryptoKey; kid: string }> {
  const jwk = keys.privateJwks.find((k) => k.kid === keys.activeKid) as JWK
  return { key: await imported(jwk), kid: keys.activeKid }
}
