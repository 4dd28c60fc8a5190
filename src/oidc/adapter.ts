import type { Adapter, AdapterPayload } from 'oidc-provider'
import { BoundedCache } from '../store/cache.ts'
import { sessionGrants, type OidcRecord, type OidcRecordRepository } from '../store/oidc.ts'
import { CLIENT_ASSERTION_CLOCK_SKEW_SECONDS, CLIENT_ASSERTION_MAX_SECONDS } from './client-assertions.ts'
import { refreshTokenType } from './keycloak-tokens.ts'
import { providerNow } from './provider-clock.ts'
import { recordKey, SECRET_ID_MODELS, sealedKey, userCodeKey } from './record-keys.ts'

/** Records whose value a client presents as an access token (opaque or, here, the `jti` of a JWT). */
const ACCESS_TOKEN_MODELS = new Set(['AccessToken', 'ClientCredentials'])
/**
 * Records only the realm that made them finds, each naming its realm in its payload. The realms share one store, and oidc-provider checks a code's
 * client, grant and redirect URI, all of which another realm with a client of the same id can match, before it
 * consumes the code; the realm's resource indicator, which would tell, is read only after. A code brought to
 * another realm's token endpoint is therefore not found there, and stays good at its own, as in Keycloak. So with a
 * device code, polled at another realm's token endpoint or its user code typed at another realm's device page; with a
 * login under way (an interaction), whose login page's URL taken to another realm would check the password and the
 * access rules of that realm for a login the first finishes; and with a pushed authorization request, whose
 * `request_uri` another realm refuses as one it never issued (`invalid_request_uri`) without using it up. Tokens and
 * grants too: a client presents a JWT, which only its own realm's key verifies, and each realm's endpoints swap it for
 * its record's id (routes.ts) before oidc-provider looks the record up; bound, a record's id that reached another
 * realm's provider by any other way (a path the swap missed) finds nothing there, as Keycloak's tokens are its realm's.
 */
const REALM_BOUND_MODELS = new Set([
  'AuthorizationCode', 'DeviceCode', 'Interaction', 'PushedAuthorizationRequest',
  'AccessToken', 'ClientCredentials', 'RefreshToken', 'Grant',
])
/**
 * The longest a client assertion's `jti` is kept: an assertion authenticates only within its most seconds of its
 * `iat`, which may lie the clock skew ahead (or, without one, before an `exp` at most that far ahead), and
 * oidc-provider's clock tolerance on top.
 */
const REPLAY_RECORD_MAX_SECONDS = CLIENT_ASSERTION_MAX_SECONDS + CLIENT_ASSERTION_CLOCK_SKEW_SECONDS + 5

/**
 * The most codes one grant (a browser session's sign-in to a client) holds at once: each authorization request issues
 * one, which lives a minute, and a browser (or a script with its cookie) looping over the authorization endpoint with
 * `prompt=none` would otherwise add a row a request. A new one past it ends the oldest unused one, counted as a grant's
 * refresh tokens are (`#countDue`); a client redeems its code at once, and the one it was just given is the newest.
 * As many used ones more are kept (`OidcRecordRepository.endCodesPastLimit`), so that one brought again is still
 * taken for a code used twice, which ends its grant, as Keycloak ends the client session of a code used twice.
 */
const CODES_PER_GRANT_LIMIT = 100

/**
 * When a signed-in browser session began, in epoch seconds: its login (`loginTs`), or, for one a gateway session
 * signed in (whose `loginTs` is that gateway session's password login, as its `auth_time` says), when the realm
 * session itself was first saved (`iat`), so that it is not born past its maximum.
 */
export function browserSessionStart(session: { loginTs?: unknown; iat?: unknown }, nowMs: number): number {
  const now = Math.floor(nowMs / 1000)
  const seconds = (value: unknown) => typeof value === 'number' ? value : now
  return Math.min(now, Math.max(seconds(session.loginTs), seconds(session.iat)))
}

/** The member of a realm-bound record's payload naming its realm (and of a realm browser session's); oidc-provider never sees it. */
export const REALM_MEMBER = 'gatehouseRealm'

