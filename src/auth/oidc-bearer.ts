import { hash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { decodeJwt } from 'jose'
import type { Accounts } from '../directory/accounts.ts'
import { InvalidCredentials, NotAuthenticated } from '../errors.ts'
import { REVOKE_TOPIC } from '../oidc/adapter.ts'
import { AccessTokenRefused, type BearerPolicy, type OidcRealms, type VerifiedAccessToken } from '../oidc/realm.ts'
import type { EventBus } from '../store/event-bus.ts'
import { NOT_MINE, type Authenticator, type NotMine } from './authenticator.ts'
import type { Principal } from './principal.ts'

/**
 * `Bearer` and three base64url parts: a JWT (RFC 7519), matched in one pass. Other bearer values (personal
 * tokens) belong to another authenticator.
 */
const BEARER_JWT = /^bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*) *$/i
const MAX_TOKEN_LENGTH = 16 * 1024
const MAX_CACHED = 50_000

/** A verified token as this process remembers it. */
interface CachedToken extends VerifiedAccessToken {
  /** When its record was looked up; after the bus's `maxStaleMs` it is looked up again. */
  checkedAt: number
}

function invalidToken(message: string): NotAuthenticated {
  return new NotAuthenticated(message, 'invalid_token')
}

/**
 * `Authorization: Bearer <access token>` from one of Gatehouse's realms, checked the way a service built for
 * Keycloak checks it (`Realm.verifyAccessToken`: RS256 signature with the realm's keys in process, issuer,
 * expiry and not-before, `typ: Bearer`, and the token's record, so a token revoked or logged out before this
 * process started is refused too), then against the place's policy: the realm, and `aud` or `azp` naming the
 * place. Afterwards the token is answered from memory until it expires, unless REVOKE_TOPIC says its session or
 * the token itself ended (that news reaches every process before its next request, see src/store/event-bus.ts),
 * and its record is looked up again once the answer is older than the bus's `maxStaleMs`, or once its account
 * changed (a new password deletes the account's records in the same transaction as the account's event, so the
 * token is then refused).
 * Where the policy asks for it (the gateway's own API), the token's scope limits it as a personal token's does:
 * `write` may change things, anything else only reads.
 */
export class OidcBearerAuthenticator implements Authenticator {
  readonly id = 'oidc' as const
  readonly #realms: OidcRealms
  readonly #accounts: Accounts
  readonly #cache = new Map<string, CachedToken>()
  /** `jti:<id>` / `grant:<id>` revoked recently, until every token they could cover has expired. */
  readonly #revoked = new Map<string, number>()
  /** When each account last changed, for the tokens of it checked before then; older than `maxStaleMs`: irrelevant. */
  readonly #accountsChangedAt = new Map<number, number>()
  readonly #revokedTtlMs: number
  readonly #maxStaleMs: number

  constructor(realms: OidcRealms, accounts: Accounts, bus: EventBus) {
    this.#realms = realms
    this.#accounts = accounts
    this.#maxStaleMs = bus.maxStaleMs
    this.#revokedTtlMs = (Math.max(...realms.all().map((r) => r.config.access_token_seconds)) + 60) * 1000
    bus.on(REVOKE_TOPIC, (key) => this.#revoke(key))
    accounts.onForget((userId) => this.#accountChanged(userId))
  }

  async authenticate(request: FastifyRequest): Promise<Principal | NotMine> {
    const header = request.headers.authorization
    const token = header && header.length <= MAX_TOKEN_LENGTH ? BEARER_JWT.exec(header)?.[1] : undefined
    if (!token) return NOT_MINE
    const now = Date.now()
    const key = hash('sha256', token, 'base64url')
    let verified = this.#cache.get(key)
    if (verified && (verified.expiresAt <= now || now - verified.checkedAt >= this.#maxStaleMs || this.#checkedBeforeChange(verified))) {
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
    const policy = this.#realms.policyFor(request.gatehouse.service)
    checkPolicy(verified, policy)
    const user = await this.#accounts.get(verified.userId)
    if (!user || !user.isActive) throw new InvalidCredentials('User inactive or deleted.', 'account_disabled')
    if (!policy.scoped) return { user, method: 'oidc', expiresAt: verified.expiresAt }
    return { user, method: 'oidc', scope: verified.scopes.has('write') ? 'write' : 'read', expiresAt: verified.expiresAt }
  }

  async #verify(token: string, now: number): Promise<CachedToken> {
    let issuer: unknown
    try {
      issuer = decodeJwt(token).iss
    } catch {
      throw invalidToken('The access token is not a well-formed JWT.')
    }
    const realm = typeof issuer === 'string' ? this.#realms.byIssuer(issuer) : undefined
    if (!realm) throw invalidToken('The access token was not issued by a realm of this gateway.')
    try {
      return { ...await realm.verifyAccessToken(token, now), checkedAt: now }
    } catch (error) {
      if (error instanceof AccessTokenRefused) throw invalidToken(error.message)
      throw error
    }
  }

  #isRevoked(token: VerifiedAccessToken, now: number): boolean {
    for (const key of [`jti:${token.jti}`, `grant:${token.grantId}`]) {
      const until = this.#revoked.get(key)
      if (until === undefined) continue
      if (until > now) return true
      this.#revoked.delete(key)
    }
    return false
  }

  #checkedBeforeChange(token: CachedToken): boolean {
    const changedAt = this.#accountsChangedAt.get(token.userId)
    return changedAt !== undefined && changedAt >= token.checkedAt
  }

  #accountChanged(userId: number): void {
    const now = Date.now()
    if (this.#accountsChangedAt.size > MAX_CACHED) {
      for (const [id, at] of this.#accountsChangedAt) if (now - at >= this.#maxStaleMs) this.#accountsChangedAt.delete(id)
    }
    this.#accountsChangedAt.set(userId, now)
  }

  #revoke(key: string): void {
    const now = Date.now()
    if (this.#revoked.size > MAX_CACHED) {
      for (const [k, until] of this.#revoked) if (until <= now) this.#revoked.delete(k)
    }
    this.#revoked.set(key, now + this.#revokedTtlMs)
  }
}

/** A token is for a place when it comes from a realm the place accepts and names one of the place's audiences. */
function checkPolicy(token: VerifiedAccessToken, policy: BearerPolicy): void {
  if (!policy.realms.has(token.realm)) throw invalidToken('This service does not accept tokens of that realm.')
  if (!token.audiences.some((a) => policy.audiences.has(a))) throw invalidToken('The access token is not meant for this service (aud, azp).')
}
