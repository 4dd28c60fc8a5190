import { setTimeout as sleep } from 'node:timers/promises'
import { AccountDisabled, ExternalUsersCannotCreateTokens, InvalidCredentials, InvalidToken, ValidationFailed } from '../errors.ts'
import type { RuntimeSettings } from '../settings/runtime.ts'
import type { EventBus } from '../store/event-bus.ts'
import type { Repositories, Store } from '../store/store.ts'
import { BoundedCache, type CacheStats } from '../store/cache.ts'
import type { AccessTokenOrigin, EndedAccessTokens, TokenRecord, TokenScope } from '../store/tokens.ts'
import { DATABASE_NOW, type User } from '../store/users.ts'
import { generateToken, hashToken } from './token-format.ts'
import { realmRevocation, REVOKE_TOPIC, TOKEN_TOPIC, USER_TOPIC } from '../store/topics.ts'

/** The most ended tokens one change tells every process of one by one; past it, by owner. */
const MAX_TOKEN_EVENTS = 100
const CLOSE_FLUSH_ATTEMPTS = 3
const CLOSE_FLUSH_RETRY_MS = 200


/** What the request path needs to know about a valid token, held in memory after the first lookup. */
export interface ActiveToken {
  readonly id: number
  readonly userId: number
  readonly scope: TokenScope
  readonly expires: number
  /** When it was created, epoch ms: a token created before its account's not-before is refused. */
  readonly created: number
}

export interface TokenRequest {
  scope?: TokenScope | undefined
  description?: string | undefined
  /** Absolute expiry, epoch ms. */
  expires?: number | undefined
  /** Lifetime in seconds; the alternative to `expires`. */
  expiresIn?: number | undefined
  /** The latest expiry whatever was asked, epoch ms: a token created with a token never outlives it. */
  notAfter?: number | undefined
  /** The personal token the request creating it came with: revoked or narrowed, it takes this one along. */
  parentTokenId?: number | undefined
  /** The OIDC access token the request creating it came with: revoked, or its grant or realm ended, it takes this one along. */
  parentAccessToken?: AccessTokenOrigin | undefined
}

export interface PersonalTokensOptions {
  /** How often last-use times gathered in memory are written to the database. */
  lastUsedFlushMs?: number
  maxCached?: number
}

/**
 * Personal OAuth 2 tokens: issuing, the in-memory view the request path reads, last-use bookkeeping and
 * revocation. Every change that can end a token writes an event in the same transaction, and every process
 * (this one before the change is reported done) drops what it cached, so a revoked token fails on its next
 * request everywhere. A token held in memory longer than the bus's `maxStaleMs` is looked up again.
 */
export class PersonalTokens {
  readonly #store: Store
  readonly #bus: EventBus
  readonly #settings: RuntimeSettings
  /** Valid tokens by the hash of their value; a lookup that raced a revocation is not kept (the row may be gone). */
  readonly #cache: BoundedCache<string, ActiveToken>
  /** Last-use times seen by this process; `#unsaved` holds the ids not yet written. */
  readonly #lastUsed = new Map<number, number>()
  readonly #unsaved = new Set<number>()
  readonly #flushMs: number
  readonly #maxCached: number
  #flushTimer: NodeJS.Timeout | undefined
  #flushing: Promise<void> | undefined

  /** Its cache's hits and misses (gatehouse_cache_lookups_total). */
  get stats(): CacheStats {
    return this.#cache.stats
  }

