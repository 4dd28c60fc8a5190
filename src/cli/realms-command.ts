import { Command } from 'commander'
import { addDemoOption, addStorageOptions, lazyAction } from './common.ts'

/** What the realms commands do (realms.ts), loaded when one of them runs. */
const actions = () => import('./realms.ts')

/**
 * Keycloak's realm actions on every session from the command line, as `POST /admin/realms/{realm}/logout-all` and
 * `push-revocation` do them (docs/oidc.md): for an operator without an administrator's password at hand. Running
 * gateways hear of the ended sessions and tokens; the clients' admin URLs are called before the command exits.
 */
export function realmsCommand(): Command {
  const realms = new Command('realms').description('act on every session of a realm')

  realms.addCommand(addStorageOptions(addDemoOption(new Command('logout-all')
    .description('end every session and token of the realm, and tell the clients\' admin URLs to refuse older tokens')
    .argument('<realm>', 'the realm\'s name')))
    .action(lazyAction(actions, 'logoutAll')))

  realms.addCommand(addStorageOptions(addDemoOption(new Command('push-revocation')
    .description('tell the clients\' admin URLs the realm\'s not-before again')
    .argument('<realm>', 'the realm\'s name')))
    .action(lazyAction(actions, 'pushRevocation')))

  return realms
}
