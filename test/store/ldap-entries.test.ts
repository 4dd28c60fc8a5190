import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

/** The directory entries repository's conformance cases, run on both backends. */
for (const backend of storeBackends) {
  describe(`directory entries repository on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('records the first entry an account claims, and answers it to every later claim, also to racing ones', async () => {
      const alice = await db.store.users.create({ username: 'alice', source: 'ldap', external: true })
      const claims = await Promise.all(['entry-1', 'entry-2', 'entry-3'].map((entry) => db.store.ldapEntries.claim(alice.id, entry)))
      assert.equal(new Set(claims).size, 1, 'every claim got the one stored')
      assert.equal(await db.store.ldapEntries.claim(alice.id, 'entry-4'), claims[0])
      const bob = await db.store.users.create({ username: 'bob', source: 'ldap', external: true })
      assert.deepEqual(await db.store.ldapEntries.entriesOf([alice.id, bob.id]), new Map([[alice.id, claims[0]]]))
      assert.deepEqual(await db.store.ldapEntries.entriesOf([]), new Map())
    })

    it('forgets the entries of some accounts, or of all', async () => {
      const ids: number[] = []
      for (const username of ['dave', 'erin', 'fay']) {
        const user = await db.store.users.create({ username, source: 'ldap', external: true })
        await db.store.ldapEntries.claim(user.id, `entry-${username}`)
        ids.push(user.id)
      }
      assert.equal(await db.store.ldapEntries.forget([]), 0)
      assert.equal(await db.store.ldapEntries.forget([ids[0]!]), 1)
      assert.deepEqual([...(await db.store.ldapEntries.entriesOf(ids)).keys()], ids.slice(1))
      assert.equal(await db.store.ldapEntries.claim(ids[0]!, 'another-entry'), 'another-entry', 'claimed anew')
      assert.ok(await db.store.ldapEntries.forget() >= 3)
      assert.deepEqual(await db.store.ldapEntries.entriesOf(ids), new Map())
    })

    it('drops the entry of a deleted account', async () => {
      const carol = await db.store.users.create({ username: 'carol', source: 'ldap', external: true })
      await db.store.ldapEntries.claim(carol.id, 'entry-carol')
      await db.store.users.delete(carol.id)
      assert.deepEqual(await db.store.ldapEntries.entriesOf([carol.id]), new Map())
    })
  })
}
