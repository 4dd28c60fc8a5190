import { AccessTokenRefused, type AccessTokenIssuers, type BearerPolicy, type VerifiedAccessToken } from '../auth/access-tokens.ts'
import { createHash, hash, randomBytes } from 'node:crypto'
import type { FastifyReply } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import { createLocalJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import type Provider from 'oidc-provider'
import { defaultServiceAudiences, defaultServiceClient, type RealmClientConfig, type RealmConfig } from '../config/realms.ts'
import type { Config } from '../config/schema.ts'
import type { Accounts } from '../directory/accounts.ts'
import { FixedWindowCounts } from '../http/fixed-window.ts'
import type { Memberships } from './claims.ts'
import type { User } from '../store/users.ts'
import type { EventBus } from '../store/event-bus.ts'
import type { Store } from '../store/store.ts'
import type { ApplicationClients } from './applications.ts'
import type { ClientCredentialsShortcut } from './client-credentials.ts'
import type { RefreshTokenShortcut } from './refresh-token.ts'
import type { PasswordGrantShortcut } from './password-grant.ts'
import { ServiceAccounts } from './claims.ts'
import { KeycloakTokens, verifyRefreshToken, type RefreshTokenClaims } from './keycloak-tokens.ts'
import { LoadedKeys, REFRESH_SIGNING_ALG, RealmKeys, type KeysKept, type RealmKeySet, type SignatureAlg } from './keys.ts'
import { resolveLoginName } from './login-name.ts'
import { SESSION_STATE_COOKIE } from './keycloak-format.ts'
import { GATEWAY_CALLBACK, KEYCLOAK_ROUTES, REALM_SESSION_COOKIE, realmResource } from './provider-paths.ts'
import { PASSWORD_GRANT } from './password-grant.ts'
import type { EndedGrant } from '../store/oidc.ts'
import { keysDroppedKey, KEYS_TOPIC, realmRevocation, realmRevocationKey, REVOKE_TOPIC, SESSION_TOPIC } from '../store/topics.ts'
import type { ClientAccessCheck, ClientRolesOf } from '../access/client-access.ts'
import { isRealmsRecord, REALM_MEMBER } from './adapter.ts'
import { BackchannelLogouts, withoutQuery, type DeliveryOutcome } from './backchannel-logout.ts'
import { adminCallUrl, logoutAllAction, logoutSessionsAction, pushNotBeforeAction, realmNotBefore, setRealmNotBefore, takeAdapterSessions } from './admin-url.ts'

/**
 * Expired provider records are deleted this often: a few minutes, so that the access tokens' records (each refresh
 * writes one, for 5 minutes by default) are gone soon after they expire, however fast a client refreshes.
 */
const PRUNE_INTERVAL_MS = 300_000
/** How long after its expiry a rotated-out key is still published: clock skew between issuer and verifiers. */
const KEY_GRACE_SECONDS = 60
/** Device codes whose last poll this process remembers. */
const MAX_DEVICE_POLLS = 10_000
/** The most gateway sessions a `logout-all` tells every process of one by one; past it, that they all be read again. */
const MAX_SESSION_EVENTS = 100
/** Clock skew allowed between the realm that issued a token and the process checking it. */
const CLOCK_TOLERANCE_SECONDS = 5

/**
 * Whether an access token's own times hold at `nowSeconds` as the gateway checks them (`verifyAccessToken`, through
 * jose): not expired, not before its `nbf`, not issued in the future, each with the same tolerance. Introspection and
 * userinfo ask it too, as Keycloak's check their token's own `exp` and `nbf` (TokenVerifier `IS_ACTIVE`), beside its
 * record.
 */
export function accessTokenTimesHold(claims: { exp?: unknown; nbf?: unknown; iat?: unknown }, nowSeconds: number): boolean {
  const { exp, nbf, iat } = claims
  if (typeof exp !== 'number' || exp <= nowSeconds - CLOCK_TOLERANCE_SECONDS) return false
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowSeconds + CLOCK_TOLERANCE_SECONDS)) return false
  return typeof iat === 'number' && iat <= nowSeconds + CLOCK_TOLERANCE_SECONDS
}

/**
 * The clients whose service-account tokens are counted at once: the realm's and the OAuth2 applications, which only
 * superusers make. Past it the client counted first starts afresh.
 */
const MOST_CLIENTS_COUNTED = 10_000

/**
 * Grants whose refreshes and codes are counted at once (`access_tokens_per_grant_limit`), a window's worth: past it the grant
 * counted first starts afresh. Each is an entry of some hundred bytes.
 */
const MOST_GRANTS_COUNTED = 100_000

/**
 * The counts of the realm's `access_tokens_per_grant_limit`, in windows as long as a token lives: at most about twice
 * the limit of one grant's access tokens issued by refreshes and codes are live at once in a process.
 */
export function grantTokenCounts(realm: RealmConfig): FixedWindowCounts<string> {
  return new FixedWindowCounts({ perKey: realm.access_tokens_per_grant_limit, windowMs: realm.access_token_seconds * 1000, maxKeys: MOST_GRANTS_COUNTED })
}

/**
 * The counts of the realm's `client_credentials_tokens_limit`, in windows as long as a token lives: at most about
 * twice the limit of one client's tokens are live at once in a process.
 */
export function clientTokenCounts(realm: RealmConfig): FixedWindowCounts<string> {
  return new FixedWindowCounts({ perKey: realm.client_credentials_tokens_limit, windowMs: realm.access_token_seconds * 1000, maxKeys: MOST_CLIENTS_COUNTED })
}