/**
 * What a used code's record keeps of its payload, written in the statement that marks it used (`#claimCode`). It is
 * kept until its grant would expire (the session's maximum: src/store/oidc.ts `consumeCode`), and read again only to
 * be found used, at its realm (`REALM_MEMBER`), where it ends its grant (provider.ts `usedCodesEndTheirGrant`); by
 * oidc-provider's check of its browser session before that (`expiresWithSession`, `sessionUid`, `accountId`,
 * `clientId`, `grantId`); for the account that the refusal of the request that used it names (`accountOf`: "User
 * disabled"); and for its `iat`, which orders a grant's used codes (`endCodesPastLimit`), and `exp`, which
 * oidc-provider reads. Its claims, nonce, redirect URI, scope, resource and PKCE challenge are read only by the
 * redemption that used it, from the payload it found, which `release` writes back.
 */
const USED_CODE_MEMBERS = ['kind', 'iat', 'exp', 'accountId', 'clientId', 'grantId', 'sessionUid', 'expiresWithSession', REALM_MEMBER]

/** A code's payload as stored, as it is kept once used (`USED_CODE_MEMBERS`). */
function usedCodePayload(stored: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(USED_CODE_MEMBERS.filter((member) => stored[member] !== undefined).map((member) => [member, stored[member]]))
}

/** Whether a realm-bound record's payload is the named realm's (a record written before records were bound is every realm's). */
export function isRealmsRecord(payload: Record<string, unknown>, realm: string): boolean {
  const owner = payload[REALM_MEMBER]
  return owner === undefined || owner === realm
}

export interface AdapterDependencies {
  /** The realm whose provider this is. */
  realm: string
  records: OidcRecordRepository
  /**
   * Runs `destroy` on the records and tells every gateway process that the tokens each key covers stopped being
   * valid (src/auth/oidc-bearer.ts drops them), in one transaction: no crash can keep the news from the deletion.
   */
  revoke(keys: string | readonly string[], destroy: (records: OidcRecordRepository) => Promise<unknown>): Promise<void>
  /** Whether the client's refresh tokens are single-use (`refresh_token_rotation`). */
  detectsRefreshTokenReuse(clientId: string): boolean
  /** The key hash of the gateway session of the browser saving a realm session of this account, if it has one. */
  gatewaySession?(accountId: string): Promise<string | undefined>
  /** The realm's `grants_per_user_limit`: saving a user's grant past it ends their oldest. */
  grantsPerUserLimit?: number
  /** The realm's `refresh_tokens_per_grant_limit`: saving a grant's refresh token past it ends its oldest. */
  refreshTokensPerGrantLimit?: number
  /**
   * How long a browser session lasts past its last activity (SSO Session Idle and Keycloak's window), and at most after
   * it began (SSO Session Max): a refresh of one of its tokens is activity too, and extends it (`#extendBrowserSession`).
   */
  browserSessionIdleSeconds?: number
  browserSessionMaxSeconds?: number
}

/**
 * oidc-provider's persistence on Gatehouse's store: one adapter per model (Session, Grant, AccessToken, ...).
 * These behaviours are Gatehouse's own:
 * - destroying an access token or a grant, or revoking a grant's tokens, publishes REVOKE_TOPIC, so the gateway
 *   refuses those access tokens on their next request instead of at their expiry;
 * - a refresh token is marked consumed only for clients with reuse detection. oidc-provider rotates refresh
 *   tokens on every refresh, as Keycloak does, and treats a consumed one used again as theft (it revokes the
 *   grant); for the other clients an earlier refresh token stays valid until it expires, as in Keycloak with
 *   "Revoke refresh token" off. Consuming says whether this request was the one that marked it.
 * - the records whose id is a secret its holder presents (a realm session's cookie, a code: record-keys.ts) are kept
 *   under its SHA-256, without it in their payload, and found by it; a device code's user code likewise, as a key
 *   derived from it (`userCodeKey`), which only a lookup by that user code gives back;
 * - a realm's browser session is saved linked to the gateway session of the same browser, when it has a live one of
 *   the same user, so that ending that gateway session ends it too (src/auth/session-manager.ts); when that gateway
 *   session ended between its lookup and the save, or the realm session itself was ended since this request loaded
 *   it (whether or not the request has a gateway session), the end wins: the realm session ends as it would have
 *   with it.
 */
