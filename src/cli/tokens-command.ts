import { Command, Option } from 'commander'
import { TOKEN_DESCRIPTION_MAX } from '../limits.ts'
import { addStorageOptions, lazyAction, positiveInteger, UsageError } from './common.ts'

/** What the tokens commands do (tokens.ts), loaded when one of them runs. */
const actions = () => import('./tokens.ts')

/**
 * Personal OAuth 2 tokens from the command line: an operator's tool, with the same effects as the API
 * (a revocation reaches every running gateway process at once).
 */
export function tokensCommand(): Command {
  const tokens = new Command('tokens').description('manage personal OAuth2 tokens')

  tokens.addCommand(addStorageOptions(new Command('create')
    .description('create a token for a user and print it (the only time its value is shown)')
    .requiredOption('--user <name>', 'the owner')
    .addOption(new Option('--scope <scope>', 'read: GET, HEAD and OPTIONS only; write: everything the user may do').choices(['read', 'write']).default('write'))
    .addOption(new Option('--expires-in <seconds>', 'lifetime (default and maximum: the setting oauth2_access_token_expire_seconds)').argParser(positiveInteger('--expires-in')))
    .addOption(new Option('--description <text>', `what the token is for (at most ${TOKEN_DESCRIPTION_MAX} characters)`).argParser(describing)))
    .action(lazyAction(actions, 'createToken')))

  tokens.addCommand(addStorageOptions(new Command('list')
    .description('list tokens (never their values); last use is saved by running gateways every few seconds')
    .option('--user <name>', 'only this user\'s tokens')
    .option('--json', 'a JSON array: id, user, user_id, scope, description, expires, last_used'))
    .action(lazyAction(actions, 'listTokens')))

  tokens.addCommand(addStorageOptions(new Command('revoke')
    .description('revoke one token, every token of a user, or every token in the system')
    .option('--user <name>', 'every token of this user')
    .option('--all', 'every token of every user')
    .addOption(new Option('--id <id>', 'one token, by id').argParser(positiveInteger('--id'))))
    .action(lazyAction(actions, 'revokeTokens')))

  return tokens
}

/** A description the API would take too. */
function describing(value: string): string {
  if (value.length > TOKEN_DESCRIPTION_MAX) throw new UsageError(`--description must be at most ${TOKEN_DESCRIPTION_MAX} characters, got ${value.length}`)
  return value
}
