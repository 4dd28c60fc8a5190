import { Command, Option } from 'commander'
import { addStorageOptions, lazyAction, positiveInteger } from './common.ts'

/** What the copy-database command does (copy-database.ts), loaded when it runs. */
const actions = () => import('./copy-database.ts')

/**
 * `copy-database`: the database the storage options name (as every command reads it) copied whole into another, on
 * the other backend or the same, that holds no data yet (src/store/transfer.ts). How to move a deployment with it:
 * README, Storage.
 */
export function copyDatabaseCommand(): Command {
  return addStorageOptions(new Command('copy-database')
    .description('copy every account, token, key, session, setting and activity entry into an empty database (SQLite to PostgreSQL, or back)')
    .addOption(new Option('--to <url>', 'the PostgreSQL database to copy into, postgres://...').env('GATEHOUSE_COPY_TO_DATABASE_URL'))
    .addOption(new Option('--to-data-dir <dir>', 'the SQLite data directory to copy into instead (made if missing)').conflicts('to'))
    .addOption(new Option('--statement-timeout <seconds>', 'how long each of the copy\'s statements, or wait for a lock, may take (default: no limit)').argParser(positiveInteger('--statement-timeout'))))
    .action(lazyAction(actions, 'copyWholeDatabase'))
}
