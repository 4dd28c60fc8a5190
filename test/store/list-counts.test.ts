import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { KyselyPlugin } from 'kysely'
import type { ListFilter } from '../../src/store/list-filter.ts'
import { UserRepository } from '../../src/store/users.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

/**
 * A list's count is a second pass over every matching row, and a search's over every row of the table (0.6-1.4 s
 * through 100,000 users on SQLite, on the gateway's one thread). When the page read is the last one, the count is
 * known from it, and is not asked of the database.
 */
for (const backend of storeBackends) {
  describe(`counting a list on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('asks for the count only when the page does not tell it', async () => {
      for (const name of ['count-a', 'count-b', 'count-c', 'other']) await db.store.users.create({ username: name })
      let statements = 0
      const counting: KyselyPlugin = {
        transformQuery({ node }) {
          statements++
          return node
        },
        async transformResult({ result }) {
          return result
        },
      }
      const users = new UserRepository(db.store.database.db.withPlugin(counting), db.store.database.dialect)
      const search: ListFilter = { all: [], any: [], search: ['count-'], order: [] }
      const listed = async (offset: number, limit: number) => {
        statements = 0
        const { count, users: page } = await users.list({ offset, limit, filter: search })
        return { count, names: page.map((u) => u.username), statements }
      }
      assert.deepEqual(await listed(0, 50), { count: 3, names: ['count-a', 'count-b', 'count-c'], statements: 1 })
      assert.deepEqual(await listed(2, 2), { count: 3, names: ['count-c'], statements: 1 }, 'the last page, partly full')
      assert.deepEqual(await listed(0, 2), { count: 3, names: ['count-a', 'count-b'], statements: 2 }, 'a full page: counted')
      assert.deepEqual(await listed(0, 3), { count: 3, names: ['count-a', 'count-b', 'count-c'], statements: 2 }, 'a full page, though the last: counted')
      assert.deepEqual(await listed(10, 2), { count: 3, names: [], statements: 2 }, 'past the end: counted')
      statements = 0
      assert.deepEqual((await users.list({ offset: 0, limit: 50, filter: { ...search, search: ['nobody'] } })).count, 0)
      assert.equal(statements, 1)
    })
  })
}
