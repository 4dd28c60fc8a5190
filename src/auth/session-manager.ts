import { hash, randomBytes } from 'node:crypto'
import { NotAuthenticated } from '../errors.ts'
import { CacheStats } from '../metrics/cache-stats.ts'
import type { RuntimeSettings } from '../settings/runtime.ts'
import type { EventBus } from '../store/event-bus.ts'
import type { StoredSession } from '../store/sessions.ts'
import type { Store } from '../store/store.ts'

export const SESSION_TOPIC = 'session'
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
}

export interface SessionOrigin {
  ip: string
  userAgent: string
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
  readonly stats = new CacheStats()
  readonly #store: Store
  readonly #bus: EventBus
  readonly #settings: RuntimeSettings
  readonly #cache = new Map<string, { session: ActiveSession; readAt: number }>()
  /** Moves on every invalidation, so a database read that raced with one is not cached. */
  #generation = 0
  #lastCleanup = 0

  constructor(store: Store, bus: EventBus, settings: RuntimeSettings) {
    this.#store = store
    this.#bus = bus
    this.#settings = settings
    bus.on(SESSION_TOPIC, (keyHash) => this.#forget(keyHash))
  }

  static hashOf(sessionId: string): string {
    return hash('sha256', sessionId, 'hex')
  }

  /** Starts a session lasting `session_cookie_age`; returns the identifier for the cookie (never stored). */
  async start(userId: number, origin: SessionOrigin, now = Date.now()): Promise<{ sessionId: string; session: ActiveSession }> {
    await this.#removeExpired(now)
    const sessionId = randomBytes(32).toString('base64url')
    const limit = this.#settings.current.sessions_per_user_limit
    const stored = await this.#bus.change(async (tx, announce) => {
      const stored = await tx.sessions.create({
        keyHash: SessionManager.hashOf(sessionId),
        userId,
        created: now,
        expiresAt: now + this.#settings.current.session_cookie_age * 1000,
        ip: origin.ip.slice(0, 64),
        userAgent: origin.userAgent.slice(0, 256),
      })
      if (limit > 0) for (const ended of await tx.sessions.deleteOldest(userId, limit)) announce(SESSION_TOPIC, ended)
      return stored
    })
    const session = toActive(stored)
    this.#remember(session, this.#generation, now)
    return { sessionId, session }
  }

  /** The live session a cookie value names; throws NotAuthenticated when it is malformed, unknown, ended or expired. */
  async resolve(sessionId: string, now = Date.now()): Promise<ActiveSession> {
    if (!SESSION_ID.test(sessionId)) throw new NotAuthenticated('Invalid session.', 'invalid_session')
    const keyHash = SessionManager.hashOf(sessionId)
    const cached = this.#cached(keyHash, now)
    if (cached) this.stats.hits++
    else this.stats.misses++
    return cached ?? this.#load(keyHash, now)
  }

  /** The session by key hash (memory first), or undefined once it ended or expired. */
  async get(keyHash: string, now = Date.now()): Promise<ActiveSession | undefined> {
    const cached = this.#cached(keyHash, now)
    if (cached) return cached
    try {
      return await this.#load(keyHash, now)
    } catch {
      return undefined
    }
  }

  /** Moves the session's end to `session_cookie_age` from now; other processes re-read it. */
  async extend(keyHash: string, now = Date.now()): Promise<ActiveSession> {
    const stored = await this.#bus.change(async (tx, announce) => {
      const stored = await tx.sessions.extend(keyHash, now + this.#settings.current.session_cookie_age * 1000, now)
      if (stored) announce(SESSION_TOPIC, keyHash)
      return stored
    })
    if (!stored) throw new NotAuthenticated('Session expired.', 'session_expired')
    const session = toActive(stored)
    this.#remember(session, this.#generation, now)
    return session
  }

  async end(keyHash: string): Promise<void> {
    const ended = await this.#bus.change(async (tx, announce) => {
      const ended = await tx.sessions.deleteByKeyHash(keyHash)
      if (ended) announce(SESSION_TOPIC, keyHash)
      return ended
    })
    if (!ended) this.#forget(keyHash)
  }

  async endById(id: number): Promise<StoredSession | undefined> {
    return this.#bus.change(async (tx, announce) => {
      const ended = await tx.sessions.deleteById(id)
      if (ended) announce(SESSION_TOPIC, ended.keyHash)
      return ended
    })
  }

  /** Ends every session of a user, with one event for all of them. */
  async endForUser(userId: number): Promise<number> {
    return this.#bus.change(async (tx, announce) => {
      const ended = await tx.sessions.deleteForUser(userId)
      if (ended.length) announce(SESSION_TOPIC, `user:${userId}`)
      return ended.length
    })
  }

  /** Drops what this process remembers of a user's sessions (the account changed somewhere). */
  forgetUser(userId: number): void {
    this.#generation++
    for (const [keyHash, { session }] of this.#cache) if (session.userId === userId) this.#cache.delete(keyHash)
  }

  /** A remembered session that has neither expired nor been held longer than `maxStaleMs`. */
  #cached(keyHash: string, now: number): ActiveSession | undefined {
    const entry = this.#cache.get(keyHash)
    return entry && entry.session.expiresAt > now && now - entry.readAt < this.#bus.maxStaleMs ? entry.session : undefined
  }

  async #load(keyHash: string, now: number): Promise<ActiveSession> {
    this.#cache.delete(keyHash)
    const generation = this.#generation
    const stored = await this.#store.sessions.findByKeyHash(keyHash)
    if (!stored) throw new NotAuthenticated('Invalid session.', 'invalid_session')
    if (stored.expiresAt <= now) throw new NotAuthenticated('Session expired.', 'session_expired')
    const session = toActive(stored)
    this.#remember(session, generation, now)
    return session
  }

  #remember(session: ActiveSession, generation: number, readAt: number): void {
    if (generation !== this.#generation) return
    if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value!)
    this.#cache.set(session.keyHash, { session, readAt })
  }

  #forget(key: string): void {
    if (key.startsWith('user:')) return this.forgetUser(Number(key.slice('user:'.length)))
    this.#generation++
    this.#cache.delete(key)
  }

  async #removeExpired(now: number): Promise<void> {
    if (now - this.#lastCleanup < CLEANUP_INTERVAL_MS) return
    this.#lastCleanup = now
    await this.#store.sessions.deleteExpired(now)
  }
}

function toActive(stored: StoredSession): ActiveSession {
  return Object.freeze({ id: stored.id, keyHash: stored.keyHash, userId: stored.userId, expiresAt: stored.expiresAt })
}
