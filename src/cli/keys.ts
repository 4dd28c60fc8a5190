import { cliActor } from '../audit/actor.ts'
import { withApp } from './actions.ts'
import { UsageError, type StorageOptions } from './common.ts'

export async function rotateKey(options: StorageOptions & { identity?: boolean; realm?: string }): Promise<void> {
  if (Boolean(options.identity) === (options.realm !== undefined)) throw new UsageError('give --identity (the key that signs X-Gatehouse-Identity) or --realm NAME (the key that signs the realm\'s tokens)')
  if (options.realm !== undefined) {
    const name = options.realm
    await withApp(options, async (app) => {
      const realm = app.oidc.get(name)
      if (!realm) throw new UsageError(`no realm "${name}" in the configuration${app.config.realms.length ? '' : ' (it has none: give the one the gateway runs with --config, or --demo for the demo\'s)'}`)
      const { kid, retired } = await realm.replaceSigningKey()
      app.audit.change(cliActor(), 'create', { type: 'realm_key', id: kid, name: kid }, undefined, { realm: realm.name, retired })
      process.stdout.write(`${kid}\n`)
      const dropped = retired.length ? `dropped ${retired.join(', ')}: tokens they signed are refused` : 'it had no earlier key, so none was dropped'
      process.stderr.write(`realm ${realm.name} signs with key ${kid} from now; ${dropped}\n`)
    })
    return
  }
  await withApp(options, async (app) => {
    const { kid, signsFrom } = await app.identity.rotate()
    // A rotation at once is what an operator does for a key that may have leaked: the trail says who and when.
    app.audit.change(cliActor(), 'create', { type: 'identity_key', id: kid, name: kid }, undefined, { signs_from: new Date(signsFrom).toISOString() })
    process.stdout.write(`${kid}\n`)
    process.stderr.write(`published identity key ${kid}; it signs from ${new Date(signsFrom).toISOString()} by this configuration (each gateway process counts from now by its own settings)\n`)
  })
}
