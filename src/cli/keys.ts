import { Command } from 'commander'
import { cliActor } from '../audit/actor.ts'
import { addDemoOption, addStorageOptions, UsageError, withApp, type StorageOptions } from './common.ts'

/**
 * Signing keys from the command line. The key that signs X-Gatehouse-Identity rotates by itself every
 * `auth.identity_key_rotation_seconds`; this rotates it at once (a key that may have leaked), safely for running
 * gateways: they hear of the new key, publish it, and all switch to it once services can have fetched it. A realm's
 * key rotates by itself every `signing_key_rotation_seconds`; this replaces it at once and drops the earlier ones, as
 * a key that may have leaked calls for: every process refuses their tokens from then on.
 */
export function keysCommand(): Command {
  const keys = new Command('keys').description('rotate signing keys')

  keys.addCommand(addStorageOptions(addDemoOption(new Command('rotate')
    .description('publish a new key now: the identity key signs once services can have fetched it, and the old one stays published until its tokens expire; a realm\'s signs at once, and its earlier keys are dropped at once')
    .option('--identity', 'the key that signs X-Gatehouse-Identity')
    .option('--realm <name>', 'the key that signs the realm\'s access and ID tokens (a key that may have leaked): tokens signed with the earlier keys are refused from then on')))
    .action(async (options: StorageOptions & { identity?: boolean; realm?: string }) => {
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
    }))

  return keys
}
