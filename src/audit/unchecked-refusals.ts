import { countedAddress } from '../directory/lockout.ts'
import { AccountLocked, LoginThrottled, PasswordCheckAbandoned, PasswordChecksBusy } from '../errors.ts'
import type { NewAuditEntry } from '../store/audit.ts'

/**
 * Refused logins whose password was never verified: the address was throttled, the username locked, too many checks
 * waited, or the client left while its check waited. Each costs the client nothing, so one entry apiece would let
 * anyone without credentials fill the trail (and push administrators' changes out of it, past `max_entries`).
 */
const UNCHECKED_REFUSALS: ReadonlySet<string> = new Set([LoginThrottled.code, AccountLocked.code, PasswordChecksBusy.code, PasswordCheckAbandoned.code])

/** How long one entry stands for the same refusal repeated. */
export const REPEAT_WINDOW_MS = 60_000
/** Repeated refusals followed at once: past this the oldest window ends early, writing its count. */
const MAX_WINDOWS = 10_000

interface Window {
  /**
   * By the monotonic clock, not the entry's `created`: after a step back of the wall clock (an NTP correction, a
   * virtual machine resumed) a window timed by it would collapse every refusal for as long as the step, unwritten.
   */
  readonly startedAt: number
  /** Refusals in the window not written one by one. */
  repeated: number
  /** The newest of them, which the window's count is written as. */
  last: NewAuditEntry | undefined
}

/**
 * Collapses unchecked refusals into one entry per refusal, client and window: the first is written as it comes;
 * the others within `REPEAT_WINDOW_MS` are counted, and when the window ends one more entry, the newest of them,
 * carries the count (`changes.repeated`). The key is the code, the client address as the lockout counts it (an IPv6
 * client by its /64, which one host can pick addresses from) and, for a locked username, the username: the other
 * refusals (a throttled address, checks busy or abandoned) are the address's whatever name it sends, and naming a
 * new one is free.
 * A flood of refusals writes at most two entries per key and window; wrong passwords are not collapsed, as each
 * was verified (costly, and counted by the lockout).
 */
export class UncheckedRefusals {
  /** By when each started: a Map keeps insertion order, and a window is inserted when it starts. */
  readonly #windows = new Map<string, Window>()

  get size(): number {
    return this.#windows.size
  }

  /**
   * Whether `entry` is to be written. Windows that ended, or that make room, hand the entries carrying their counts
   * to `write`, before the answer. `now`: the monotonic clock's.
   */
  admit(entry: NewAuditEntry, write: (entry: NewAuditEntry) => void, now = performance.now()): boolean {
    if (entry.operation !== 'login_error' || entry.code === null || !UNCHECKED_REFUSALS.has(entry.code)) return true
    const key = keyOf(entry)
    const window = this.#windows.get(key)
    if (window && now - window.startedAt < REPEAT_WINDOW_MS) {
      window.repeated++
      window.last = entry
      return false
    }
    if (window) this.#end(key, window, write)
    if (this.#windows.size >= MAX_WINDOWS) {
      const [oldestKey, oldest] = this.#windows.entries().next().value!
      this.#end(oldestKey, oldest, write)
    }
    this.#windows.set(key, { startedAt: now, repeated: 0, last: undefined })
    return true
  }

  /** Ends the windows older than `REPEAT_WINDOW_MS` at `now` (all of them with `Infinity`), writing their counts. */
  endBefore(now: number, write: (entry: NewAuditEntry) => void): void {
    for (const [key, window] of this.#windows) {
      if (now - window.startedAt < REPEAT_WINDOW_MS) return
      this.#end(key, window, write)
    }
  }

  #end(key: string, window: Window, write: (entry: NewAuditEntry) => void): void {
    this.#windows.delete(key)
    if (window.last) write({ ...window.last, changes: { repeated: window.repeated } })
  }
}

function keyOf(entry: NewAuditEntry): string {
  const address = entry.sourceAddress === null ? '' : (countedAddress(entry.sourceAddress) ?? entry.sourceAddress)
  const username = entry.code === AccountLocked.code ? (entry.actorUsername ?? '').toLowerCase() : ''
  return JSON.stringify([entry.code, address, username, entry.realm])
}
