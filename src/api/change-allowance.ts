import { ChangesThrottled } from '../errors.ts'
import { FixedWindowCounts } from '../http/fixed-window.ts'

/** The window of `gateway.changes_per_user`. */
export const CHANGE_WINDOW_MS = 10 * 60_000

/** The most accounts one process counts in a window; past it, the account counted first starts afresh. */
const MAX_COUNTED_ACCOUNTS = 50_000

/**
 * Bounds how fast one account that is not a superuser changes things through the gateway API. Each change writes an
 * audit entry that is always kept (docs/audit.md), and the table keeps `audit.max_entries` entries, the oldest going
 * first: without a bound, an ordinary account saving its own name in a loop (660 a second on two cores) pushed a
 * million entries, administrators' changes among them, out of the trail in under half an hour. Changes are counted
 * per account in fixed windows, in each process; one beyond the limit is refused with 429 `changes_throttled` before
 * anything is done (its body read and checked only), and is not counted. Superusers are not counted: they may change anything anyway,
 * and their scripts make changes in bulk.
 */
export class ChangeAllowance {
  readonly #counts: FixedWindowCounts<number>

  constructor(limit: number, windowMs = CHANGE_WINDOW_MS) {
    this.#counts = new FixedWindowCounts({ perKey: limit, windowMs, maxKeys: MAX_COUNTED_ACCOUNTS })
  }

  /** Counts a change by `userId`, or throws ChangesThrottled when it would pass the limit. */
  admit(userId: number, now = performance.now()): void {
    const refused = this.#counts.count(userId, now)
    if (refused) throw new ChangesThrottled(refused.retryAfterSeconds)
  }
}