/**
 * What builds a realm's oidc-provider instance (src/oidc/provider.ts, its login step and its Keycloak shapes) and
 * oidc-provider itself: loaded with a realm's first request, not at start, and once (see loadProviderClass, which
 * also points oidc-provider's clock at `clock`, the database's time as this process knows it).
 */
let providerModule: Promise<typeof import('./provider.ts')> | undefined
async function loadProviderModule(clock: () => number): Promise<{ buildProvider: typeof import('./provider.ts').buildProvider; providerClass: typeof Provider }> {
  providerModule ??= import('./provider.ts').catch((error: unknown) => {
    providerModule = undefined
    throw error
  })
  const module = await providerModule
  return { buildProvider: module.buildProvider, providerClass: await module.loadProviderClass(clock) }
}

export interface RealmDependencies {
  store: Store
  bus: EventBus
  accounts: Accounts
  /** The public URL, read at use: a server listening on port 0 learns its own only after it started. */
  publicUrl(): string
  /**
   * Ends the gateway session a `gateway_sessionid` cookie names, if it is live: a browser signs out once. False when it
   * is another user's than `accountId` (of the realm session that ended), which it leaves alone.
   */
  endGatewaySession(cookie: string, accountId: string | undefined, address: string | undefined): Promise<boolean>
  /**
   * The key hash of the gateway session a `gateway_sessionid` cookie names: a live one, if it is `userId`'s; one that
   * no longer exists (it was ended), whoever's it was, so that the save it is asked for ends the realm session.
   */
  gatewaySessionOf(cookie: string, userId: number): Promise<string | undefined>
  /**
   * Ends the gateway session of this key hash, the one a realm browser session that ended was linked to, if it is live
   * and `accountId`'s.
   */
  endLinkedGatewaySession(keyHash: string, accountId: string | undefined, address: string | undefined): Promise<void>
  /**
   * Asked at each refresh whether the user's account still stands where it came from (a directory entry that is
   * gone: src/directory/ldap-check.ts); false refuses the refresh.
   */
  confirmAccount?: ((user: User) => Promise<boolean>) | undefined
  /** The user's teams and organizations as Keycloak group paths, and their role names (src/access/model.ts). */
  memberships?: ((user: User) => Memberships) | undefined
  /** Whether a user may sign in to a client (its `access` rules): the refusal's explanation, or undefined. */
  clientAccess?: ClientAccessCheck | undefined
  /** The user's roles of the realm's clients, for `resource_access` (their `roles` rules). */
  clientRoles?: ClientRolesOf | undefined
  /** Told each grant a realm's token endpoint answered with tokens, with the realm's name. */
  tokensIssued?: ((realm: string, grantType: string) => void) | undefined
  /** Told each logout at a realm that ended an account's sign-in, with the realm's name and the client's address. */
  signedOut?: ((realm: string, accountId: string, address: string | undefined) => void) | undefined
  /** Told what each back-channel logout delivery came to, with the realm's name. */
  logoutTokensSent?: ((realm: string, outcome: DeliveryOutcome) => void) | undefined
}

/** A realm session that ended: its user, its `sid`, and each client it signed in to with the grant of the sign-in. */
export interface EndedRealmSession {
  accountId: string
  sid: string | undefined
  signIns: Iterable<{ clientId: string; grantId: string | undefined }>
}

/** Keycloak's answer to an admin action that calls the clients' admin URLs: the URLs that took it, and the others. */
export interface GlobalRequestResult {
  successRequests?: string[]
  failedRequests?: string[]
}

/** What a realm needs besides its own dependencies: the process's one queue of logout tokens. */
interface RealmShared {
  serviceAccounts: ServiceAccounts
  backchannelLogouts: BackchannelLogouts
}

/** A realm's oidc-provider instance, its Node request handler, and what Gatehouse serves beside it. */
interface BuiltProvider {
  instance: Provider
  handler: (req: IncomingMessage, res: ServerResponse) => void
  /** The plain client_credentials grant without the handler (client-credentials.ts). */
  clientCredentials: ClientCredentialsShortcut
  /** The plain refresh_token grant without the handler (refresh-token.ts). */
  refreshToken: RefreshTokenShortcut
  /** The plain password grant without the handler (password-grant.ts). */
  password: PasswordGrantShortcut
  tokens: KeycloakTokens
}

/** One realm: its configuration, its signing keys and, built on first use, its oidc-provider instance. */
export class Realm {
  readonly config: RealmConfig
  readonly #deps: RealmDependencies & RealmShared
  /** RS256 or ES256 (`default_signature_algorithm`): access and ID tokens, published in the JWKS. */
  readonly #keys: LoadedKeys
  readonly #signingKeys: RealmKeys
  /** HS512: refresh tokens, never published. */
  readonly #refreshKeys: LoadedKeys
  readonly #clients: Map<string, RealmClientConfig>
  #verification: { keys: RealmKeySet; verify: JWTVerifyGetKey } | undefined
  /** When each device code last polled the token endpoint (RFC 8628 §3.5), in this process. */
  readonly #devicePolls = new Map<string, number>()
  readonly #clientTokens: FixedWindowCounts<string>
  readonly #grantTokens: FixedWindowCounts<string>
  #provider: BuiltProvider & { issuer: string; keys: RealmKeySet; refreshKeys: RealmKeySet } | undefined
  /** The realm's not-before as this process last read it (`knownNotBefore()`); undefined once a `logout-all` is heard of. */
  #knownNotBefore: Promise<number> | undefined

  /** Set on the realm that serves the platform's OAuth2 applications, before its provider is first built. */
  applications: ApplicationClients | undefined

