import { hash } from 'node:crypto'
import type { GatewayRequest } from '../http/gateway-request.ts'
import { decodeJwt } from 'jose'
import type { RequestContext } from '../context.ts'
import type { Accounts } from '../directory/accounts.ts'
import { AccountDisabled, InvalidToken, type Unauthenticated } from '../errors.ts'
import { AccessTokenRefused, type AccessTokenIssuers, type BearerPolicy, type VerifiedAccessToken } from './access-tokens.ts'
import { BoundedCache } from '../store/cache.ts'
import type { DatabaseClock } from '../store/database-clock.ts'
import type { EventBus } from '../store/event-bus.ts'
import { NOT_MINE, type Authenticator, type NotMine } from './authenticator.ts'
import { bearerValue } from './bearer.ts'
import type { AuthMethod } from '../config/schema.ts'
import type { Credential } from './principal.ts'
import { withBearerError } from './token.ts'
import { keysDropped, realmRevocation, REVOKE_TOPIC } from '../store/topics.ts'
import { lastMillisecondOf } from '../store/users.ts'

const MAX_CACHED = 50_000

function invalidToken(message: string): InvalidToken {
  return withBearerError(new InvalidToken(message))
}

/**
 * `Authorization: Bearer <access token>` from one of Gatehouse's realms, checked the way a service built for
 * Keycloak checks it (`Realm.verifyAccessToken`: signature with the realm's keys and algorithm in process, issuer,
 * expiry and not-before by the database's clock, `typ: Bearer`, and the token's record, so a token revoked or logged
 * out before this process started is refused too), then against the place's policy: the realm, and `aud` or `azp`
 * naming the place. Afterwards the token is answered from memory until it expires, unless REVOKE_TOPIC says its
 * session or the token itself ended (that news reaches every process before its next request, see
 * src/store/event-bus.ts), and its record is looked up again once the answer is older than the bus's `maxStaleMs`,
 * or once its account changed (a new password deletes the account's records in the same transaction as the
 * account's event, so the token is then refused).
 * Where the policy asks for it (the gateway's own API), the token's scope limits it as a personal token's does:
 * `write` may change things, anything else only reads.
 */
export class OidcBearerAuthenticator implements Authenticator {
  readonly id = 'oidc' as const
  readonly reads = 'authorization' as const
  readonly #realms: AccessTokenIssuers
  readonly #accounts: Accounts
  /** Verified tokens by the hash of their value, until they expire, are `maxStaleMs` old or their account changes. */
  readonly #verified: BoundedCache<string, VerifiedAccessToken>
  /**
   * `jti:<id>` / `grant:<id>` revoked recently, and `realm:<name>` with a realm's not-before (epoch seconds: its tokens
   * issued earlier are refused), until every token they could cover has expired: checked on every
   * request, so a verification that raced a revocation is refused all the same. One dropped to stay within the bound
   * (a flood of revocations) takes every cached verification with it, as any of them may be of a token it covered:
   * each is then checked against its record again.
   */
  readonly #revoked: BoundedCache<string, true | number>
  /**
   * The database's time as this process knows it: the realms stamp their tokens' `iat` and `exp` with it, whichever
   * process issued them (src/oidc/provider-clock.ts), so they are judged by it too.
   */
  readonly #clock: DatabaseClock

