import assert from 'node:assert/strict'
import { readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { lowerThreadPoolPriority, POOL_NICE_STEP } from '../../src/cli/pool-priority.ts'
import { HASHING_THREAD_NAME } from '../../src/directory/hashing-threads.ts'
import { adminAuth, spawnGateway, tempDir } from '../helpers/gateway.ts'

/** Each thread of a process: its name and its nice value (field 19 of /proc's stat, after the name). */
function threadsOf(pid: number | 'self'): { id: number; name: string; nice: number }[] {
  return readdirSync(`/proc/${pid}/task`).map((id) => {
    const stat = readFileSync(`/proc/${pid}/task/${id}/stat`, 'utf8')
    const afterName = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { id: Number(id), name: readFileSync(`/proc/${pid}/task/${id}/comm`, 'utf8').trim(), nice: Number(afterName[16]) }
  })
}

const poolThreads = (pid: number | 'self') => threadsOf(pid).filter((thread) => thread.name === 'libuv-worker')
const hashingThreads = (pid: number) => threadsOf(pid).filter((thread) => thread.name === HASHING_THREAD_NAME)

/** The threads `select` finds once there are some and all have `nice`, or as they are after five seconds. */
async function settledThreads(select: () => { nice: number }[], nice: number): Promise<{ nice: number }[]> {
  let threads = select()
  for (let waited = 0; waited < 5000 && !(threads.length > 0 && threads.every((thread) => thread.nice === nice)); waited += 50) {
    await sleep(50)
    threads = select()
  }
  return threads
}

/** The nice of a process's main thread (the event loop's). */
const niceOf = (pid: number) => threadsOf(pid).find((thread) => thread.id === pid)!.nice

describe('the thread pool runs below the event loop', { skip: process.platform !== 'linux' }, () => {
  it('serve lowers libuv\'s pool threads and the password hashing threads by ten nice steps once it listens, and leaves the event loop as it was', async () => {
    const dir = tempDir()
    const gateway = await spawnGateway(['--data-dir', join(dir, 'data')])
    try {
      const pid = gateway.process.pid!
      // The process starts at this one's nice (a CI runner may run everything below the default).
      const started = niceOf(process.pid)
      const lowered = Math.min(19, started + POOL_NICE_STEP)
      const pool = await settledThreads(() => poolThreads(pid), lowered)
      assert.ok(pool.length >= 1, 'the process has pool threads')
      assert.deepEqual(pool.map((thread) => thread.nice), pool.map(() => lowered))
      assert.equal(niceOf(pid), started, 'the event loop keeps its priority')
      // A basic-auth call verifies the password on the hashing threads: the one that hashed the admin's password at
      // the first start, before the process listened, is lowered as well as any started since.
      const me = await fetch(`${gateway.url}/api/gateway/v1/me/`, { headers: adminAuth })
      assert.equal(me.status, 200)
      const hashing = await settledThreads(() => hashingThreads(pid), lowered)
      assert.ok(hashing.length >= 1, 'the process has hashing threads')
      assert.deepEqual(hashing.map((thread) => thread.nice), hashing.map(() => lowered))
    } finally {
      await gateway.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('lowers each pool thread from its own priority, never past 19, and counts the threads it lowered', async () => {
    const loopBefore = niceOf(process.pid)
    const before = new Map(poolThreads('self').map((thread) => [thread.id, thread.nice]))
    const lowered = await lowerThreadPoolPriority(3)
    const after = poolThreads('self')
    assert.equal(lowered, after.length)
    assert.ok(lowered >= 1)
    for (const thread of after) assert.equal(thread.nice, Math.min(19, (before.get(thread.id) ?? loopBefore) + 3))
    assert.equal(niceOf(process.pid), loopBefore, 'the event loop is left alone')

    assert.equal(await lowerThreadPoolPriority(30), after.length)
    assert.deepEqual(poolThreads('self').map((thread) => thread.nice), after.map(() => 19))
  })
})
