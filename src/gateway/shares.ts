/**
 * Something held at once, bounded in all and, with `each`, for each holder: the bytes of request bodies read
 * before forwarding (BodyBudget, src/gateway/request-buffer.ts), a service's open WebSockets (TunnelLimits,
 * src/gateway/upstream-pool.ts). In memory, constant time.
 */
export class Shares {
  readonly #total: number
  readonly #each: number | undefined
  #held = 0
  readonly #byHolder = new Map<string, number>()

  constructor(total: number, each?: number) {
    this.#total = total
    this.#each = each
  }

  /** Takes `amount` (of `holder`'s share too); false, taking nothing, when it is not there. */
  take(amount: number, holder?: string): boolean {
    if (this.#held + amount > this.#total) return false
    if (this.#each !== undefined && holder !== undefined) {
      const mine = this.#byHolder.get(holder) ?? 0
      if (mine + amount > this.#each) return false
      this.#byHolder.set(holder, mine + amount)
    }
    this.#held += amount
    return true
  }

  /** Gives back `amount` that `holder` took. */
  give(amount: number, holder?: string): void {
    this.#held -= amount
    if (this.#each === undefined || holder === undefined || amount === 0) return
    const left = (this.#byHolder.get(holder) ?? 0) - amount
    if (left > 0) this.#byHolder.set(holder, left)
    else this.#byHolder.delete(holder)
  }
}
