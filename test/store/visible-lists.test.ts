import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { oneOf } from '../../src/store/list-filter.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

/**
 * The rows one caller may see, named by their ids (users/, teams/, organizations/, assignments/ of a caller who is
 * no superuser): bound as one value, so that a statement's text does not grow with the list (a statement of its own
 * for every list and every filter and order beside it, each kept prepared, took megabytes apiece), and a list longer
 * than a statement takes parameters works.
 */
for (const backend of storeBackends) {
  describe(`lists of visible rows on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('keeps the statement the same length whatever the number of ids, and finds the rows', async () => {
      const dialect = db.store.database.dialect
      const compiled = (ids: number[]) => db.store.database.db.selectFrom('users').select('id').where(oneOf(dialect, 'id', ids)).compile()
      const few = compiled([1, 2, 3])
      const many = compiled(Array.from({ length: 40_000 }, (_, i) => i + 1))
      assert.equal(many.sql, few.sql)
      assert.equal(many.parameters.length, 1)

      const created = [await db.store.users.create({ username: 'visible-a' }), await db.store.users.create({ username: 'visible-b' }), await db.store.users.create({ username: 'hidden-c' })]
      const visibleIds = new Set([...Array.from({ length: 40_000 }, (_, i) => 1_000_000 + i), created[0]!.id, created[1]!.id])
      const { users } = await db.store.users.list({ offset: 0, limit: 200, visibleIds })
      assert.deepEqual(users.filter((user) => !user.isSuperuser).map((user) => user.username).sort(), ['visible-a', 'visible-b'])
      assert.equal((await db.store.users.list({ offset: 0, limit: 200, visibleIds: new Set() })).users.filter((user) => !user.isSuperuser).length, 0)
    })
  })
}
