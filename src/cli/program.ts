import { Command } from 'commander'
import { version } from '../version.ts'
import { accessCommand } from './access.ts'
import { applicationsCommand } from './applications.ts'
import { backupCommand } from './backup.ts'
import { restoreCommand } from './restore.ts'
import { configCommand } from './config.ts'
import { copyDatabaseCommand } from './copy-database.ts'
import { keysCommand } from './keys.ts'
import { realmsCommand } from './realms.ts'
import { ldapCommand } from './ldap.ts'
import { migrateCommand } from './migrate.ts'
import { serveCommand } from './serve.ts'
import { tokensCommand } from './tokens.ts'
import { usersCommand } from './users.ts'

/** Every command and option of `bin/gatehouse`, built without running anything (the README's CLI section is checked against it). */
export function gatehouseProgram(): Command {
  return new Command('gatehouse')
    .description('Gatehouse: an API gateway with a Keycloak-compatible OpenID Connect provider')
    .version(version)
    .showSuggestionAfterError()
    .addCommand(serveCommand())
    .addCommand(usersCommand())
    .addCommand(tokensCommand())
    .addCommand(applicationsCommand())
    .addCommand(migrateCommand())
    .addCommand(backupCommand())
    .addCommand(restoreCommand())
    .addCommand(copyDatabaseCommand())
    .addCommand(configCommand())
    .addCommand(ldapCommand())
    .addCommand(accessCommand())
    .addCommand(keysCommand())
    .addCommand(realmsCommand())
}
