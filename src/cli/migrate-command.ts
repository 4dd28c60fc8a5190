import { Command } from 'commander'
import { addStorageOptions, lazyAction } from './common.ts'

/** What the migrate command does (migrate.ts), loaded when it runs. */
const actions = () => import('./migrate.ts')

export function migrateCommand(): Command {
  return addStorageOptions(new Command('migrate').description('create or upgrade the database schema (serve does this too)')
    .option('--status', 'show the migrations applied, pending and from a newer version, and change nothing'))
    .action(lazyAction(actions, 'migrate'))
}
