import { hash, randomBytes } from 'node:crypto'
import { InvalidSession, SessionExpired } from '../errors.ts'
import type { RuntimeSettings } from '../settings/runtime.ts'
import type { Announce, EventBus } from '../store/event-bus.ts'
import type { StoredSession, UpstreamSession, UpstreamSessionMatch } from '../store/sessions.ts'
import type { Repositories, Store } from '../store/store.ts'
import type { LogoutTokenTaking } from '../store/sso.ts'
import { BoundedCache, type CacheStats } from '../store/cache.ts'
import { REVOKE_TOPIC, SESSION_TOPIC } from '../store/topics.ts'

/** 32 random bytes in base64url: 256 bits, 43 characters. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/
const CLEANUP_INTERVAL_MS = 60_000
const MAX_CACHED = 100_000

/** A live session as the request path needs it. `keyHash` is what the database and the events know it by. */
export interface ActiveSession {
  readonly id: number
  readonly keyHash: string
  readonly userId: number
  readonly expiresAt: number
  /** When it started, epoch ms: a session started before its account's not-before is refused. */
  readonly created: number
  /**
   * Whether the person proved who they are when it started: a password login, or a single sign-on in which the
   * provider had them log in (`UpstreamSession.freshLogin`), not one its own session answered silently.
   */
  readonly freshSignIn: boolean
}

/** Where a session was started from, as it is stored: within the columns' bounds, which a client's header is not. */
export function storedOrigin(origin: { ip: string; userAgent: string }): { ip: string; userAgent: string } {
  return { ip: origin.ip.slice(0, 64), userAgent: origin.userAgent.slice(0, 256) }
}

/** The browser's session that a new login replaces (`SessionManager.start`). */
export interface ReplacedSession {
  readonly keyHash: string
  /** A login at the realm's own login page, whatever the previous session's user. */
  readonly realmSwitchesUser?: boolean
}

export interface SessionOrigin {
  ip: string
  userAgent: string
  /** The single sign-on that started it, if one did. */
  upstream?: UpstreamSession | undefined
}

/**
 * Server-side login sessions. The identifier is handed to the client once and only its SHA-256 is stored.
 * After the first database read a session is served from memory, its expiry checked on every request, and read
 * again once older than the bus's `maxStaleMs`; whatever ends a session (logout, an administrator, a password
 * change, the per-user limit) writes an event in the same transaction, so every process sharing the database
 * drops it before its next request. Events are keyed by the session's key hash, or `user:<id>` for all of a
 * user's. Expired rows are removed by the next login after they expire (at most once a minute): no cron job.
 */
export class SessionManager {
  readonly #store: Store
  readonly #bus: EventBus
  readonly #settings: RuntimeSettings
  /** Live sessions by key hash: served until they expire or are `maxStaleMs` old; a read that raced an end is not kept. */
  readonly #cache: BoundedCache<string, ActiveSession>
  #lastCleanup = -Infinity

  /** Its cache's hits and misses (gatehouse_cache_lookups_total). */
  get stats(): CacheStats {
    return this.#cache.stats
  }

  constructor(store: Store, bus: EventBus, settings: RuntimeSettings) {
    this.#store = store
    this.#bus = bus
    this.#settings = settings
    this.#cache = new BoundedCache({ maxEntries: MAX_CACHED, maxAgeMs: () => bus.maxStaleMs, expiresAt: (session) => session.expiresAt, userOf: (session) => session.userId })
    this.#cache.follow(bus, SESSION_TOPIC)
  }

  /** Whether a cookie value has the shape of a session identifier (whether or not it names a session). */
  static wellFormed(sessionId: string): boolean {
    return SESSION_ID.test(sessionId)
  }

  static hashOf(sessionId: string): string {
    return hash('sha256', sessionId, 'hex')
  }

