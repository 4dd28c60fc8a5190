import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Store } from '../../src/store/store.ts'
import { storeBackends } from '../helpers/backends.ts'

/** The session repository behaves the same on both backends. */
for (const backend of storeBackends) {
  describe(`session store on ${backend.name}`, () => {
    let store: Store
    let cleanup: () => Promise<void>
    let alice: number
    let bob: number
    const T = 1_700_000_000_000
    let n = 0
    const session = (userId: number, created: number, expiresAt: number) =>
      store.sessions.create({ keyHash: `hash-${backend.name}-${++n}-`.padEnd(64, 'x'), userId, created, expiresAt, ip: '127.0.0.1', userAgent: 'test' })

    before(async () => {
      ;({ store, cleanup } = await backend.open())
      alice = (await store.users.create({ username: 'alice' })).id
      bob = (await store.users.create({ username: 'bob' })).id
    })
    after(async () => {
      await store.close()
      await cleanup()
    })

    it('finds a session by the hash of its identifier and by id', async () => {
      const created = await session(alice, T, T + 900_000)
      assert.deepEqual(await store.sessions.findByKeyHash(created.keyHash), created)
      assert.deepEqual(await store.sessions.findById(created.id), created)
      assert.equal(created.expiresAt, T + 900_000)
      assert.equal(await store.sessions.findByKeyHash('unknown'.padEnd(64, '0')), undefined)
    })

    it('refuses two sessions with the same key hash', async () => {
      const first = await session(alice, T, T + 1000)
      await assert.rejects(store.sessions.create({ ...first, keyHash: first.keyHash }))
    })

    it('extends a live session but not an expired one', async () => {
      const live = await session(alice, T, T + 1000)
      assert.equal((await store.sessions.extend(live.keyHash, T + 5000, T + 500))?.expiresAt, T + 5000)
      const expired = await session(alice, T, T + 1000)
      assert.equal(await store.sessions.extend(expired.keyHash, T + 5000, T + 1000), undefined)
      assert.equal((await store.sessions.findByKeyHash(expired.keyHash))?.expiresAt, T + 1000)
    })

    it('lists live sessions only, by user, a page at a time', async () => {
      const carol = (await store.users.create({ username: 'carol' })).id
      const a = await session(carol, T, T + 10_000)
      await session(carol, T, T + 100)
      const b = await session(carol, T + 1, T + 10_000)
      const now = T + 1000
      const all = await store.sessions.list({ offset: 0, limit: 10, now, userId: carol })
      assert.equal(all.count, 2)
      assert.deepEqual(all.sessions.map((s) => s.id), [a.id, b.id])
      const second = await store.sessions.list({ offset: 1, limit: 1, now, userId: carol })
      assert.deepEqual(second.sessions.map((s) => s.id), [b.id])
      assert.ok((await store.sessions.list({ offset: 0, limit: 200, now })).count >= 2)
    })

    it('ends all but the newest sessions of a user, and only that user', async () => {
      const dave = (await store.users.create({ username: 'dave' })).id
      const old = await session(dave, T, T + 10_000)
      const middle = await session(dave, T + 1, T + 10_000)
      const newest = await session(dave, T + 2, T + 10_000)
      const other = await session(bob, T, T + 10_000)
      assert.deepEqual(await store.sessions.deleteOldest(dave, 2, T), [old.keyHash])
      assert.ok(await store.sessions.findByKeyHash(middle.keyHash))
      assert.ok(await store.sessions.findByKeyHash(newest.keyHash))
      assert.ok(await store.sessions.findByKeyHash(other.keyHash))
      assert.deepEqual(await store.sessions.deleteOldest(dave, 2, T), [])
    })

    it('keeps the session a start just made, though a session started after it is already there', async () => {
      const irene = (await store.users.create({ username: 'irene' })).id
      const older = await session(irene, T, T + 10_000)
      const later = await session(irene, T + 2, T + 10_000)
      // Its login began before the other's and committed after it: its created_at is the oldest but one.
      const started = await session(irene, T + 1, T + 10_000)
      assert.deepEqual((await store.sessions.deleteOldest(irene, 1, T, started.id)).sort(), [later.keyHash, older.keyHash].sort())
      assert.ok(await store.sessions.findByKeyHash(started.keyHash))
      assert.equal((await store.sessions.list({ offset: 0, limit: 10, now: T, userId: irene })).count, 1)
    })

    it('counts only live sessions towards those kept: an expired newer one takes no live one\'s place', async () => {
      const henry = (await store.users.create({ username: 'henry' })).id
      // Started first and extended since: live. Started later and left: expired.
      const extended = await session(henry, T, T + 10_000)
      const expired = await session(henry, T + 1, T + 100)
      const newest = await session(henry, T + 2, T + 10_000)
      assert.deepEqual(await store.sessions.deleteOldest(henry, 2, T + 1000), [])
      assert.ok(await store.sessions.findByKeyHash(extended.keyHash))
      assert.ok(await store.sessions.findByKeyHash(newest.keyHash))
      assert.equal((await store.sessions.list({ offset: 0, limit: 10, now: T + 1000, userId: henry })).count, 2)
      assert.ok(await store.sessions.findByKeyHash(expired.keyHash), 'an expired session is left to the removal of expired ones')
    })

    it('ends sessions by hash, by id and by user, reporting what it ended', async () => {
      const erin = (await store.users.create({ username: 'erin' })).id
      const one = await session(erin, T, T + 10_000)
      const two = await session(erin, T, T + 10_000)
      const three = await session(erin, T, T + 10_000)
      assert.equal((await store.sessions.deleteByKeyHash(one.keyHash))?.id, one.id)
      assert.equal(await store.sessions.deleteByKeyHash(one.keyHash), undefined)
      assert.equal((await store.sessions.deleteById(two.id))?.keyHash, two.keyHash)
      assert.equal(await store.sessions.deleteById(two.id), undefined)
      assert.deepEqual(await store.sessions.deleteForUser(erin), [three.keyHash])
      assert.equal((await store.sessions.list({ offset: 0, limit: 10, now: T, userId: erin })).count, 0)
    })

    it('removes expired sessions and keeps live ones', async () => {
      const frank = (await store.users.create({ username: 'frank' })).id
      const expired = await session(frank, T, T + 100)
      const live = await session(frank, T, T + 1_000_000)
      assert.ok((await store.sessions.deleteExpired(T + 100)) >= 1)
      assert.equal(await store.sessions.findByKeyHash(expired.keyHash), undefined)
      assert.ok(await store.sessions.findByKeyHash(live.keyHash))
    })

    it('removes more expired sessions than one batch deletes, and no live one', async () => {
      const hugo = (await store.users.create({ username: 'hugo' })).id
      const rows = (count: number, expiresAt: number, tag: string) => Array.from({ length: count }, (_, i) => ({
        key_hash: `bulk-${backend.name}-${tag}-${i}-`.padEnd(64, 'x'), user_id: hugo, created_at: T, expires_at: expiresAt, ip: '127.0.0.1', user_agent: 'test',
      }))
      for (let i = 0; i < 9; i++) await store.database.db.insertInto('sessions').values(rows(500, T + 50, `old${i}`)).execute()
      await store.database.db.insertInto('sessions').values(rows(3, T + 10_000_000, 'live')).execute()
      assert.ok(await store.sessions.deleteExpired(T + 50) >= 4500)
      const left = await store.database.db.selectFrom('sessions').select('expires_at').where('user_id', '=', hugo).execute()
      assert.deepEqual(left.map((row) => Number(row.expires_at)), [T + 10_000_000, T + 10_000_000, T + 10_000_000])
    })

    it('drops the sessions of a deleted user with the user', async () => {
      const gina = (await store.users.create({ username: 'gina' })).id
      const s = await session(gina, T, T + 10_000)
      await store.users.delete(gina)
      assert.equal(await store.sessions.findById(s.id), undefined)
    })
  })
}
