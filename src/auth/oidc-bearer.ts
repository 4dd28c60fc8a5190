import { hash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose'
import type { Accounts } from '../directory/accounts.ts'
import { InvalidCredentials, NotAuthenticated } from '../errors.ts'
import { REVOKE_TOPIC } from '../oidc/adapter.ts'
import { SIGNING_ALG } from '../oidc/keys.ts'
import type { BearerPolicy, OidcRealms, Realm } from '../oidc/realm.ts'
import type { EventBus } from '../store/event-bus.ts'
import type { Store } from '../store/store.ts'
import { NOT_MINE, type Authenticator, type NotMine } from './authenticator.ts'
import type { Principal } from './principal.ts'

/**
 * `Bearer` and three base64url parts: a JWT (RFC 7519), matched in one pass. Other bearer values (personal
 * tokens) belong to another authenticator.
 */
const BEARER_JWT = /^bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*) *$/i
const MAX_TOKEN_LENGTH = 16 * 1024
/** Clock skew allowed between the realm that issued a token and this process. */
const CLOCK_TOLERANCE_SECONDS = 5
const MAX_CACHED = 50_000

interface VerifiedToken {
  userId: number
  realm: string
  jti: string
  grantId: string | null
  /** `aud` and `azp` together: what the audience check compares with. */
  audiences: readonly string[]
  azp: string
  expiresAt: number
  /** When its record was looked up; after the bus's `maxStaleMs` it is looked up again. */
  checkedAt: number
}

function invalidToken(message: string): NotAuthenticated {
  return new NotAuthenticated(message, 'invalid_token')
}

/**
 * `Authorization: Bearer <access token>` from one of Gatehouse's realms, checked the way a service built for
 * Keycloak checks it: RS256 signature with the realm's keys (in process), issuer, expiry and not-before,
 * `typ: Bearer`, and `aud` or `azp`. The first time a token is seen, its record is looked up too, so a token
 * revoked or logged out before this process started is refused as well; afterwards the token is answered from
 * memory until it expires, unless REVOKE_TOPIC says its session or the token itself ended (that news reaches
 * every process before its next request, see src/store/event-bus.ts), and its record is looked up again once
 * the answer is older than the bus's `maxStaleMs`.
 */
export class OidcBearerAuthenticator implements Authenticator {
  readonly id = 'oidc' as const
  readonly #realms: OidcRealms
  readonly #accounts: Accounts
  readonly #store: Store
  readonly #cache = new Map<string, VerifiedToken>()
  /** `jti:<id>` / `grant:<id>` revoked recently, until every token they could cover has expired. */
  readonly #revoked = new Map<string, number>()
  readonly #revokedTtlMs: number
  readonly #maxStaleMs: number

