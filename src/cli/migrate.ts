import { existsSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { resolveConfig, storageLocation } from './actions.ts'
import type { StorageOptions } from './common.ts'
import { Database, dataDirProblem, sqliteFile, type DatabaseLocation } from '../store/database.ts'
import { DatabaseUnavailable } from '../errors.ts'
import { DatabaseUnusable, DataDirUnusable, unusableDatabase } from '../store/errors.ts'
import { migrationNames } from '../store/migrations/index.ts'

interface MigrateOptions extends StorageOptions {
  status?: boolean
}

export async function migrate(options: MigrateOptions): Promise<void> {
  const location = storageLocation(resolveConfig(options))
  if (options.status) return printStatus(location)
  const database = await Database.open(location)
  try {
    const applied = await database.migrate().catch((error: unknown) => {
      throw unusableDatabase(database.description, error)
    })
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : `up to date (${database.description})\n`)
    // Said as serve says it: this version serves such a database, but an operator about to roll back should know.
    const { unknown } = await database.migrationStatus()
    if (unknown.length) process.stderr.write(`gatehouse: warning: the database also has migrations of a newer version: ${unknown.join(', ')}\n`)
  } finally {
    await database.close()
  }
}

/** What `migrate` (or the next `serve`) would do, for an operator planning an upgrade: a dry run. */
async function printStatus(location: DatabaseLocation): Promise<void> {
  // Opening a data directory without a database would make one.
  const file = sqliteFile(location.dataDir)
  // A data directory this user may not look into hides its database: it would be reported as none yet, all pending.
  const dir = dirname(file)
  const problem = !location.url && existsSync(dir) && statSync(dir).isDirectory() ? dataDirProblem(dir, file) : undefined
  if (problem) throw new DataDirUnusable(dir, problem, undefined)
  if (!location.url && !existsSync(file)) return writeStatus(`sqlite:${file} (none yet)`, { applied: 0, pending: [...migrationNames], unknown: [] })
  const database = await Database.open(location)
  try {
    // One that does not answer fails on the status's query, saying why, in migrate's own words.
    const status = await readStatus(database).catch((error: unknown) => {
      // The query's own failure (a refused connection, a database that does not exist), not the API's "try again".
      throw new DatabaseUnusable(database.description, error instanceof DatabaseUnavailable && error.cause !== undefined ? error.cause : error)
    })
    writeStatus(database.description, status)
  } finally {
    await database.close()
  }
}

async function readStatus(database: Database): Promise<{ applied: number; pending: string[]; unknown: string[] }> {
  const migrated = await database.hasTables() !== false
  return migrated ? await database.migrationStatus() : { applied: 0, pending: [...migrationNames], unknown: [] }
}

function writeStatus(description: string, status: { applied: number; pending: string[]; unknown: string[] }): void {
  const list = (names: string[]) => names.length ? names.join(', ') : 'none'
  process.stdout.write([
    `database: ${description}`,
    `applied: ${status.applied}`,
    `pending: ${list(status.pending)}`,
    // A newer version's processes run on this database: this version serves beside them (a rolling upgrade) but
    // must not be what is left running once they are gone.
    `from a newer version: ${list(status.unknown)}`,
  ].join('\n') + '\n')
}
