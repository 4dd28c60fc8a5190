import { AccountLocked, InvalidCredentials } from '../errors.ts'
import type { Store } from '../store/store.ts'

export interface LockoutPolicy {
  /** Failed password checks in a row for one username before it locks; 0 turns lockout off. */
  failuresBeforeLockout: number
  lockoutSeconds: number
}

/** Keycloak's default "failure reset time": a count whose last failure is older than this starts again. */
const FAILURE_MEMORY_MS = 12 * 3600_000
const PRUNE_INTERVAL_MS = 3600_000

/**
 * Brute-force protection for password checks, after Keycloak's brute-force detection. After
 * `failuresBeforeLockout` wrong passwords in a row for a username, checks for it are refused for
 * `lockoutSeconds` without looking at the password. Refused checks are not counted, so they never extend the
 * lock. The count survives the end of a lock: each further wrong password locks the username again at once, so a
 * guesser gets one try per lockout period, until a success, an administrator's clear, or 12 hours without a
 * failure. Usernames are counted whether or not an account has them (no user enumeration) and without regard to
 * case (a directory matches names that way). The records are in the database, so every process sees the same
 * lock; only real password verifications read or write them.
 */
export class Lockout {
  /** The clock; tests replace it to step past a lock. */
  now: () => number
  readonly #store: Store
  readonly #policy: () => LockoutPolicy
  readonly #queues = new Map<string, Promise<void>>()
  #pruneAt = 0

  constructor(store: Store, policy: () => LockoutPolicy, now: () => number = Date.now) {
    this.#store = store
    this.#policy = policy
    this.now = now
  }

  /**
   * Runs a password verification for `username` unless the username is locked (AccountLocked), and keeps the
   * count: a wrong password adds a failure, a success clears them. Checks of one username run one at a time in
   * this process, so a burst of parallel guesses cannot all start before the first failure is recorded.
   */
  async guard<T>(username: string, verify: () => Promise<T>): Promise<T> {
    const policy = this.#policy()
    if (policy.failuresBeforeLockout === 0) return verify()
    const key = username.toLowerCase()
    return this.#oneAtATime(key, () => this.#check(key, policy, verify))
  }

  /** Forgets a username's failures and lock; answers whether it had any. */
  async clear(username: string): Promise<boolean> {
    return this.#store.loginFailures.clear(username.toLowerCase())
  }

  async #check<T>(key: string, policy: LockoutPolicy, verify: () => Promise<T>): Promise<T> {
    const record = await this.#store.loginFailures.find(key)
    const now = this.now()
    if (record?.lockedUntil && record.lockedUntil > now) throw new AccountLocked(Math.ceil((record.lockedUntil - now) / 1000))
    let result: T
    try {
      result = await verify()
    } catch (error) {
      if (isWrongPassword(error)) await this.#recordFailure(key, policy)
      throw error
    }
    if (record) await this.#store.loginFailures.clear(key)
    return result
  }

  async #recordFailure(key: string, policy: LockoutPolicy): Promise<void> {
    const now = this.now()
    const lockMs = policy.lockoutSeconds * 1000
    const memoryMs = Math.max(FAILURE_MEMORY_MS, lockMs)
    const record = await this.#store.loginFailures.recordFailure(key, now, now - memoryMs)
    if (record.failures >= policy.failuresBeforeLockout) await this.#store.loginFailures.lock(key, now + lockMs)
    this.#pruneStale(now, memoryMs)
  }

  /** Records of names nobody has tried for a long time (mostly unknown ones) are deleted, at most once an hour. */
  #pruneStale(now: number, memoryMs: number): void {
    if (now < this.#pruneAt) return
    this.#pruneAt = now + PRUNE_INTERVAL_MS
    this.#store.loginFailures.deleteStale(now - memoryMs, now).catch(() => {
      this.#pruneAt = 0
    })
  }

  async #oneAtATime<T>(key: string, task: () => Promise<T>): Promise<T> {
    const run = (this.#queues.get(key) ?? Promise.resolve()).then(task)
    const settled = run.then(() => {}, () => {})
    this.#queues.set(key, settled)
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key)
    })
    return run
  }
}

/** Only a wrong password (or an unknown username) counts: not a disabled account, nor a directory outage. */
function isWrongPassword(error: unknown): boolean {
  return error instanceof InvalidCredentials && error.code === 'invalid_credentials'
}
