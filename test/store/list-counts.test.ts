import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { KyselyPlugin } from 'kysely'
import type { ListFilter } from '../../src/store/list-filter.ts'
import { UserRepository } from '../../src/store/users.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

/**
 * A list's count is a second pass over every matching row, and a search's over every row of the table (0.1-0.2 s a
 * pass through 100,000 users on SQLite, on the gateway's one thread). When the page read is the last one, the count is
 * known from it, and is not asked of the database; when it is a full page of a filtered list in the order of ids, only
 * the rows after it are counted, the page having read those before.
 */
for (const backend of storeBackends) {
  describe(`counting a list on ${backend.name}`, () => {
    const db = openForSuite(backend)

    /** A page of the users `filter` finds, with the statements the store ran for it and what each count statement answered. */
    const listed = async (filter: ListFilter, offset: number, limit: number) => {
      let statements = 0
      const counted: number[] = []
      const recording: KyselyPlugin = {
        transformQuery({ node }) {
          statements++
          return node
        },
        async transformResult({ result }) {
          const [row] = result.rows as Record<string, unknown>[]
          if (row && Object.keys(row).join() === 'n') counted.push(Number(row.n))
          return result
        },
      }
      const users = new UserRepository(db.store.database.db.withPlugin(recording), db.store.database.dialect)
      const { count, users: page } = await users.list({ offset, limit, filter })
      return { count, names: page.map((u) => u.username), statements, counted }
    }
    const searchFor = (term: string, order: ListFilter['order'] = []): ListFilter => ({ all: [], any: [], search: [term], order })

    it('asks for the count only when the page does not tell it', async () => {
      for (const name of ['count-a', 'count-b', 'count-c', 'other']) await db.store.users.create({ username: name })
      const search = searchFor('count-')
      assert.deepEqual(await listed(search, 0, 50), { count: 3, names: ['count-a', 'count-b', 'count-c'], statements: 1, counted: [] })
      assert.deepEqual(await listed(search, 2, 2), { count: 3, names: ['count-c'], statements: 1, counted: [] }, 'the last page, partly full')
      assert.deepEqual((await listed(search, 0, 2)).statements, 2, 'a full page: counted')
      assert.deepEqual((await listed(search, 0, 3)).statements, 2, 'a full page, though the last: counted')
      assert.deepEqual(await listed(search, 10, 2), { count: 3, names: [], statements: 2, counted: [3] }, 'past the end: counted')
      assert.deepEqual(await listed(searchFor('nobody'), 0, 50), { count: 0, names: [], statements: 1, counted: [] })
    })

    it('counts only the rows after a full page of a filtered list in the order of ids', async () => {
      for (const name of ['scan-1', 'else-1', 'scan-2', 'scan-3', 'else-2', 'scan-4', 'scan-5']) await db.store.users.create({ username: name })
      const search = searchFor('scan-')
      assert.deepEqual(await listed(search, 0, 2), { count: 5, names: ['scan-1', 'scan-2'], statements: 2, counted: [3] })
      assert.deepEqual(await listed(search, 2, 2), { count: 5, names: ['scan-3', 'scan-4'], statements: 2, counted: [1] })
      assert.deepEqual(await listed(search, 3, 2), { count: 5, names: ['scan-4', 'scan-5'], statements: 2, counted: [0] }, 'a full page, though the last')
      assert.deepEqual(await listed(search, 4, 2), { count: 5, names: ['scan-5'], statements: 1, counted: [] })
      // No filter: the database counts every row from an index.
      const all = await listed({ all: [], any: [], search: [], order: [] }, 0, 2)
      assert.deepEqual(all.counted, [all.count])
      assert.ok(all.count >= 11)
      // Another order: the rows after the page are not those of higher ids, and every matching row is counted.
      assert.deepEqual(await listed(searchFor('scan-', [{ field: 'username', descending: true }]), 0, 2),
        { count: 5, names: ['scan-5', 'scan-4'], statements: 2, counted: [5] })
    })
  })
}