  constructor(store: Store, bus: EventBus, settings: RuntimeSettings, options: PersonalTokensOptions = {}) {
    this.#store = store
    this.#bus = bus
    this.#settings = settings
    this.#flushMs = options.lastUsedFlushMs ?? 15_000
    this.#maxCached = options.maxCached ?? 100_000
    this.#cache = new BoundedCache({ maxEntries: this.#maxCached, maxAgeMs: () => bus.maxStaleMs, userOf: (token) => token.userId })
    this.#cache.followWhere(bus, TOKEN_TOPIC, (id, token) => String(token.id) === id)
    // Last-use times of revoked tokens need not be written any more.
    bus.on(TOKEN_TOPIC, (key) => {
      if (key === 'all') this.#forgetLastUse()
    })
    // Wherever an OIDC access token, its grant or its realm's earlier tokens end (a logout, the revocation endpoint, an
    // application deleted, a `logout-all`), the personal tokens created with them end in the same transaction.
    bus.cascade(REVOKE_TOPIC, async (tx, keys, announce) => {
      const created = await tx.tokens.createdWithEnded(endedAccessTokens(keys))
      if (!created.length) return
      const ids = created.map((token) => token.id)
      const descendants = await tx.tokens.descendantsOf(ids)
      await tx.tokens.deleteMany(ids)
      // Each token by its id while they are few; past that each owner's (their tokens' creators are their owners), or all:
      // a `logout-all` ending thousands must not write thousands of events for every process to read.
      const ended = [...ids, ...descendants]
      const owners = new Set(created.map((token) => token.userId))
      if (ended.length <= MAX_TOKEN_EVENTS) for (const id of ended) announce(TOKEN_TOPIC, String(id))
      else if (owners.size <= MAX_TOKEN_EVENTS) for (const owner of owners) announce(TOKEN_TOPIC, `user:${owner}`)
      else announce(TOKEN_TOPIC, 'all')
    })
  }

  /**
   * External accounts (LDAP, single sign-on) create tokens only while the administrator allows it; tokens they
   * already hold keep working either way, as the platform documents.
   */
  assertMayCreate(user: User): void {
    if (user.external && !this.#settings.current.allow_external_users_to_create_oauth2_tokens) {
      throw new ExternalUsersCannotCreateTokens()
    }
  }

