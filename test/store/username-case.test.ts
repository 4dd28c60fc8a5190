import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UniqueViolation } from '../../src/store/errors.ts'
import { atMigration, openForSuite, storeBackends, unmigratedBackends } from '../helpers/backends.ts'

/** Usernames are unique without regard to case in the database itself, whatever writes them and however many at once. */
for (const backend of storeBackends) {
  describe(`usernames differing only in case, on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('refuses a second account, or a rename, whose name differs from another\'s only in case', async () => {
      const foo = await db.store.users.create({ username: 'Foo' })
      await assert.rejects(db.store.users.create({ username: 'foo' }), UniqueViolation)
      const bar = await db.store.users.create({ username: 'bar' })
      await assert.rejects(db.store.users.update(bar.id, { username: 'FOO' }), UniqueViolation)
      // Its own name in another case is no clash.
      assert.equal((await db.store.users.update(foo.id, { username: 'fOO' }))?.username, 'fOO')
    })

    it('lets one of two creations at once, from two connections, have the name', async () => {
      const other = await db.reopen()
      try {
        const results = await Promise.allSettled([db.store.users.create({ username: 'Twin' }), other.users.create({ username: 'twin' })])
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
        const refused = results.find((r) => r.status === 'rejected')
        assert.ok(refused?.reason instanceof UniqueViolation)
      } finally {
        await other.close()
      }
    })
  })
}

for (const backend of unmigratedBackends) {
  describe(`a database from a version that let names differ only in case, on ${backend.name}`, () => {
    it('keeps the pairs it holds working, and refuses new ones, also beside them', () => atMigration(backend, '019_username_case', async (store) => {
      const pair = { email: '', first_name: '', last_name: '', is_superuser: false, is_active: true, source: 'local', external: false, created_at: 1, modified_at: 1 }
      const sqliteValues = (row: typeof pair & { username: string }) => store.database.dialect === 'postgres' ? row : { ...row, is_superuser: 0, is_active: 1, external: 0 }
      for (const username of ['Ann', 'ann', 'ANN', 'bob']) {
        await store.database.db.insertInto('users').values(sqliteValues({ ...pair, username }) as never).execute()
      }
      await store.database.migrate()
      assert.deepEqual((await store.users.list({ offset: 0, limit: 10 })).users.map((u) => u.username).sort(), ['ANN', 'Ann', 'ann', 'bob'])
      await assert.rejects(store.users.create({ username: 'aNN' }), UniqueViolation)
      await assert.rejects(store.users.create({ username: 'BOB' }), UniqueViolation)
      assert.ok(await store.users.create({ username: 'carl' }))
    }))
  })
}
