import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { openStore } from '../../src/store/store.ts'
import { tempDir } from '../helpers/gateway.ts'

/** Another process holding SQLite's write lock for `ms`, as one applying migrations does; resolves once it holds it. */
async function holdWriteLock(file: string, ms: number) {
  const script = `const { DatabaseSync } = require('node:sqlite')
const db = new DatabaseSync(${JSON.stringify(file)})
db.exec('BEGIN IMMEDIATE')
console.log('locked')
setTimeout(() => { db.exec('COMMIT'); db.close() }, ${ms})`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  // Listened for from the start: it may exit before whoever waits for it gets there.
  const exited = once(child, 'exit')
  await once(child.stdout!, 'data')
  return { exited }
}

/** Opens the store while another process holds the file's write lock for 3 s: the open waits, then works. */
async function opensAfterTheLock(dir: string): Promise<void> {
  const holder = await holdWriteLock(join(dir, 'gatehouse.sqlite'), 3000)
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
