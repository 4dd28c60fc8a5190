import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Lockout, shareOfBudget, type LockoutPolicy } from '../../src/directory/lockout.ts'
import { AccountDisabled, AccountLocked, InvalidCredentials, LoginThrottled, PasswordChecksBusy } from '../../src/errors.ts'
import type { Store } from '../../src/store/store.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

const POLICY: LockoutPolicy = {
  failuresBeforeLockout: 3,
  lockoutSeconds: 60,
  failuresPerAddress: 0,
  addressWindowSeconds: 300,
  lockSparesCleanAddresses: true,
}

/**
 * Verifiers that take a while, so that checks overlap whenever the lockout lets them, and that remember how many
 * ran at once.
 */
class Verifiers {
  running = 0
  mostAtOnce = 0

  async #run(outcome: () => void): Promise<void> {
    this.running++
    this.mostAtOnce = Math.max(this.mostAtOnce, this.running)
    try {
      await sleep(100)
      outcome()
    } finally {
      this.running--
    }
  }

  readonly right = () => this.#run(() => undefined)
  readonly wrong = () => this.#run(() => {
    throw new InvalidCredentials()
  })
  /** Neither counts nor clears anything (as a disabled account's right password). */
  readonly uncounted = () => this.#run(() => {
    throw new AccountDisabled()
  })
}

/** What each check came to: `ok`, or the code of the error it was refused or failed with. */
async function outcomes(checks: Promise<unknown>[]): Promise<string[]> {
  return Promise.all(checks.map((check) => check.then(() => 'ok', (error: { code?: string }) => error.code ?? String(error))))
}

const count = (codes: string[], code: string) => codes.filter((c) => c === code).length

