import { hash, randomBytes } from 'node:crypto'
import { BoundedCache, type CacheStats } from '../store/cache.ts'

/**
 * Remembers, for a short while, that a secret (e.g. a username and password pair) verified as a user, so the
 * request path need not run argon2id every time. Entries are keyed by SHA-256 over a per-process random key
 * and the secret: neither the secret nor an unkeyed hash of it is ever held. (The digest never leaves the
 * process, so the one-shot keyed hash is as good as an HMAC here, at a fraction of its cost per request.)
 * Concurrent first verifications of the same secret share one check; one that started before its user was
 * forgotten (against a password since changed, say) neither caches its answer nor is shared with later requests.
 * A secret in use near the end of its time is verified again in the background while its requests go on.
 */
export class CredentialCache {
  readonly #key = randomBytes(32).toString('base64')
  readonly #verified: BoundedCache<string, number>

  /** Its cache's hits and misses (gatehouse_cache_lookups_total). */
  get stats(): CacheStats {
    return this.#verified.stats
  }

  constructor(ttlSeconds: number, maxEntries = 10_000) {
    // A credential in steady use is verified again in the background in the last fifth of its time (at most 5 s),
    // so that its requests never queue behind an argon2id verification every `ttlSeconds`.
    const refreshAheadMs = Math.min(5000, ttlSeconds * 200)
    this.#verified = new BoundedCache({ maxEntries, maxAgeMs: ttlSeconds * 1000, userOf: (userId) => userId, shareLoads: true, refreshAheadMs })
  }

  keyOf(...parts: string[]): string {
    // Length-prefixed parts, so no two different tuples can produce the same input.
    return hash('sha256', this.#key + parts.map((part) => `${part.length}:${part}`).join(''), 'base64url')
  }

  /**
   * The user id for a secret: from memory while fresh, otherwise from `verify` (whose errors pass through). `callerGone`:
   * the signal that the caller's client went away, asked for on a miss only; `verify`'s own aborts once every request
   * sharing its check has gone.
   */
  async resolve(key: string, verify: (signal: AbortSignal) => Promise<number>, callerGone?: () => AbortSignal, now = Date.now()): Promise<number> {
    return (await this.#verified.load(key, verify, now, callerGone))!
  }

  forgetUser(userId: number): void {
    this.#verified.forgetUser(userId)
  }

  clear(): void {
    this.#verified.clear()
  }
}
