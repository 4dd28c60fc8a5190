import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { mkdirSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { NodeSqliteDatabase } from '../../src/store/sqlite-driver.ts'
import { openStore } from '../../src/store/store.ts'
import { repoRoot, tempDir } from '../helpers/gateway.ts'
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

/** `gatehouse migrate` on the data directory `dir`, run to its end: its exit code and what it wrote on stderr. */
async function migrate(dir: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(join(repoRoot, 'bin/gatehouse'), ['migrate', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => stderr += d)
  const [code] = await once(child, 'exit')
  return { code, stderr }
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

  it('say at once on stderr that they wait, naming the process that holds the lock, on a migrated file and on a new one alike', async () => {
    const migrated = tempDir()
    await (await openStore({ dataDir: migrated })).close()
    for (const dir of [migrated, tempDir()]) {
      const holder = await holdLock(join(dir, 'gatehouse.sqlite'), 4000)
      const letGoAt = holder.exited.then(() => performance.now())
      const child = spawn(join(repoRoot, 'bin/gatehouse'), ['migrate', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stderr = ''
      let saidAt: number | undefined
      child.stderr.on('data', (d) => {
        stderr += d
        if (saidAt === undefined && stderr.includes('waiting for another process')) saidAt = performance.now()
      })
      const [code] = await once(child, 'exit')
      const exitedAt = performance.now()
      assert.equal(code, 0, stderr)
      assert.match(stderr, new RegExp(`^gatehouse: waiting for another process's migrations of sqlite:${join(dir, 'gatehouse.sqlite')} to be committed, or its write to end \\(process ${holder.pid} holds its write lock\\); giving up after 60 s\n`), stderr)
      assert.ok(saidAt! < await letGoAt, 'said so while the lock was held')
      assert.ok(exitedAt >= await letGoAt, 'and went on once it was let go')
    }
  })

  it('name the process holding the lock when the data directory\'s file is a link to one elsewhere', async () => {
    // SQLite follows the link: the lock another process holds in WAL mode is on the -shm beside the target.
    const target = tempDir()
    await (await openStore({ dataDir: target })).close()
    const dir = join(tempDir(), 'data')
    mkdirSync(dir, { mode: 0o700 })
    symlinkSync(join(target, 'gatehouse.sqlite'), join(dir, 'gatehouse.sqlite'))
    const holder = await holdLock(join(target, 'gatehouse.sqlite'), 2000)
    const { code, stderr } = await migrate(dir)
    await holder.exited
    assert.equal(code, 0, stderr)
    assert.match(stderr, new RegExp(`^gatehouse: waiting for another process's migrations of sqlite:${join(dir, 'gatehouse.sqlite')} to be committed, or its write to end \\(process ${holder.pid} holds its write lock\\)`), stderr)
  })

  it('write the control characters of the data directory\'s path as escapes, keeping what they say on one line', async () => {
    const parent = tempDir()
    const dir = join(parent, 'data\nsplit\u001b[2J')
    mkdirSync(dir, { mode: 0o700 })
    const holder = await holdLock(join(dir, 'gatehouse.sqlite'), 2000)
    const { code, stderr } = await migrate(dir)
    await holder.exited
    assert.equal(code, 0, stderr)
    const said = stderr.split('\n').find((line) => line.includes('waiting for another process'))
    assert.equal(said, `gatehouse: waiting for another process's migrations of sqlite:${parent}/data\\u000asplit\\u001b[2J/gatehouse.sqlite to be committed, or its write to end (process ${holder.pid} holds its write lock); giving up after 60 s`)
  })

  it('take the lock in the moments a busy serving process lets go of it, without saying they wait', async () => {
    const dir = tempDir()
    const file = join(dir, 'gatehouse.sqlite')
    await (await openStore({ dataDir: dir })).close()
    // Holds the write lock for 45 ms, lets it go for 5 ms, over and over: a process with writes queued all the time.
    const script = `const { DatabaseSync } = require('node:sqlite')
const db = new DatabaseSync(${JSON.stringify(file)})
db.exec('PRAGMA busy_timeout = 1000')
const write = () => { db.exec('BEGIN IMMEDIATE'); setTimeout(() => { db.exec('COMMIT'); setTimeout(write, 5) }, 45) }
write()
console.log('writing')`
    const writer = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = once(writer, 'exit')
    await once(writer.stdout!, 'data')
    const db = new NodeSqliteDatabase(file, 1000)
    try {
      for (let start = 0; start < 10; start++) {
        let said = false
        const began = performance.now()
        await db.startWhenUnlocked(() => db.raw.exec('BEGIN IMMEDIATE'), 60_000, () => said = true)
        const tookMs = performance.now() - began
        db.raw.exec('ROLLBACK')
        assert.ok(!said, `start ${start} said it waited (after ${tookMs.toFixed(0)} ms) for a lock let go every 50 ms`)
        // The writer, which this start kept waiting in SQLite's own sleep, back to its round.
        await delay(150)
      }
    } finally {
      db.close()
      writer.kill()
      await exited
    }
  })
})
