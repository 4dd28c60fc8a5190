import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { PRUNE_BATCH_ROWS } from '../../src/store/deletion-batches.ts'
import type { Store } from '../../src/store/store.ts'
import { storeBackends } from '../helpers/backends.ts'

/** The failed-login repository's conformance cases, run on both backends. */
const T = 1_700_000_000_000

for (const backend of storeBackends) {
  describe(`login failure repository on ${backend.name}`, () => {
    let store: Store
    let other: Store
    let cleanup: () => Promise<void>
    before(async () => {
      let reopen: () => Promise<Store>
      ;({ store, reopen, cleanup } = await backend.open())
      other = await reopen()
    })
    after(async () => {
      await other.close()
      await store.close()
      await cleanup()
    })

    it('counts failures for a username, whether or not an account has it', async () => {
      assert.equal(await store.loginFailures.find('nobody'), undefined)
      assert.deepEqual(await store.loginFailures.recordFailure('nobody', T, T - 1000), { username: 'nobody', failures: 1, lastFailureAt: T, lockedUntil: null })
      assert.deepEqual(await store.loginFailures.recordFailure('nobody', T + 10, T - 1000), { username: 'nobody', failures: 2, lastFailureAt: T + 10, lockedUntil: null })
      assert.deepEqual(await store.loginFailures.find('nobody'), { username: 'nobody', failures: 2, lastFailureAt: T + 10, lockedUntil: null })
    })

    it('reads a username\'s record and an address\'s at once, as each alone reads them', async () => {
      await store.loginFailures.recordFailure('both', T, T - 1000)
      await store.loginFailures.lock('both', T + 60_000)
      await store.loginFailures.recordAddressFailure('192.0.2.77', T + 5, T - 1000)
      await store.loginFailures.recordAddressFailure('192.0.2.77', T + 9, T - 1000)
      const alone = [await store.loginFailures.find('both'), await store.loginFailures.findAddress('192.0.2.77')] as const
      assert.equal(alone[0]!.lockedUntil, T + 60_000)
      assert.deepEqual(await store.loginFailures.findBoth('both', '192.0.2.77'), alone)
      assert.deepEqual(await store.loginFailures.findBoth('both', '192.0.2.78'), [alone[0], undefined])
      assert.deepEqual(await store.loginFailures.findBoth('nobody-here', '192.0.2.77'), [undefined, alone[1]])
      assert.deepEqual(await store.loginFailures.findBoth(undefined, '192.0.2.77'), [undefined, alone[1]])
      assert.deepEqual(await store.loginFailures.findBoth('both', undefined), [alone[0], undefined])
    })

    it('counts failures recorded at once through several connections', async () => {
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? store : other).loginFailures.recordFailure('busy', T + i, T - 1000)))
      assert.equal((await store.loginFailures.find('busy'))!.failures, 10)
    })

    it('starts the count again when the last failure came before the given time', async () => {
      await store.loginFailures.recordFailure('returning', T, T - 1000)
      await store.loginFailures.recordFailure('returning', T + 1, T - 1000)
      const again = await store.loginFailures.recordFailure('returning', T + 50_000, T + 10)
      assert.equal(again.failures, 1)
      assert.equal(again.lastFailureAt, T + 50_000)
    })

    it('locks and clears a username, and the other connection sees both', async () => {
      await store.loginFailures.recordFailure('locked', T, T - 1000)
      await store.loginFailures.lock('locked', T + 60_000)
      assert.equal((await other.loginFailures.find('locked'))!.lockedUntil, T + 60_000)
      assert.equal(await other.loginFailures.clear('locked'), true)
      assert.equal(await store.loginFailures.find('locked'), undefined)
      assert.equal(await store.loginFailures.clear('locked'), false)
    })

    it('deletes stale records, but never one still locked', async () => {
      await store.loginFailures.recordFailure('stale', T, T - 1000)
      await store.loginFailures.recordFailure('stale-but-locked', T, T - 1000)
      await store.loginFailures.lock('stale-but-locked', T + 3_600_000)
      await store.loginFailures.recordFailure('recent', T + 500_000, T - 1000)
      const deleted = await store.loginFailures.deleteStale(T + 1, T + 600_000)
      assert.ok(deleted >= 1)
      assert.equal(await store.loginFailures.find('stale'), undefined)
      assert.ok(await store.loginFailures.find('stale-but-locked'))
      assert.ok(await store.loginFailures.find('recent'))
    })

    it('counts failures from an address within its window, and starts a new window once it is over', async () => {
      assert.equal(await store.loginFailures.findAddress('192.0.2.1'), undefined)
      assert.deepEqual(await store.loginFailures.recordAddressFailure('192.0.2.1', T, T - 300_000), { address: '192.0.2.1', windowStart: T, failures: 1, lastFailureAt: T })
      assert.deepEqual(await store.loginFailures.recordAddressFailure('192.0.2.1', T + 100_000, T + 100_000 - 300_000), { address: '192.0.2.1', windowStart: T, failures: 2, lastFailureAt: T + 100_000 })
      assert.deepEqual(await store.loginFailures.recordAddressFailure('192.0.2.1', T + 300_000, T), { address: '192.0.2.1', windowStart: T + 300_000, failures: 1, lastFailureAt: T + 300_000 })
      assert.deepEqual(await store.loginFailures.findAddress('192.0.2.1'), { address: '192.0.2.1', windowStart: T + 300_000, failures: 1, lastFailureAt: T + 300_000 })
    })

    it('counts failures from an address recorded at once through several connections', async () => {
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? store : other).loginFailures.recordAddressFailure('2001:db8::/64', T + i, T - 1000)))
      assert.equal((await store.loginFailures.findAddress('2001:db8::/64'))!.failures, 10)
    })

    it('deletes addresses that have not failed for a long time, and no others', async () => {
      await store.loginFailures.recordAddressFailure('192.0.2.50', T - 50_000, T - 350_000)
      await store.loginFailures.recordAddressFailure('192.0.2.51', T + 50_000, T - 250_000)
      assert.ok(await store.loginFailures.deleteStaleAddresses(T) >= 1)
      assert.equal(await store.loginFailures.findAddress('192.0.2.50'), undefined)
      assert.ok(await store.loginFailures.findAddress('192.0.2.51'))
    })

    it('deletes stale records of many made-up names and addresses a batch a statement, so no statement holds the database for all of them', async () => {
      const stale = Math.floor(PRUNE_BATCH_ROWS * 2.5)
      const names = Array.from({ length: stale }, (_, i) => ({ username: `sprayed-${i}`, failures: 1, last_failure_at: T - 10, locked_until: null }))
      const addresses = Array.from({ length: stale }, (_, i) => ({ address: `198.51.${i >> 8}.${i & 255}`, failures: 1, last_failure_at: T - 10, window_start: T - 10 }))
      for (let i = 0; i < stale; i += 500) {
        await store.database.db.insertInto('login_failures').values(names.slice(i, i + 500)).execute()
        await store.database.db.insertInto('login_address_failures').values(addresses.slice(i, i + 500)).execute()
      }
      await store.loginFailures.recordFailure('sprayed-but-recent', T + 500_000, T - 1000)
      await store.loginFailures.recordAddressFailure('198.51.100.250', T + 500_000, T - 1000)
      const statements = { login_failures: 0, login_address_failures: 0 }
      let counting = true
      store.database.onQuery((_seconds, text) => {
        const table = /^delete from "(login_failures|login_address_failures)"/.exec(text)?.[1] as keyof typeof statements | undefined
        if (counting && table) statements[table]++
      })
      assert.ok(await store.loginFailures.deleteStale(T, T + 600_000) >= stale)
      assert.ok(await store.loginFailures.deleteStaleAddresses(T) >= stale)
      counting = false
      assert.deepEqual(statements, { login_failures: 3, login_address_failures: 3 })
      const left = await store.database.db.selectFrom('login_failures').select('username').where('username', 'like', 'sprayed-%').execute()
      assert.deepEqual(left.map((row) => row.username), ['sprayed-but-recent'])
      assert.ok(await store.loginFailures.findAddress('198.51.100.250'))
      assert.equal(await store.loginFailures.findAddress('198.51.0.0'), undefined)
    })
  })
}
