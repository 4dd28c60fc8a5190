import assert from 'node:assert/strict'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { openStore } from '../../src/store/store.ts'
import { tempDir } from '../helpers/gateway.ts'
import { holdLock } from '../helpers/sqlite-lock.ts'

/** Opens the store while another process holds the file's write lock for 3 s: the open waits, then works. */
async function opensAfterTheLock(dir: string): Promise<void> {
  const holder = await holdLock(join(dir, 'gatehouse.sqlite'), 3000)
  const started = Date.now()
  const store = await openStore({ dataDir: dir, timeouts: { connectMs: 1000, queryMs: 1000 } })
  try {
    assert.ok(Date.now() - started >= 2000, 'it waited for the lock')
    assert.equal(await store.users.count(), 0)
  } finally {
    await store.close()
    await holder.exited
  }
}

describe('SQLite migrations next to another process', () => {
  it('wait for another process\'s write lock longer than the query timeout, instead of failing as "database is locked"', async () => {
    const dir = tempDir()
    await (await openStore({ dataDir: dir })).close()
    await opensAfterTheLock(dir)
  })

  it('wait for it when the file is new, before switching it to WAL, too', async () => {
    // A file another process has just created and holds the write lock on, in SQLite's default journal mode.
    await opensAfterTheLock(tempDir())
  })
})
