import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { NewAuditEntry } from '../../src/store/audit.ts'
import { type Condition, type ListFilter, NO_FILTER } from '../../src/store/list-filter.ts'
import { openForSuite, storeBackends } from '../helpers/backends.ts'

/** The audit repository's conformance cases, run on both backends. */
const T = 1_700_000_000_000

function entry(overrides: Partial<NewAuditEntry>): NewAuditEntry {
  return {
    created: T, operation: 'login_error', contentType: 'user', objectId: null, objectName: 'alice', actorId: null, actorUsername: 'alice',
    sourceAddress: '192.0.2.1', authMethod: 'basic', code: 'invalid_credentials', realm: null, changes: null, ...overrides,
  }
}

for (const backend of storeBackends) {
  describe(`audit repository on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('stores a batch and reads it back with every field, changes as JSON', async () => {
      const changes = { added_fields: {}, removed_fields: {}, changed_fields: { email: ['a@example.com', 'b@example.com'] } }
      await db.store.audit.insertMany([
        entry({}),
        entry({ created: T + 1, operation: 'update', objectId: '7', objectName: 'bob', actorId: 1, actorUsername: 'admin', authMethod: 'session', code: null, changes }),
        entry({ created: T + 2, operation: 'login', code: null, realm: 'platform', authMethod: 'oidc' }),
      ])
      const { count, entries } = await db.store.audit.list({ offset: 0, limit: 10 })
      assert.equal(count, 3)
      assert.deepEqual(entries.map(({ id: _id, ...rest }) => rest), [
        entry({}),
        entry({ created: T + 1, operation: 'update', objectId: '7', objectName: 'bob', actorId: 1, actorUsername: 'admin', authMethod: 'session', code: null, changes }),
        entry({ created: T + 2, operation: 'login', code: null, realm: 'platform', authMethod: 'oidc' }),
      ])
    })

    it('filters by each field and a time range, and pages newest first', async () => {
      const where = (field: string, lookup: Condition['lookup'], value: Condition['value']): Condition => ({ field, lookup, value, negate: false })
      const list = (...all: Condition[]) => db.store.audit.list({ filter: { ...NO_FILTER, all }, offset: 0, limit: 10 })
      assert.equal((await list(where('operation', 'in', ['login', 'update']))).count, 2)
      assert.equal((await list(where('created_by', 'exact', 1))).entries[0]!.objectName, 'bob')
      assert.equal((await list(where('realm', 'exact', 'platform'))).count, 1)
      assert.equal((await list(where('code', 'exact', 'invalid_credentials'), where('source_address', 'exact', '192.0.2.1'))).count, 1)
      assert.equal((await list(where('created', 'gte', T + 1), where('created', 'lte', T + 1))).count, 1)
      const newestFirst: ListFilter = { ...NO_FILTER, order: [{ field: 'id', descending: true }] }
      const page = await db.store.audit.list({ filter: newestFirst, offset: 1, limit: 1 })
      assert.equal(page.count, 3)
      assert.equal(page.entries[0]!.operation, 'update')
    })

    it('prunes entries older than the retention and all but the newest ones', async () => {
      await db.store.audit.insertMany(Array.from({ length: 20 }, (_, i) => entry({ created: T + 100 + i })))
      assert.equal(await db.store.audit.prune(T + 2, 1000), 2, 'the two entries before T + 2')
      assert.equal(await db.store.audit.count(), 21)
      assert.equal(await db.store.audit.prune(0, 5), 16)
      const { entries } = await db.store.audit.list({ offset: 0, limit: 10 })
      assert.deepEqual(entries.map((e) => e.created), [T + 115, T + 116, T + 117, T + 118, T + 119])
    })

    it('prunes more entries than one batch deletes, by age and by count', async () => {
      await db.store.audit.prune(Number.MAX_SAFE_INTEGER, 0)
      for (let i = 0; i < 5; i++) await db.store.audit.insertMany(Array.from({ length: 1000 }, (_, j) => entry({ created: T + i * 1000 + j })))
      assert.equal(await db.store.audit.prune(T + 2500, 1_000_000), 2500, 'the entries before T + 2500')
      assert.equal(await db.store.audit.prune(0, 10), 2490, 'all but the newest ten')
      const { entries } = await db.store.audit.list({ offset: 0, limit: 20 })
      assert.deepEqual(entries.map((e) => e.created), Array.from({ length: 10 }, (_, i) => T + 4990 + i))
    })
  })
}