  constructor(realms: AccessTokenIssuers, accounts: Accounts, bus: EventBus) {
    this.#realms = realms
    this.#accounts = accounts
    this.#clock = bus.clock
    this.#verified = new BoundedCache({ maxEntries: MAX_CACHED, maxAgeMs: () => bus.maxStaleMs, expiresAt: (token) => token.expiresAt, userOf: (token) => token.userId })
    const revokedTtlMs = (realms.longestAccessTokenSeconds() + 60) * 1000
    this.#revoked = new BoundedCache({ maxEntries: MAX_CACHED, maxAgeMs: revokedTtlMs, onEvicted: () => this.#verified.clear() })
    bus.on(REVOKE_TOPIC, (key) => {
      // A realm dropped its earlier keys at once (`keys rotate --realm`): its tokens verified since are verified again,
      // with the keys read again. A rotation on schedule drops no key a token in memory was verified with.
      const droppedBy = keysDropped(key)
      if (droppedBy !== undefined) return this.#verified.forgetWhere((token) => token.realm === droppedBy)
      const realmWide = realmRevocation(key)
      // Tokens of the not-before's own second are told apart by their records only: the realm's are verified again.
      if (realmWide) this.#verified.forgetWhere((token) => token.realm === realmWide.realm)
      this.#revoked.set(realmWide ? `realm:${realmWide.realm}` : key, realmWide?.notBefore ?? true)
    })
    // The revocations missed are unknown: every verified token is checked against its record again.
    bus.onMissed(() => this.#verified.clear())
    accounts.onForget((userId) => this.#verified.forgetUser(userId))
  }

  async authenticate(request: GatewayRequest, context: RequestContext): Promise<Credential | NotMine> {
    // Other bearer values (personal tokens) belong to another authenticator.
    const bearer = bearerValue(request, context)
    if (!bearer?.jwt) return NOT_MINE
    const policy = context.place?.bearerPolicy ?? this.#realms.policyFor(context.place?.service)
    if (!policy.applicationsOnly && context.place && !context.place.accepts.includes('oidc')) return NOT_MINE
    const token = bearer.value
    const now = this.#clock.now()
    const key = hash('sha256', token, 'base64url')
    const cached = this.#verified.get(key, now)
    // A place that takes personal tokens but not `oidc` asks here only for the OAuth2 applications' tokens (the
    // pipeline): any other bearer is left to the others (a session cookie beside it, or the personal tokens' refusal).
    // A token verified before says what it is; only one not yet verified is decoded to tell.
    if (policy.applicationsOnly && !(cached ? cached.application : policy.applicationsOnly(token))) return NOT_MINE
    const verified = cached ?? (await this.#verified.load(key, () => this.#verify(token, now), now))!
    if (this.#isRevoked(verified, now)) {
      this.#verified.forget(key)
      throw invalidToken('The access token was revoked or its session ended.')
    }
    checkPolicy(verified, policy)
    const issuedAt = lastMillisecondOf(verified.issuedAt)
    const { scopes } = verified
    const scope = heldToScope(scopes, policy, verified.application)
    return { userId: verified.userId, method: 'oidc', ...(scope ? { scope } : {}), scopes, expiresAt: verified.expiresAt, issuedAt, accessToken: verified }
  }

  async issuedBeforeAccount(): Promise<Unauthenticated> {
    return invalidToken('The access token was revoked or its session ended.')
  }

  async #verify(token: string, now: number): Promise<VerifiedAccessToken> {
    let issuer: unknown
    try {
      issuer = decodeJwt(token).iss
    } catch {
      throw invalidToken('The access token is not a well-formed JWT.')
    }
    const realm = typeof issuer === 'string' ? this.#realms.byIssuer(issuer) : undefined
    if (!realm) throw invalidToken('The access token was not issued by a realm of this gateway.')
    try {
      return await realm.verifyAccessToken(token, now)
    } catch (error) {
      if (!(error instanceof AccessTokenRefused)) throw error
      // A disabled account's records are ended: its token is answered as the account's, as every other credential is.
      if (error.userId !== undefined && (await this.#accounts.get(error.userId))?.isActive === false) throw new AccountDisabled()
      throw invalidToken(error.message)
    }
  }

  #isRevoked(token: VerifiedAccessToken, now: number): boolean {
    // Nearly always nothing was revoked lately: then no keys are built and looked up on every request.
    if (this.#revoked.size === 0) return false
    const realmNotBefore = this.#revoked.get(`realm:${token.realm}`, now)
    if (typeof realmNotBefore === 'number' && token.issuedAt < realmNotBefore) return true
    return this.#revoked.get(`jti:${token.jti}`, now) !== undefined || this.#revoked.get(`grant:${token.grantId}`, now) !== undefined
  }
}

/**
 * Whether a place that accepts these credential types asks for an OIDC access token at all: one that accepts `oidc`
 * does, and one that accepts personal tokens (`token`) does for an OAuth2 application's alone, where its policy says
 * so (src/auth/pipeline.ts asks this authenticator there). `access check` decides by it too.
 */
export function takesAccessToken(accepts: readonly AuthMethod[], policy: BearerPolicy, application: boolean): boolean {
  return accepts.includes('oidc') || (accepts.includes('token') && policy.applicationsOnly !== undefined && application)
}

/**
 * The platform's `read` or `write` a token is held to at a place, none when it is not held to either. A token asked for
 * with one of them is held to it everywhere, as a personal token is: a `read` token writes nowhere, and the service is
 * told the scope. So is every token of an OAuth2 application (the platform's own kind, from `/o/token/`), whose power
 * to write is asked for by name, and every token at a place whose policy is `scoped` (the gateway's own API): one
 * without `write` only reads. A configured client's token of the realm's own scopes alone (a browser application's)
 * is the whole account's at a service that takes the realm's tokens. `access check` decides by it too.
 */
export function heldToScope(scopes: ReadonlySet<string>, policy: Pick<BearerPolicy, 'scoped'>, application: boolean): 'read' | 'write' | undefined {
  if (scopes.has('write')) return 'write'
  return policy.scoped || application || scopes.has('read') ? 'read' : undefined
}

/** A token is for a place when it comes from a realm the place accepts and names one of the place's audiences. */
function checkPolicy(token: VerifiedAccessToken, policy: BearerPolicy): void {
  const refusal = policyRefusal(token, policy)
  if (refusal) throw invalidToken(refusal)
}

/** Why a place's policy refuses a token of this realm, kind and audiences (`aud` and `azp`); `access check` decides by it too. */
export function policyRefusal(token: Pick<VerifiedAccessToken, 'realm' | 'application' | 'audiences'>, policy: BearerPolicy): string | undefined {
  if (!policy.realms.has(token.realm)) return 'This service does not accept tokens of that realm.'
  if (policy.applicationsOnly && !token.application) return 'This service takes the platform\'s tokens (personal tokens and those of its OAuth2 applications), not other OpenID Connect access tokens.'
  if (!token.audiences.some((a) => policy.audiences.has(a))) return policy.audienceRefusal ?? 'The access token is not meant for this service (aud, azp).'
  return undefined
}
