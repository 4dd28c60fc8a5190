import { constants, existsSync, linkSync, lstatSync, rmSync, statSync } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { resolveConfig } from './actions.ts'
import { UsageError, type StorageOptions } from './common.ts'
import { copyBeside, copyDatabase, CopyNotMade, removeStaleCopies } from './database-copy.ts'
import { NotGatehouseDatabase, requireGatehouseDatabase } from './gatehouse-database.ts'
import { accessible, sqliteFile } from '../store/database.ts'
import { DatabaseUnusable, DataDirUnusable } from '../store/errors.ts'

export async function backUpDatabase(file: string, options: StorageOptions): Promise<void> {
  const config = resolveConfig(options)
  if (config.storage.database) throw new UsageError('backup copies the SQLite database; back up PostgreSQL with pg_dump (README: Storage)')
  // `path.resolve` drops a trailing slash, which says the name is meant as a directory: the backup is a file.
  if (/[/\\]$/.test(file)) throw new UsageError(`${file} names a directory; name the backup's file (${file}gatehouse-backup.sqlite)`)
  const target = resolve(file)
  checkTarget(target)
  const source = sqliteFile(config.storage.data_dir)
  requireReadable(source)
  // Opening a data directory without a database would make an empty one, and back that up.
  if (!existsSync(source)) throw new UsageError(`no database to back up in ${dirname(source)}`)
  refuseNotGatehouseDatabase(source)
  removeStaleCopies(target, 'partial', (path, pid) => process.stderr.write(`gatehouse: removed ${path}, left by a backup that did not finish (process ${pid} is gone)\n`))
  await backUp(source, target, config.storage.timeouts.query_seconds * 1000)
  process.stdout.write(`backed up sqlite:${source} to ${target}\n`)
}

/** A backup never replaces a file: yesterday's copy overwritten by a failed run would leave none. */
function checkTarget(target: string): void {
  // The directory first: a file named as one (FILE/b.sqlite) fails lstat with ENOTDIR, which would come out raw.
  const dir = dirname(target)
  if (!existsSync(dir)) throw new UsageError(`the directory ${dir} does not exist`)
  if (!statSync(dir).isDirectory()) throw new UsageError(`${dir} is not a directory`)
  // lstat: a link, even one to nothing, is something there; the copy would be linked into its place and fail at the end.
  let existing
  try {
    existing = lstatSync(target, { throwIfNoEntry: false })
  } catch (error) {
    // A name no file can have (longer than the file system takes), a loop of links: a mistake in the path.
    throw new UsageError(`${target} cannot be a backup's file: ${(error as NodeJS.ErrnoException).code === 'ENAMETOOLONG' ? 'its name is too long' : (error as Error).message}`)
  }
  if (existing) throw targetExists(target)
}

/** The one refusal of a target that exists, whether it was there before the backup began or appeared meanwhile. */
function targetExists(target: string): UsageError {
  return new UsageError(`${target} already exists; name a new file`)
}

/**
 * A data directory this user may not look into would seem to hold no database, and a database file it may not read
 * would fail as a backup that could not be written (exit 1, as a full disk): each is named as what it is. Reading is
 * all a copy needs, so the service's data directory may be backed up by another user (root, a backup account).
 */
function requireReadable(source: string): void {
  const dir = dirname(source)
  if (existsSync(dir) && statSync(dir).isDirectory() && !accessible(dir, constants.R_OK | constants.X_OK)) {
    throw new DataDirUnusable(dir, 'permission denied (it must be readable)', undefined)
  }
  if (existsSync(source) && !accessible(source, constants.R_OK)) {
    throw new DataDirUnusable(dir, `permission denied on ${basename(source)} (it must be readable)`, undefined)
  }
}

/** SQLite's result code for a file that is not a database. */
const SQLITE_NOTADB = 26

/**
 * A file that is not a database (a wrong file restored as a backup) is named as every command names it, and a
 * database that is not Gatehouse's (an empty file, another application's) as a data directory that holds none, before
 * any copy is begun: its copy would be no backup, and `restore` would refuse it. Read only and without waiting: a lock
 * another process holds is the copy's to wait for.
 */
function refuseNotGatehouseDatabase(source: string): void {
  let sqlite: DatabaseSync | undefined
  try {
    sqlite = new DatabaseSync(source, { readOnly: true })
    requireGatehouseDatabase(sqlite, { servable: false })
  } catch (error) {
    if ((error as { errcode?: number }).errcode === SQLITE_NOTADB) throw new DatabaseUnusable(`sqlite:${source}`, error)
    if (error instanceof NotGatehouseDatabase) {
      throw new DataDirUnusable(dirname(source), `it holds no database (${basename(source)} is not Gatehouse's: ${error.message})`, undefined)
    }
  } finally {
    sqlite?.close()
  }
}

/**
 * A consistent copy of the whole database, taken while other processes go on reading and writing, written beside
 * `target` under another name (database-copy.ts), then linked, so `target` is only ever a complete copy.
 */
async function backUp(source: string, target: string, busyTimeoutMs: number): Promise<void> {
  const partial = copyBeside(target, 'partial')
  try {
    await copyDatabase(source, partial, {
      busyTimeoutMs,
      interrupted: (signal) => process.stderr.write(`gatehouse: backup interrupted by ${signal}: ${target} was not written; its partial copy ${partial} was removed\n`),
    })
    // A link, not a rename: it fails rather than replace a file that appeared at `target` meanwhile (another backup
    // to the same file, begun at the same time), which is refused as a file there from the start is.
    linkSync(partial, target)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST' && (error as NodeJS.ErrnoException).syscall === 'link') throw targetExists(target)
    throw new BackupNotWritten(target, error, error instanceof CopyNotMade ? undefined : partial)
  } finally {
    rmSync(partial, { force: true })
  }
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
