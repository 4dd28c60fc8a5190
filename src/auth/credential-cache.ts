import { hash, randomBytes } from 'node:crypto'
import { CacheStats } from '../metrics/cache-stats.ts'

interface Entry {
  userId: number
  expiresAt: number
}

/**
 * Remembers, for a short while, that a secret (e.g. a username and password pair) verified as a user, so the
 * request path need not run argon2id every time. Entries are keyed by SHA-256 over a per-process random key
 * and the secret: neither the secret nor an unkeyed hash of it is ever held. (The digest never leaves the
 * process, so the one-shot keyed hash is as good as an HMAC here, at a fraction of its cost per request.) Concurrent first verifications of the same secret
 * share one check.
 */
export class CredentialCache {
  readonly stats = new CacheStats()
  readonly #key = randomBytes(32).toString('base64')
  readonly #entries = new Map<string, Entry>()
  readonly #byUser = new Map<number, Set<string>>()
  readonly #inFlight = new Map<string, { check: Promise<number>; generation: number }>()
  /**
   * Moves whenever users are forgotten. A check that started before (against a password since changed, say)
   * neither caches its answer nor is shared with requests that arrive after.
   */
  #generation = 0
  readonly #ttlMs: number
  readonly #maxEntries: number

  constructor(ttlSeconds: number, maxEntries = 10_000) {
    this.#ttlMs = ttlSeconds * 1000
    this.#maxEntries = maxEntries
  }

  keyOf(...parts: string[]): string {
    // Length-prefixed parts, so no two different tuples can produce the same input.
    return hash('sha256', this.#key + parts.map((part) => `${part.length}:${part}`).join(''), 'base64url')
  }

  /** The user id for a secret: from memory while fresh, otherwise from `verify` (whose errors pass through). */
  async resolve(key: string, verify: () => Promise<number>, now = Date.now()): Promise<number> {
    const hit = this.#entries.get(key)
    if (hit && hit.expiresAt > now) {
      this.stats.hits++
      return hit.userId
    }
    this.stats.misses++
    if (hit) this.#delete(key, hit.userId)
    const generation = this.#generation
    const pending = this.#inFlight.get(key)
    if (pending?.generation === generation) return pending.check
    const check = verify().then((userId) => {
      if (generation === this.#generation) this.#remember(key, userId, Date.now())
      return userId
    }).finally(() => {
      if (this.#inFlight.get(key)?.check === check) this.#inFlight.delete(key)
    })
    this.#inFlight.set(key, { check, generation })
    return check
  }

  forgetUser(userId: number): void {
    this.#generation++
    for (const key of this.#byUser.get(userId) ?? []) this.#entries.delete(key)
    this.#byUser.delete(userId)
  }

  clear(): void {
    this.#generation++
    this.#entries.clear()
    this.#byUser.clear()
  }

  #remember(key: string, userId: number, now: number): void {
    if (this.#ttlMs <= 0) return
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next().value
      if (oldest !== undefined) this.#delete(oldest, this.#entries.get(oldest)!.userId)
    }
    this.#entries.set(key, { userId, expiresAt: now + this.#ttlMs })
    let keys = this.#byUser.get(userId)
    if (!keys) this.#byUser.set(userId, (keys = new Set()))
    keys.add(key)
  }

  #delete(key: string, userId: number): void {
    this.#entries.delete(key)
    this.#byUser.get(userId)?.delete(key)
  }
}
