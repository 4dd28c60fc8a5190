import { Command } from 'commander'
import { cliActor } from '../audit/actor.ts'
import { pushRevocationRecorded } from '../audit/realms.ts'
import type { App } from '../app.ts'
import type { Realm } from '../oidc/realm.ts'
import { addDemoOption, addStorageOptions, UsageError, withApp, type StorageOptions } from './common.ts'

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
    .action(async (name: string, options: StorageOptions) => {
      await withApp(options, async (app) => {
        const realm = realmNamed(app, name)
        const { result, gatewaySessionsEnded } = await realm.logoutAll()
        app.audit.change(cliActor(), 'delete', { type: 'session', name: `sessions of realm ${realm.name}` }, { ended: gatewaySessionsEnded }, { realm: realm.name, ...result })
        report(result)
      })
    }))

  realms.addCommand(addStorageOptions(addDemoOption(new Command('push-revocation')
    .description('tell the clients\' admin URLs the realm\'s not-before again')
    .argument('<realm>', 'the realm\'s name')))
    .action(async (name: string, options: StorageOptions) => {
      await withApp(options, async (app) => report(await pushRevocationRecorded(app.audit, cliActor(), realmNamed(app, name))))
    }))

  return realms
}

function realmNamed(app: App, name: string): Realm {
  const realm = app.oidc.get(name)
  if (!realm) throw new UsageError(`no realm "${name}" in the configuration${app.config.realms.length ? '' : ' (it has none: give the one the gateway runs with --config, or --demo for the demo\'s)'}`)
  return realm
}

/** The answer as the API gives it, on standard output; a call that failed makes the command fail. */
function report(result: { successRequests?: string[]; failedRequests?: string[] }): void {
  process.stdout.write(`${JSON.stringify(result)}\n`)
  if (result.failedRequests?.length) {
    process.stderr.write(`not told: ${result.failedRequests.join(', ')}\n`)
    process.exitCode = 1
  }
}