export class StoreAdapter implements Adapter {
  readonly #model: string
  readonly #deps: AdapterDependencies
  /**
   * The client of each refresh token just read: a refresh reads its token, then consumes it, and consuming needs
   * the client (a token's client never changes), which this saves reading the record again for.
   */
  readonly #refreshTokenClients = new BoundedCache<string, string>({ maxEntries: 1000, maxAgeMs: 60_000 })
  /** Refresh tokens, or codes, each grant saved since they were last counted (`#countDue`). */
  readonly #savedSinceCount = new BoundedCache<string, number>({ maxEntries: 10_000, maxAgeMs: 3600_000 })
  /**
   * The codes and device codes a request of this process used up just now, until that request's refusal asks whose
   * they are (`accountOf`): Keycloak removes a code as it reads it, and so tells what became of its user to the request
   * that brought it first only; one that brings it again, or past its expiry, is told the code is not valid.
   */
  readonly #usedUpHere = new BoundedCache<string, true>({ maxEntries: 1000, maxAgeMs: 10_000 })
  /** Grants being saved again after they were read (`savingAgain`): written only where they still are. */
  readonly #savedAgain = new Set<string>()

  constructor(model: string, deps: AdapterDependencies) {
    this.#model = model
    this.#deps = deps
  }

  /**
   * A client assertion's `jti` written unless it is there (provider.ts `replayOnce`): true when this call wrote it. Kept
   * until the assertion's `exp`, which the client chooses, but no longer than an assertion may still authenticate
   * after it was issued (client-assertions.ts): keeping it longer would only fill the table.
   */
  async insertOnce(id: string, payload: AdapterPayload, expiresIn: number): Promise<boolean> {
    const expiresAt = providerNow() + Math.min(expiresIn, REPLAY_RECORD_MAX_SECONDS) * 1000
    return this.#deps.records.insertOnce({ model: this.#model, id, payload: payload as Record<string, unknown>, expiresAt }, providerNow())
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const expiresAt = typeof expiresIn === 'number' ? providerNow() + expiresIn * 1000 : undefined
    if (this.#model === 'Session') return this.#saveSession(this.#key(id), this.#stored(id, payload), expiresAt)
    const stored = this.#stored(id, payload)
    const written = (this.#model === 'Grant' && this.#savedAgain.has(id) ? this.#deps.records.rewrite.bind(this.#deps.records) : this.#deps.records.upsert.bind(this.#deps.records))({
      model: this.#model,
      id: this.#key(id),
      payload: REALM_BOUND_MODELS.has(this.#model) ? { ...stored, [REALM_MEMBER]: this.#deps.realm } : stored as Record<string, unknown>,
      grantId: payload.grantId,
      uid: payload.uid,
      // A device code saved as found by its own id (its approval) has none: its record keeps the key it has.
      userCode: typeof payload.userCode === 'string' ? await userCodeKey(payload.userCode) : undefined,
      expiresAt,
    })
    await (this.#model === 'RefreshToken' ? Promise.all([written, this.#extendBrowserSession(payload)]) : written)
    if (this.#model === 'RefreshToken' && typeof payload.grantId === 'string' && this.#deps.refreshTokensPerGrantLimit !== undefined) {
      await this.#endRefreshTokensPastLimit(payload.grantId, this.#deps.refreshTokensPerGrantLimit, id, !payload.rotations)
    }
    if (this.#model === 'AuthorizationCode' && typeof payload.grantId === 'string' && this.#countDue(payload.grantId, CODES_PER_GRANT_LIMIT, true)) {
      await this.#deps.records.endCodesPastLimit(payload.grantId, CODES_PER_GRANT_LIMIT, this.#key(id), providerNow())
    }
    if (this.#model === 'Grant' && typeof payload.accountId === 'string' && this.#deps.grantsPerUserLimit !== undefined) {
      await this.#endGrantsPastLimit(payload.accountId, this.#deps.grantsPerUserLimit, id)
    }
  }

  /**
   * Runs `save`, the save of a grant read from the store, so that it writes the grant only where it still is
   * (`OidcRecordRepository.rewrite`): ended since it was read, it stays ended, and the authorization saving it issues
   * a code its grant's absence refuses.
   */
  async savingAgain<T>(id: string, save: () => Promise<T>): Promise<T> {
    this.#savedAgain.add(id)
    try {
      return await save()
    } finally {
      this.#savedAgain.delete(id)
    }
  }

  /**
   * A refresh token of a browser session (one with its `sessionUid`, not offline) is saved when it is issued for a code or
   * by a refresh: the session's user is active, and the session lasts the idle limit from now, never past its maximum,
   * as Keycloak's `lastSessionRefresh` moves with each refresh. Only its record's expiry is written, in one statement
   * that never shortens it nor brings back one expired or ended, so that what another request adds to the session's
   * payload meanwhile (a sign-in to another client) is kept; the session is read with that expiry (`#ownRealms`).
   * Tokens of no browser session (the password grant's) write nothing more.
   */
  async #extendBrowserSession(payload: AdapterPayload): Promise<void> {
    const { browserSessionIdleSeconds: idle, browserSessionMaxSeconds: max } = this.#deps
    if (typeof payload.sessionUid !== 'string' || refreshTokenType(payload.scope) !== 'Refresh' || idle === undefined || max === undefined) return
    const now = providerNow()
    await this.#deps.records.extendSession(payload.sessionUid, now + idle * 1000, max, now)
  }

  /**
   * A grant's refresh tokens past the realm's limit end, the oldest first (never `kept`, the one just saved). Counted
   * in the database at every half of the limit saved by this process, not at each: a statement more for every
   * refresh, or every login, would slow the grants whose rates matter most. A grant this process has not counted yet
   * is counted at its first token a refresh made; one a login made (`issuedByLogin`: no rotation yet) starts a new
   * grant, or adds one token to a grant found again, and is only counted in memory. A grant so holds at most the
   * limit plus, on each process, half of it.
   */
  async #endRefreshTokensPastLimit(grantId: string, limit: number, kept: string, issuedByLogin: boolean): Promise<void> {
    if (this.#countDue(grantId, limit, issuedByLogin)) await this.#deps.records.endRefreshTokensPastLimit(grantId, limit, kept, providerNow())
  }

  /**
   * Whether a grant's records of this model are to be counted in the database now, at every half of `limit` saved
   * by this process; the grant's first one here (`firstUncounted`) is counted in memory only.
   */
  #countDue(grantId: string, limit: number, firstUncounted: boolean): boolean {
    const saved = this.#savedSinceCount.get(grantId)
    const countEvery = Math.max(1, Math.floor(limit / 2))
    if (saved === undefined ? firstUncounted : saved + 1 < countEvery) {
      this.#savedSinceCount.set(grantId, (saved ?? 0) + 1)
      return false
    }
    this.#savedSinceCount.set(grantId, 0)
    return true
  }

