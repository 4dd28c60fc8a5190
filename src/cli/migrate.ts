import { Command } from 'commander'
import { addStorageOptions, resolveConfig, storageLocation, type StorageOptions } from './common.ts'
import { Database } from '../store/database.ts'
import { DatabaseUnusable } from '../store/errors.ts'

export function migrateCommand(): Command {
  return addStorageOptions(new Command('migrate').description('create or upgrade the database schema (serve does this too)'))
    .action(async (options: StorageOptions) => {
      const database = await Database.open(storageLocation(resolveConfig(options)))
      try {
        const applied = await database.migrate().catch((error: unknown) => {
          throw new DatabaseUnusable(database.description, error)
        })
        process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : `up to date (${database.description})\n`)
      } finally {
        await database.close()
      }
    })
}