  /**
   * Creates a token; its value is returned here and never again (only its hash is stored). It is stamped with the
   * bus's clock (never ahead of the database's, in which not-befores are taken): a token stamped before a revocation
   * of its user's tokens is refused, whichever process's clock runs ahead.
   */
  async issue(user: User, request: TokenRequest, now = this.#bus.clock.now()): Promise<{ record: TokenRecord; value: string }> {
    if (!user.isActive) throw new AccountDisabled()
    const expires = Math.min(this.#expiryOf(request, now), request.notAfter ?? Infinity)
    const value = generateToken()
    const limit = this.#settings.current.oauth2_tokens_per_user_limit
    const record = await this.#store.transaction(async (tx) => {
      // After the account's row is locked: the issues of one user count one after another.
      await refuseIfEndedSince(tx, user)
      if (request.parentAccessToken && !(await tx.oidc.holdAccessToken(request.parentAccessToken, now))) {
        throw new InvalidToken('The access token was revoked or its session ended.')
      }
      if (limit > 0 && (await tx.tokens.countOf(user.id)) >= limit) {
        throw new ValidationFailed({ non_field_errors: [`This user has ${limit} tokens, expired ones included, the most one user may have (oauth2_tokens_per_user_limit); delete some first.`] })
      }
      return tx.tokens.create({
        userId: user.id,
        tokenHash: hashToken(value),
        scope: request.scope ?? 'write',
        description: request.description ?? '',
        expires,
        parentTokenId: request.parentTokenId,
        parentAccessToken: request.parentAccessToken,
      }, now)
    })
    return { record, value }
  }

  /** The token a value names, from memory after the first lookup; undefined when there is none. Expiry is the caller's to check. */
  async find(value: string, now = Date.now()): Promise<ActiveToken | undefined> {
    const hash = hashToken(value)
    return this.#cache.load(hash, async () => {
      const record = await this.#store.tokens.findByHash(hash)
      return record && Object.freeze({ id: record.id, userId: record.userId, scope: record.scope, expires: record.expires, created: record.created })
    }, now)
  }

  /** Notes a use in memory; a timer writes the times in batches, so requests cost no database write. */
  recordUse(token: ActiveToken, at = Date.now()): void {
    this.#lastUsed.set(token.id, at)
    this.#unsaved.add(token.id)
    if (!this.#flushTimer) {
      this.#flushTimer = setInterval(() => void this.flushLastUsed().catch(() => {}), this.#flushMs)
      this.#flushTimer.unref()
    }
  }

  /** A stored token with the newest last-use time this process knows, which may not be saved yet. */
  withFreshLastUsed(record: TokenRecord): TokenRecord {
    const seen = this.#lastUsed.get(record.id)
    return seen !== undefined && (record.lastUsed === null || seen > record.lastUsed) ? { ...record, lastUsed: seen } : record
  }

  async flushLastUsed(): Promise<void> {
    await this.#flushing
    if (this.#unsaved.size === 0) return
    const batch = new Map<number, number>()
    for (const id of this.#unsaved) batch.set(id, this.#lastUsed.get(id)!)
    this.#unsaved.clear()
    this.#flushing = this.#store.tokens.recordLastUsed(batch).catch((error: unknown) => {
      for (const id of batch.keys()) if (this.#lastUsed.has(id)) this.#unsaved.add(id)
      throw error
    }).finally(() => {
      this.#flushing = undefined
    })
    await this.#flushing
    if (this.#lastUsed.size > this.#maxCached) {
      for (const id of this.#lastUsed.keys()) if (!this.#unsaved.has(id)) this.#lastUsed.delete(id)
    }
  }

  /** Changes the description, or narrows `write` to `read`; a token's scope never widens. */
  async update(record: TokenRecord, changes: { description?: string | undefined; scope?: TokenScope | undefined }): Promise<TokenRecord | undefined> {
    if (changes.scope === 'write' && record.scope === 'read') {
      throw new ValidationFailed({ scope: ['A read-only token cannot be widened to write; create a new token instead.'] })
    }
    const narrowed = changes.scope === 'read' && record.scope === 'write'
    return this.#bus.change(async (tx, announce) => {
      if (narrowed) {
        // The tokens it created are narrowed with it: none outranks the token it came from.
        const descendants = await tx.tokens.descendantsOf(record.id)
        await tx.tokens.narrow(descendants)
        for (const id of [record.id, ...descendants]) announce(TOKEN_TOPIC, String(id))
      }
      return tx.tokens.update(record.id, { description: changes.description, scope: narrowed ? 'read' : undefined })
    })
  }

  /** Deletes a token, and the tokens created with it (the database deletes them with it): none outlives it. */
  async revoke(id: number): Promise<boolean> {
    return this.#bus.change(async (tx, announce) => {
      const descendants = await tx.tokens.descendantsOf(id)
      const deleted = await tx.tokens.delete(id)
      if (deleted) for (const revoked of [id, ...descendants]) announce(TOKEN_TOPIC, String(revoked))
      return deleted
    })
  }

  /**
   * Revokes the token a value names, whoever owns it (the platform's `/o/revoke_token/`), as `revoke` does; the
   * revoked record, or undefined when no token has that value.
   */
  async revokeByValue(value: string): Promise<TokenRecord | undefined> {
    return this.#bus.change(async (tx, announce) => {
      const record = await tx.tokens.findByHash(hashToken(value))
      if (!record) return undefined
      const descendants = await tx.tokens.descendantsOf(record.id)
      if (!(await tx.tokens.delete(record.id))) return undefined
      for (const revoked of [record.id, ...descendants]) announce(TOKEN_TOPIC, String(revoked))
      return record
    })
  }

  /**
   * Deletes a user's tokens and, in the same transaction, moves the account's `tokensNotBefore` to now (the
   * database's time), as a new password with `revokeTokens` does: a token a login created meanwhile, written after
   * the delete, is refused too.
   */
  async revokeUser(userId: number): Promise<number> {
    return this.#bus.change(async (tx, announce) => {
      announce(TOKEN_TOPIC, `user:${userId}`)
      // The account's row first: an issue holding it commits its token before the delete looks (refuseIfEndedSince).
      if (await tx.users.update(userId, { tokensNotBefore: DATABASE_NOW })) announce(USER_TOPIC, String(userId))
      return tx.tokens.deleteByUser(userId)
    })
  }

  /** As `revokeUser`, for every account at once: one statement moves them all, one event has every process read them again. */
  async revokeAll(): Promise<number> {
    return this.#bus.change(async (tx, announce) => {
      announce(TOKEN_TOPIC, 'all')
      await tx.users.moveEveryTokensNotBefore()
      announce(USER_TOPIC, 'all')
      return tx.tokens.deleteAll()
    })
  }

  /** Drops a user's cached tokens (the account changed somewhere); they are looked up again on next use. */
  forgetUser(userId: number): void {
    this.#cache.forgetUser(userId)
  }

  /**
   * Saves the last-use times still in memory. Best effort, a few tries (a busy database, another process holding
   * SQLite's write lock), then gives up: a lost time must not block shutting down.
   */
  async close(): Promise<void> {
    clearInterval(this.#flushTimer)
    this.#flushTimer = undefined
    for (let attempt = 0; attempt < CLOSE_FLUSH_ATTEMPTS; attempt++) {
      try {
        return await this.flushLastUsed()
      } catch {
        await sleep(CLOSE_FLUSH_RETRY_MS)
      }
    }
  }

  /**
   * The expiry a request asks for, within what the settings allow: `oauth2_access_token_expire_seconds` is the
   * default lifetime and the longest one.
   */
  #expiryOf(request: TokenRequest, now: number): number {
    const maxSeconds = this.#settings.current.oauth2_access_token_expire_seconds
    const latest = now + maxSeconds * 1000
    if (request.expires !== undefined && request.expiresIn !== undefined) {
      throw new ValidationFailed({ expires: ['Give either expires or expires_in, not both.'] })
    }
    if (request.expiresIn !== undefined) {
      if (!Number.isSafeInteger(request.expiresIn) || request.expiresIn < 1) throw new ValidationFailed({ expires_in: ['Enter a whole number of seconds, at least 1.'] })
      if (request.expiresIn > maxSeconds) throw new ValidationFailed({ expires_in: [`Ensure this value is at most ${maxSeconds} seconds (oauth2_access_token_expire_seconds).`] })
      return now + request.expiresIn * 1000
    }
    if (request.expires !== undefined) {
      if (request.expires <= now) throw new ValidationFailed({ expires: ['The expiry must be in the future.'] })
      if (request.expires > latest) throw new ValidationFailed({ expires: [`The expiry may be at most ${maxSeconds} seconds from now (oauth2_access_token_expire_seconds), i.e. not after ${new Date(latest).toISOString()}.`] })
      return request.expires
    }
    return latest
  }

  #forgetLastUse(): void {
    this.#lastUsed.clear()
    this.#unsaved.clear()
  }
}

