import { BoundedCache } from '../store/cache.ts'
import { errors } from './provider-errors.ts'

/**
 * RFC 8628 §5.1: a user code is short enough to be guessed, so the device page bounds how many wrong ones may be
 * typed. Each browser session, and each client address, may get WRONG_GUESSES_PER_SESSION (or _PER_ADDRESS) wrong
 * within a window; after that the page refuses every code, right or wrong, until the window ends. There is no
 * bound over all browsers: one guesser never locks everyone out. Counted in each gateway process.
 */
export const WRONG_GUESSES_PER_SESSION = 10
export const WRONG_GUESSES_PER_ADDRESS = 50
export const GUESS_WINDOW_MS = 10 * 60_000

interface Misses {
  count: number
  since: number
}

export class UserCodeGuesses {
  // Bounded: a flood of addresses or sessions evicts the oldest counts, and never blocks anyone else.
  readonly #misses = new BoundedCache<string, Misses>({ maxEntries: 10_000, maxAgeMs: GUESS_WINDOW_MS })

  /** Seconds until the browser (its session id, its address) may guess again; 0 when it may now. */
  retryAfterSeconds(session: string | undefined, address: string, now = Date.now()): number {
    let until = 0
    for (const [key, limit] of this.#keys(session, address)) {
      const misses = this.#current(key, now)
      if (misses && misses.count >= limit) until = Math.max(until, misses.since + GUESS_WINDOW_MS)
    }
    return until > now ? Math.ceil((until - now) / 1000) : 0
  }

  /** Counts a code the browser typed that named no device login. */
  miss(session: string | undefined, address: string, now = Date.now()): void {
    for (const [key] of this.#keys(session, address)) {
      const misses = this.#current(key, now)
      this.#misses.set(key, misses ? { count: misses.count + 1, since: misses.since } : { count: 1, since: now }, now)
    }
  }

  #current(key: string, now: number): Misses | undefined {
    const misses = this.#misses.get(key, now)
    return misses && now - misses.since < GUESS_WINDOW_MS ? misses : undefined
  }

  #keys(session: string | undefined, address: string): [string, number][] {
    const keys: [string, number][] = [[`address:${address}`, WRONG_GUESSES_PER_ADDRESS]]
    if (session !== undefined) keys.push([`session:${session}`, WRONG_GUESSES_PER_SESSION])
    return keys
  }
}

/** The device page's refusal once a browser typed too many wrong codes (keycloak-format.ts `deviceCodePage` words it). */
export class TooManyUserCodeGuesses extends errors.CustomOIDCProviderError {
  readonly retryAfterSeconds: number

  constructor(retryAfterSeconds: number) {
    super('too_many_requests', 'too many wrong user codes')
    Object.assign(this, { status: 429, statusCode: 429 })
    this.retryAfterSeconds = retryAfterSeconds
  }
}
