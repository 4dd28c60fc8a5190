import { accessSync, chownSync, closeSync, constants, existsSync, fsyncSync, linkSync, openSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { resolveConfig } from './actions.ts'
import { UsageError, type StorageOptions } from './common.ts'
import { copyBeside, copyDatabase, CopyNotMade, removeStaleCopies } from './database-copy.ts'
import { NotGatehouseDatabase, requireGatehouseDatabase } from './gatehouse-database.ts'
import { dataDirProblem, makeDirectory, sqliteFile, whyNotMade } from '../store/database.ts'
import { DataDirUnusable } from '../store/errors.ts'

/**
 * How recently a process must have said it was alive (every second, src/store/event-bus.ts) to count as serving: a
 * process stopped just now, or killed, stops counting within this long.
 */
const ALIVE_MS = 5_000

export async function restoreBackup(file: string, options: StorageOptions): Promise<void> {
  const config = resolveConfig(options)
  if (config.storage.database) throw new UsageError('restore puts back a SQLite backup; restore PostgreSQL with pg_restore (README: Backups)')
  const backup = resolve(file)
  const target = sqliteFile(config.storage.data_dir)
  const dir = dirname(target)
  // A file named as the data directory would fail the access check, as "permission denied".
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UsageError(`the data directory ${dir} cannot be used: it is a file, not a directory`)
  const problem = existsSync(dir) ? dataDirProblem(dir, target) : undefined
  if (problem) throw new UsageError(`the data directory ${dir} cannot be used: ${problem}`)
  checkBackup(backup)
  if (existsSync(target)) refuseWhileServed(target)
  else if (existsSync(`${target}-wal`)) throw new UsageError(`${target}-wal is there without its database: it may hold its last writes; move it away by hand if it is not needed`)
  if (existsSync(dir)) removeStaleCopies(target, 'restoring', (path, pid) => process.stderr.write(`gatehouse: removed ${path}, left by a restore that did not finish (process ${pid} is gone)\n`))
  const keptAs = await restore(backup, target, config.storage.timeouts.query_seconds * 1000)
  process.stdout.write(`restored ${backup} to sqlite:${target}\n`)
  if (keptAs) process.stderr.write(`the database it replaced is kept as ${keptAs}; delete it once the restored one serves as it should\n`)
}

/** A backup is a whole SQLite database of Gatehouse's: anything else would stop every command after it is in place. */
function checkBackup(backup: string): void {
  let stats
  try {
    stats = statSync(backup, { throwIfNoEntry: false })
  } catch (error) {
    // In a directory this user may not look into (EACCES): said as a file it may not read is, below.
    throw new UsageError(`${backup} cannot be read: ${whyUnreadable(error)}`)
  }
  if (!stats?.isFile()) throw new UsageError(`${backup} ${stats ? 'is not a regular file' : 'does not exist'}`)
  // SQLite would say only "unable to open database file", as if it were no database.
  try {
    accessSync(backup, constants.R_OK)
  } catch (error) {
    throw new UsageError(`${backup} cannot be read: ${whyUnreadable(error)}`)
  }
  let sqlite: DatabaseSync | undefined
  try {
    sqlite = new DatabaseSync(backup, { readOnly: true })
    const [check] = sqlite.prepare('PRAGMA quick_check(1)').all() as { quick_check: string }[]
    if (check?.quick_check !== 'ok') throw new UsageError(`${backup} is damaged (SQLite's check says: ${String(check?.quick_check).slice(0, 200)}); restore another backup`)
    const { newer } = requireGatehouseDatabase(sqlite)
    if (newer.length) process.stderr.write(`gatehouse: warning: the backup has migrations of a newer version: ${newer.join(', ')}\n`)
  } catch (error) {
    if (error instanceof UsageError) throw error
    if (error instanceof NotGatehouseDatabase) throw new UsageError(`${backup} is a SQLite database, but not one of Gatehouse (${error.message})`)
    throw new UsageError(`${backup} is not a SQLite database Gatehouse can restore (${(error as Error).message.split('\n')[0]})`)
  } finally {
    sqlite?.close()
  }
}

function whyUnreadable(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (error as Error).message.split('\n')[0]!
}

/**
 * A process serving the database would go on writing into its WAL, laid over the restored file (or into the file it
 * has open, which no later start finds): the restore waits for every process to stop. Each says it is alive every
 * second, in the database itself. Asked before the copy and again just before the database is replaced.
 */
function refuseWhileServed(target: string): void {
  let sqlite: DatabaseSync | undefined
  let serving = 0
  try {
    sqlite = new DatabaseSync(target, { readOnly: true })
    const row = sqlite.prepare('select count(*) as n from gateway_processes where heartbeat_at > ?').get(Date.now() - ALIVE_MS) as { n: number } | undefined
    serving = Number(row?.n ?? 0)
  } catch (error) {
    // A database without Gatehouse's tables, or too damaged to say, has nobody serving it: that is why it is restored.
    // One this user may not read is another matter: nothing can be said of who serves it.
    if ((error as { errcode?: number }).errcode !== SQLITE_ERROR && (error as { errcode?: number }).errcode !== SQLITE_CORRUPT && (error as { errcode?: number }).errcode !== SQLITE_NOTADB) {
      throw new UsageError(`sqlite:${target} cannot be read to see whether a process serves it (${(error as Error).message.split('\n')[0]})`)
    }
  } finally {
    sqlite?.close()
  }
  if (serving) {
    throw new UsageError(`${serving} gateway process${serving === 1 ? ' is' : 'es are'} serving sqlite:${target}; stop ${serving === 1 ? 'it' : 'them'} first (a process stopped within the last ${ALIVE_MS / 1000} s still counts)`)
  }
}

/** SQLite's result codes for a missing table, a damaged file and a file that is not a database. */
const SQLITE_ERROR = 1
const SQLITE_CORRUPT = 11
const SQLITE_NOTADB = 26

/**
 * Copies the backup beside the database through SQLite (a backup's own WAL, if one is beside it, included), private
 * and flushed (database-copy.ts: an interrupted restore removes it); folds the old database's WAL into it, keeps it
 * under another name (a hard link) and renames the copy over it. At every moment `gatehouse.sqlite` is one of the two
 * whole databases, and the old one is kept, never deleted.
 */
async function restore(backup: string, target: string, busyTimeoutMs: number): Promise<string | undefined> {
  const dir = dirname(target)
  // Made as serve makes it: Node's recursive mkdir retries for ever where a directory cannot be made (in /proc).
  if (!existsSync(dir)) try {
    makeDirectory(dir)
  } catch (error) {
    throw new DataDirUnusable(dir, whyNotMade(error) ?? (error as Error).message, error)
  }
  const copy = copyBeside(target, 'restoring')
  try {
    await copyDatabase(backup, copy, {
      busyTimeoutMs,
      readOnly: true,
      interrupted: (signal) => process.stderr.write(`gatehouse: restore interrupted by ${signal}: nothing was changed; its copy of the backup ${copy} was removed\n`),
    })
    // Run by root for a data directory of the service's user, the database must stay that user's.
    const owner = statSync(dir)
    if (process.geteuid?.() === 0) chownSync(copy, owner.uid, owner.gid)
  } catch (error) {
    if (!(error instanceof CopyNotMade)) rmSync(copy, { force: true })
    throw new RestoreNotMade(dir, error)
  }
  let keptAs: string | undefined
  if (existsSync(target)) try {
    // Asked again after the copy, which may have taken long; a process starting after this leaves writes in the WAL,
    // which foldWal refuses.
    refuseWhileServed(target)
    foldWal(target)
    keptAs = `${target}.before-restore-${new Date().toISOString().replaceAll(':', '-')}`
    linkSync(target, keptAs)
    for (const suffix of ['-wal', '-shm']) if (existsSync(target + suffix)) renameSync(target + suffix, keptAs + suffix)
  } catch (error) {
    rmSync(copy, { force: true })
    throw error
  }
  renameSync(copy, target)
  flush(dir)
  return keptAs
}

/**
 * The backup's copy could not be written (a full disk, an I/O error): no mistake in the command (exit 1, as `backup`'s
 * copy that could not be written), and the database in place was not touched.
 */
class RestoreNotMade extends Error {
  constructor(dir: string, error: unknown) {
    const reason = (error as Error)?.cause ?? error
    super(`the backup could not be copied into ${dir} (${((reason as Error)?.message ?? String(reason)).split('\n')[0]}); nothing was changed`, { cause: error })
  }
}

/** Checkpoints the old database's WAL into it and removes the WAL files, so that the file alone is the whole database. */
function foldWal(target: string): void {
  try {
    const old = new DatabaseSync(target)
    try {
      old.exec('PRAGMA wal_checkpoint(TRUNCATE)')
    } finally {
      old.close()
    }
  } catch (error) {
    const code = (error as { errcode?: number }).errcode
    // A database too damaged to checkpoint is kept aside as it is, its WAL files with it (restore).
    if (code === SQLITE_CORRUPT || code === SQLITE_NOTADB) return
    throw new UsageError(`sqlite:${target} could not be checkpointed before it is replaced (${(error as Error).message.split('\n')[0]}); nothing was changed`)
  }
  const wal = statSync(`${target}-wal`, { throwIfNoEntry: false })
  if (wal && wal.size > 0) {
    throw new UsageError(`sqlite:${target} still has writes in its WAL after a checkpoint: a process has it open; stop it first. Nothing was changed`)
  }
  rmSync(`${target}-wal`, { force: true })
  rmSync(`${target}-shm`, { force: true })
}

function flush(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