  constructor(config: RealmConfig, deps: RealmDependencies & RealmShared) {
    this.config = config
    this.#deps = deps
    this.#clientTokens = clientTokenCounts(config)
    this.#grantTokens = grantTokenCounts(config)
    const changed = () => deps.bus.publish(KEYS_TOPIC, config.name)
    // The keys' times (when one is due, replaced, deleted for every process) are the database's, as the tokens' iat
    // and exp are: a process whose clock runs ahead would otherwise delete a replaced key its tokens still need.
    // A replaced key stays until its access tokens have expired, and until the sessions its ID tokens name have ended:
    // a client keeps the ID token of its login to send as the logout's `id_token_hint`, which is verified with it.
    const idTokenHintSeconds = Math.max(config.access_token_seconds, config.sso_session_max_seconds)
    this.#signingKeys = new RealmKeys(deps.store, config.name, config.signing_key_rotation_seconds, idTokenHintSeconds + KEY_GRACE_SECONDS, config.default_signature_algorithm)
    this.#keys = new LoadedKeys(this.#signingKeys, changed)
    // A refresh token lives at most as long as its session; its key stays until then.
    const longestSession = Math.max(config.sso_session_max_seconds, config.offline_session_max_seconds)
    this.#refreshKeys = new LoadedKeys(new RealmKeys(deps.store, config.name, config.signing_key_rotation_seconds, longestSession + KEY_GRACE_SECONDS, REFRESH_SIGNING_ALG), changed)
    this.#clients = new Map(config.clients.map((c) => [c.client_id, c]))
  }

  get name(): string {
    return this.config.name
  }

  get issuer(): string {
    return `${this.#deps.publicUrl()}/realms/${this.config.name}`
  }

  /** The issuer's path, `/realms/<name>` under the path the gateway is published at: where its pages and cookies live. */
  get path(): string {
    return new URL(this.issuer).pathname
  }

  /** What the realm signs access and ID tokens with; tokens signed otherwise are refused. */
  get signatureAlgorithm(): SignatureAlg {
    return this.config.default_signature_algorithm
  }

  client(clientId: string): RealmClientConfig | undefined {
    return this.#clients.get(clientId)
  }

  /**
   * The realm's published keys, to verify its tokens with; read again (rotating when due) once they may have changed,
   * and those in memory while they cannot be.
   */
  keySet(now = this.#deps.bus.clock.now()): Promise<RealmKeySet> {
    return this.#keys.known(now)
  }

  /**
   * Reads the realm's keys (making the first ones on a new database), so that they are in memory before the realm's
   * first request: a process started during an outage, or one that answered no request of the realm before it, serves
   * the realm's discovery, JWKS and tokens' verification from them instead of answering 503.
   */
  async loadKeys(): Promise<void> {
    const now = this.#deps.bus.clock.now()
    await Promise.all([this.#keys.get(now), this.#refreshKeys.get(now)])
  }

  /** Whether the realm's keys were read in this process (they stay in memory from then on). */
  get keysInMemory(): boolean {
    return this.#keys.inMemory && this.#refreshKeys.inMemory
  }

  /** Told when the keys could not be read again and those in memory go on signing (see LoadedKeys). */
  onKeysKept(listener: (kept: KeysKept) => void): void {
    this.#keys.onKept(listener)
    this.#refreshKeys.onKept(listener)
  }

  /**
   * Replaces the key that signs access and ID tokens now, and drops every earlier one from the JWKS at once, on every
   * process: for a key that may have leaked. Tokens signed with those keys are refused from then on (ID tokens too,
   * as an `id_token_hint`); refresh tokens, signed with the realm's secret, get new access tokens.
   */
  async replaceSigningKey(): Promise<{ kid: string; retired: string[] }> {
    const replaced = await this.#signingKeys.replace(this.#deps.bus.clock.now())
    this.#keys.reload()
    await this.#deps.bus.change(async (_tx, announce) => {
      announce(KEYS_TOPIC, this.name)
      announce(REVOKE_TOPIC, keysDroppedKey(this.name))
    })
    return replaced
  }

  /** Another process changed the keys: read them again on next use. */
  keysChanged(): void {
    this.#keys.reload()
    this.#refreshKeys.reload()
  }

  /**
   * Realm sessions ended together (a browser's, or a password login's; one, or all those of an account): each client a
   * session signed in to that has a `backchannel_logout_uri` is sent a logout token naming the user and that session
   * (`sid`), and each that has an `admin_url` one admin call naming every adapter session its grants in these sessions
   * were redeemed for (admin-url.ts), as Keycloak sends one call per client for a user's sessions; later, off the path
   * of whatever ended them (backchannel-logout.ts).
   */
  logOutClients(sessions: readonly EndedRealmSession[]): void {
    const adminCalls = new Map<string, { grants: Set<string>; sids: Set<string> }>()
    for (const { accountId, sid, signIns } of sessions) {
      const told = new Set<string>()
      for (const { clientId, grantId } of signIns) {
        const client = this.#clients.get(clientId)
        const uri = client?.backchannel_logout_uri
        if (uri && !told.has(clientId)) void this.#deps.backchannelLogouts.send({ realm: this.name, clientId, uri, format: 'logout_token', sign: async () => (await this.provider()).tokens.logoutToken(clientId, accountId, sid) })
        told.add(clientId)
        if (!client?.admin_url || !grantId) continue
        const call = adminCalls.get(clientId) ?? { grants: new Set(), sids: new Set() }
        adminCalls.set(clientId, call)
        call.grants.add(grantId)
        if (sid) call.sids.add(sid)
      }
    }
    for (const [clientId, { grants, sids }] of adminCalls) {
      void this.#deps.backchannelLogouts.send({
        realm: this.name, clientId, uri: adminCallUrl(this.#clients.get(clientId)!.admin_url!, 'k_logout'), format: 'admin',
        sign: async () => {
          const adapterSessions = await takeAdapterSessions(this.#deps.store.oidc, grants, clientId)
          return adapterSessions.length ? (await this.provider()).tokens.adminAction(clientId, logoutSessionsAction(adapterSessions, [...sids])) : undefined
        },
      })
    }
  }

