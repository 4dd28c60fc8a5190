import { Command } from 'commander'
import { addStorageOptions, lazyAction } from './common.ts'

/** What the restore command does (restore.ts), loaded when it runs. */
const actions = () => import('./restore.ts')

export function restoreCommand(): Command {
  return addStorageOptions(new Command('restore')
    .description('put a backup made by `backup` in place of the SQLite database, once no process serves it (PostgreSQL: use pg_restore)')
    .argument('<file>', 'the backup to restore; it is copied, not moved'))
    .action(lazyAction(actions, 'restoreBackup'))
}
