import { SignInsThrottled } from '../errors.ts'
import { countedAddress } from './lockout.ts'

export interface SignInStartLimits {
  /** Most starts one client address (an IPv6 client by its /64) may make in a window; 0: no limit. */
  readonly perAddress: number
  /** Most starts of all addresses together in a window, so that many addresses cannot add up to an unbounded number; 0: no limit. */
  readonly total: number
  readonly windowMs: number
}

/**
 * The window of `auth.sign_in_starts_per_address` and `auth.sign_in_starts_total`. Each start's record lives at most
 * 30 minutes (a realm interaction), so one process lets at most three windows' `total` of them wait in the database.
 */
export const SIGN_IN_START_WINDOW_MS = 10 * 60_000

/**
 * Bounds the records that requests without any credential make Gatehouse write. Starting a sign-in (single sign-on's
 * start, a realm's authorization or device authorization request) stores a record that waits for the sign-in's end
 * or its expiry, so anyone could grow the database with a loop of requests. Starts are counted per client address
 * and in all, in fixed windows, in each process (a few processes multiply the bound, and keep it a bound); one
 * beyond either limit is refused with 429 `sign_ins_throttled` and writes nothing. Refused starts are not counted.
 */
export class SignInStarts {
  readonly #limits: SignInStartLimits
  #windowStart = Number.NEGATIVE_INFINITY
  #total = 0
  /** Never more keys than `total`: only admitted starts add one. */
  readonly #byAddress = new Map<string, number>()

  constructor(limits: SignInStartLimits) {
    this.#limits = limits
  }

  /** Counts a start from `address`, or throws SignInsThrottled when it would pass a limit. */
  admit(address: string, now = Date.now()): void {
    if (now - this.#windowStart >= this.#limits.windowMs) {
      this.#windowStart = now
      this.#total = 0
      this.#byAddress.clear()
    }
    const key = countedAddress(address) ?? address
    const started = this.#byAddress.get(key) ?? 0
    if (reached(started, this.#limits.perAddress) || reached(this.#total, this.#limits.total)) {
      throw new SignInsThrottled(Math.max(1, Math.ceil((this.#windowStart + this.#limits.windowMs - now) / 1000)))
    }
    this.#byAddress.set(key, started + 1)
    this.#total++
  }
}

function reached(count: number, limit: number): boolean {
  return limit > 0 && count >= limit
}
