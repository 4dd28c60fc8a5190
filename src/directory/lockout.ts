import ipaddr from 'ipaddr.js'
import { AccountLocked, InvalidCredentials, LoginThrottled } from '../errors.ts'
import type { AddressFailures } from '../store/login-failures.ts'
import type { Store } from '../store/store.ts'

export interface LockoutPolicy {
  /** Failed password checks in a row for one username before it locks; 0 turns the username lock off. */
  failuresBeforeLockout: number
  lockoutSeconds: number
  /** Failed password checks from one client address, any usernames, per window before it is throttled; 0: off. */
  failuresPerAddress: number
  addressWindowSeconds: number
  /** During a username lock, still verify the password of a check from an address with no recent failure. */
  lockSparesCleanAddresses: boolean
}

/** Keycloak's default "failure reset time": a count whose last failure is older than this starts again. */
const FAILURE_MEMORY_MS = 12 * 3600_000
const PRUNE_INTERVAL_MS = 3600_000

/**
 * Brute-force protection for password checks, after Keycloak's brute-force detection, plus throttling by client
 * address (docs/lockout.md).
 *
 * By username: after `failuresBeforeLockout` wrong passwords in a row, checks for it are refused for
 * `lockoutSeconds` without looking at the password. Refused checks are not counted, so they never extend the lock.
 * The count survives the end of a lock: each further wrong password locks the username again at once, so a guesser
 * gets one try per lockout period, until a success, an administrator's clear, or 12 hours without a failure.
 * Usernames are counted whether or not an account has them (no user enumeration) and without regard to case (a
 * directory matches names that way).
 *
 * By address: after `failuresPerAddress` wrong passwords from one client address (an IPv6 client by its /64, which
 * one host usually has whole) within `addressWindowSeconds`, every check from it is refused until that window ends,
 * whatever the username: this bounds password spraying across many usernames. And since the address records say
 * who has been guessing, a username lock can spare the others: with `lockSparesCleanAddresses`, a check from an
 * address without a failure in the last 12 hours is verified despite the lock, so that a guesser cannot keep the
 * owner out by locking their username. Such a success does not end the lock; a wrong password counts as usual.
 *
 * The records are in the database, so every process sees the same locks; only real password verifications read or
 * write them.
 */
export class Lockout {
  readonly #store: Store
  readonly #policy: () => LockoutPolicy
  readonly #queues = new Map<string, Promise<void>>()
  readonly #lockListeners: ((username: string, until: number) => void)[] = []
  #pruneAt = 0

  constructor(store: Store, policy: () => LockoutPolicy) {
    this.#store = store
    this.#policy = policy
  }

  /**
   * Runs a password verification for `username` from the client `address` (none: a check that no client made, which
   * only the username lock applies to) unless the address is throttled (LoginThrottled) or the username is locked
   * for it (AccountLocked), and keeps the counts: a wrong password adds a failure to both, a success clears the
   * username's. Checks of one username, and checks from one address, run one at a time in this process, so a
   * burst of parallel guesses cannot all start before the first failure is recorded.
   */
  async guard<T>(username: string, address: string | undefined, verify: () => Promise<T>): Promise<T> {
    const policy = this.#policy()
    const usernameKey = policy.failuresBeforeLockout > 0 ? username.toLowerCase() : undefined
    const addressKey = address !== undefined && (policy.failuresPerAddress > 0 || (usernameKey && policy.lockSparesCleanAddresses)) ? countedAddress(address) : undefined
    if (!usernameKey && !addressKey) return verify()
    const check = () => this.#check(usernameKey, addressKey, policy, verify)
    const byUsername = usernameKey ? () => this.#oneAtATime(`user:${usernameKey}`, check) : check
    return addressKey ? this.#oneAtATime(`address:${addressKey}`, byUsername) : byUsername()
  }

  /** Told each time a username becomes locked (the audit trail and metrics listen). */
  onLock(listener: (username: string, until: number) => void): void {
    this.#lockListeners.push(listener)
  }

  /** Forgets a username's failures and lock; answers whether it had any. */
  async clear(username: string): Promise<boolean> {
    return this.#store.loginFailures.clear(username.toLowerCase())
  }

