import { lstatSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Command } from 'commander'
import { isPostgresUrl, POSTGRES_URL_FORM } from '../config/schema.ts'
import { Database, defaultTimeouts, redactUrl, sqliteFile, urlPasswords, type DatabaseLocation } from '../store/database.ts'
import { CopyRefused, DatabaseUnusable } from '../store/errors.ts'
import { copyDatabase, type CopiedTable } from '../store/transfer.ts'
import { openExistingDatabase, resolveConfig, storageLocation } from './actions.ts'
import { printList, UsageError, type StorageOptions } from './common.ts'

interface CopyOptions extends StorageOptions {
  to?: string
  toDataDir?: string
  statementTimeout?: number
}

export async function copyWholeDatabase(options: CopyOptions, command: Command): Promise<void> {
  const config = resolveConfig(options)
  const from = copyTimeouts(storageLocation(config), options.statementTimeout)
  const to = targetLocation(options, command, from)
  const source = await openExistingDatabase(from)
  // Asked first, so that a source that does not answer is not taken for a failed copy into the target.
  await source.migrationStatus().catch(async (error: unknown) => {
    await source.close()
    throw new DatabaseUnusable(source.description, (error as Error)?.cause ?? error)
  })
  const made = to.url ? undefined : new MadeByTheCopy(to.dataDir)
  const onSignal = (signal: NodeJS.Signals) => {
    made?.remove()
    process.stderr.write(`gatehouse: the copy into ${describe(to)} was interrupted (${signal}), and nothing of it was kept\n`)
    for (const name of INTERRUPTS) process.removeListener(name, onSignal)
    process.kill(process.pid, signal)
  }
  for (const name of INTERRUPTS) process.on(name, onSignal)
  try {
    const target = await Database.open(to)
    try {
      const copied = await copyDatabase(source, target).catch((error: unknown) => {
        if (error instanceof CopyRefused) throw new UsageError(`${error.message}; nothing was copied into ${target.description}`)
        throw new CopyFailed(target.description, error)
      })
      report(source.description, target.description, copied)
    } finally {
      await target.close()
    }
  } catch (error) {
    made?.remove()
    throw error
  } finally {
    for (const name of INTERRUPTS) process.removeListener(name, onSignal)
    await source.close()
  }
}

/**
 * The copy's own time limits, on both databases: not `storage.timeouts.query_seconds`, which bounds a request's
 * queries, while the copy counts and reads whole tables, and its transaction on one side waits while the other works.
 * Connecting stays bounded as configured, so a database that does not answer is said at once.
 */
function copyTimeouts(location: DatabaseLocation, statementTimeout: number | undefined): DatabaseLocation {
  const queryMs = statementTimeout === undefined ? Infinity : statementTimeout * 1000
  return { ...location, timeouts: { connectMs: (location.timeouts ?? defaultTimeouts).connectMs, queryMs, idleInTransactionMs: Infinity } }
}

/** Where the copy goes: a PostgreSQL URL or a data directory, never the database it reads. */
function targetLocation(options: CopyOptions, command: Command, from: DatabaseLocation): DatabaseLocation {
  const { to, toDataDir } = options
  if (to === '' || toDataDir === '') throw new UsageError(`${to === '' ? '--to (or GATEHOUSE_COPY_TO_DATABASE_URL)' : '--to-data-dir'} is empty; give a value`)
  if (to === undefined && toDataDir === undefined) throw new UsageError('give the database to copy into: --to postgres://... or --to-data-dir DIR')
  // Not echoed: a value that is not a URL cannot be told where its password is, to hide it.
  if (to !== undefined && !isPostgresUrl(to)) throw new UsageError(`--to (or GATEHOUSE_COPY_TO_DATABASE_URL) ${POSTGRES_URL_FORM}; copy into SQLite with --to-data-dir`)
  if (to !== undefined && command.getOptionValueSource('to') === 'cli' && urlPasswords(to).length) {
    process.stderr.write('gatehouse: warning: a password given in --to is readable by every user of this machine (ps); give it in GATEHOUSE_COPY_TO_DATABASE_URL instead\n')
  }
  const target: DatabaseLocation = { url: to, dataDir: toDataDir ?? '', timeouts: from.timeouts, poolConnections: 1 }
  if (describe(target) === describe(from)) throw new UsageError(`the copy would go into the database it reads, ${describe(from)}`)
  return target
}

/** The signals that end a run from a terminal, a supervisor or a closed session. */
const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * What a copy into a SQLite data directory makes there: the directory (and its missing parents), or, in one that
 * exists, the database file and the files SQLite keeps beside it. Noted before anything is opened, so that a copy that
 * fails or is interrupted removes those and nothing else (a database only migrated, or anything else there before,
 * stays): the same command can then be run again.
 */
class MadeByTheCopy {
  readonly #paths: string[]
  readonly #directory: string | undefined

  constructor(dataDir: string) {
    const file = sqliteFile(dataDir)
    this.#directory = firstMissing(dirname(file))
    this.#paths = this.#directory ? [] : SQLITE_FILES.map((suffix) => file + suffix).filter((path) => !exists(path))
  }

  remove(): void {
    if (this.#directory) rmSync(this.#directory, { recursive: true, force: true })
    for (const path of this.#paths) rmSync(path, { force: true })
  }
}

/** The database file, its write-ahead log and shared-memory index, and the rollback journal of its first writes. */
const SQLITE_FILES = ['', '-wal', '-shm', '-journal']

/** The outermost directory of `dir`'s path that does not exist yet, which making `dir` makes; undefined if `dir` exists. */
function firstMissing(dir: string): string | undefined {
  let missing: string | undefined
  for (let path = dir; !exists(path); path = dirname(path)) {
    missing = path
    if (dirname(path) === path) break
  }
  return missing
}

/**
 * Whether anything is, or may be, at `path`: a link that leads nowhere is something there too, and a path that cannot
 * be looked at (a file where a directory should be, one this user may not look into) is not to be removed either.
 */
function exists(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined
  } catch {
    return true
  }
}

function describe(location: DatabaseLocation): string {
  return location.url ? redactUrl(location.url) : `sqlite:${sqliteFile(location.dataDir)}`
}

/** The copy failed part way (the target refused a row, the connection broke): its transaction, and so all of it, is undone. */
class CopyFailed extends Error {
  constructor(target: string, error: unknown) {
    const reason = (error as Error)?.cause ?? error
    super(`the copy into ${target} failed, and nothing of it was kept: ${((reason as Error)?.message ?? String(reason)).split('\n')[0]}`, { cause: error })
  }
}

function report(source: string, target: string, copied: CopiedTable[]): void {
  process.stdout.write(`copied ${source} into ${target}\n`)
  printList(copied, false, ['TABLE', 'ROWS'], (table) => [table.name, String(table.rows)], (table) => table)
  const rows = copied.reduce((sum, table) => sum + table.rows, 0)
  process.stdout.write(`${copied.length} tables, ${rows} rows, counted again on both sides\n`)
}
