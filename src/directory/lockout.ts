import { AsyncLocalStorage } from 'node:async_hooks'
import ipaddr from 'ipaddr.js'
import { AccountLocked, InvalidCredentials, LoginThrottled, PasswordCheckAbandoned, PasswordChecksBusy } from '../errors.ts'
import type { AddressFailures, LoginFailures } from '../store/login-failures.ts'
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
/** Checks that may wait for one username's, or one address's, checks in flight; more are refused at once (busy, not failed). */
const MAX_WAITING_PER_KEY = 128

/** Whose account the name of the check in progress (in this async context) belongs to, as its source tells it. */
const checkInProgress = new AsyncLocalStorage<(username: string) => Promise<void>>()

/** When the check in progress (in this async context) came to the lockout, by `performance.now()`. */
const checkArrival = new AsyncLocalStorage<number>()

/**
 * How long the password check in progress has waited and run since it came to the lockout (ms), waiting for its turn
 * behind other checks included; undefined outside a guarded check. A source that answers within a deadline (the
 * directory's `lookup_seconds`) counts it from there, so that no login waits much longer than that in all.
 */
export function checkElapsedMs(): number | undefined {
  const arrived = checkArrival.getStore()
  return arrived === undefined ? undefined : performance.now() - arrived
}

/**
 * Tells the lockout guarding the password check in progress that the name being checked belongs to the account
 * `username`, before its password is verified: a directory entry found by its mail address for one. The check is
 * then refused (AccountLocked) while that account is locked, and a wrong password counts against it as well as
 * against the name typed, so that every name of one account shares its count. Nothing happens outside a guarded
 * check, nor when `username` is the name typed.
 */
export function countAlsoAs(username: string): Promise<void> {
  return checkInProgress.getStore()?.(username) ?? Promise.resolve()
}

/**
 * Brute-force protection for password checks, after Keycloak's brute-force detection, plus throttling by client
 * address (docs/lockout.md).
 *
 * By username: after `failuresBeforeLockout` wrong passwords in a row, checks for it are refused for
 * `lockoutSeconds` without looking at the password. Refused checks are not counted, so they never extend the lock.
 * The count survives the end of a lock: each further wrong password locks the username again at once, so a guesser
 * gets one try per lockout period, until a success, an administrator's clear, or 12 hours without a failure.
 * Usernames are counted whether or not an account has them (no user enumeration) and without regard to case (a
 * directory matches names that way). A name that its source finds to be another of an account's names (a mail
 * address, see `countAlsoAs`) counts under both, as Keycloak's detector counts per user, not per name typed.
 *
 * By address: after `failuresPerAddress` wrong passwords from one client address (an IPv6 client by its /64, which
 * one host usually has whole) within `addressWindowSeconds`, every check from it is refused until that window ends,
 * whatever the username: this bounds password spraying across many usernames. And since the address records say
 * who has been guessing, a username lock can spare the others: with `lockSparesCleanAddresses`, a check from an
 * address without a failure in the last 12 hours is verified despite the lock, so that a guesser cannot keep the
 * owner out by locking their username. Such a success does not end the lock; a wrong password counts as usual.
 *
 * Checks of one username, or from one address, run in parallel only as far as their counts allow: a check starts
 * while the checks in flight, were every one of them wrong, could not take the count past its limit (the budget,
 * see `#admission`). Otherwise it waits for one of them to settle, and then reads the counts again. A burst of
 * parallel guesses therefore gets exactly the limit's tries, while checks of the right password use every core.
 * This holds within one process, which knows its own checks in flight but not another's: while other gateway
 * processes use the database, each runs the checks of a username, or from an address, one at a time again
 * (`shareOfBudget`), so that a burst spread over P processes gets at most P - 1 tries past the limit.
 * A waiting check whose client goes away leaves the queue (PasswordCheckAbandoned): it holds no place there, and is
 * never verified.
 *
 * The records are in the database, so every process sees the same locks; only real password verifications read or
 * write them.
 */
export class Lockout {
  readonly #store: Store
  readonly #policy: () => LockoutPolicy
  readonly #processes: () => number
  /** The checks in flight and waiting, by `user:` or `address:` key; a key nobody is checking has no entry. */
  readonly #traffic = new Map<string, KeyTraffic>()
  readonly #lockListeners: ((username: string, until: number) => void)[] = []
  #pruneAt = 0

  /** `processes`: how many gateway processes share the counts now, this one among them (src/store/event-bus.ts counts them). */
  constructor(store: Store, policy: () => LockoutPolicy, processes: () => number = () => 1) {
    this.#store = store
    this.#policy = policy
    this.#processes = processes
  }

