import { closeSync, fsyncSync, lstatSync, openSync, readdirSync, rmSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { UsageError } from './common.ts'

/**
 * Whole copies of a SQLite database, made beside where they go under a name of the run's own (`backup`'s partial copy,
 * `restore`'s copy of the backup) and then moved into place: private from their first byte, removed when the run is
 * interrupted, and, when a run was killed outright, by the next.
 */

/** The signals that end a run from a terminal, a supervisor or a closed session. */
const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** The file SQLite writes beside a copy while it makes it (VACUUM INTO's rollback journal). */
const JOURNAL = '-journal'

/** Where a run writes its copy of `target` until it is complete: beside it, named for `kind` and the run's process. */
export function copyBeside(target: string, kind: 'partial' | 'restoring', pid = process.pid): string {
  return `${target}.${kind}-${pid}`
}

/**
 * Copies `source` into `copy`, a new file, through SQLite (`VACUUM INTO`: one consistent snapshot, taken while other
 * processes go on reading and writing), and flushes it to disk. The file is made first, empty and readable by its
 * owner only (which VACUUM INTO accepts): made by VACUUM INTO, it had the umask's mode while it was written, and a
 * user who opened it then could read it all. The copy runs on a thread of its own, so that a signal is answered while
 * it runs: the copy and its journal are removed, `interrupted` is told (to say so), then the signal ends the process
 * as it would have. A copy that fails is removed too, and the failure thrown.
 */
export async function copyDatabase(source: string, copy: string, options: { busyTimeoutMs: number; readOnly?: boolean; interrupted(signal: NodeJS.Signals): void }): Promise<void> {
  const removeCopy = () => {
    rmSync(copy, { force: true })
    rmSync(copy + JOURNAL, { force: true })
  }
  const onSignal = (signal: NodeJS.Signals) => {
    removeCopy()
    options.interrupted(signal)
    for (const name of INTERRUPTS) process.removeListener(name, onSignal)
    process.kill(process.pid, signal)
  }
  for (const name of INTERRUPTS) process.on(name, onSignal)
  try {
    closeSync(openSync(copy, 'wx', 0o600))
  } catch (error) {
    for (const name of INTERRUPTS) process.removeListener(name, onSignal)
    throw new CopyNotMade(copy, error)
  }
  try {
    await vacuumInto(source, copy, options.busyTimeoutMs, options.readOnly ?? false)
    const written = openSync(copy, 'r')
    try {
      fsyncSync(written)
    } finally {
      closeSync(written)
    }
  } catch (error) {
    removeCopy()
    throw error
  } finally {
    for (const name of INTERRUPTS) process.removeListener(name, onSignal)
  }
}

/** The copy's file could not be made (a directory not writable, a full disk): there is none to remove. */
export class CopyNotMade extends Error {
  constructor(copy: string, error: unknown) {
    super(`${copy} could not be made`, { cause: error })
  }
}

/** Node's own SQLite, on a connection of the thread's own; it waits for another process's lock up to the query timeout. */
const VACUUM_INTO = `const { workerData } = require('node:worker_threads')
const { DatabaseSync } = require('node:sqlite')
const db = new DatabaseSync(workerData.source, { timeout: workerData.busyTimeoutMs, readOnly: workerData.readOnly })
try { db.prepare('VACUUM INTO ?').run(workerData.copy) } finally { db.close() }`

async function vacuumInto(source: string, copy: string, busyTimeoutMs: number, readOnly: boolean): Promise<void> {
  const worker = new Worker(VACUUM_INTO, { eval: true, execArgv: [], workerData: { source, copy, busyTimeoutMs, readOnly } })
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject)
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the copy stopped (status ${code})`))))
  })
}

/**
 * A run killed outright (SIGKILL, the machine stopping) leaves its copy of `target`, and its journal. One named for a
 * process that is gone, or for this one (a container's process has the same id at every run), is removed, and
 * `removed` told of it; another run's, still going, is left alone. Anything but a file of such a name is someone
 * else's: the run is refused, before any removal.
 */
export function removeStaleCopies(target: string, kind: 'partial' | 'restoring', removed: (path: string, pid: number) => void): void {
  const prefix = basename(copyBeside(target, kind, 0)).slice(0, -1)
  const stale: { path: string; pid: number }[] = []
  for (const name of readdirSync(dirname(target))) {
    if (!name.startsWith(prefix)) continue
    const rest = name.slice(prefix.length)
    const pid = Number(rest.endsWith(JOURNAL) ? rest.slice(0, -JOURNAL.length) : rest)
    if (!Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && isRunning(pid))) continue
    stale.push({ path: join(dirname(target), name), pid })
  }
  for (const { path } of stale) {
    const stats = lstatSync(path, { throwIfNoEntry: false })
    if (stats && !stats.isFile()) {
      throw new UsageError(`${path} is in the way: a ${stats.isDirectory() ? 'directory' : 'special file or link'}, named as the ${kind === 'partial' ? 'partial copy of a backup to this file' : 'copy a restore makes'} is; move or remove it`
        + (kind === 'partial' ? ', or back up to another file name' : ''))
    }
  }
  for (const { path, pid } of stale) {
    rmSync(path, { force: true })
    removed(path, pid)
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: another user's process, running.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}
