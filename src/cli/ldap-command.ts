import { Command, Option } from 'commander'
import { addStorageOptions, lazyAction } from './common.ts'

/** What the ldap commands do (ldap.ts), loaded when one of them runs. */
const actions = () => import('./ldap.ts')

export function ldapCommand(): Command {
  const ldap = new Command('ldap').description('check the LDAP directory configuration')
  ldap.addCommand(new Command('test')
    .description('connect to the directory as the server would, look a user up and print what Gatehouse would make of them (changes nothing)')
    .requiredOption('--user <name>', 'username to look up')
    .option('--password-stdin', 'also check the user\'s password, read from standard input')
    .addOption(new Option('--config <file>', 'configuration file (YAML) with an ldap section').env('GATEHOUSE_CONFIG'))
    .action(lazyAction(actions, 'testDirectory')))
  ldap.addCommand(addStorageOptions(new Command('forget-entries')
    .description('forget which directory entry accounts were made for (after moving to another directory, or changing ldap.attributes.uuid): each takes the entry that holds its name at its next login')
    .argument('[names...]', 'usernames (default: every account)'))
    .action(lazyAction(actions, 'forgetEntries')))
  return ldap
}
