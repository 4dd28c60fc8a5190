import { countedAddress } from '../directory/lockout.ts'
import { BoundedCache } from '../store/cache.ts'
import { errors } from './provider-errors.ts'

/**
 * RFC 8628 §5.1: a user code is short enough to be guessed, so the device page bounds how many wrong ones may be
 * typed. Each browser session may get WRONG_GUESSES_PER_SESSION wrong within a window; a browser not signed in also
 * counts against its client address (WRONG_GUESSES_PER_ADDRESS, whatever session it comes with), and one signed in
 * (at the realm or at the gateway) against its account instead (WRONG_GUESSES_PER_ACCOUNT). After that the page
 * refuses every code, right or wrong, until the window ends. An address is shared (behind NAT, a company's proxy):
 * one guesser there holds back the others, who may still sign in and enter their code, as an account's guesses
 * are its own. The accounts signed in at one address share a larger bound too (WRONG_GUESSES_PER_ADDRESS_SIGNED_IN),
 * so that one guesser holding many accounts does not get each account's guesses again. There is no bound over all
 * browsers: one guesser never locks everyone out. Counted in each gateway process.
 */
export const WRONG_GUESSES_PER_SESSION = 10
export const WRONG_GUESSES_PER_ADDRESS = 50
export const WRONG_GUESSES_PER_ACCOUNT = 20
export const WRONG_GUESSES_PER_ADDRESS_SIGNED_IN = 100
export const GUESS_WINDOW_MS = 10 * 60_000

interface Misses {
  count: number
  /** When the window began, by the monotonic clock: a step of the wall clock must not keep the page shut. */
  since: number
}

/** Who typed a code: the browser's session at the realm, its address, and the account it is signed in as, if any. */
export interface Guesser {
  session: string | undefined
  address: string
  account: string | undefined
}

export class UserCodeGuesses {
  // Bounded: a flood of addresses or sessions evicts the oldest counts, and never blocks anyone else.
  readonly #misses = new BoundedCache<string, Misses>({ maxEntries: 10_000, maxAgeMs: GUESS_WINDOW_MS })

  /**
   * Seconds until the browser may guess again (0 when it may now), and whether its address is what holds it back:
   * then signing in lets it go on.
   */
  refusal(guesser: Guesser, now = performance.now()): { retryAfterSeconds: number; byAddress: boolean } {
    const over = this.#keys(guesser).flatMap(([key, limit]) => {
      const misses = this.#current(key, now)
      return misses && misses.count >= limit ? [{ key, until: misses.since + GUESS_WINDOW_MS }] : []
    })
    const until = Math.max(0, ...over.map((o) => o.until))
    if (until <= now) return { retryAfterSeconds: 0, byAddress: false }
    return { retryAfterSeconds: Math.ceil((until - now) / 1000), byAddress: over.every((o) => o.key.startsWith('address:')) }
  }

  /**
   * Counts a code the browser typed as wrong, before it is looked up: of requests that arrive at the same moment
   * each takes its place in the count as it passes `refusal`, so that no more than the limit are looked up however
   * many are sent at once. A code that names a device login is given back (`found`).
   */
  miss(guesser: Guesser, now = performance.now()): void {
    for (const [key] of this.#keys(guesser)) {
      const misses = this.#current(key, now)
      this.#misses.set(key, misses ? { count: misses.count + 1, since: misses.since } : { count: 1, since: now })
    }
  }

  /** Takes back what `miss` counted for a code that named a device login. */
  found(guesser: Guesser, now = performance.now()): void {
    for (const [key] of this.#keys(guesser)) {
      const misses = this.#current(key, now)
      if (misses && misses.count > 0) this.#misses.set(key, { count: misses.count - 1, since: misses.since })
    }
  }

  #current(key: string, now: number): Misses | undefined {
    const misses = this.#misses.get(key)
    return misses && now - misses.since < GUESS_WINDOW_MS ? misses : undefined
  }

  #keys({ session, address: ip, account }: Guesser): [string, number][] {
    // An IPv6 client by its /64, which one host usually has whole, as the other counts by address (lockout.ts).
    const address = countedAddress(ip) ?? ip
    const keys: [string, number][] = account === undefined
      ? [[`address:${address}`, WRONG_GUESSES_PER_ADDRESS]]
      : [[`account:${account}`, WRONG_GUESSES_PER_ACCOUNT], [`signed-in-at:${address}`, WRONG_GUESSES_PER_ADDRESS_SIGNED_IN]]
    if (session !== undefined) keys.push([`session:${session}`, WRONG_GUESSES_PER_SESSION])
    return keys
  }
}

/** The device page's refusal once a browser typed too many wrong codes (keycloak-format.ts `deviceCodePage` words it). */
export class TooManyUserCodeGuesses extends errors.CustomOIDCProviderError {
  readonly retryAfterSeconds: number
  /** The address's guesses hold the browser back, not its own: signing in lets it go on. */
  readonly byAddress: boolean

  constructor(retryAfterSeconds: number, byAddress: boolean) {
    super('too_many_requests', 'too many wrong user codes')
    Object.assign(this, { status: 429, statusCode: 429 })
    this.retryAfterSeconds = retryAfterSeconds
    this.byAddress = byAddress
  }
}
