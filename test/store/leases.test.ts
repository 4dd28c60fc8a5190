import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { openTwoForSuite, storeBackends } from '../helpers/backends.ts'

/** The lease repository's conformance cases, run on both backends. */
const T = 1_700_000_000_000

for (const backend of storeBackends) {
  describe(`lease repository on ${backend.name}`, () => {
    const opened = openTwoForSuite(backend)

    it('is held by one holder until it expires, renewed by that holder, then taken by another', async () => {
      assert.equal(await opened.store.leases.take('job', 'a', T, T + 1000), true)
      assert.equal(await opened.other.leases.take('job', 'b', T + 500, T + 1500), false, 'held by a')
      assert.equal(await opened.store.leases.take('job', 'a', T + 900, T + 1900), true, 'a renews it')
      assert.equal(await opened.other.leases.take('job', 'b', T + 1500, T + 2500), false, 'renewed, so not yet expired')
      assert.equal(await opened.other.leases.take('job', 'b', T + 1900, T + 2900), true, 'expired: b takes it')
      assert.equal(await opened.store.leases.take('job', 'a', T + 2000, T + 3000), false, 'a lost it')
      assert.equal(await opened.store.leases.take('another job', 'a', T + 2000, T + 3000), true, 'each job has its own')
    })

    it('goes to exactly one of the holders taking it at once', async () => {
      const taken = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? opened.store : opened.other).leases.take('contested', `holder-${i}`, T, T + 1000)))
      assert.equal(taken.filter(Boolean).length, 1)
    })

    it('is free for another once its holder releases it; another holder cannot release it', async () => {
      assert.equal(await opened.store.leases.take('released', 'a', T, T + 1000), true)
      await opened.other.leases.release('released', 'b')
      assert.equal(await opened.other.leases.take('released', 'b', T + 1, T + 1001), false, 'still a\'s')
      await opened.store.leases.release('released', 'a')
      assert.equal(await opened.other.leases.take('released', 'b', T + 2, T + 1002), true)
    })
  })
}
