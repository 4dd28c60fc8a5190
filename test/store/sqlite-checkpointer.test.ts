import assert from 'node:assert/strict'
import { copyFileSync, existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, it, mock } from 'node:test'
import { sql } from 'kysely'
import { MAX_WAL_FRAMES, WRITES_BEFORE_CHECKPOINTER } from '../../src/store/sqlite-checkpointer.ts'
import { NodeSqliteDatabase } from '../../src/store/sqlite-driver.ts'
import { openStore } from '../../src/store/store.ts'
import { tempDir } from '../helpers/gateway.ts'

const ROW = 'x'.repeat(1000)
/** Each frame of the WAL is a page and this header. */
const WAL_FRAME_HEADER_BYTES = 24

async function openDriver(): Promise<{ db: NodeSqliteDatabase; file: string }> {
  const file = join(tempDir(), 'gatehouse.sqlite')
  const db = new NodeSqliteDatabase(file, 1000)
  await db.useWal(1000)
  // A RESTART holds the write lock for a moment: the writes these tests make straight through the driver, not
  // through the store's wait for a lock (whenUnlocked), wait for it inside SQLite.
  db.waitInsideSqlite(1000)
  db.raw.exec('create table rows (n integer primary key, payload text not null)')
  return { db, file }
}

/** Writes through the driver, as the store's queries do (they are what the checkpointer counts). */
function write(db: NodeSqliteDatabase, count: number): void {
  const insert = db.prepare('insert into rows (payload) values (?)')
  for (let i = 0; i < count; i++) insert.run([ROW])
}

