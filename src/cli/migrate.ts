import { existsSync } from 'node:fs'
import { Command } from 'commander'
import { addStorageOptions, resolveConfig, type StorageOptions } from './common.ts'
import { Database, sqliteFile } from '../store/database.ts'
import { migrationNames } from '../store/migrations/index.ts'

interface MigrateOptions extends StorageOptions {
  status?: boolean
}

export function migrateCommand(): Command {
  return addStorageOptions(new Command('migrate').description('create or upgrade the database schema (serve does this too)'))
    .option('--status', 'show the migrations applied, pending and from a newer version, and change nothing')
    .action(async (options: MigrateOptions) => {
      const config = resolveConfig(options)
      if (options.status) return printStatus(config.storage.database, config.storage.data_dir)
      const database = await Database.open({ url: config.storage.database, dataDir: config.storage.data_dir })
      try {
        const applied = await database.migrate()
        process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : `up to date (${database.description})\n`)
      } finally {
        await database.close()
      }
    })
}

/** What `migrate` (or the next `serve`) would do, for an operator planning an upgrade: a dry run. */
async function printStatus(url: string | undefined, dataDir: string): Promise<void> {
  // Opening a data directory without a database would make one.
  if (!url && !existsSync(sqliteFile(dataDir))) return writeStatus(`sqlite:${sqliteFile(dataDir)} (none yet)`, { applied: 0, pending: [...migrationNames], unknown: [] })
  const database = await Database.open({ url, dataDir })
  try {
    const tables = await database.db.introspection.getTables({ withInternalKyselyTables: true })
    const migrated = tables.some((table) => table.name === 'kysely_migration')
    writeStatus(database.description, migrated ? await database.migrationStatus() : { applied: 0, pending: [...migrationNames], unknown: [] })
  } finally {
    await database.close()
  }
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