  /**
   * Keycloak's `logout-all` (RealmAdminResource, ResourceAdminManager `logoutAll`): the realm's not-before moves to now,
   * every realm browser session and every grant of the realm ends (their tokens with them, so the realm refuses every
   * token issued before), and the gateway sessions those browser sessions were linked to, which would sign the
   * browsers in again without a password (one sign-in, one sign-out: a logout at the realm ends the gateway session
   * too); each client with an admin URL is sent a `LOGOUT` naming no session but the not-before, from which
   * keycloak-connect refuses every older token. Answers when every call has come to something (each given the delivery
   * timeout once its turn in the queue comes), with Keycloak's GlobalRequestResult and how many gateway sessions ended
   * with the sign-ins (the audit entry's count, which `gatehouse_revocations_total` adds).
   */
  async logoutAll(): Promise<{ result: GlobalRequestResult; gatewaySessionsEnded: number }> {
    // The second after the database's time (the clock of the tokens' `iat` and of the accounts' not-befores): every
    // token signed before this moment has an earlier `iat`, whenever its record is written (a service account's, which
    // no grant holds, may be written after the grants end). The answer waits for that second to begin, so that no
    // token issued after it is refused; one issued while it ran is, as one issued before.
    const clock = this.#deps.bus.clock
    const notBefore = Math.floor(clock.now() / 1000) + 1
    let gatewaySessionsEnded = 0
    await this.#deps.bus.change(async (tx, announce) => {
      await setRealmNotBefore(tx.oidc, this.name, notBefore)
      const { gatewaySessions } = await tx.oidc.endRealmSignIns(REALM_MEMBER, this.name, realmResource(this.name))
      gatewaySessionsEnded = gatewaySessions.length
      // One piece of news for the whole realm, however many grants ended: every process refuses the realm's tokens
      // issued before the not-before from memory, and checks those it had verified against their records again.
      announce(REVOKE_TOPIC, realmRevocationKey(this.name, notBefore))
      // The gateway sessions: each by its key while they are few, and past that every process reads its sessions again.
      if (gatewaySessions.length > MAX_SESSION_EVENTS) announce(SESSION_TOPIC, 'all')
      else for (const keyHash of gatewaySessions) announce(SESSION_TOPIC, keyHash)
    })
    for (let wait = notBefore * 1000 - clock.now(); wait > 0; wait = notBefore * 1000 - clock.now()) await delay(wait)
    return { result: await this.#callAdminUrls('k_logout', logoutAllAction(notBefore)), gatewaySessionsEnded }
  }

  /** The realm's not-before (epoch seconds): the last `logout-all`'s, 0 before any, as Keycloak's realm `notBefore`. */
  notBefore(): Promise<number> {
    return realmNotBefore(this.#deps.store.oidc, this.name, this.#deps.bus.clock.now())
  }

  /**
   * The realm's not-before, read once and kept until a `logout-all` is heard of (`notBeforeChanged`): every token of
   * the realm issued in an earlier second is refused, as Keycloak's TokenManager refuses it, also those that no grant
   * holds (a service account's), which the `logout-all` leaves in the database, and on a process started since. The
   * realm description shows it too (Keycloak's `tokens-not-before`).
   */
  knownNotBefore(): Promise<number> {
    this.#knownNotBefore ??= this.notBefore().catch((error: unknown) => {
      this.#knownNotBefore = undefined
      throw error
    })
    return this.#knownNotBefore
  }

  /** A `logout-all` moved the realm's not-before (this process's, or another's it heard of): it is read again. */
  notBeforeChanged(): void {
    this.#knownNotBefore = undefined
  }

  /**
   * Keycloak's `push-revocation` (ResourceAdminManager `pushRealmRevocationPolicy`): each client with an admin URL is
   * sent `PUSH_NOT_BEFORE` with the realm's not-before (the last `logout-all`'s, 0 before any), as GlobalRequestResult.
   */
  async pushRevocation(): Promise<GlobalRequestResult> {
    return this.#callAdminUrls('k_push_not_before', pushNotBeforeAction(await this.notBefore()))
  }

  async #callAdminUrls(endpoint: 'k_logout' | 'k_push_not_before', action: { action: string; notBefore: number }): Promise<GlobalRequestResult> {
    const clients = [...this.#clients.values()].filter((client) => client.admin_url !== undefined)
    const outcomes = await Promise.all(clients.map((client) => this.#deps.backchannelLogouts.send({
      realm: this.name, clientId: client.client_id, uri: adminCallUrl(client.admin_url!, endpoint), format: 'admin', urgent: true,
      sign: async () => (await this.provider()).tokens.adminAction(client.client_id, action),
    })))
    // Keycloak lists each admin URL, and leaves out a list that would be empty; here without its query, which may carry
    // a key of the receiver's, as the log shows it (the answer is recorded in the audit trail).
    const listed = (delivered: boolean) => clients.filter((_, i) => (outcomes[i] === 'delivered') === delivered).map((client) => withoutQuery(client.admin_url!))
    const [successRequests, failedRequests] = [listed(true), listed(false)]
    return { ...(successRequests.length ? { successRequests } : {}), ...(failedRequests.length ? { failedRequests } : {}) }
  }

  /** Verifies signatures with the realm's published keys, in process (no JWKS fetch). */
  async verificationKey(): Promise<JWTVerifyGetKey> {
    const keys = await this.keySet()
    if (this.#verification?.keys !== keys) this.#verification = { keys, verify: createLocalJWKSet({ keys: [...keys.publicJwks] }) }
    return this.#verification.verify
  }

  /**
   * Checks an access token of this realm the way a service built for Keycloak does, in process: signature with the
   * realm's keys and algorithm, issuer, expiry and not-before (5 s tolerance), not issued in the future, `typ: Bearer`,
   * `azp` and a user subject; then that the realm still has its record (it was not revoked and its session did not
   * end). It does not check the audience or the user: the caller's policy does. Times are the database's (`now`
   * defaults to this process's view of it), which the realms stamp their tokens with (provider-clock.ts).
   */
  async verifyAccessToken(token: string, now = this.#deps.bus.clock.now()): Promise<VerifiedAccessToken> {
    let payload: JWTPayload
    // Outside the refusal below: keys that cannot be read (the database away before this process read any) are the
    // outage's 503, not a token refused as invalid, which its client would throw away.
    const key = await this.verificationKey()
    try {
      ({ payload } = await jwtVerify(token, key, {
        issuer: this.issuer,
        algorithms: [this.signatureAlgorithm],
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(now),
      }))
    } catch (error) {
      throw new AccessTokenRefused(describeJoseError(error, this.signatureAlgorithm))
    }
    if (payload.iat! > now / 1000 + CLOCK_TOLERANCE_SECONDS) throw new AccessTokenRefused('The access token is not valid yet.')
    if (payload.typ !== 'Bearer') throw new AccessTokenRefused('The token is not an access token.')
    if (typeof payload.azp !== 'string' || typeof payload.sub !== 'string' || !/^[1-9][0-9]{0,14}$/.test(payload.sub)) {
      throw new AccessTokenRefused('The access token lacks azp or a user subject.')
    }
    if (payload.iat! < await this.knownNotBefore()) throw new AccessTokenRefused('The access token was revoked or its session ended.', Number(payload.sub))
    const oidc = this.#deps.store.oidc
    // Records expire by the clock the adapter wrote their expiry with, the database's as this process knows it (adapter.ts).
    const record = await oidc.findWithGrant('AccessToken', payload.jti!, now) ?? await oidc.find('ClientCredentials', payload.jti!, now)
    if (!record || !isRealmsRecord(record.payload, this.name) || record.payload.clientId !== payload.azp || (record.model === 'AccessToken' && record.payload.accountId !== payload.sub)) {
      // Past its `exp` (within the signature check's tolerance) its record has expired with it: said as the expiry it is.
      if (!record && payload.exp! <= now / 1000) throw new AccessTokenRefused('The access token has expired.', Number(payload.sub))
      throw new AccessTokenRefused('The access token was revoked or its session ended.', Number(payload.sub))
    }
    // Its grant too, as oidc-provider's introspection and userinfo load it (read along with the token, no second query):
    // a grant ended while the token was being issued (a logout-all, a revocation) leaves the token's record without one.
    if (record.model === 'AccessToken' && (record.grantId === null || !(await oidc.find('Grant', record.grantId, now)))) {
      throw new AccessTokenRefused('The access token was revoked or its session ended.', Number(payload.sub))
    }
    if (!(await this.#hasClient(payload.azp))) throw new AccessTokenRefused('The access token\'s client is no longer a client of this realm.')
    return {
      userId: Number(payload.sub),
      realm: this.name,
      jti: payload.jti!,
      grantId: record.grantId,
      audiences: [...(Array.isArray(payload.aud) ? payload.aud : payload.aud ? [payload.aud] : []), payload.azp],
      clientId: payload.azp,
      // The client is the realm's (#hasClient): one not configured is an application.
      application: !this.#clients.has(payload.azp),
      scopes: new Set(typeof payload.scope === 'string' ? payload.scope.split(' ') : []),
      expiresAt: payload.exp! * 1000,
      issuedAt: payload.iat!,
    }
  }

  /**
   * Whether the realm still has this client: a configured one, or an OAuth2 application. Keycloak ends the sessions of
   * a client it removes; the records of a client taken out of the configuration outlive it, so its tokens are refused
   * here (an application's grants end with it, src/oidc/applications.ts `endApplicationTokens`).
   */
  async #hasClient(clientId: string): Promise<boolean> {
    if (this.#clients.has(clientId)) return true
    return this.applications !== undefined && (await this.applications.repository.findByClientId(this.name, clientId)) !== undefined
  }

  /** `verifyAccessToken`, answering undefined instead of the reason. */
  async accessToken(token: string): Promise<VerifiedAccessToken | undefined> {
    return this.verifyAccessToken(token).catch((error: unknown) => {
      if (error instanceof AccessTokenRefused) return undefined
      throw error
    })
  }

  /**
   * Whether a device code polls again before its interval has passed (Keycloak answers `slow_down`), counting this
   * poll. Asked only once the poll's client authenticated and the code was found to be its own (provider.ts
   * `slowDownFastPolls`), as Keycloak authenticates the client and finds the code first: an unknown, used or another
   * realm's code is reported as such, and another client's poll, or one that fails to authenticate, neither answered
   * `slow_down` nor delays the code's own client. Each process keeps its own record, bounded: a client spreading polls
   * over processes only gets answers sooner. Timed by the monotonic clock: a step back of the wall clock must not
   * answer every poll `slow_down` until the code expires.
   */
  devicePolledTooSoon(deviceCode: string, intervalSeconds: number, now = performance.now()): boolean {
    const key = hash('sha256', deviceCode, 'base64url')
    const last = this.#devicePolls.get(key)
    // As Keycloak's (putIfAbsent with the interval as lifespan): a poll answered slow_down does not start the interval
    // again, so a device that polls a little too often is still answered every other time, and gets its tokens.
    if (last !== undefined && now - last < intervalSeconds * 1000) return true
    if (this.#devicePolls.size >= MAX_DEVICE_POLLS) {
      for (const [k, at] of this.#devicePolls) if (at + intervalSeconds * 1000 <= now) this.#devicePolls.delete(k)
      if (this.#devicePolls.size >= MAX_DEVICE_POLLS) this.#devicePolls.delete(this.#devicePolls.keys().next().value!)
    }
    this.#devicePolls.delete(key)
    this.#devicePolls.set(key, now)
    return false
  }

  /** The claims of one of this realm's refresh tokens (undefined when it is not one); see keycloak-tokens.ts. */
  async refreshToken(jwt: string): Promise<RefreshTokenClaims | undefined> {
    return verifyRefreshToken(jwt, this.issuer, await this.#refreshKeys.known(this.#deps.bus.clock.now()))
  }

  /** The oidc-provider instance and its Node request handler, rebuilt when the keys or the public URL change. */
  async provider(): Promise<BuiltProvider> {
    const now = this.#deps.bus.clock.now()
    const built = this.#provider
    // Every request to the realm asks: the common answer costs no waiting on keys or on the module.
    if (built && built.keys === this.#keys.fresh(now) && built.refreshKeys === this.#refreshKeys.fresh(now) && built.issuer === this.issuer) return built
    // The provider signs: past the active key's turn, keys that cannot be read again fail it (LoadedKeys).
    const [keys, refreshKeys, { buildProvider, providerClass }] = await Promise.all([this.#keys.get(now), this.#refreshKeys.get(now), loadProviderModule(() => this.#deps.bus.clock.now())])
    const issuer = this.issuer
    const current = this.#provider
    if (!current || current.keys !== keys || current.refreshKeys !== refreshKeys || current.issuer !== issuer) {
      const tokens = new KeycloakTokens(issuer, keys, refreshKeys)
      const { provider: instance, clientCredentials, refreshToken, password } = buildProvider({
        providerClass,
        realm: this.config,
        issuer,
        keys,
        clientTokens: this.#clientTokens,
        grantTokens: this.#grantTokens,
        tokens,
        records: this.#deps.store.oidc,
        accounts: this.#deps.accounts,
        serviceAccounts: this.#deps.serviceAccounts,
        loginName: (name) => resolveLoginName(this.#deps, this.config, name),
        endGatewaySession: this.#deps.endGatewaySession,
        gatewaySessionOf: this.#deps.gatewaySessionOf,
        memberships: this.#deps.memberships,
        confirmAccount: this.#deps.confirmAccount,
        clientAccess: this.#deps.clientAccess,
        clientRoles: this.#deps.clientRoles,
        applications: this.applications,
        notBefore: () => this.knownNotBefore(),
        tokensIssued: (grantType) => this.#deps.tokensIssued?.(this.config.name, grantType),
        signedOut: (accountId, address) => this.#deps.signedOut?.(this.config.name, accountId, address),
        loggedOut: (clientId, accountId, sid, grantId) => this.logOutClients([{ accountId, sid, signIns: [{ clientId, grantId }] }]),
        devicePolledTooSoon: (deviceCode, intervalSeconds) => this.devicePolledTooSoon(deviceCode, intervalSeconds),
        endBrowserSession: async (uid, address) => {
          const ended = await this.#deps.bus.change(async (tx, announce) => {
            const ended = await tx.oidc.endSessionByUid(uid, this.#deps.bus.clock.now())
            for (const grantId of ended?.grants ?? []) announce(REVOKE_TOPIC, `grant:${grantId}`)
            return ended
          })
          // A browser signs out once: the gateway session of the same browser ends too, as at the end-session endpoint.
          if (ended?.gatewaySession !== undefined) await this.#deps.endLinkedGatewaySession(ended.gatewaySession, ended.accountId, address)
          return ended !== undefined
        },
        revoke: (keys, destroy) => this.#deps.bus.change(async (tx, announce) => {
          await destroy(tx.oidc)
          for (const key of typeof keys === 'string' ? [keys] : keys) announce(REVOKE_TOPIC, key)
        }),
      })
      this.#provider = { instance, handler: instance.callback(), clientCredentials, refreshToken, password, issuer, keys, refreshKeys, tokens }
      return this.#provider
    }
    return current
  }
}

function describeJoseError(error: unknown, alg: SignatureAlg): string {
  if (error instanceof joseErrors.JWTExpired) return 'The access token has expired.'
  if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'nbf') return 'The access token is not valid yet.'
  if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'iss') return 'The access token was not issued by this realm.'
  if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JWKSNoMatchingKey) return 'The access token signature does not verify.'
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return `The access token is not signed with ${alg}.`
  return 'The access token is not valid.'
}

/** For places that take no OIDC tokens: nothing passes. */
const NO_TOKENS: BearerPolicy = Object.freeze({ realms: new Set<string>(), audiences: new Set<string>(), scoped: true })

/** Every configured realm, and what each service expects of the tokens it accepts. */
export class OidcRealms implements AccessTokenIssuers {
  readonly #realms = new Map<string, Realm>()
  #policies: Map<string, BearerPolicy>
  #loginUrls: Map<string, (next: string) => string>
  readonly #store: Store
  /** The database's time as this process knows it, which records' expiries are written in (adapter.ts). */
  readonly #databaseNow: () => number
  #pruneAt = 0

  /** Logout tokens on their way to the realms' clients (back-channel logout). */
  readonly backchannelLogouts: BackchannelLogouts

  constructor(config: Config, deps: RealmDependencies) {
    const serviceAccounts = new ServiceAccounts(deps.store, deps.accounts)
    this.backchannelLogouts = new BackchannelLogouts(deps.logoutTokensSent)
    for (const realm of config.realms) this.#realms.set(realm.name, new Realm(realm, { ...deps, serviceAccounts, backchannelLogouts: this.backchannelLogouts }))
    this.#store = deps.store
    this.#databaseNow = () => deps.bus.clock.now()
    // Sessions ended by the end of their gateway session, a logout with a refresh token, or the end of their account
    // (a new password, disabled, deleted), and with the account the password logins' grants.
    // Those that ended together are told together, one admin call per client (Realm.logOutClients).
    deps.store.oidc.onSessionsEnded(({ sessions, grants }) => {
      const ended = new Map<Realm, EndedRealmSession[]>()
      for (const found of [...sessions.map((session) => this.#sessionEnded(session)), ...grants.map((grant) => this.#passwordLoginEnded(grant))]) {
        if (!found) continue
        const realmSessions = ended.get(found.realm)
        // Pushed, not copied: an account's end may tell tens of thousands of grants at once.
        if (realmSessions) realmSessions.push(found.session)
        else ended.set(found.realm, [found.session])
      }
      for (const [realm, realmSessions] of ended) realm.logOutClients(realmSessions)
    })
    deps.bus.on(KEYS_TOPIC, (name) => this.#realms.get(name)?.keysChanged())
    deps.bus.on(REVOKE_TOPIC, (key) => {
      const realmWide = realmRevocation(key)
      if (realmWide) this.#realms.get(realmWide.realm)?.notBeforeChanged()
    })
    deps.bus.onMissed(() => {
      for (const realm of this.#realms.values()) {
        realm.keysChanged()
        realm.notBeforeChanged()
      }
    })
    this.applicationsRealm = this.#realms.get(config.gateway.oidc.applications_realm ?? config.realms[0]?.name ?? '')
    const { policies, loginUrls, applicationAudiences } = this.#servicePolicies(config)
    this.#policies = policies
    this.#loginUrls = loginUrls
    // The provider reads its audiences at each application's lookup: a reload replaces them (applyServices).
    if (this.applicationsRealm) this.applicationsRealm.applications = { repository: deps.store.applications, audiences: applicationAudiences }
  }

  /**
   * What the services read again from the configuration file expect of tokens, in place of what they expected, and
   * the audiences of the OAuth2 applications' tokens minted from now on. Returns those audiences when they changed.
   */
  applyServices(config: Config): { applicationAudiences?: readonly string[] } {
    const { policies, loginUrls, applicationAudiences } = this.#servicePolicies(config)
    this.#policies = policies
    this.#loginUrls = loginUrls
    const applications = this.applicationsRealm?.applications
    if (!applications || JSON.stringify(applications.audiences) === JSON.stringify(applicationAudiences)) return {}
    applications.audiences = Object.freeze(applicationAudiences)
    return { applicationAudiences: applications.audiences }
  }

  #servicePolicies(config: Config): { policies: Map<string, BearerPolicy>; loginUrls: Map<string, (next: string) => string>; applicationAudiences: string[] } {
    const policies = new Map<string, BearerPolicy>()
    const loginUrls = new Map<string, (next: string) => string>()
    const gateway = config.gateway.oidc
    // A realm's tokens are meant for services by default, never for the gateway's API: a person who tried one there
    // is told how a client's tokens are made for it (docs/oidc.md, "Bearer tokens at the gateway").
    const audienceRefusal = `The access token is not meant for the gateway API: its aud and azp name none of gateway.oidc.audiences (${gateway.audiences.join(', ')}); a realm client's tokens are meant for it once the client's audiences name one.`
    policies.set('gateway', { realms: new Set(gateway.realms ?? this.#realms.keys()), audiences: new Set(gateway.audiences), scoped: true, audienceRefusal })
    for (const service of config.services) {
      if (!service.accepts.includes('oidc')) continue
      const realm = this.#realms.get(service.oidc?.realm ?? config.realms[0]?.name ?? '')
      if (!realm) continue
      const client = service.oidc?.client_id ?? defaultServiceClient(realm.config)
      // By default a service takes the tokens meant for it: its name in `aud`, or issued to its own client.
      const audiences = service.oidc?.audiences.length ? service.oidc.audiences : defaultServiceAudiences(service.name, client)
      policies.set(service.name, { realms: new Set([realm.name]), audiences: new Set(audiences), scoped: false })
      if (client && !service.accepts.includes('session')) loginUrls.set(service.name, (next) => authorizationUrl(realm, client, next))
    }
    const realm = this.applicationsRealm
    if (!realm) return { policies, loginUrls, applicationAudiences: [] }
    // An application's tokens are meant for the gateway and for every service that takes its realm's tokens.
    const realmName = realm.name
    const applicationAudiences = [...new Set([...gateway.audiences, ...[...policies.entries()]
      .filter(([service, policy]) => service !== 'gateway' && policy.realms.has(realmName))
      .flatMap(([, policy]) => [...policy.audiences].slice(0, 1))])]
    // A service that takes personal tokens takes the applications' tokens too, as the platform's services do: they
    // are meant for the gateway (its audiences), and the platform's services take what the gateway takes, held to
    // their scope as there (only `write` writes). So does the gateway's own API when its `accepts` names personal
    // tokens and not `oidc`: an application's token is the platform's kind, as a personal token is, and follows it.
    const applicationsOnly = (token: string): boolean => {
      try {
        const { iss, azp } = decodeJwt(token)
        return iss === realm.issuer && typeof azp === 'string' && realm.client(azp) === undefined
      } catch {
        return false
      }
    }
    const applicationsPolicy: BearerPolicy = { realms: new Set([realmName]), audiences: new Set(gateway.audiences), scoped: true, applicationsOnly }
    for (const place of [{ name: 'gateway', accepts: config.gateway.accepts }, ...config.services]) {
      if (place.accepts.includes('token') && !place.accepts.includes('oidc')) policies.set(place.name, applicationsPolicy)
    }
    return { policies, loginUrls, applicationAudiences }
  }

  /**
   * A realm browser session ended outside the realm's end-session endpoint: its clients are logged out. A session saved
   * before sessions named their realm belongs to the one realm that has every client it signed in to, if only one has.
   */
  #sessionEnded(session: Record<string, unknown>): { realm: Realm; session: EndedRealmSession } | undefined {
    const { accountId, uid, authorizations } = session as { accountId?: unknown; uid?: unknown; authorizations?: unknown }
    if (typeof accountId !== 'string' || typeof authorizations !== 'object' || authorizations === null) return undefined
    const signIns = Object.entries(authorizations as Record<string, { grantId?: unknown } | null>)
      .map(([clientId, authorization]) => ({ clientId, grantId: typeof authorization?.grantId === 'string' ? authorization.grantId : undefined }))
    const named = session[REALM_MEMBER]
    const candidates = typeof named === 'string' ? [this.#realms.get(named)] : this.all().filter((realm) => signIns.every(({ clientId }) => realm.client(clientId)))
    if (candidates.length !== 1 || !candidates[0]) return undefined
    return { realm: candidates[0], session: { accountId, sid: typeof uid === 'string' ? uid : undefined, signIns } }
  }

  /**
   * A grant ended with its account: a password login's (its tokens say so, and carry its `sid`) is a session of its
   * own, as Keycloak's direct grant makes one, whose client is logged out. The realm is the one its grant names as the
   * resource of its scopes. A browser sign-in's grant is told with its session instead.
   */
  #passwordLoginEnded(grant: EndedGrant): { realm: Realm; session: EndedRealmSession } | undefined {
    const token = grant.tokens.find((payload) => String(payload.gty ?? '').split(' ')[0] === PASSWORD_GRANT && payload.sessionUid === undefined)
    const { accountId, clientId, resources } = grant.payload as { accountId?: unknown; clientId?: unknown; resources?: unknown }
    if (!token || typeof accountId !== 'string' || typeof clientId !== 'string' || typeof resources !== 'object' || resources === null) return undefined
    const realm = this.all().find((candidate) => realmResource(candidate.name) in resources)
    return realm && { realm, session: { accountId, sid: typeof token.sid === 'string' ? token.sid : undefined, signIns: [{ clientId, grantId: grant.id }] } }
  }

  /** The realm whose clients the platform's OAuth2 applications are (`gateway.oidc.applications_realm`). */
  readonly applicationsRealm: Realm | undefined

  get configured(): boolean {
    return this.#realms.size > 0
  }

  get(name: string): Realm | undefined {
    return this.#realms.get(name)
  }

  all(): Realm[] {
    return [...this.#realms.values()]
  }

  longestAccessTokenSeconds(): number {
    return Math.max(...this.all().map((realm) => realm.config.access_token_seconds))
  }

  byIssuer(issuer: string): Realm | undefined {
    for (const realm of this.#realms.values()) if (realm.issuer === issuer) return realm
    return undefined
  }

  /** The tokens a service (or the gateway's own API, `gateway`) accepts; none anywhere else. */
  policyFor(service: string | undefined): BearerPolicy {
    return (service && this.#policies.get(service)) || NO_TOKENS
  }

  /** For services that take OIDC but not the gateway session: where an unauthenticated browser goes to log in. */
  loginUrlFor(service: string): ((next: string) => string) | undefined {
    return this.#loginUrls.get(service)
  }

  /**
   * Signs a browser out of every realm, as it signs out of the gateway: the realms' session cookies go (their
   * paths are the realms', so only a response can remove them), and the login status iframe's with them. `secure`
   * as for the gateway's own cookies (src/auth/csrf.ts `isSecure`), as they were set.
   */
  signOutBrowser(reply: FastifyReply, secure: boolean): void {
    for (const realm of this.#realms.values()) {
      const path = `${realm.path}/`
      reply.clearCookie(REALM_SESSION_COOKIE, { path, httpOnly: true, sameSite: 'lax', secure })
      reply.clearCookie(SESSION_STATE_COOKIE, { path, secure })
    }
  }

  /** Deletes expired provider records, at most once an hour, off the request path. */
  maintain(now = performance.now()): void {
    if (now < this.#pruneAt) return
    this.#pruneAt = now + PRUNE_INTERVAL_MS
    this.#store.oidc.pruneExpired(this.#databaseNow()).catch(() => {
      this.#pruneAt = 0
    })
  }
}

/**
 * The realm's authorization endpoint, for a browser to log in and come back to the gateway's callback with the
 * page it came from. The callback takes the code from the browser's realm session and consumes it without
 * redeeming it at the token endpoint (src/oidc/interactions.ts), so the PKCE verifier that public clients must
 * send is not kept.
 */
function authorizationUrl(realm: Realm, clientId: string, next: string): string {
  const verifier = randomBytes(32).toString('base64url')
  const url = new URL(realm.issuer + KEYCLOAK_ROUTES.authorization)
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: realm.issuer + GATEWAY_CALLBACK,
    response_type: 'code',
    scope: 'openid',
    // The browser has no live gateway session when it is sent here: it logs in again rather than have the realm's
    // browser session make one, so a gateway session that ended (logout, ended by its owner or an administrator,
    // expired) stays ended. The callback holds the code to this.
    prompt: 'login',
    state: Buffer.from(next).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString()
  return url.href
}
