import { hash, randomBytes } from 'node:crypto'
import { NotAuthenticated } from '../errors.ts'
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
 * After the first database read a session is served from memory, its expiry checked on every request;
 * whatever ends a session (logout, an administrator, a password change, the per-user limit) publishes an
 * event so every process sharing the database drops it before its next request. Expired rows are removed
 * by the next login after they expire (at most once a minute): no cron job.
 */
export class SessionManager {
  readonly #store: Store
  readonly #bus: EventBus
  readonly #settings: RuntimeSettings
  readonly #cache = new Map<string, ActiveSession>()
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
    const stored = await this.#store.sessions.create({
      keyHash: SessionManager.hashOf(sessionId),
      userId,
      created: now,
      expiresAt: now + this.#settings.current.session_cookie_age * 1000,
      ip: origin.ip.slice(0, 64),
      userAgent: origin.userAgent.slice(0, 256),
    })
    const limit = this.#settings.current.sessions_per_user_limit
    if (limit > 0) await this.#announce(await this.#store.sessions.deleteOldest(userId, limit))
    const session = toActive(stored)
    this.#remember(session, this.#generation)
    return { sessionId, session }
  }

  /** The live session a cookie value names; throws NotAuthenticated when it is malformed, unknown, ended or expired. */
  async resolve(sessionId: string, now = Date.now()): Promise<ActiveSession> {
    if (!SESSION_ID.test(sessionId)) throw new NotAuthenticated('Invalid session.', 'invalid_session')
    const keyHash = SessionManager.hashOf(sessionId)
    const cached = this.#cache.get(keyHash)
    if (cached && cached.expiresAt > now) return cached
    return this.#load(keyHash, now)
  }

  /** The session by key hash (memory first), or undefined once it ended or expired. */
  async get(keyHash: string, now = Date.now()): Promise<ActiveSession | undefined> {
    const cached = this.#cache.get(keyHash)
    if (cached && cached.expiresAt > now) return cached
    try {
      return await this.#load(keyHash, now)
    } catch {
      return undefined
    }
  }

  /** Moves the session's end to `session_cookie_age` from now; other processes re-read it. */
  async extend(keyHash: string, now = Date.now()): Promise<ActiveSession> {
    const stored = await this.#store.sessions.extend(keyHash, now + this.#settings.current.session_cookie_age * 1000, now)
    if (!stored) throw new NotAuthenticated('Session expired.', 'session_expired')
    await this.#announce([keyHash])
    const session = toActive(stored)
    this.#remember(session, this.#generation)
    return session
  }

  async end(keyHash: string): Promise<void> {
    if (await this.#store.sessions.deleteByKeyHash(keyHash)) await this.#announce([keyHash])
    else this.#forget(keyHash)
  }

  async endById(id: number): Promise<StoredSession | undefined> {
    const ended = await this.#store.sessions.deleteById(id)
    if (ended) await this.#announce([ended.keyHash])
    return ended
  }

  async endForUser(userId: number): Promise<number> {
    const ended = await this.#store.sessions.deleteForUser(userId)
    await this.#announce(ended)
    return ended.length
  }

  /** Drops what this process remembers of a user's sessions (the account changed somewhere). */
  forgetUser(userId: number): void {
    this.#generation++
    for (const [keyHash, session] of this.#cache) if (session.userId === userId) this.#cache.delete(keyHash)
  }

  async #load(keyHash: string, now: number): Promise<ActiveSession> {
    this.#cache.delete(keyHash)
    const generation = this.#generation
    const stored = await this.#store.sessions.findByKeyHash(keyHash)
    if (!stored) throw new NotAuthenticated('Invalid session.', 'invalid_session')
    if (stored.expiresAt <= now) throw new NotAuthenticated('Session expired.', 'session_expired')
    const session = toActive(stored)
    this.#remember(session, generation)
    return session
  }

  #remember(session: ActiveSession, generation: number): void {
    if (generation !== this.#generation) return
    if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value!)
    this.#cache.set(session.keyHash, session)
  }

  #forget(keyHash: string): void {
    this.#generation++
    this.#cache.delete(keyHash)
  }

  async #announce(keyHashes: string[]): Promise<void> {
    for (const keyHash of keyHashes) await this.#bus.publish(SESSION_TOPIC, keyHash)
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
