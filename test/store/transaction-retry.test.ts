import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DatabaseUnavailable, TransactionConflict, normalizeError } from '../../src/errors.ts'
import { UniqueViolation } from '../../src/store/errors.ts'
import { sql } from '../../src/store/kysely.ts'
import type { Store } from '../../src/store/store.ts'
import { storeBackends, type OpenedStore } from '../helpers/backends.ts'

/** Resolves once `count` callers wait on it: both transactions hold their first lock before either asks for the second. */
function barrier(count: number): () => Promise<void> {
  let waiting = 0
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  return () => {
    if (++waiting >= count) release()
    return released
  }
}

describe('store transactions on PostgreSQL, when the server ends one as a deadlock or a serialization failure', () => {
  const backend = storeBackends.find((b) => b.name === 'PostgreSQL')!
  let opened: OpenedStore
  let store: Store
  before(async () => {
    opened = await backend.open()
    store = opened.store
  })
  after(async () => {
    await store.close()
    await opened.cleanup()
  })

  it('runs the whole transaction again when it lost a deadlock, and both commit', async () => {
    const [alice, bob] = [await store.users.create({ username: 'deadlock-a' }), await store.users.create({ username: 'deadlock-b' })]
    const bothHoldTheirFirst = barrier(2)
    const attempts = { first: 0, second: 0 }
    const lockInOrder = (name: 'first' | 'second', order: number[], email: string) => store.transaction(async (tx) => {
      attempts[name]++
      await tx.sessions.serializeForUser(order[0]!)
      if (attempts[name] === 1) await bothHoldTheirFirst()
      await tx.sessions.serializeForUser(order[1]!)
      await tx.users.update(alice.id, { email })
      return attempts[name]
    })
    const results = await Promise.all([lockInOrder('first', [alice.id, bob.id], 'one@example.com'), lockInOrder('second', [bob.id, alice.id], 'two@example.com')])
    assert.equal(attempts.first + attempts.second, 3, 'the deadlock victim ran again, once')
    assert.deepEqual(results.toSorted(), [1, 2])
    const winner = results[0] === 2 ? 'one@example.com' : 'two@example.com'
    assert.equal((await store.users.findById(alice.id))?.email, winner, 'the transaction run again committed last')
  })

  it('does not run again a transaction that failed for any other reason', async () => {
    await store.users.create({ username: 'taken-once' })
    let attempts = 0
    await assert.rejects(store.transaction(async (tx) => {
      attempts++
      await tx.users.create({ username: 'taken-once' })
    }), UniqueViolation)
    assert.equal(attempts, 1)
  })

  it('gives up after three attempts with a 503 that says to try again', async () => {
    let attempts = 0
    const error = await store.database.db.transaction().execute(async (trx) => {
      attempts++
      await sql`DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`.execute(trx)
    }).then(() => undefined, (e: unknown) => e)
    assert.equal(attempts, 3)
    assert.ok(error instanceof TransactionConflict, String(error))
    assert.ok(!(error instanceof DatabaseUnavailable), 'the database answered: no outage is reported')
    const response = normalizeError(error)
    assert.equal(response.status, 503)
    assert.equal(response.code, 'transaction_conflict')
    assert.ok(Number(response.headers?.['retry-after']) >= 1)
  })
})

describe('store transactions on SQLite', () => {
  it('are not run again on an error (SQLite waits for its locks instead)', async () => {
    const backend = storeBackends.find((b) => b.name === 'SQLite')!
    const { store, cleanup } = await backend.open()
    try {
      let attempts = 0
      await assert.rejects(store.transaction(async () => {
        attempts++
        throw Object.assign(new Error('looks like a deadlock'), { code: '40P01' })
      }))
      assert.equal(attempts, 1)
    } finally {
      await store.close()
      await cleanup()
    }
  })
})