  /**
   * Forgets the failures counted for a client address (an IPv6 one by its /64, as they are counted), ending its
   * throttling; answers what was cleared, or undefined for a string that is not an IP address.
   */
  async clearAddress(address: string): Promise<{ counted: string; cleared: boolean } | undefined> {
    const counted = countedAddress(address)
    if (counted === undefined) return undefined
    return { counted, cleared: await this.#store.loginFailures.clearAddress(counted) }
  }

  async #check<T>(usernameKey: string | undefined, addressKey: string | undefined, policy: LockoutPolicy, verify: () => Promise<T>): Promise<T> {
    const repository = this.#store.loginFailures
    const [record, place] = await Promise.all([
      usernameKey ? repository.find(usernameKey) : undefined,
      addressKey ? repository.findAddress(addressKey) : undefined,
    ])
    const now = Date.now()
    const memoryMs = Math.max(FAILURE_MEMORY_MS, policy.lockoutSeconds * 1000)
    if (place && policy.failuresPerAddress > 0) {
      const windowEnd = place.windowStart + policy.addressWindowSeconds * 1000
      if (windowEnd > now && place.failures >= policy.failuresPerAddress) throw new LoginThrottled(Math.ceil((windowEnd - now) / 1000))
    }
    const locked = record?.lockedUntil && record.lockedUntil > now
    const spared = locked && policy.lockSparesCleanAddresses && addressKey !== undefined && !failedSince(place, now - memoryMs)
    if (locked && !spared) throw new AccountLocked(Math.ceil((record.lockedUntil! - now) / 1000))
    let result: T
    try {
      result = await verify()
    } catch (error) {
      if (isWrongPassword(error)) await this.#recordFailure(usernameKey, addressKey, policy, memoryMs)
      throw error
    }
    // A lock set by someone else's guesses stays for them; only a success the lock did not stand in front of ends it.
    if (record && !locked) await repository.clear(usernameKey!)
    return result
  }

  async #recordFailure(usernameKey: string | undefined, addressKey: string | undefined, policy: LockoutPolicy, memoryMs: number): Promise<void> {
    const now = Date.now()
    const lockMs = policy.lockoutSeconds * 1000
    const repository = this.#store.loginFailures
    await Promise.all([
      usernameKey && (async () => {
        const record = await repository.recordFailure(usernameKey, now, now - memoryMs)
        if (record.failures >= policy.failuresBeforeLockout) {
          await repository.lock(usernameKey, now + lockMs)
          for (const listener of this.#lockListeners) listener(usernameKey, now + lockMs)
        }
      })(),
      addressKey && repository.recordAddressFailure(addressKey, now, now - policy.addressWindowSeconds * 1000),
    ])
    this.#pruneStale(now, memoryMs)
  }

  /** Records of names and addresses nobody has tried for a long time are deleted, at most once an hour. */
  #pruneStale(now: number, memoryMs: number): void {
    if (now < this.#pruneAt) return
    this.#pruneAt = now + PRUNE_INTERVAL_MS
    const repository = this.#store.loginFailures
    Promise.all([repository.deleteStale(now - memoryMs, now), repository.deleteStaleAddresses(now - memoryMs)]).catch(() => {
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

/**
 * The key failures from a client are counted under: its IPv4 address (also when written IPv4-mapped), or the /64
 * network of its IPv6 address, since one host commonly has a whole /64 to pick addresses from.
 */
export function countedAddress(ip: string): string | undefined {
  if (!ipaddr.isValid(ip)) return undefined
  const address = ipaddr.process(ip)
  if (address.kind() === 'ipv4') return address.toString()
  const parts = (address as ipaddr.IPv6).parts
  return `${new ipaddr.IPv6([...parts.slice(0, 4), 0, 0, 0, 0]).toString()}/64`
}

function failedSince(place: AddressFailures | undefined, since: number): boolean {
  return place !== undefined && place.lastFailureAt > since
}

/** Only a wrong password (or an unknown username) counts: not a disabled account, nor a directory outage. */
function isWrongPassword(error: unknown): boolean {
  return error instanceof InvalidCredentials
}