// The lockout on the real store, with verifiers instead of argon2id: what runs at once is then up to the lockout.
for (const backend of storeBackends) {
  describe(`password checks in parallel, within what the counts allow, on ${backend.name}`, () => {
    const db = openForSuite(backend)
    // The pool opens its PostgreSQL connections as reads first need them: on a loaded machine, setting up a connection
    // can take longer than a check, so that the first test's checks would not overlap for want of connections.
    before(() => Promise.all(Array.from({ length: 8 }, () => db.store.loginFailures.findBoth('warm-up', '192.0.2.255'))))
    const lockout = (policy: Partial<LockoutPolicy> = {}, processes = 1) => new Lockout(db.store, () => ({ ...POLICY, ...policy }), () => processes)

    it('lets a burst of wrong guesses at one username have exactly the limit\'s tries, overlapping as far as they may', async () => {
      const guard = lockout()
      const verifiers = new Verifiers()
      const codes = await outcomes(Array.from({ length: 8 }, () => guard.guard('burst-user', '127.0.0.1', verifiers.wrong)))
      assert.equal(count(codes, 'invalid_credentials'), 3, codes.join(' '))
      assert.equal(count(codes, 'account_locked'), 5, codes.join(' '))
      assert.equal(verifiers.mostAtOnce, 3)
      assert.equal((await db.store.loginFailures.find('burst-user'))?.failures, 3)
    })

    it('lets a spray from one address across usernames have exactly the address limit\'s tries', async () => {
      const guard = lockout({ failuresBeforeLockout: 0, failuresPerAddress: 5 })
      const verifiers = new Verifiers()
      const codes = await outcomes(Array.from({ length: 12 }, (_, i) => guard.guard(`spray-${i}`, '192.0.2.1', verifiers.wrong)))
      assert.equal(count(codes, 'invalid_credentials'), 5, codes.join(' '))
      assert.equal(count(codes, 'login_throttled'), 7, codes.join(' '))
      assert.equal(verifiers.mostAtOnce, 5)
      assert.equal((await db.store.loginFailures.findAddress('192.0.2.1'))?.failures, 5)
    })

    it('verifies the right password of one username, and from one address, in parallel while the budget allows', async () => {
      const guard = lockout({ failuresPerAddress: 30 })
      const byUsername = new Verifiers()
      assert.deepEqual(await outcomes([guard.guard('both-cores', '192.0.2.2', byUsername.right), guard.guard('both-cores', '192.0.2.3', byUsername.right)]), ['ok', 'ok'])
      assert.equal(byUsername.mostAtOnce, 2)
      const byAddress = new Verifiers()
      assert.deepEqual(await outcomes([guard.guard('user-a', '192.0.2.4', byAddress.right), guard.guard('user-b', '192.0.2.4', byAddress.right)]), ['ok', 'ok'])
      assert.equal(byAddress.mostAtOnce, 2)
    })

    it('runs the checks of a username one at a time again when one failure is left before the lock', async () => {
      const guard = lockout()
      const verifiers = new Verifiers()
      for (let i = 0; i < 2; i++) await assert.rejects(guard.guard('one-left', undefined, verifiers.wrong), InvalidCredentials)
      const codes = await outcomes(Array.from({ length: 3 }, () => guard.guard('one-left', undefined, verifiers.uncounted)))
      assert.deepEqual(codes, ['account_disabled', 'account_disabled', 'account_disabled'])
      assert.equal(verifiers.mostAtOnce, 1)
    })

    it('reads the records again when a failure of this process was recorded while they were being read', async () => {
      const guard = lockout({ failuresBeforeLockout: 2 })
      const repository = db.store.loginFailures
      const find = repository.find
      let releaseReads!: () => void
      const readsHeld = new Promise<void>((resolve) => releaseReads = resolve)
      let endFirst!: () => void
      const first = guard.guard('stale-read', undefined, () => new Promise((_, reject) => endFirst = () => reject(new InvalidCredentials())))
      await until(() => endFirst !== undefined)
      // The next two read the records while the first is still in flight, and get the answer only after it failed.
      let reads = 0
      repository.find = async (username) => {
        const record = await find.call(repository, username)
        reads++
        await readsHeld
        return record
      }
      try {
        const verifiers = new Verifiers()
        const later = [guard.guard('stale-read', undefined, verifiers.wrong), guard.guard('stale-read', undefined, verifiers.wrong)]
        await until(() => reads === 2)
        endFirst()
        await assert.rejects(first, InvalidCredentials)
        releaseReads()
        assert.deepEqual((await outcomes(later)).sort(), ['account_locked', 'invalid_credentials'])
      } finally {
        repository.find = find
      }
      assert.equal((await repository.find('stale-read'))?.failures, 2)
    })

    it('runs the checks one at a time again while other processes use the database', async () => {
      const verifiers = new Verifiers()
      let processes = 2
      const guard = new Lockout(db.store, () => ({ ...POLICY, failuresBeforeLockout: 5 }), () => processes)
      assert.deepEqual(await outcomes(Array.from({ length: 4 }, () => guard.guard('two-processes', undefined, verifiers.uncounted))), Array(4).fill('account_disabled'))
      assert.equal(verifiers.mostAtOnce, 1)
      processes = 1
      const alone = new Verifiers()
      assert.deepEqual(await outcomes(Array.from({ length: 4 }, () => guard.guard('two-processes', undefined, alone.uncounted))), Array(4).fill('account_disabled'))
      assert.equal(alone.mostAtOnce, 4, 'alone again, the process uses its whole budget')
    })

    it('refuses a check at once as busy, not locked, when too many already wait for the same username, or the same address', async () => {
      /** A busy refusal (503 password_checks_busy, Retry-After: 1), not a lock: nothing failed. */
      const isBusy = (error: unknown) => error instanceof PasswordChecksBusy && error.code === 'password_checks_busy' && error.headers['retry-after'] === '1'
      const guard = lockout({ failuresBeforeLockout: 1, failuresPerAddress: 1 })
      let reads = countReads(db.store, 'find')
      try {
        let endFirst!: () => void
        const first = guard.guard('crowded', undefined, () => new Promise<void>((resolve) => endFirst = resolve))
        await until(() => endFirst !== undefined)
        const waiting = Array.from({ length: 128 }, () => guard.guard('crowded', undefined, async () => undefined))
        // Each has read the records, and so taken its place in the queue, a moment later.
        await until(() => reads.count === 129)
        await sleep(5)
        await assert.rejects(guard.guard('crowded', undefined, async () => undefined), isBusy)
        endFirst()
        await first
        assert.deepEqual(new Set(await outcomes(waiting)), new Set(['ok']), 'the waiting ones all ran, in turn')
      } finally {
        reads.restore()
      }

      reads = countReads(db.store, 'findBoth')
      try {
        let endFirst!: () => void
        const first = guard.guard('crowd-0', '192.0.2.9', () => new Promise<void>((resolve) => endFirst = resolve))
        await until(() => endFirst !== undefined)
        const waiting = Array.from({ length: 128 }, (_, i) => guard.guard(`crowd-${i + 1}`, '192.0.2.9', async () => undefined))
        await until(() => reads.count === 129)
        await sleep(5)
        await assert.rejects(guard.guard('crowd-x', '192.0.2.9', async () => undefined), isBusy)
        endFirst()
        await first
        assert.deepEqual(new Set(await outcomes(waiting)), new Set(['ok']))
      } finally {
        reads.restore()
      }
    })
  })
}

describe('the share of a budget a process may fill', () => {
  it('is the whole budget for a process alone, and one check while others share the counts', () => {
    assert.equal(shareOfBudget(10, 1), 10)
    assert.equal(shareOfBudget(Infinity, 1), Infinity)
    assert.equal(shareOfBudget(10, 2), 1)
    assert.equal(shareOfBudget(Infinity, 3), 1)
    assert.equal(shareOfBudget(1, 1), 1)
  })
})

/** Counts the reads of records of one kind (`findBoth`: a username's and an address's together) until `restore`. */
function countReads(store: Store, method: 'find' | 'findBoth'): { count: number; restore: () => void } {
  const repository = store.loginFailures
  const read = repository[method] as (...keys: (string | undefined)[]) => Promise<unknown>
  const reads = {
    count: 0,
    restore: () => Object.assign(repository, { [method]: read }),
  }
  Object.assign(repository, {
    [method]: async (...keys: (string | undefined)[]) => {
      const record = await read.call(repository, ...keys)
      reads.count++
      return record
    },
  })
  return reads
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(5)
}
