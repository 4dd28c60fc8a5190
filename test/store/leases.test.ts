import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { openTwoForSuite, storeBackends } from '../helpers/backends.ts'

/** The lease repository's conformance cases, run on both backends. */
const MINUTE = 60_000

for (const backend of storeBackends) {
  describe(`lease repository on ${backend.name}`, () => {
    const opened = openTwoForSuite(backend)

    it('is held by one holder until it expires, renewed by that holder, then taken by another', async () => {
      assert.equal(await opened.store.leases.take('job', 'a', 300), true)
      assert.equal(await opened.other.leases.take('job', 'b', 300), false, 'held by a')
      assert.equal(await opened.store.leases.take('job', 'a', 300), true, 'a renews it')
      assert.equal(await opened.store.leases.take('another job', 'b', MINUTE), true, 'each job has its own')
      await sleep(1000)
      assert.equal(await opened.other.leases.take('job', 'b', MINUTE), true, 'expired: b takes it')
      assert.equal(await opened.store.leases.take('job', 'a', MINUTE), false, 'a lost it')
    })

    it('is judged by the database\'s clock, so a holder whose own clock runs ahead cannot take one unexpired', async (t) => {
      assert.equal(await opened.store.leases.take('clocks', 'a', MINUTE), true)
      const ahead = Date.now() + 3600_000
      t.mock.method(Date, 'now', () => ahead)
      assert.equal(await opened.other.leases.take('clocks', 'b', MINUTE), false, 'still a\'s')
    })

    it('goes to exactly one of the holders taking it at once', async () => {
      const taken = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? opened.store : opened.other).leases.take('contested', `holder-${i}`, MINUTE)))
      assert.equal(taken.filter(Boolean).length, 1)
    })

    it('is free for another once its holder releases it; another holder cannot release it', async () => {
      assert.equal(await opened.store.leases.take('released', 'a', MINUTE), true)
      await opened.other.leases.release('released', 'b')
      assert.equal(await opened.other.leases.take('released', 'b', MINUTE), false, 'still a\'s')
      await opened.store.leases.release('released', 'a')
      assert.equal(await opened.other.leases.take('released', 'b', MINUTE), true)
    })
  })
}