function autocheckpoint(db: NodeSqliteDatabase): number {
  return (db.raw.prepare('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number }).wal_autocheckpoint
}

/** Polls `check` until it holds, at most `ms`; returns whether it did. */
async function within(ms: number, check: () => boolean): Promise<boolean> {
  const giveUpAt = Date.now() + ms
  while (!check()) {
    if (Date.now() >= giveUpAt) return false
    await delay(20)
  }
  return true
}

/**
 * Rows in the database file alone, without its WAL: what checkpoints have copied there (read from a copy of the
 * file; one taken in the middle of a checkpoint may be unreadable, and counts as none).
 */
function rowsInDatabaseFile(file: string): number {
  const copy = `${file}.copy`
  copyFileSync(file, copy)
  const reader = new DatabaseSync(copy, { readOnly: true })
  try {
    return (reader.prepare('select count(*) as n from rows').get() as { n: number }).n
  } catch {
    return 0
  } finally {
    reader.close()
  }
}

/** Runs `test` on a database that has written enough for its checkpointer to have taken over the checkpoints. */
async function withCheckpointer(test: (db: NodeSqliteDatabase, file: string) => Promise<void>): Promise<void> {
  const { db, file } = await openDriver()
  try {
    write(db, WRITES_BEFORE_CHECKPOINTER)
    assert.ok(db.checkpointer!.worker, 'the worker is started')
    assert.ok(await within(10_000, () => autocheckpoint(db) === 0), 'the main connection stops checkpointing on commit')
    await test(db, file)
  } finally {
    db.close()
  }
}

describe('SQLite checkpointer', () => {
  it('is not started by a few writes: no worker thread, and SQLite checkpoints on commit as usual', async () => {
    const { db } = await openDriver()
    try {
      write(db, 10)
      await delay(100)
      assert.equal(db.checkpointer!.worker, undefined)
      assert.equal(autocheckpoint(db), 1000)
    } finally {
      db.close()
    }
  })

  it('is not started by writes spread thin (a heartbeat a second): only enough of them within a minute start it', async () => {
    const { db } = await openDriver()
    mock.timers.enable({ apis: ['Date'], now: Date.now() })
    try {
      write(db, WRITES_BEFORE_CHECKPOINTER - 1)
      mock.timers.tick(61_000)
      write(db, WRITES_BEFORE_CHECKPOINTER - 1)
      assert.equal(db.checkpointer!.worker, undefined, 'no minute had enough writes')
      write(db, 1)
      assert.ok(db.checkpointer!.worker, 'the write that fills a minute starts it')
    } finally {
      mock.timers.reset()
      db.close()
    }
  })

  it('starts after enough writes, turns the commits\' checkpoints off, and copies the WAL into the database file itself', () =>
    withCheckpointer(async (db, file) => {
      // Fewer pages than a commit's checkpoint would wait for, so only the worker can have copied them.
      write(db, 200)
      const written = WRITES_BEFORE_CHECKPOINTER + 200
      assert.ok(await within(10_000, () => rowsInDatabaseFile(file) === written), 'every row reaches the database file')
    }))

  it('keeps the WAL from growing under writes that never pause long (it starts over, though checkpoints run mid-write)', () =>
    withCheckpointer(async (db, file) => {
      // About 40 MB of rows in 2 s, written a little at a time as requests do: some 140 MB of WAL if it never started over.
      const until = Date.now() + 2000
      while (Date.now() < until) {
        write(db, 20)
        await delay(1)
      }
      const walMegabytes = statSync(`${file}-wal`).size / 1e6
      assert.ok(walMegabytes < 60, `the WAL grew to ${walMegabytes.toFixed(0)} MB`)
    }))

  it('gives the checkpoints back to the commits while the WAL outgrows it and cannot start over, and takes them again once it has', () =>
    withCheckpointer(async (db, file) => {
      const worker = db.checkpointer!.worker!
      // A reader on an old snapshot: no checkpoint may copy past it, so no RESTART can finish, as under writes
      // that never leave one the write lock.
      const reader = new DatabaseSync(file)
      reader.exec('BEGIN')
      reader.prepare('select count(*) from rows').get()
      let released = false
      try {
        // In a few large commits, which the commits' own checkpoints would not copy either while the reader holds on.
        const walBytes = () => statSync(`${file}-wal`).size
        const pageSize = (db.raw.prepare('PRAGMA page_size').get() as { page_size: number }).page_size
        while (walBytes() <= (MAX_WAL_FRAMES + 100) * (pageSize + WAL_FRAME_HEADER_BYTES)) {
          db.raw.exec('BEGIN')
          write(db, 2000)
          db.raw.exec('COMMIT')
        }
        assert.ok(await within(5_000, () => autocheckpoint(db) === 1000), 'the commits checkpoint again while the WAL is that long')
        assert.equal(db.checkpointer!.worker, worker, 'the worker keeps running')
        reader.exec('COMMIT')
        released = true
        // The WAL starts over at the first write that finds it all copied, as requests go on writing.
        const caughtUp = await within(5_000, () => {
          write(db, 10)
          return autocheckpoint(db) === 0
        })
        assert.ok(caughtUp, 'the worker takes the checkpoints back once the WAL has started over')
        // Started over: what is written next goes to the start of the WAL file again, not past its end.
        const longest = walBytes()
        write(db, 100)
        assert.equal(walBytes(), longest)
        const rows = (db.raw.prepare('select count(*) as n from rows').get() as { n: number }).n
        assert.ok(await within(5_000, () => rowsInDatabaseFile(file) === rows), 'every row reaches the database file')
      } finally {
        if (!released) reader.exec('COMMIT')
        reader.close()
      }
    }))

  it('gives the checkpoints back to the commits itself once the WAL is too long, not waiting for the worker to say so, and gives the disk back after', () =>
    withCheckpointer(async (db, file) => {
      const walBytes = () => statSync(`${file}-wal`).size
      const pageSize = (db.raw.prepare('PRAGMA page_size').get() as { page_size: number }).page_size
      const frameBytes = pageSize + WAL_FRAME_HEADER_BYTES
      // One transaction the worker can neither copy nor start over until it commits, longer than the main thread allows.
      db.raw.exec('BEGIN')
      while (walBytes() <= 1.3 * MAX_WAL_FRAMES * frameBytes) write(db, 2000)
      db.raw.exec('COMMIT')
      // Synchronously, so no report of the worker's can have reached this thread: the check is the main thread's own.
      write(db, 64)
      assert.equal(autocheckpoint(db), 1000, 'the commits checkpoint again')
      // The worker is told, and hands them back once the WAL has started over, truncated to its usual bound.
      const caughtUp = await within(10_000, () => {
        write(db, 10)
        return autocheckpoint(db) === 0
      })
      assert.ok(caughtUp, 'the worker takes the checkpoints back once the WAL has started over')
      assert.ok(walBytes() <= 32 + MAX_WAL_FRAMES * frameBytes, `the WAL file keeps ${(walBytes() / 1e6).toFixed(0)} MB`)
    }))

  it('gives the checkpoints back to the commits when the worker dies', () =>
    withCheckpointer(async (db) => {
      await db.checkpointer!.worker!.terminate()
      assert.ok(await within(5_000, () => autocheckpoint(db) === 1000), 'back to SQLite\'s automatic checkpoint')
    }))

  it('is stopped promptly, its thread ended before the main connection closes', () =>
    withCheckpointer(async (db) => {
      let exited = false
      db.checkpointer!.worker!.on('exit', () => { exited = true })
      const started = Date.now()
      await db.checkpointer!.stop()
      assert.ok(Date.now() - started < 500, `stopped in ${Date.now() - started} ms`)
      assert.ok(exited, 'the worker has ended')
      assert.equal(autocheckpoint(db), 1000)
    }))

  it('is stopped by closing the store, which leaves the file checkpointed and no WAL behind', async () => {
    const dir = tempDir()
    const store = await openStore({ dataDir: dir })
    for (let i = 0; i < WRITES_BEFORE_CHECKPOINTER + 100; i++) {
      await store.oidc.upsert({ model: 'AccessToken', id: `t${i}`, payload: { accountId: '1', filler: ROW }, expiresAt: Date.now() + 60_000 })
    }
    // Until the worker has started and taken the checkpoints over from the commits.
    const commitsCheckpoint = async () => (await sql<{ wal_autocheckpoint: number }>`PRAGMA wal_autocheckpoint`.execute(store.database.db)).rows[0]!.wal_autocheckpoint
    const giveUpAt = Date.now() + 10_000
    while (await commitsCheckpoint() !== 0) {
      assert.ok(Date.now() < giveUpAt, 'the checkpointer never took over')
      await delay(20)
    }
    const started = Date.now()
    await store.close()
    assert.ok(Date.now() - started < 1000, `closed in ${Date.now() - started} ms`)
    // The last connection to close removes the WAL: the main one, once the worker's is closed.
    assert.equal(existsSync(join(dir, 'gatehouse.sqlite-wal')), false)
  })
})
