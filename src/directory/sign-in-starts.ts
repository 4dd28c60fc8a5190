import { SignInsThrottled } from '../errors.ts'
import { FixedWindowCounts } from '../http/fixed-window.ts'
import { countedAddress } from './lockout.ts'

export interface SignInStartLimits {
  /** Most starts one client address (an IPv6 client by its /64) may make in a window; 0: no limit. */
  readonly perAddress: number
  /** Most starts of all addresses together in a window, so that many addresses cannot add up to an unbounded number; 0: no limit. */
  readonly total: number
  readonly windowMs: number
  /** Most client addresses counted at once (default `MAX_COUNTED_ADDRESSES`). */
  readonly countedAddresses?: number
}

/**
 * The most client addresses one process counts in a window, whatever `total` is (0 among them): about 10 MB of IPv6
 * /64s. Once reached, the address counted first is forgotten (it may start afresh); an attacker needs that many
 * addresses (IPv6 /64s) to free one, which is as many starts again.
 */
export const MAX_COUNTED_ADDRESSES = 50_000

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
 * The addresses counted are bounded too (`MAX_COUNTED_ADDRESSES`), the oldest going first, as `total` may be 0.
 */
export class SignInStarts {
  readonly #counts: FixedWindowCounts<string>

  constructor(limits: SignInStartLimits) {
    this.#counts = new FixedWindowCounts({ perKey: limits.perAddress, total: limits.total, windowMs: limits.windowMs, maxKeys: limits.countedAddresses ?? MAX_COUNTED_ADDRESSES })
  }

  /** How many client addresses are counted in this window. */
  get countedAddresses(): number {
    return this.#counts.keys
  }

  /** Counts a start from `address`, or throws SignInsThrottled when it would pass a limit. */
  admit(address: string, now = performance.now()): void {
    const refused = this.#counts.count(countedAddress(address) ?? address, now)
    if (refused) throw new SignInsThrottled(refused.retryAfterSeconds)
  }
}