/** What REVOKE_TOPIC's keys name (src/store/topics.ts): access tokens by `jti`, grants, realms' not-befores. */
function endedAccessTokens(keys: readonly string[]): EndedAccessTokens {
  const ended: EndedAccessTokens = { jtis: [], grants: [], realms: [] }
  for (const key of keys) {
    const realmWide = realmRevocation(key)
    if (realmWide) ended.realms.push(realmWide)
    else if (key.startsWith('jti:')) ended.jtis.push(key.slice(4))
    else if (key.startsWith('grant:')) ended.grants.push(key.slice(6))
  }
  return ended
}

/**
 * `user` is the account as the credential asking for a token was judged against, read before the token is written. A
 * change committed since that ended the account's credentials (a new password, a disable: each moves a not-before)
 * would be outlived by a token made now, so none is: the request is answered as its credential's next one will be.
 * An account deleted meanwhile is left to the token's foreign key.
 */
async function refuseIfEndedSince(tx: Repositories, user: User): Promise<void> {
  // Locked until the token is committed: a revocation of the account's tokens either waits and then deletes this
  // token with the others, or commits first and is seen here.
  const current = await tx.users.findByIdForUpdate(user.id)
  if (!current) return
  if (!current.isActive) throw new AccountDisabled()
  if (current.notBefore !== user.notBefore || current.tokensNotBefore !== user.tokensNotBefore) throw new InvalidCredentials()
}
