import { existsSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { Command } from 'commander'
import { addStorageOptions, resolveConfig, UsageError, type StorageOptions } from './common.ts'
import { Database, sqliteFile } from '../store/database.ts'

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
      const database = await Database.open({ dataDir: config.storage.data_dir })
      try {
        await database.backupTo(target)
      } catch (error) {
        throw new BackupNotWritten(target, error)
      } finally {
        await database.close()
      }
      process.stdout.write(`backed up ${database.description} to ${target}\n`)
    })
}

/** A backup never replaces a file: yesterday's copy overwritten by a failed run would leave none. */
function checkTarget(target: string): void {
  if (existsSync(target)) throw new UsageError(`${target} already exists; name a new file`)
  const dir = dirname(target)
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`the directory ${dir} does not exist`)
}

/**
 * A copy that could not be made says so, with the system's reason (a full disk, a file system mounted read-only),
 * not as the database being away: trying again shortly would fail the same way.
 */
class BackupNotWritten extends Error {
  constructor(target: string, error: unknown) {
    const reason = (error as Error)?.cause ?? error
    super(`the backup to ${target} was not written: ${(reason as Error)?.message ?? String(reason)}`, { cause: error })
  }
}
