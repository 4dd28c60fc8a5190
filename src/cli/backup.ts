import { closeSync, existsSync, fsyncSync, linkSync, lstatSync, openSync, readdirSync, rmSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { Worker } from 'node:worker_threads'
import { Command } from 'commander'
import { addStorageOptions, resolveConfig, UsageError, type StorageOptions } from './common.ts'
import { sqliteFile } from '../store/database.ts'
import { DatabaseUnusable } from '../store/errors.ts'

/** The signals that end a backup run from a terminal, a supervisor or a closed session. */
const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

export function backupCommand(): Command {
  return addStorageOptions(new Command('backup')
    .description('copy the SQLite database, while it serves, into FILE (PostgreSQL: use pg_dump)')
    .argument('<file>', 'the copy to write; it must not exist yet'))
    .action(async (file: string, options: StorageOptions) => {
      const config = resolveConfig(options)
      if (config.storage.database) throw new UsageError('backup copies the SQLite database; back up PostgreSQL with pg_dump (README: Storage)')
      const target = resolve(file)
      checkTarget(target)
      const source = sqliteFile(config.storage.data_dir)
      // Opening a data directory without a database would make an empty one, and back that up.
      if (!existsSync(source)) throw new UsageError(`no database to back up in ${dirname(source)}`)
      refuseNotADatabase(source)
      removeStalePartials(target)
      await backUp(source, target, config.storage.timeouts.query_seconds * 1000)
      process.stdout.write(`backed up sqlite:${source} to ${target}\n`)
    })
}

/** A backup never replaces a file: yesterday's copy overwritten by a failed run would leave none. */
function checkTarget(target: string): void {
  // lstat: a link, even one to nothing, is something there; the copy would be linked into its place and fail at the end.
  if (lstatSync(target, { throwIfNoEntry: false })) throw new UsageError(`${target} already exists; name a new file`)
  const dir = dirname(target)
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`the directory ${dir} does not exist`)
}

/** SQLite's result code for a file that is not a database. */
const SQLITE_NOTADB = 26

/**
 * A file that is not a database (a wrong file restored as a backup) is named as every command names it, before any
 * copy is begun. Read only and without waiting: a lock another process holds is the copy's to wait for.
 */
function refuseNotADatabase(source: string): void {
  let sqlite: DatabaseSync | undefined
  try {
    sqlite = new DatabaseSync(source, { readOnly: true })
    sqlite.prepare('select 1 from sqlite_master limit 1').get()
  } catch (error) {
    if ((error as { errcode?: number }).errcode === SQLITE_NOTADB) throw new DatabaseUnusable(`sqlite:${source}`, error)
  } finally {
    sqlite?.close()
  }
}

/** Where a run writes its copy until it is complete: beside the target, named for the run's process. */
function partialFile(target: string, pid = process.pid): string {
  return `${target}.partial-${pid}`
}

/**
 * A run killed outright (SIGKILL, the machine stopping) leaves its partial copy. One named for a process that is
 * gone, or for this one (a container's process has the same id at every run), is removed; another run's, still
 * going, is left alone.
 */
function removeStalePartials(target: string): void {
  const prefix = `${basename(target)}.partial-`
  const stale: { path: string; pid: number }[] = []
  for (const name of readdirSync(dirname(target))) {
    const pid = name.startsWith(prefix) ? Number(name.slice(prefix.length)) : NaN
    if (!Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && isRunning(pid))) continue
    stale.push({ path: join(dirname(target), name), pid })
  }
  // A backup only ever leaves a file: anything else of that name is someone's, and all are checked before any removal.
  for (const { path } of stale) {
    const stats = lstatSync(path, { throwIfNoEntry: false })
    if (stats && !stats.isFile()) {
      throw new UsageError(`${path} is in the way: a ${stats.isDirectory() ? 'directory' : 'special file or link'}, named as the partial copy `
        + 'of a backup to this file is; move or remove it, or back up to another file name')
    }
  }
  for (const { path, pid } of stale) {
    rmSync(path, { force: true })
    process.stderr.write(`gatehouse: removed ${path}, left by a backup that did not finish (process ${pid} is gone)\n`)
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

/**
 * A consistent copy of the whole database, taken while other processes go on reading and writing (`VACUUM INTO`
 * reads one snapshot, as any reader in WAL mode does, and blocks no writer). It is written beside `target` under
 * another name, flushed to disk, then linked, so `target` is only ever a complete copy. The copy runs on a thread of
 * its own, so that a signal is answered while it runs: the partial copy is removed, then the signal ends the process
 * as it would have (the copy cannot be stopped part way, and there is nothing left to finish).
 */
async function backUp(source: string, target: string, busyTimeoutMs: number): Promise<void> {
  const partial = partialFile(target)
  let made = false
  const interrupted = (signal: NodeJS.Signals) => {
    rmSync(partial, { force: true })
    process.stderr.write(`gatehouse: backup interrupted by ${signal}: ${target} was not written; its partial copy ${partial} was removed\n`)
    for (const name of INTERRUPTS) process.removeListener(name, interrupted)
    process.kill(process.pid, signal)
  }
  for (const name of INTERRUPTS) process.on(name, interrupted)
  try {
    // Made first, empty (which VACUUM INTO accepts), so the copy is as private as the database.
    closeSync(openSync(partial, 'wx', 0o600))
    made = true
    await copyDatabase(source, partial, busyTimeoutMs)
    const written = openSync(partial, 'r')
    try {
      fsyncSync(written)
    } finally {
      closeSync(written)
    }
    // A link, not a rename: it fails rather than replace a file that appeared at `target` meanwhile.
    linkSync(partial, target)
  } catch (error) {
    throw new BackupNotWritten(target, error, made ? partial : undefined)
  } finally {
    rmSync(partial, { force: true })
    for (const name of INTERRUPTS) process.removeListener(name, interrupted)
  }
}

/** Node's own SQLite, on a connection of the thread's own; it waits for another process's lock up to the query timeout. */
const COPY = `const { workerData } = require('node:worker_threads')
const { DatabaseSync } = require('node:sqlite')
const db = new DatabaseSync(workerData.source, { timeout: workerData.busyTimeoutMs })
try { db.prepare('VACUUM INTO ?').run(workerData.partial) } finally { db.close() }`

async function copyDatabase(source: string, partial: string, busyTimeoutMs: number): Promise<void> {
  const worker = new Worker(COPY, { eval: true, execArgv: [], workerData: { source, partial, busyTimeoutMs } })
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject)
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the copy stopped (status ${code})`))))
  })
}

/**
 * A copy that could not be made says so, with the system's reason (a full disk, a file system mounted read-only),
 * not as the database being away: trying again shortly would fail the same way.
 */
class BackupNotWritten extends Error {
  constructor(target: string, error: unknown, partial: string | undefined) {
    const reason = (error as Error)?.cause ?? error
    const removed = partial ? `; its partial copy ${partial} was removed` : ''
    super(`the backup to ${target} was not written: ${(reason as Error)?.message ?? String(reason)}${removed}`, { cause: error })
  }
}
