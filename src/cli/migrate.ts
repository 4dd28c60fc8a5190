import { Command } from 'commander'
import { addStorageOptions, resolveConfig, type StorageOptions } from './common.ts'
import { Database } from '../store/database.ts'

export function migrateCommand(): Command {
  return addStorageOptions(new Command('migrate').description('create or upgrade the database schema (serve does this too)'))
    .action(async (options: StorageOptions) => {
      const config = resolveConfig(options)
      const database = await Database.open({ url: config.storage.database, dataDir: config.storage.data_dir })
      try {
        const applied = await database.migrate()
        process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : `up to date (${database.description})\n`)
      } finally {
        await database.close()
      }
    })
}