  constructor(realms: OidcRealms, accounts: Accounts, store: Store, bus: EventBus) {
    this.#realms = realms
    this.#accounts = accounts
    this.#store = store
    this.#maxStaleMs = bus.maxStaleMs
    this.#revokedTtlMs = (Math.max(...realms.all().map((r) => r.config.access_token_seconds)) + 60) * 1000
    bus.on(REVOKE_TOPIC, (key) => this.#revoke(key))
  }

  async authenticate(request: FastifyRequest): Promise<Principal | NotMine> {
    const header = request.headers.authorization
    const token = header && header.length <= MAX_TOKEN_LENGTH ? BEARER_JWT.exec(header)?.[1] : undefined
    if (!token) return NOT_MINE
    const now = Date.now()
    const key = hash('sha256', token, 'base64url')
    let verified = this.#cache.get(key)
    if (verified && (verified.expiresAt <= now || now - verified.checkedAt >= this.#maxStaleMs)) {
      this.#cache.delete(key)
      verified = undefined
    }
    if (!verified) {
      verified = await this.#verify(token, now)
      if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value!)
      this.#cache.set(key, verified)
    }
    if (this.#isRevoked(verified, now)) {
      this.#cache.delete(key)
      throw invalidToken('The access token was revoked or its session ended.')
    }
    checkPolicy(verified, this.#realms.policyFor(request.gatehouse.service), this.#realms.get(verified.realm)!)
    const user = await this.#accounts.get(verified.userId)
    if (!user || !user.isActive) throw new InvalidCredentials('User inactive or deleted.', 'account_disabled')
    return { user, method: 'oidc' }
  }

  async #verify(token: string, now: number): Promise<VerifiedToken> {
    let issuer: unknown
    try {
      issuer = decodeJwt(token).iss
    } catch {
      throw invalidToken('The access token is not a well-formed JWT.')
    }
    const realm = typeof issuer === 'string' ? this.#realms.byIssuer(issuer) : undefined
    if (!realm) throw invalidToken('The access token was not issued by a realm of this gateway.')
    let payload: JWTPayload
    try {
      ({ payload } = await jwtVerify(token, await realm.verificationKey(), {
        issuer: realm.issuer,
        algorithms: [SIGNING_ALG],
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(now),
      }))
    } catch (error) {
      throw invalidToken(describeJoseError(error))
    }
    if (payload.iat! > now / 1000 + CLOCK_TOLERANCE_SECONDS) throw invalidToken('The access token is not valid yet.')
    if (payload.typ !== 'Bearer') throw invalidToken('The token is not an access token.')
    if (typeof payload.azp !== 'string' || typeof payload.sub !== 'string' || !/^[1-9][0-9]{0,14}$/.test(payload.sub)) {
      throw invalidToken('The access token lacks azp or a user subject.')
    }
    const record = await this.#issuedRecord(payload.jti!, now)
    if (!record || record.payload.clientId !== payload.azp || (record.model === 'AccessToken' && record.payload.accountId !== payload.sub)) {
      throw invalidToken('The access token was revoked or its session ended.')
    }
    return {
      userId: Number(payload.sub),
      realm: realm.name,
      jti: payload.jti!,
      grantId: record.grantId,
      audiences: [...(Array.isArray(payload.aud) ? payload.aud : payload.aud ? [payload.aud] : []), payload.azp],
      azp: payload.azp,
      expiresAt: payload.exp! * 1000,
      checkedAt: now,
    }
  }

  /** The provider's record of the token (src/oidc/provider.ts writes one per access token issued). */
  async #issuedRecord(jti: string, now: number) {
    return await this.#store.oidc.find('AccessToken', jti, now) ?? await this.#store.oidc.find('ClientCredentials', jti, now)
  }

  #isRevoked(token: VerifiedToken, now: number): boolean {
    for (const key of [`jti:${token.jti}`, `grant:${token.grantId}`]) {
      const until = this.#revoked.get(key)
      if (until === undefined) continue
      if (until > now) return true
      this.#revoked.delete(key)
    }
    return false
  }

  #revoke(key: string): void {
    const now = Date.now()
    if (this.#revoked.size > MAX_CACHED) {
      for (const [k, until] of this.#revoked) if (until <= now) this.#revoked.delete(k)
    }
    this.#revoked.set(key, now + this.#revokedTtlMs)
  }
}

/** A token is for a place when it comes from a realm the place accepts and names the place's audience or a client of that realm. */
function checkPolicy(token: VerifiedToken, policy: BearerPolicy, realm: Realm): void {
  if (!policy.realms.has(token.realm)) throw invalidToken('This service does not accept tokens of that realm.')
  const forUs = policy.audiences.size
    ? token.audiences.some((a) => policy.audiences.has(a))
    : realm.client(token.azp) !== undefined
  if (!forUs) throw invalidToken('The access token is not meant for this service (aud, azp).')
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'The access token has expired.'
  if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'nbf') return 'The access token is not valid yet.'
  if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'iss') return 'The access token was not issued by this realm.'
  if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JWKSNoMatchingKey) return 'The access token signature does not verify.'
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'The access token is not signed with RS256.'
  return 'The access token is not valid.'
}
