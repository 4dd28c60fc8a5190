export interface FixedWindowLimits {
  /** Most events one key may count in a window; 0: no limit (and no key is kept). */
  readonly perKey: number
  /** Most events of all keys together in a window; 0: no limit. */
  readonly total?: number
  readonly windowMs: number
  /** Most keys counted at once: once reached, the key counted first is forgotten (it may start afresh). */
  readonly maxKeys: number
}

/**
 * Counts events per key, and in all, in fixed windows of one process, for a limit that refuses what would pass it:
 * a refused event is not counted. The keys are bounded as well as the counts (`maxKeys`, the oldest going first),
 * since a limit of all may be 0 and whoever picks the keys may pick many.
 */
export class FixedWindowCounts<Key> {
  readonly #limits: FixedWindowLimits
  #windowStart = Number.NEGATIVE_INFINITY
  #total = 0
  /** Only counted events add a key, and never past `maxKeys`; insertion order is age. */
  readonly #byKey = new Map<Key, number>()

  constructor(limits: FixedWindowLimits) {
    this.#limits = limits
  }

  /** How many keys are counted in this window. */
  get keys(): number {
    return this.#byKey.size
  }

  /**
   * Counts one event of `key`; when it would pass a limit, counts nothing and says in how many seconds the window ends.
   * `now` is monotonic (performance.now()): a window timed by the wall clock would stay shut for as long as the clock
   * was stepped back (an NTP correction, a virtual machine resumed).
   */
  count(key: Key, now = performance.now()): { retryAfterSeconds: number } | undefined {
    const { perKey, total = 0, windowMs, maxKeys } = this.#limits
    if (now - this.#windowStart >= windowMs) {
      this.#windowStart = now
      this.#total = 0
      this.#byKey.clear()
    }
    const counted = this.#byKey.get(key) ?? 0
    if (reached(counted, perKey) || reached(this.#total, total)) {
      return { retryAfterSeconds: Math.max(1, Math.ceil((this.#windowStart + windowMs - now) / 1000)) }
    }
    this.#total++
    if (perKey <= 0) return undefined
    if (counted === 0 && this.#byKey.size >= maxKeys) this.#byKey.delete(this.#byKey.keys().next().value!)
    this.#byKey.set(key, counted + 1)
    return undefined
  }
}

function reached(count: number, limit: number): boolean {
  return limit > 0 && count >= limit
}
