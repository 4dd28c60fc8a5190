import { Command, Option } from 'commander'
import { isIP } from 'node:net'
import { authMethods } from '../limits.ts'
import { addDemoOption, addStorageOptions, lazyAction, UsageError } from './common.ts'

/** What the access commands do (access.ts), loaded when one of them runs. */
const actions = () => import('./access.ts')

/** `access check`: what the running gateway would decide for a user's request, from the same rules engine. */
export function accessCommand(): Command {
  const access = new Command('access').description('explain access decisions')
  access.addCommand(addStorageOptions(addDemoOption(new Command('check')
    .description('print whether USER may make the request METHOD PATH, and the rule that decides (exit 1 when refused)')
    .argument('<user>', 'username')
    .argument('<method>', 'HTTP method, e.g. GET')
    .argument('<path>', 'request path, e.g. /api/eda/v1/activations/')
    .addOption(new Option('--auth-method <method>', 'how the user signs in').choices(authMethods).default('session'))
    .addOption(new Option('--scope <scope...>', 'token scopes the request carries'))
    .addOption(new Option('--application', 'the token is an OAuth2 application\'s (from /o/token/), not a realm client\'s (implies --auth-method oidc)').implies({ authMethod: 'oidc' }))
    .addOption(new Option('--client <realm/client_id>', 'the realm client the token was issued to, e.g. platform/end-users (implies --auth-method oidc; a realm client\'s token needs it: a place takes one by its realm and audiences)').implies({ authMethod: 'oidc' }))
    .addOption(new Option('--address <ip>', 'the client address').argParser(parseAddress).default('127.0.0.1'))))
    .action(lazyAction(actions, 'checkAccess')))
  access.addCommand(addStorageOptions(addDemoOption(new Command('check-client')
    .description('print whether USER may sign in to the realm client REALM/CLIENT_ID by its access rules (exit 1 when refused), and which of its roles USER holds')
    .argument('<user>', 'username')
    .argument('<client>', 'realm and client id, e.g. platform/operators-console')
    .addOption(new Option('--address <ip>', 'the client address').argParser(parseAddress).default('127.0.0.1'))))
    .action(lazyAction(actions, 'checkClientAccess')))
  return access
}

/** Rules match `networks` against the address: one that is not an IP address would match none of them, unnoticed. */
function parseAddress(value: string): string {
  if (!isIP(value)) throw new UsageError(`--address must be an IP address, got "${value}"`)
  return value
}
