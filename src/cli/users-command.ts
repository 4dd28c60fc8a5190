import { Command } from 'commander'
import { addStorageOptions, lazyAction } from './common.ts'

/** What the users commands do (users.ts), loaded when one of them runs. */
const actions = () => import('./users.ts')

export function usersCommand(): Command {
  const users = new Command('users').description('manage accounts')

  users.addCommand(addStorageOptions(new Command('create')
    .description('create a local account (a random password is generated and printed unless --password-stdin)')
    .argument('<name>', 'username')
    .option('--password-stdin', 'read the password from standard input')
    .option('--email <email>', 'email address')
    .option('--superuser', 'make the account a superuser'))
    .action(lazyAction(actions, 'createUser')))

  users.addCommand(addStorageOptions(new Command('list').description('list accounts')
    .option('--json', 'a JSON array, each account as the API shows it'))
    .action(lazyAction(actions, 'listUsers')))

  users.addCommand(addStorageOptions(new Command('set-password')
    .description('set a local account\'s password (ends its sessions and OpenID Connect grants)')
    .argument('<name>', 'username')
    .requiredOption('--password-stdin', 'read the password from standard input')
    .option('--revoke-tokens', 'revoke the account\'s personal tokens too'))
    .action(lazyAction(actions, 'setPassword')))

  users.addCommand(addStorageOptions(new Command('import')
    .description('import accounts, with their password hashes, from a Keycloak realm export or a JSON list of the platform\'s users (all or none)')
    .argument('<file>', 'the JSON file')
    .option('--update', 'give accounts that exist already the file\'s fields, and its password where they still have the one imported (default: skip them)')
    .option('--groups-to-teams <organization>', 'make each Keycloak group a team of this organization, named by its path without the leading / (created if missing), and its users members'))
    .action(lazyAction(actions, 'importUsers')))

  users.addCommand(accountCommand('disable', 'disable an account: its credentials, sessions and tokens stop working')
    .action(lazyAction(actions, 'disableUser')))

  // The way back from `disable` (and from a disable by mistake) without the API. An LDAP account is enabled only
  // through the API, which first asks the directory whether it still lists the entry the account was made for.
  users.addCommand(accountCommand('enable', 'enable a disabled account again (an LDAP account: through the API, which asks the directory first)')
    .action(lazyAction(actions, 'enableUser')))

  users.addCommand(addStorageOptions(new Command('unlock')
    .description('clear the failed logins of a username, ending its lockout (known account or not)')
    .argument('<name>', 'username'))
    .action(lazyAction(actions, 'unlockUsername')))

  users.addCommand(addStorageOptions(new Command('unthrottle')
    .description('clear the failed logins counted for a client address (an IPv6 address by its /64), ending its throttling')
    .argument('<address>', 'client IP address'))
    .action(lazyAction(actions, 'unthrottleAddress')))

  return users
}

/** A command that changes the account a username names. */
function accountCommand(command: string, description: string): Command {
  return addStorageOptions(new Command(command).description(description).argument('<name>', 'username'))
}
