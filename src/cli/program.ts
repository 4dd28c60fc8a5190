import { Command } from 'commander'
import { UsageError } from './common.ts'
import { version } from '../version.ts'
import { accessCommand } from './access-command.ts'
import { applicationsCommand } from './applications-command.ts'
import { backupCommand } from './backup-command.ts'
import { restoreCommand } from './restore-command.ts'
import { configCommand } from './config-command.ts'
import { copyDatabaseCommand } from './copy-database-command.ts'
import { keysCommand } from './keys-command.ts'
import { realmsCommand } from './realms-command.ts'
import { ldapCommand } from './ldap-command.ts'
import { migrateCommand } from './migrate-command.ts'
import { serveCommand } from './serve-command.ts'
import { tokensCommand } from './tokens-command.ts'
import { usersCommand } from './users-command.ts'

/** Every command and option of `bin/gatehouse`, built without running anything (the README's CLI section is checked against it). */
export function gatehouseProgram(): Command {
  return wrappingHelp(new Command('gatehouse')
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
    .hook('preAction', refuseEmptyArguments))
}

/**
 * Commander leaves a description unwrapped when less than 40 columns are left beside the terms (`access`'s
 * subcommands, whose arguments make long terms, printed 150-column lines); 24 still wraps into a readable column.
 * Set on every command, as `addCommand` copies no help settings to the commands it adds.
 */
function wrappingHelp(command: Command): Command {
  command.configureHelp({ minWidthToWrap: 24 })
  command.commands.forEach(wrappingHelp)
  return command
}

/**
 * An argument given empty, as a script's unset variable gives it (`users unlock "$NAME"`), is refused naming it: it
 * would otherwise be read as the working directory (`backup ''`), a file without a name, or a user no one has, which
 * `users unlock` reported as done.
 */
const NAMING_OPTIONS: ReadonlySet<string> = new Set(['--realm', '--user', '--client', '--groups-to-teams'])

function refuseEmptyArguments(_program: Command, command: Command): void {
  const named = `${command.parent?.name() === 'gatehouse' ? '' : `${command.parent?.name()} `}${command.name()}`
  command.registeredArguments.forEach((argument, index) => {
    const value: unknown = command.processedArgs[index]
    if (value === '' || (Array.isArray(value) && value.includes(''))) {
      throw new UsageError(`${named}: ${argument.variadic ? 'one of ' : ''}${argument.name().toUpperCase()} is empty; give a value`)
    }
  })
  // So are the options that name what a command acts on (`--realm "$REALM"`, `--user "$USER"`), read otherwise as a
  // realm or user no one has; the fields of what a command makes keep the API's words (`--name: This field may not be
  // blank.`), and an empty text (`--description ''`) may be meant.
  for (const option of command.options) {
    if (NAMING_OPTIONS.has(option.long ?? '') && command.getOptionValue(option.attributeName()) === '') {
      throw new UsageError(`${named}: ${option.long} is empty; give a value`)
    }
  }
}
