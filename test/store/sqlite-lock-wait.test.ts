import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { DatabaseUnavailable } from '../../src/errors.ts'
import { sql } from '../../src/store/kysely.ts'
import { NodeSqliteDatabase } from '../../src/store/sqlite-driver.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { tempDir } from '../helpers/gateway.ts'
import { holdLock } from '../helpers/sqlite-lock.ts'

const QUERY_MS = 1000
/** How long the other process holds the lock: well within QUERY_MS. */
const HOLD_MS = 500
/** A timer ticking this often sees the event loop stall when a statement sleeps in SQLite's own wait for the lock. */
const TICK_MS = 5
/**
 * Longer than a loaded machine leaves a process unscheduled, and no longer than the waits the tests assert (at least
 * HOLD_MS / 2): a statement that waited in SQLite's own sleep would have stalled the loop as long as it waited.
 */
const STALL_MS = HOLD_MS / 2

/** Runs `work`, and measures the longest the event loop went without running a timer meanwhile. */
async function withStallMeter<T>(work: () => Promise<T>): Promise<{ outcome: PromiseSettledResult<T>; longestStallMs: number; tookMs: number }> {
  const started = performance.now()
  let last = started
  let longestStallMs = 0
  const ticker = setInterval(() => {
    const now = performance.now()
    longestStallMs = Math.max(longestStallMs, now - last)
    last = now
  }, TICK_MS)
  const [outcome] = await Promise.allSettled([work()])
  clearInterval(ticker)
  longestStallMs = Math.max(longestStallMs, performance.now() - last)
  return { outcome: outcome!, longestStallMs, tookMs: performance.now() - started }
}

function valueOf<T>(outcome: PromiseSettledResult<T>): T {
  if (outcome.status === 'rejected') throw outcome.reason
  return outcome.value
}

