import { spawn } from 'node:child_process'
import { once } from 'node:events'

/**
 * Another process holding a SQLite file's lock for `ms`: the write lock (`BEGIN IMMEDIATE`, as one applying
 * migrations or writing does), or, with `BEGIN EXCLUSIVE` on a file not in WAL mode, the lock that keeps readers
 * out too. Resolves once it holds it, with its process id; `exited` once it has let go and ended.
 */
export async function holdLock(file: string, ms: number, begin: 'BEGIN IMMEDIATE' | 'BEGIN EXCLUSIVE' = 'BEGIN IMMEDIATE') {
  const script = `const { DatabaseSync } = require('node:sqlite')
const db = new DatabaseSync(${JSON.stringify(file)})
db.exec(${JSON.stringify(begin)})
console.log('locked')
setTimeout(() => { db.exec('COMMIT'); db.close() }, ${ms})`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  // Listened for from the start: it may exit before whoever waits for it gets there.
  const exited = once(child, 'exit')
  await once(child.stdout!, 'data')
  return { pid: child.pid!, exited }
}