  /**
   * Starts a session lasting `session_cookie_age`; returns the identifier for the cookie (never stored). The session
   * it `replaces` (the browser's previous one) ends in the same transaction; the realm sessions linked to it pass to
   * the new one when both are the same user's, or when `realmSwitchesUser` (a login at the realm's own login page:
   * oidc-provider signs the other user's realm session out itself before it signs the new user in), and end with it
   * otherwise.
   */
  async start(userId: number, origin: SessionOrigin, now = Date.now(), replaces?: ReplacedSession, issuedAt = this.issueTime()): Promise<{ sessionId: string; session: ActiveSession }> {
    await this.#removeExpired(now)
    const sessionId = randomBytes(32).toString('base64url')
    const limit = this.#settings.current.sessions_per_user_limit
    const { result: stored, stamp } = await this.#change(async (tx, announce) => {
      if (limit > 0) await tx.sessions.serializeForUser(userId)
      const previous = replaces && await tx.sessions.deleteByKeyHash(replaces.keyHash)
      if (previous) announce(SESSION_TOPIC, previous.keyHash)
      if (previous && (previous.userId === userId || replaces?.realmSwitchesUser)) await tx.oidc.relinkSessions(previous.keyHash, SessionManager.hashOf(sessionId))
      else if (previous) await endLinkedRealmSessions(tx, [previous.keyHash], announce)
      const stored = await tx.sessions.create({
        keyHash: SessionManager.hashOf(sessionId),
        userId,
        created: issuedAt,
        expiresAt: now + this.#settings.current.session_cookie_age * 1000,
        ...storedOrigin(origin),
        upstream: origin.upstream,
      })
      if (limit > 0) {
        const ended = await tx.sessions.deleteOldest(userId, limit, now, stored.id)
        for (const keyHash of ended) announce(SESSION_TOPIC, keyHash)
        await endLinkedRealmSessions(tx, ended, announce)
      }
      return stored
    })
    const session = toActive(stored)
    this.#cache.set(session.keyHash, session, stamp)
    return { sessionId, session }
  }

  /**
   * What a session starting now is stamped with as its creation, the time its account's not-before is compared
   * with (EventBus.clock: never ahead of the database's clock, in which not-befores are taken). A login takes it
   * before it confirms the password it verified: a password change after that confirmation refuses the session.
   */
  issueTime(): number {
    return this.#bus.clock.now()
  }

  /** The live session a cookie value names; throws NotAuthenticated when it is malformed, unknown, ended or expired. */
  async resolve(sessionId: string, now = Date.now()): Promise<ActiveSession> {
    if (!SessionManager.wellFormed(sessionId)) throw new InvalidSession()
    const keyHash = SessionManager.hashOf(sessionId)
    return this.#cache.get(keyHash, now) ?? this.#load(keyHash, now)
  }

  /** The session by key hash (memory first), or undefined once it ended or expired. */
  async get(keyHash: string, now = Date.now()): Promise<ActiveSession | undefined> {
    const cached = this.#cache.get(keyHash, now)
    if (cached) return cached
    try {
      return await this.#load(keyHash, now)
    } catch {
      return undefined
    }
  }

  /** Moves the session's end to `session_cookie_age` from now; other processes re-read it. */
  async extend(keyHash: string, now = Date.now()): Promise<ActiveSession> {
    const { result: stored, stamp } = await this.#change(async (tx, announce) => {
      const stored = await tx.sessions.extend(keyHash, now + this.#settings.current.session_cookie_age * 1000, now)
      if (stored) announce(SESSION_TOPIC, keyHash)
      return stored
    })
    if (!stored) throw new SessionExpired()
    const session = toActive(stored)
    this.#cache.set(session.keyHash, session, stamp)
    return session
  }

  /** Ends a session, and the realm sessions of the same browser linked to it; answers the session, if it was live. */
  async end(keyHash: string): Promise<StoredSession | undefined> {
    const ended = await this.#bus.change(async (tx, announce) => {
      const ended = await tx.sessions.deleteByKeyHash(keyHash)
      if (ended) announce(SESSION_TOPIC, keyHash)
      if (ended) await endLinkedRealmSessions(tx, [keyHash], announce)
      return ended
    })
    if (!ended) this.#cache.forget(keyHash)
    return ended
  }

  async endById(id: number): Promise<StoredSession | undefined> {
    return this.#bus.change(async (tx, announce) => {
      const ended = await tx.sessions.deleteById(id)
      if (ended) announce(SESSION_TOPIC, ended.keyHash)
      if (ended) await endLinkedRealmSessions(tx, [ended.keyHash], announce)
      return ended
    })
  }

  /**
   * Ends the sessions a provider's back-channel logout token names, on every process, in the transaction that records
   * the token as taken (`keyHash`, kept until `expiresAt`, with `tokenHash`): a token taken before (the same one sent
   * again, or another with its `jti`) ends nothing, and an end that fails leaves the token unrecorded.
   */
  async endUpstream(match: UpstreamSessionMatch, token: { keyHash: string; tokenHash: string; expiresAt: number }): Promise<{ taking: LogoutTokenTaking; ended: StoredSession[] }> {
    return this.#bus.change(async (tx, announce) => {
      const taking = await tx.sso.takeLogoutToken(token.keyHash, token.tokenHash, token.expiresAt)
      if (taking !== 'new') return { taking, ended: [] }
      const ended = await tx.sessions.deleteForUpstream(match)
      for (const session of ended) announce(SESSION_TOPIC, session.keyHash)
      await endLinkedRealmSessions(tx, ended.map((session) => session.keyHash), announce)
      return { taking, ended }
    })
  }

  /** Ends every session of a user, with one event for all of them. */
  async endForUser(userId: number): Promise<number> {
    return this.#bus.change(async (tx, announce) => {
      const ended = await tx.sessions.deleteForUser(userId)
      if (ended.length) announce(SESSION_TOPIC, `user:${userId}`)
      await endLinkedRealmSessions(tx, ended, announce)
      return ended.length
    })
  }

  /** Drops what this process remembers of a user's sessions (the account changed somewhere). */
  forgetUser(userId: number): void {
    this.#cache.forgetUser(userId)
  }

  /**
   * A change that writes a session, with the cache stamp under which the session it wrote may be cached (`set`): the
   * stamp from before it, moved by the change's own session news alone. Another request may end the session between
   * the commit and the caching (a login over the per-user limit, an administrator); its news is then applied here
   * first, and the session, cached after it, would be served for `maxStaleMs` though ended. Any news but the change's
   * own, its own applied twice, or what else drops entries, leaves the session to be read at its first use.
   */
  async #change<T>(work: (tx: Repositories, announce: Announce) => Promise<T>): Promise<{ result: T; stamp: number }> {
    const before = this.#cache.stamp()
    let ownNews = 0
    const result = await this.#bus.change((tx, announce) => {
      ownNews = 0
      return work(tx, (topic, key) => {
        if (topic === SESSION_TOPIC) ownNews++
        announce(topic, key)
      })
    })
    return { result, stamp: before + ownNews }
  }

  async #load(keyHash: string, now: number): Promise<ActiveSession> {
    const stamp = this.#cache.stamp()
    const stored = await this.#store.sessions.findByKeyHash(keyHash)
    if (!stored) throw new InvalidSession()
    if (stored.expiresAt <= now) throw new SessionExpired()
    const session = toActive(stored)
    this.#cache.set(keyHash, session, stamp)
    return session
  }

  /** At most once a minute, by the monotonic clock: a step back of the wall clock must not stop it for as long. */
  async #removeExpired(now: number): Promise<void> {
    if (performance.now() - this.#lastCleanup < CLEANUP_INTERVAL_MS) return
    this.#lastCleanup = performance.now()
    await this.#store.sessions.deleteExpired(now)
  }
}

/**
 * Inside the transaction that ends gateway sessions: a browser signs in once, so it signs out once. The realm's
 * browser sessions linked to them end too (src/oidc/adapter.ts links them), with the grants and tokens issued under
 * them, and every process refuses those tokens from its next request (REVOKE_TOPIC). A session that merely expired
 * is not ended here: the realm's sessions have their own lifetime.
 */
export async function endLinkedRealmSessions(tx: Repositories, keyHashes: readonly string[], announce?: Announce): Promise<void> {
  if (!keyHashes.length) return
  for (const grantId of await tx.oidc.endLinkedSessions(keyHashes)) announce?.(REVOKE_TOPIC, `grant:${grantId}`)
}

function toActive(stored: StoredSession): ActiveSession {
  const freshSignIn = stored.upstream === undefined || stored.upstream.freshLogin === true
  return Object.freeze({ id: stored.id, keyHash: stored.keyHash, userId: stored.userId, expiresAt: stored.expiresAt, created: stored.created, freshSignIn })
}