describe('SQLite statements that find another process holding the lock', () => {
  const dataDir = tempDir()
  const file = join(dataDir, 'gatehouse.sqlite')
  let store: Store
  before(async () => { store = await openStore({ dataDir, timeouts: { connectMs: 1000, queryMs: QUERY_MS } }) })

  after(() => store.close())

  it('wait for it without stalling the event loop, then succeed', async () => {
    const holder = await holdLock(file, HOLD_MS)
    const { outcome, longestStallMs, tookMs } = await withStallMeter(() => store.loginFailures.recordFailure('waits', 1000, 0))
    await holder.exited
    assert.equal(valueOf(outcome).failures, 1)
    assert.ok(tookMs >= HOLD_MS / 2, `the write waited for the lock (${tookMs.toFixed(0)} ms)`)
    assert.ok(longestStallMs < STALL_MS, `the event loop stalled for ${longestStallMs.toFixed(0)} ms`)
  })

  it('make a transaction wait for it at its start, then run it whole', async () => {
    const holder = await holdLock(file, HOLD_MS)
    const { outcome, longestStallMs, tookMs } = await withStallMeter(() => store.transaction(async (tx) => {
      await tx.loginFailures.recordFailure('in-transaction', 1000, 0)
      return tx.loginFailures.recordFailure('in-transaction', 2000, 0)
    }))
    await holder.exited
    assert.equal(valueOf(outcome).failures, 2)
    assert.equal((await store.loginFailures.find('in-transaction'))!.failures, 2)
    assert.ok(tookMs >= HOLD_MS / 2, `the transaction waited for the lock (${tookMs.toFixed(0)} ms)`)
    assert.ok(longestStallMs < STALL_MS, `the event loop stalled for ${longestStallMs.toFixed(0)} ms`)
  })

  it('fail as the database being unavailable once the lock is held longer than the query timeout', async () => {
    const holder = await holdLock(file, QUERY_MS * 3)
    const { outcome, longestStallMs, tookMs } = await withStallMeter(() => store.transaction((tx) => tx.loginFailures.recordFailure('too-long', 1000, 0)))
    await holder.exited
    assert.equal(outcome.status, 'rejected')
    assert.ok(outcome.reason instanceof DatabaseUnavailable, String(outcome.reason))
    assert.match(String((outcome.reason.cause as Error).message), /database is locked/)
    assert.ok(tookMs >= QUERY_MS * 0.9 && tookMs < QUERY_MS * 2, `gave up after ${tookMs.toFixed(0)} ms`)
    assert.ok(longestStallMs < STALL_MS, `the event loop stalled for ${longestStallMs.toFixed(0)} ms`)
    // Nothing of it was written, and the connection is usable again.
    assert.equal(await store.loginFailures.find('too-long'), undefined)
    assert.equal((await store.loginFailures.recordFailure('too-long', 1000, 0)).failures, 1)
  })

  it('bound each of a burst of writes by the timeout from when it asked, and let reads through while they wait', async () => {
    const holder = await holdLock(file, QUERY_MS * 10)
    try {
      const started = performance.now()
      const timed = async <T>(work: () => Promise<T>) => {
        const [outcome] = await Promise.allSettled([work()])
        return { outcome: outcome!, tookMs: performance.now() - started }
      }
      const writes = Array.from({ length: 6 }, (_, i) => timed(() => store.transaction((tx) => tx.loginFailures.recordFailure(`burst-${i}`, 1000, 0))))
      const single = timed(() => store.loginFailures.recordFailure('burst-single', 1000, 0))
      await new Promise((resolve) => setTimeout(resolve, 100))
      const read = await timed(() => store.loginFailures.find('burst-0'))
      assert.equal(read.outcome.status, 'fulfilled', 'a read needs no write lock')
      // Each write waits its own timeout, not in line behind the others' (the sixth gave up at 6 s).
      assert.ok(read.tookMs < 100 + QUERY_MS / 2, `the read answered ${read.tookMs.toFixed(0)} ms after the writes began`)
      for (const { outcome, tookMs } of [...await Promise.all(writes), await single]) {
        assert.equal(outcome.status, 'rejected')
        assert.ok((outcome as PromiseRejectedResult).reason instanceof DatabaseUnavailable, String((outcome as PromiseRejectedResult).reason))
        assert.ok(tookMs >= QUERY_MS * 0.9 && tookMs < QUERY_MS * 1.8, `a write gave up after ${tookMs.toFixed(0)} ms`)
      }
    } finally {
      process.kill(holder.pid)
      await holder.exited
    }
    assert.equal((await store.loginFailures.recordFailure('burst-0', 1000, 0)).failures, 1, 'the connection is usable again')
  })

  it('inside a transaction that read first, fail at once: the transaction cannot write any more and must end', async () => {
    // Gatehouse's own transactions take the write lock at their start; a deferred one, as SQLite begins by default,
    // reads a snapshot that another process's commit makes stale (SQLITE_BUSY, then SQLITE_BUSY_SNAPSHOT).
    const { outcome, tookMs } = await withStallMeter(() => store.database.db.connection().execute(async (db) => {
      await sql`begin`.execute(db)
      try {
        await db.selectFrom('login_failures').selectAll().execute()
        const holder = await holdLock(file, HOLD_MS)
        try {
          const started = performance.now()
          await assert.rejects(db.insertInto('login_failures').values({ username: 'stale', failures: 1, last_failure_at: 1000, locked_until: null }).execute(), DatabaseUnavailable)
          return performance.now() - started
        } finally {
          await holder.exited
        }
      } finally {
        await sql`rollback`.execute(db)
      }
    }))
    const failedInMs = valueOf(outcome)
    assert.ok(failedInMs < HOLD_MS / 2, `the write failed after ${failedInMs.toFixed(0)} ms, not at once (${tookMs.toFixed(0)} ms in all)`)
    assert.equal(await store.loginFailures.find('stale'), undefined)
  })

  it('make `PRAGMA data_version` answer "look" (NaN) rather than wait, when even reading is locked out', async () => {
    // A file in SQLite's default journal mode, where an exclusive lock keeps readers out (WAL mode never does, but
    // for moments such as another process recovering the WAL's index).
    const rollbackJournal = join(tempDir(), 'rollback-journal.sqlite')
    const sqlite = new NodeSqliteDatabase(rollbackJournal, QUERY_MS)
    try {
      const before = sqlite.dataVersion()
      assert.ok(Number.isInteger(before))
      const holder = await holdLock(rollbackJournal, HOLD_MS, 'BEGIN EXCLUSIVE')
      const started = performance.now()
      assert.ok(Number.isNaN(sqlite.dataVersion()))
      assert.ok(performance.now() - started < STALL_MS, 'it did not wait for the lock')
      await holder.exited
      assert.ok(Number.isInteger(sqlite.dataVersion()))
    } finally {
      sqlite.close()
    }
  })
})

describe('a SQLite transaction that SQLite rolls back itself', () => {
  it('fails with the error that ended it, not with the ROLLBACK that finds none to end', async () => {
    const store = await openStore({ dataDir: tempDir() })
    try {
      // RAISE(ROLLBACK) ends the whole transaction inside SQLite, as some I/O and lock errors may.
      await sql`create temp trigger refuse_stale before insert on login_failures when new.username = 'refused'
        begin select raise(rollback, 'refused by the trigger'); end`.execute(store.database.db)
      await assert.rejects(store.transaction(async (tx) => {
        await tx.loginFailures.recordFailure('kept-out', 1000, 0)
        await tx.loginFailures.recordFailure('refused', 1000, 0)
      }), /refused by the trigger/)
      assert.equal(await store.loginFailures.find('kept-out'), undefined)
      assert.equal((await store.loginFailures.recordFailure('after', 1000, 0)).failures, 1)
    } finally {
      await store.close()
    }
  })
})