  /**
   * Runs a password verification for `username` (none: a name no account can have, which only the address counts)
   * from the client `address` (none: a check that no client made, which only the username lock applies to) unless the address is throttled (LoginThrottled) or the username is locked
   * for it (AccountLocked), and keeps the counts: a wrong password adds a failure to both, a success clears the
   * username's. The verification starts only within the budgets of both (see the class comment). `signal`: the
   * check's client went away, so a check still waiting for its turn here is dropped.
   */
  async guard<T>(username: string | undefined, address: string | undefined, verifyNow: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const arrived = performance.now()
    const verify = () => checkArrival.run(arrived, verifyNow)
    const policy = this.#policy()
    const usernameKey = username !== undefined && policy.failuresBeforeLockout > 0 ? username.toLowerCase() : undefined
    const addressKey = address !== undefined && (policy.failuresPerAddress > 0 || (usernameKey && policy.lockSparesCleanAddresses)) ? countedAddress(address) ?? uncountableAddress(address) : undefined
    if (!usernameKey && !addressKey) return verify()
    const counted: Counted[] = []
    if (usernameKey) counted.push({ ...this.#join(`user:${usernameKey}`), budget: (admission) => admission.usernameBudget })
    if (addressKey) counted.push({ ...this.#join(`address:${addressKey}`), budget: (admission) => admission.addressBudget })
    let admission: Admission
    try {
      admission = await this.#admit(usernameKey, addressKey, policy, counted, signal)
    } finally {
      for (const { traffic } of counted) traffic.pending--
      this.#forgetIdle(counted)
    }
    let failed = false
    const account: AccountCheck = { fromAddress: addressKey !== undefined, place: admission.place }
    const verifyCountingAccount = usernameKey ? () => checkInProgress.run((name) => this.#countAlsoAs(name, usernameKey, policy, account), verify) : verify
    try {
      return await this.#check(usernameKey, addressKey, policy, admission, account, verifyCountingAccount, () => {
        failed = true
      })
    } finally {
      // Only now, with the failure (if any) recorded: a check that reads the records after this sees it.
      const settled = account.counted ? [...counted, account.counted] : counted
      for (const { traffic } of settled) {
        traffic.inFlight--
        if (failed) traffic.failuresSettled++
        traffic.waiters.shift()?.()
      }
      this.#forgetIdle(settled)
    }
  }

  /**
   * Counts the check in progress also against the account `username` (countAlsoAs), or refuses it as that account's
   * lock says. A check of one name is admitted before its account is known, so it does not wait here for the
   * account's checks in flight: one that would take the account's count past the limit is refused at once
   * (AccountLocked, to retry in a second), since those checks may use up the failures the account has left before
   * its lock. Only a queue that is full is refused as busy (PasswordChecksBusy), which says nothing of the account.
   */
  async #countAlsoAs(username: string, usernameKey: string, policy: LockoutPolicy, account: AccountCheck): Promise<void> {
    const accountKey = username.toLowerCase()
    if (accountKey === usernameKey || account.counted) return
    const joined = this.#join(`user:${accountKey}`)
    try {
      let record: LoginFailures | undefined
      let settledBefore: number
      do {
        settledBefore = joined.traffic.failuresSettled
        record = await this.#store.loginFailures.find(accountKey)
      } while (joined.traffic.failuresSettled !== settledBefore)
      const { locked, usernameBudget } = usernameAdmission(record, account.place, account.fromAddress, policy)
      if (joined.traffic.inFlight >= shareOfBudget(usernameBudget, this.#processes())) throw new AccountLocked(1)
      joined.traffic.inFlight++
      account.counted = joined
      account.key = accountKey
      account.record = record
      account.locked = locked
    } finally {
      joined.traffic.pending--
      this.#forgetIdle([joined])
    }
  }

  /** Checks waiting here for one in flight to settle, of every username and address. */
  get waiting(): number {
    let waiting = 0
    for (const traffic of this.#traffic.values()) waiting += traffic.waiters.length
    return waiting
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

  /** The entry of a key, made if need be, kept at least until this check is admitted or refused. */
  #join(key: string): { key: string; traffic: KeyTraffic } {
    let traffic = this.#traffic.get(key)
    if (!traffic) this.#traffic.set(key, traffic = { inFlight: 0, failuresSettled: 0, pending: 0, waiters: [] })
    traffic.pending++
    return { key, traffic }
  }

  #forgetIdle(counted: { key: string; traffic: KeyTraffic }[]): void {
    for (const { key, traffic } of counted) {
      if (traffic.inFlight === 0 && traffic.pending === 0 && this.#traffic.get(key) === traffic) this.#traffic.delete(key)
    }
  }

  /**
   * Reads the records until they refuse the check or admit it, counting it in flight. A failure that a check of
   * this process recorded while they were being read may be missing from them: then they are read again.
   */
  async #admit(usernameKey: string | undefined, addressKey: string | undefined, policy: LockoutPolicy, counted: Counted[], signal: AbortSignal | undefined): Promise<Admission> {
    const repository = this.#store.loginFailures
    let waited = false
    for (;;) {
      const settledBefore = counted.map(({ traffic }) => traffic.failuresSettled)
      let admission: Admission
      try {
        if (signal?.aborted) throw new PasswordCheckAbandoned()
        const [record, place] = await repository.findBoth(usernameKey, addressKey)
        if (counted.some(({ traffic }, i) => traffic.failuresSettled !== settledBefore[i])) continue
        admission = this.#admission(record, place, addressKey !== undefined, policy)
      } catch (error) {
        // Woken for a place it does not take: the next waiter reads for itself (and is likely refused as well).
        if (waited) for (const { traffic } of counted) traffic.waiters.shift()?.()
        throw error
      }
      const processes = this.#processes()
      const shares = counted.map(({ budget }) => shareOfBudget(budget(admission), processes))
      const full = counted.findIndex(({ traffic }, i) => traffic.inFlight >= shares[i]!)
      if (full === -1) for (const { traffic } of counted) traffic.inFlight++
      // A waiter that was woken passes on a place it leaves, and one it takes with room to spare (the budget may
      // have grown, as after a success): each settled check wakes only one.
      if (waited) {
        counted.forEach(({ traffic }, i) => {
          if (i !== full && traffic.inFlight < shares[i]!) traffic.waiters.shift()?.()
        })
      }
      if (full === -1) return admission
      const { traffic } = counted[full]!
      // What one username or address can make this process hold is bounded; the oldest waiters keep their places.
      // Nothing failed: the refusal says so (busy, try again shortly), not that the username or address is locked.
      if (!waited && traffic.waiters.length >= MAX_WAITING_PER_KEY) throw new PasswordChecksBusy()
      await new Promise<void>((resolve, reject) => {
        const turn = () => {
          signal?.removeEventListener('abort', leave)
          resolve()
        }
        const leave = () => {
          traffic.waiters.splice(traffic.waiters.indexOf(turn), 1)
          reject(new PasswordCheckAbandoned())
        }
        signal?.addEventListener('abort', leave, { once: true })
        if (waited) traffic.waiters.unshift(turn)
        else traffic.waiters.push(turn)
      })
      waited = true
    }
  }

  /** Refuses a check as the records say, or answers what it may run with: the budgets are in `Admission`. */
  #admission(record: LoginFailures | undefined, place: AddressFailures | undefined, fromAddress: boolean, policy: LockoutPolicy): Admission {
    const now = Date.now()
    let addressBudget = Infinity
    if (policy.failuresPerAddress > 0) {
      const windowEnd = place ? place.windowStart + policy.addressWindowSeconds * 1000 : 0
      const failures = windowEnd > now ? place!.failures : 0
      if (failures >= policy.failuresPerAddress) throw new LoginThrottled(Math.ceil((windowEnd - now) / 1000))
      addressBudget = policy.failuresPerAddress - failures
    }
    return { record, place, ...usernameAdmission(record, place, fromAddress, policy), addressBudget }
  }

  async #check<T>(usernameKey: string | undefined, addressKey: string | undefined, policy: LockoutPolicy, admission: Admission, account: AccountCheck, verify: () => Promise<T>, onFailure: () => void): Promise<T> {
    let result: T
    try {
      result = await verify()
    } catch (error) {
      if (isWrongPassword(error)) {
        onFailure()
        const usernameKeys = [usernameKey, account.key].filter((key) => key !== undefined)
        await this.#recordFailure(usernameKeys, addressKey, policy, failureMemoryMs(policy))
      }
      throw error
    }
    // A lock set by someone else's guesses stays for them; only a success the lock did not stand in front of ends it.
    const cleared = [admission.record && !admission.locked && usernameKey, account.record && !account.locked && account.key]
    await Promise.all(cleared.filter((key) => typeof key === 'string').map((key) => this.#store.loginFailures.clear(key)))
    return result
  }

  async #recordFailure(usernameKeys: string[], addressKey: string | undefined, policy: LockoutPolicy, memoryMs: number): Promise<void> {
    const now = Date.now()
    const lockMs = policy.lockoutSeconds * 1000
    const repository = this.#store.loginFailures
    await Promise.all([
      ...usernameKeys.map(async (usernameKey) => {
        const record = await repository.recordFailure(usernameKey, now, now - memoryMs)
        if (record.failures >= policy.failuresBeforeLockout) {
          await repository.lock(usernameKey, now + lockMs)
          for (const listener of this.#lockListeners) listener(usernameKey, now + lockMs)
        }
      }),
      // With the address limit off, only the failure's time is kept (for the clean-address rule): each starts a window of
      // its own, so that failures counted meanwhile do not throttle the address the moment the limit is set again.
      addressKey && repository.recordAddressFailure(addressKey, now, policy.failuresPerAddress > 0 ? now - policy.addressWindowSeconds * 1000 : now),
    ])
    this.#pruneStale(now, memoryMs)
  }

  /**
   * Records of names and addresses nobody has tried for a long time are deleted, at most once an hour (by the
   * monotonic clock: a step back of the wall clock must not stop the pruning for as long as the step).
   */
  #pruneStale(now: number, memoryMs: number): void {
    if (performance.now() < this.#pruneAt) return
    this.#pruneAt = performance.now() + PRUNE_INTERVAL_MS
    const repository = this.#store.loginFailures
    Promise.all([repository.deleteStale(now - memoryMs, now), repository.deleteStaleAddresses(now - memoryMs)]).catch(() => {
      this.#pruneAt = 0
    })
  }
}

/** One key of a check: its traffic, and which budget and which refusal apply to it. */
interface Counted {
  key: string
  traffic: KeyTraffic
  budget: (admission: Admission) => number
}

/** What this process knows of the checks of one username, or from one address. */
interface KeyTraffic {
  /** Checks admitted and not yet settled. */
  inFlight: number
  /** Wrong passwords of settled checks: one more while a check reads the records means they may lack it. */
  failuresSettled: number
  /** Checks reading the records or waiting: while there are any, the entry (and its counter) is kept. */
  pending: number
  /** Checks waiting for one in flight to settle, oldest first. */
  waiters: (() => void)[]
}

interface Admission {
  record: LoginFailures | undefined
  place: AddressFailures | undefined
  locked: boolean
  /** Wrong passwords that may still come before the username locks: how many of its checks may be in flight. */
  usernameBudget: number
  /** The same for the address (Infinity when only the username lock uses the address, for sparing). */
  addressBudget: number
}

/** The account a check's name belongs to, once its source has said so (countAlsoAs), and how it stood then. */
interface AccountCheck {
  readonly fromAddress: boolean
  readonly place: AddressFailures | undefined
  key?: string
  counted?: { key: string; traffic: KeyTraffic }
  record?: LoginFailures | undefined
  locked?: boolean
}

/**
 * Refuses a check while the username's record holds a lock that does not spare the check's address, or answers
 * whether it is locked (and spared) and how many of its checks may be in flight.
 */
function usernameAdmission(record: LoginFailures | undefined, place: AddressFailures | undefined, fromAddress: boolean, policy: LockoutPolicy): { locked: boolean; usernameBudget: number } {
  const now = Date.now()
  const memoryMs = failureMemoryMs(policy)
  const locked = !!record?.lockedUntil && record.lockedUntil > now
  const spared = locked && policy.lockSparesCleanAddresses && fromAddress && !failedSince(place, now - memoryMs)
  if (locked && !spared) throw new AccountLocked(Math.ceil((record!.lockedUntil! - now) / 1000))
  // As recordFailure counts: failures older than the memory are forgotten by the next one.
  const failures = record && record.lastFailureAt >= now - memoryMs ? record.failures : 0
  // A spared check, and the one retry per lockout period after the limit, each lock again if wrong: one at a time.
  const usernameBudget = locked || failures >= policy.failuresBeforeLockout ? 1 : policy.failuresBeforeLockout - failures
  return { locked, usernameBudget }
}

/**
 * How much of a budget a process may fill while `processes` gateway processes share the counts: all of it when it
 * is the only one; otherwise one check at a time. An
 * equal part of the budget each would not do: a process whose own failures lower the count cannot see the checks
 * another started on the earlier count, and together they could pass the limit by up to that part.
 */
export function shareOfBudget(budget: number, processes: number): number {
  return processes > 1 ? 1 : budget
}

function failureMemoryMs(policy: LockoutPolicy): number {
  return Math.max(FAILURE_MEMORY_MS, policy.lockoutSeconds * 1000)
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

/**
 * The key of a client address that is no IP address (a trusted proxy naming the client `unknown` in its forwarding
 * header, or a form none of the gateway's readers took apart): counted as written, as long as the table's key allows,
 * so that such a client shares a budget with every other one so named rather than having none.
 */
function uncountableAddress(address: string): string {
  return address.slice(0, 64)
}

/** `countedAddress` for addresses already known to be valid, with IPv4 ones taken as they are, without parsing: the common case stays a string lookup. */
export function clientKey(address: string): string {
  return address.includes(':') ? countedAddress(address) ?? address : address
}

function failedSince(place: AddressFailures | undefined, since: number): boolean {
  return place !== undefined && place.lastFailureAt > since
}

/** Only a wrong password (or an unknown username) counts: not a disabled account, nor a directory outage. */
function isWrongPassword(error: unknown): boolean {
  return error instanceof InvalidCredentials
}
