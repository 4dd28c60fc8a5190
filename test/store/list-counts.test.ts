import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { KyselyPlugin } from 'kysely'
import { filtered, ordered, type ListFilter } from '../../src/store/list-filter.ts'
import { UserRepository, userFilterFields } from '../../src/store/users.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

/**
 * A list's count is a second pass over every matching row, and a search's over every row of the table (0.1-0.2 s a
 * pass through 100,000 users on SQLite, on the gateway's one thread). When the first page read is the last one, the
 * count is known from it, and is not asked of the database; when it is full and the list is in the order of ids, only
 * the rows after it are counted, the page having read those before. A later page of a filtered list in the order of ids
 * starts with counting the matching rows up to its end: a page past the end has its count from that one pass, where it
 * used to read every matching row twice (once to find the page empty, once to count them).
 */
for (const backend of storeBackends) {
  describe(`counting a list on ${backend.name}`, () => {
    const db = openForSuite(backend)

    /**
     * A page of the users `filter` finds, with the statements the store ran for it, what each count statement answered
     * (`counted`), and how many matching rows a later page's first statement found up to the page's end (`reached`).
     */
    const listed = async (filter: ListFilter, offset: number, limit: number) => {
      let statements = 0
      const counted: number[] = []
      const reached: number[] = []
      const recording: KyselyPlugin = {
        transformQuery({ node }) {
          return node
        },
        // Counted as they come back: a statement that reads from a query of the list has that query transformed too.
        async transformResult({ result }) {
          statements++
          const [row] = result.rows as Record<string, unknown>[]
          if (row && Object.keys(row).join() === 'n') counted.push(Number(row.n))
          if (row && 'list_last' in row) reached.push(Number(row.n))
          return result
        },
      }
      const users = new UserRepository(db.store.database.db.withPlugin(recording), db.store.database.dialect)
      const { count, users: page } = await users.list({ offset, limit, filter })
      return { count, names: page.map((u) => u.username), statements, counted, ...(reached.length ? { reached } : {}) }
    }
    const searchFor = (term: string, order: ListFilter['order'] = []): ListFilter => ({ all: [], any: [], search: [term], order })

    it('asks for the count only when the page does not tell it', async () => {
      for (const name of ['count-a', 'count-b', 'count-c', 'other']) await db.store.users.create({ username: name })
      const search = searchFor('count-')
      assert.deepEqual(await listed(search, 0, 50), { count: 3, names: ['count-a', 'count-b', 'count-c'], statements: 1, counted: [] })
      assert.deepEqual((await listed(search, 0, 2)).statements, 2, 'a full page: counted')
      assert.deepEqual((await listed(search, 0, 3)).statements, 2, 'a full page, though the last: counted')
      assert.deepEqual(await listed(searchFor('nobody'), 0, 50), { count: 0, names: [], statements: 1, counted: [] })
      // A later page: the rows up to its end counted first, then the page read back from the last of them.
      assert.deepEqual(await listed(search, 2, 2), { count: 3, names: ['count-c'], statements: 2, counted: [], reached: [3] }, 'the last page, partly full')
      assert.deepEqual(await listed(search, 10, 2), { count: 3, names: [], statements: 1, counted: [], reached: [3] }, 'past the end: one statement, which counts')
      assert.deepEqual(await listed(searchFor('nobody'), 10, 2), { count: 0, names: [], statements: 1, counted: [], reached: [0] }, 'past the end of nothing')
    })

    it('counts only the rows after a full page of a filtered list in the order of ids', async () => {
      for (const name of ['scan-1', 'else-1', 'scan-2', 'scan-3', 'else-2', 'scan-4', 'scan-5']) await db.store.users.create({ username: name })
      const search = searchFor('scan-')
      assert.deepEqual(await listed(search, 0, 2), { count: 5, names: ['scan-1', 'scan-2'], statements: 2, counted: [3] })
      assert.deepEqual(await listed(search, 2, 2), { count: 5, names: ['scan-3', 'scan-4'], statements: 3, counted: [1], reached: [4] })
      assert.deepEqual(await listed(search, 3, 2), { count: 5, names: ['scan-4', 'scan-5'], statements: 3, counted: [0], reached: [5] }, 'a full page, though the last')
      assert.deepEqual(await listed(search, 4, 2), { count: 5, names: ['scan-5'], statements: 2, counted: [], reached: [5] })
      assert.deepEqual(await listed(search, 5, 2), { count: 5, names: [], statements: 1, counted: [], reached: [5] }, 'just past the end')
      // No filter: the database counts every row from an index.
      const all = await listed({ all: [], any: [], search: [], order: [] }, 0, 2)
      assert.deepEqual(all.counted, [all.count])
      assert.ok(all.count >= 11)
      // Another order: the rows after the page are not those of higher ids, and every matching row is counted.
      assert.deepEqual(await listed(searchFor('scan-', [{ field: 'username', descending: true }]), 0, 2),
        { count: 5, names: ['scan-5', 'scan-4'], statements: 2, counted: [5] })
    })

    it('gives a later page and its count as reading every matching row in order would', async () => {
      for (let i = 0; i < 12; i++) await db.store.users.create({ username: `${i % 3 ? 'page' : 'skip'}-${i}`, firstName: i % 4 ? 'Ann' : 'Bo' })
      const filters: ListFilter[] = [
        searchFor('page-'),
        { all: [{ field: 'first_name', lookup: 'exact', value: 'Ann', negate: false }], any: [], search: [], order: [] },
        { all: [], any: [{ field: 'username', lookup: 'startswith', value: 'skip', negate: false }, { field: 'first_name', lookup: 'exact', value: 'Bo', negate: false }], search: [], order: [] },
      ]
      for (const filter of filters) {
        const every = await ordered(filtered(db.store.database.db.selectFrom('users'), userFilterFields, filter).selectAll(), userFilterFields, filter).execute()
        const expected = every.map((user) => user.username)
        assert.ok(expected.length > 3 && expected.length < 12, JSON.stringify(expected))
        for (const [offset, limit] of [[1, 3], [3, 3], [expected.length - 3, 3], [expected.length - 1, 3], [expected.length, 3], [expected.length + 5, 2], [2, 50]] as const) {
          const { count, names } = await listed(filter, offset, limit)
          assert.deepEqual({ count, names }, { count: expected.length, names: expected.slice(offset, offset + limit) }, `${JSON.stringify(filter)} from ${offset}, ${limit} a page`)
        }
      }
    })
  })
}
