import { cliActor } from '../audit/actor.ts'
import { pushRevocationRecorded } from '../audit/realms.ts'
import type { App } from '../app.ts'
import type { Realm } from '../oidc/realm.ts'
import { withApp } from './actions.ts'
import { UsageError, type StorageOptions } from './common.ts'

export async function logoutAll(name: string, options: StorageOptions): Promise<void> {
  await withApp(options, async (app) => {
    const realm = realmNamed(app, name)
    const { result, gatewaySessionsEnded } = await realm.logoutAll()
    app.audit.change(cliActor(), 'delete', { type: 'session', name: `sessions of realm ${realm.name}` }, { ended: gatewaySessionsEnded }, { realm: realm.name, ...result })
    report(result)
  })
}

export async function pushRevocation(name: string, options: StorageOptions): Promise<void> {
  await withApp(options, async (app) => report(await pushRevocationRecorded(app.audit, cliActor(), realmNamed(app, name))))
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
