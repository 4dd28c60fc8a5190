import { Command } from 'commander'
import { addStorageOptions, lazyAction } from './common.ts'

/** What the backup command does (backup.ts), loaded when it runs. */
const actions = () => import('./backup.ts')

export function backupCommand(): Command {
  return addStorageOptions(new Command('backup')
    .description('copy the SQLite database, while it serves, into FILE (PostgreSQL: use pg_dump)')
    .argument('<file>', 'the copy to write; it must not exist yet'))
    .action(lazyAction(actions, 'backUpDatabase'))
}
