import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { NewAuditEntry } from '../../src/store/audit.ts'
import { type Condition, type ListFilter, NO_FILTER } from '../../src/store/list-filter.ts'
import { atMigration, openForSuite, storeBackends, unmigratedBackends } from '../helpers/backends.ts'
import { queryPlan } from '../helpers/query-plan.ts'

/** The audit repository's conformance cases, run on both backends. */
const T = 1_700_000_000_000

function entry(overrides: Partial<NewAuditEntry>): NewAuditEntry {
  return {
    created: T, operation: 'login_error', contentType: 'user', objectId: null, objectName: 'alice', actorId: null, actorUsername: 'alice',
    sourceAddress: '192.0.2.1', authMethod: 'basic', code: 'invalid_credentials', realm: null, changes: null, kind: 'sign_in', ...overrides,
  }
}

for (const backend of storeBackends) {
  describe(`audit repository on ${backend.name}`, () => {
    const db = openForSuite(backend)

    it('stores a batch and reads it back with every field, changes as JSON', async () => {
      const changes = { added_fields: {}, removed_fields: {}, changed_fields: { email: ['a@example.com', 'b@example.com'] } }
      await db.store.audit.insertMany([
        entry({}),
        entry({ created: T + 1, operation: 'update', objectId: '7', objectName: 'bob', actorId: 1, actorUsername: 'admin', authMethod: 'session', code: null, changes, kind: 'change' }),
        entry({ created: T + 2, operation: 'login', code: null, realm: 'platform', authMethod: 'oidc' }),
      ])
      const { count, entries } = await db.store.audit.list({ offset: 0, limit: 10 })
      assert.equal(count, 3)
      assert.deepEqual(entries.map(({ id: _id, ...rest }) => rest), [
        entry({}),
        entry({ created: T + 1, operation: 'update', objectId: '7', objectName: 'bob', actorId: 1, actorUsername: 'admin', authMethod: 'session', code: null, changes, kind: 'change' }),
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

    it('deletes the oldest sign-in entries past the bound before any change, however many sign-ins come after the changes', async () => {
      await db.store.audit.prune(Number.MAX_SAFE_INTEGER, 0)
      const changes = Array.from({ length: 10 }, (_, i) => change(T + i, `team-${i}`))
      await db.store.audit.insertMany([entry({ created: T - 1, objectName: 'before the changes' }), ...changes])
      for (let i = 0; i < 3; i++) await db.store.audit.insertMany(Array.from({ length: 1000 }, (_, j) => entry({ created: T + 100 + i * 1000 + j })))
      assert.equal(await db.store.audit.prune(0, 110), 2901)
      const { entries } = await db.store.audit.list({ offset: 0, limit: 200 })
      assert.deepEqual(entries.slice(0, 10).map((e) => e.objectName), changes.map((e) => e.objectName), 'every change kept')
      assert.deepEqual(entries.slice(10).map((e) => e.created), Array.from({ length: 100 }, (_, i) => T + 3000 + i), 'the newest sign-ins beside them')
    })

    it('deletes the oldest changes past the bound when the changes alone are more, and every sign-in entry', async () => {
      await db.store.audit.prune(Number.MAX_SAFE_INTEGER, 0)
      await db.store.audit.insertMany(Array.from({ length: 30 }, (_, i) => change(T + i, `team-${i}`)))
      await db.store.audit.insertMany(Array.from({ length: 10 }, (_, i) => entry({ created: T + 100 + i })))
      assert.equal(await db.store.audit.prune(0, 20), 20)
      const { entries } = await db.store.audit.list({ offset: 0, limit: 100 })
      assert.deepEqual(entries.map((e) => e.objectName), Array.from({ length: 20 }, (_, i) => `team-${i + 10}`))
      assert.equal(await db.store.audit.prune(T + 25, 20), 15, 'by age as well')
    })

    it('finds the oldest entries of a kind, and each batch of them, in the index on kind and id', async () => {
      const { db: kysely } = db.store.database
      const ofKind = kysely.selectFrom('audit_entries').select('id').where('kind', '=', 'sign_in')
      for (const query of [ofKind.orderBy('id').offset(100).limit(1), ofKind.where('id', '<=', 5000).limit(2000)]) {
        const plan = await queryPlan(db.store, query)
        assert.match(plan, /audit_entries_kind/, plan)
      }
    })
  })

  describe(`audit entries written before their kind was stored, on ${backend.name}`, () => {
    const unmigrated = unmigratedBackends.find((candidate) => candidate.name === backend.name)!

    it('are sorted as the trail sorts new ones: sign-in events, sessions of logins and logouts; everything else a change', () => atMigration(unmigrated, '032_assignment_holder_indexes', async (store) => {
      const row = (id: number, operation: string, contentType: string, objectId: string | null, actorId: number | null) => ({
        id, created_at: T + id, operation, content_type: contentType, object_id: objectId, object_name: null, actor_id: actorId,
        actor_username: null, source_address: null, auth_method: 'session', code: null, realm: null, changes: null,
      })
      const rows = [
        [row(1, 'login', 'user', '5', 5), 'sign_in'],
        [row(2, 'create', 'session', '40', 5), 'sign_in'],
        [row(3, 'login_error', 'user', null, null), 'sign_in'],
        [row(4, 'lockout', 'user', null, null), 'sign_in'],
        [row(5, 'dropped', 'audit', null, null), 'sign_in'],
        // A logout: the session's end, then the logout by the same account.
        [row(6, 'delete', 'session', '40', 5), 'sign_in'],
        [row(7, 'logout', 'user', '5', 5), 'sign_in'],
        // An administrator ends someone's session: no logout follows it.
        [row(8, 'delete', 'session', '41', 1), 'change'],
        [row(9, 'login', 'user', '1', 1), 'sign_in'],
        // A user ends another of their own sessions, then logs out of this one: the logout is another's end.
        [row(10, 'delete', 'session', '42', 6), 'change'],
        [row(11, 'logout', 'user', '7', 7), 'sign_in'],
        [row(12, 'delete', 'session', null, 1), 'change'],
        [row(13, 'update', 'user', '5', 1), 'change'],
        [row(14, 'create', 'role_user_assignment', '3', 1), 'change'],
      ] as const
      await store.database.db.insertInto('audit_entries').values(rows.map(([values]) => values) as never).execute()
      await store.database.migrate()
      const { entries } = await store.audit.list({ offset: 0, limit: 100 })
      assert.deepEqual(entries.map((e) => [e.id, e.kind]), rows.map(([values, kind]) => [values.id, kind]))
    }))
  })
}

function change(created: number, team: string): NewAuditEntry {
  return entry({ created, operation: 'create', contentType: 'team', objectName: team, actorId: 1, actorUsername: 'admin', authMethod: 'session', code: null, kind: 'change' })
}