  /**
   * A user's grants past the realm's limit end, the oldest first, with their tokens, told to every process as a
   * revoked grant is (never `kept`, the one just saved, whose tokens are being issued).
   */
  async #endGrantsPastLimit(accountId: string, limit: number, kept: string): Promise<void> {
    const ended = await this.#deps.records.grantsPastLimit(accountId, limit, kept, providerNow())
    if (ended.length) await this.#deps.revoke(ended.map((grantId) => `grant:${grantId}`), (records) => records.endGrants(ended))
  }

  /**
   * A realm session, linked to its gateway session when it has one; or, when that ended since it was looked up, or the
   * realm session itself was ended since it was loaded (whatever the request saving it), ended: its record and the
   * grants of its sign-ins (this very sign-in's too, whose code is then refused at the token endpoint). Unless the
   * realm session passed meanwhile to the browser's new gateway session (a new login of the same person in the same
   * browser replaced the one looked up, SessionManager.start): then it is saved linked to that one, if it still exists.
   */
  async #saveSession(id: string, payload: AdapterPayload, lifetimeEnd: number | undefined): Promise<void> {
    // oidc-provider saves a session for at least a second: one past its maximum is saved expired, so that requests
    // coming in quick succession cannot keep it a second at a time.
    const max = this.#deps.browserSessionMaxSeconds
    const ends = typeof payload.accountId === 'string' && max !== undefined ? (browserSessionStart(payload, providerNow()) + max) * 1000 : undefined
    const expiresAt = lifetimeEnd === undefined || ends === undefined ? lifetimeEnd : Math.min(lifetimeEnd, ends)
    const gatewaySession = typeof payload.accountId === 'string' ? await this.#deps.gatewaySession?.(payload.accountId) : undefined
    // The realm goes with it: its end is told to the store, not to this realm's provider (realm.ts `sessionsEnded`).
    const fields: Record<string, unknown> = { ...payload, [REALM_MEMBER]: this.#deps.realm }
    const save = (link: string | undefined) => this.#deps.records.saveSession({ id, payload: fields, uid: payload.uid, gatewaySession: link, expiresAt })
    if (await save(gatewaySession)) return
    const passedOn = gatewaySession === undefined ? undefined : await this.#deps.records.linkOf(id)
    if (passedOn !== undefined && passedOn !== gatewaySession && await save(passedOn)) return
    const grants = sessionGrants(fields)
    // oidc-provider gives every session a lifetime: the fallback only keeps the row from being remembered forever.
    await this.#deps.revoke(grants.map((grantId) => `grant:${grantId}`), (records) => records.endSession(id, fields, expiresAt ?? providerNow(), providerNow()))
  }

  /** The key a record is stored under: its id, or the SHA-256 of an id that is a secret (record-keys.ts). */
  #key(id: string): string {
    return SECRET_ID_MODELS.has(this.#model) ? recordKey(id) : id
  }

  /**
   * The payload as stored: of a record whose id is a secret, without the id (`jti`), which `#withId` puts back, nor a
   * device code's user code, which `findByUserCode` does; of a login under way, with the keys of the records it names
   * by their secrets (`loginSecrets`).
   */
  #stored(id: string, payload: AdapterPayload): AdapterPayload {
    if (!SECRET_ID_MODELS.has(this.#model)) return payload
    const { jti: _id, userCode: _userCode, ...stored } = payload
    return this.#model === 'Interaction' ? { ...stored, ...loginSecrets(stored, id, recordKey(id), recordKey) } : stored
  }

  /**
   * A payload as oidc-provider knows it: with its id, the one it was found by (or, found by another key, its key
   * sealed: record-keys.ts), and a login under way naming the records of its secrets by their keys, sealed.
   */
  #withId(payload: AdapterPayload | undefined, id: string): AdapterPayload | undefined {
    if (!payload || !SECRET_ID_MODELS.has(this.#model)) return payload
    return { ...payload, ...this.#model === 'Interaction' ? loginSecrets(payload, recordKey(id), id, sealedKey) : {}, jti: id }
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#withId(await this.#find(id), id)
  }

  /**
   * The account of a code or device code of this realm that this request used up, asked once: the refusal of one whose
   * grant or browser session ended names what became of its account (keycloak-format.ts `endedAccountError`), as
   * Keycloak, which removes a code as it reads it, answers the request that brings it first. A code is used up as it
   * is found (`#usedUpHere`); an approved device code that oidc-provider did not find for its ended browser session
   * (its session binding) is used up here. Of any other, undefined: a code brought again, or past its expiry, is not
   * valid, whatever became of its account.
   */
  async accountOf(id: string): Promise<string | undefined> {
    if (this.#model !== 'AuthorizationCode' && this.#model !== 'DeviceCode') return undefined
    const key = this.#key(id)
    const usedUpHere = this.#usedUpHere.get(key) !== undefined
    this.#usedUpHere.forget(key)
    const payload = this.#ownRealms(await this.#deps.records.find(this.#model, key, usedUpHere ? 0 : providerNow()))
    const accountId = payload?.accountId
    if (typeof accountId !== 'string') return undefined
    if (usedUpHere) return accountId
    const approved = this.#model === 'DeviceCode' && payload!.consumed === undefined && payload!.error === undefined
    return approved && await this.#deps.records.consume(this.#model, key, providerNow()) ? accountId : undefined
  }

  async #find(id: string): Promise<AdapterPayload | undefined> {
    if (this.#model === 'AuthorizationCode') return this.#claimCode(this.#key(id))
    // A device code past its expiry is still found (until the hourly sweep deletes it): oidc-provider judges its expiry
    // itself, and answers the device grant `expired_token` (RFC 8628 §3.5, Keycloak's DeviceGrantType) rather than a code
    // it does not know, so the device tells its user to start again.
    // One that issued its tokens is not found, as Keycloak's DeviceGrantType removes it then: polled again (its
    // answer lost, say), it is "Device code not valid", where oidc-provider would revoke the tokens it issued.
    if (this.#model === 'DeviceCode') {
      const payload = this.#ownRealms(await this.#deps.records.find(this.#model, this.#key(id), 0))
      return payload?.consumed === undefined ? payload : undefined
    }
    if (this.#model !== 'RefreshToken') return this.#ownRealms(await this.#deps.records.find(this.#model, this.#key(id), providerNow()))
    // Its grant comes along: a refresh reads it next.
    const payload = this.#ownRealms(await this.#deps.records.findWithGrant(this.#model, id, providerNow()))
    if (payload) this.#refreshTokenClients.set(id, String(payload.clientId))
    return payload
  }

  /**
   * A code is used up by the first request that finds it, whatever that request's outcome: as Keycloak removes a code
   * from its store before it checks the redirect URI, the client or PKCE (OAuth2CodeParser `parseCode`), so a
   * redemption refused for any of them leaves no code to try again. Only the request that marked it finds it unused;
   * any other, at the same moment or after, finds it consumed, which oidc-provider answers as a code used again
   * (it revokes the code's grant). A code of another realm is not found, and so not used up. Marked used, its record
   * keeps only what finds its grant (`usedCodePayload`); this request goes on with the whole payload it read.
   */
  async #claimCode(key: string): Promise<AdapterPayload | undefined> {
    const record = await this.#deps.records.find(this.#model, key, providerNow())
    const payload = this.#ownRealms(record)
    if (!payload || payload.consumed !== undefined) return payload
    if (await this.#deps.records.consume(this.#model, key, providerNow(), usedCodePayload(record!.payload))) {
      this.#usedUpHere.set(key, true)
      return payload
    }
    return { ...payload, consumed: Math.floor(providerNow() / 1000) }
  }

  /**
   * A realm-bound record of this realm, without the member that says so; one of another realm is not found. A realm
   * browser session too: its cookie brought to another realm's endpoints (its path keeps browsers from it, a copied
   * value does not) is no session there, as a Keycloak user session is its realm's, so that realm asks for its own
   * sign-in. A record of another model is found as it is.
   */
  #ownRealms(record: Parameters<typeof asPayload>[0]): AdapterPayload | undefined {
    if (!record || !(REALM_BOUND_MODELS.has(this.#model) || this.#model === 'Session')) return asPayload(record)
    if (!isRealmsRecord(record.payload, this.#deps.realm)) return undefined
    const { [REALM_MEMBER]: _realm, ...payload } = record.payload
    // A browser session lasts until its record's expiry, which the refreshes of its tokens extend (`#extendBrowserSession`)
    // without rewriting its payload: oidc-provider judges the `exp` it is given.
    if (this.#model === 'Session' && typeof record.expiresAt === 'number') payload.exp = Math.floor(record.expiresAt / 1000)
    return asPayload({ ...record, payload })
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#foundByOtherKey(await this.#deps.records.findByUid(this.#model, uid, providerNow()))
  }

  /**
   * A device code by the code its user types (as oidc-provider normalised it), given back with it: the page that found
   * it shows it, and oidc-provider compares it. At another realm's device page that code is not valid.
   */
  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const payload = this.#foundByOtherKey(await this.#deps.records.findByUserCode(this.#model, await userCodeKey(userCode), providerNow()))
    return payload && { ...payload, userCode }
  }

  /** A record found by another key than its id: a realm session by its `uid`, a device code by its user code. */
  #foundByOtherKey(record: OidcRecord | undefined): AdapterPayload | undefined {
    return record && this.#withId(this.#ownRealms(record), sealedKey(record.id))
  }

  async consume(id: string): Promise<void> {
    // A code was marked when it was found (#claimCode); consumed then, it passed its checks, and has no refusal to tell.
    if (this.#model === 'AuthorizationCode') this.#usedUpHere.forget(this.#key(id))
    else await this.consumeFirst(id)
  }

  /**
   * A code this request used up, unused again (`OidcRecordRepository.release`): its redemption was refused for the
   * moment only. `payload` is the code's as oidc-provider saved it, which its use replaced (`usedCodePayload`).
   */
  async release(id: string, payload: AdapterPayload): Promise<void> {
    if (this.#model !== 'AuthorizationCode') return
    await this.#deps.records.release(this.#model, this.#key(id), { ...this.#stored(id, payload), [REALM_MEMBER]: this.#deps.realm })
  }

  /**
   * `consume`, false when the record was not there to mark, or another request marked it since it was read: for a
   * device code, or a refresh token with reuse detection, that request used it first and this one is its reuse
   * (provider.ts `consumeOnce`).
   */
  async consumeFirst(id: string): Promise<boolean> {
    if (this.#model === 'RefreshToken') {
      const clientId = this.#refreshTokenClients.get(id) ?? (await this.#deps.records.find(this.#model, id, providerNow()))?.payload.clientId
      this.#refreshTokenClients.forget(id)
      if (clientId === undefined || !this.#deps.detectsRefreshTokenReuse(String(clientId))) return true
    }
    const used = await this.#deps.records.consume(this.#model, this.#key(id), providerNow())
    if (used && this.#model === 'DeviceCode') this.#usedUpHere.set(this.#key(id), true)
    return used
  }

  /** The newest live refresh token of a chain of a grant's refreshes (`OidcRecordRepository.newestRefreshTokenOfChain`); of refresh tokens only. */
  async newestOfChain(grantId: string, chain: string): Promise<string | undefined> {
    return this.#model === 'RefreshToken' ? this.#deps.records.newestRefreshTokenOfChain(grantId, chain, providerNow()) : undefined
  }

  async destroy(id: string): Promise<void> {
    const destroy = (records: OidcRecordRepository) => records.destroy(this.#model, this.#key(id))
    if (ACCESS_TOKEN_MODELS.has(this.#model)) await this.#deps.revoke(`jti:${id}`, destroy)
    else if (this.#model === 'Grant') await this.#deps.revoke(`grant:${id}`, destroy)
    else await destroy(this.#deps.records)
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const destroy = (records: OidcRecordRepository) => records.destroyByGrantId(this.#model, grantId)
    if (this.#model === 'AccessToken') await this.#deps.revoke(`grant:${grantId}`, destroy)
    else await destroy(this.#deps.records)
  }
}

/**
 * What a login under way (oidc-provider's Interaction) holds of other secrets, rewritten: its browser session's cookie
 * and its device code (`secret` of each), and its own id, `from` to `to`, at the end of the URL its authorization resumes at.
 */
function loginSecrets(payload: AdapterPayload, from: string, to: string, secret: (value: string) => string): Partial<AdapterPayload> {
  const session = payload.session as { cookie?: unknown } | undefined
  const returnTo = typeof payload.returnTo === 'string' && payload.returnTo.endsWith(`/${from}`) ? payload.returnTo.slice(0, -from.length) + to : payload.returnTo
  return {
    ...typeof session?.cookie === 'string' ? { session: { ...session, cookie: secret(session.cookie) } } : {},
    ...typeof payload.deviceCode === 'string' ? { deviceCode: secret(payload.deviceCode) } : {},
    ...returnTo === undefined ? {} : { returnTo },
  }
}

function asPayload(record: { payload: Record<string, unknown>; consumedAt: number | null; expiresAt?: number | null } | undefined): AdapterPayload | undefined {
  if (!record) return undefined
  const payload = record.payload as AdapterPayload
  return record.consumedAt === null ? payload : { ...payload, consumed: Math.floor(record.consumedAt / 1000) }
}
