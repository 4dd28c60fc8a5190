import { Command } from 'commander'
import { cliActor } from '../audit/actor.ts'
import { addStorageOptions, UsageError, withApp, type StorageOptions } from './common.ts'

/**
 * Signing keys from the command line. The key that signs X-Gatehouse-Identity rotates by itself every
 * `auth.identity_key_rotation_seconds`; this rotates it at once (a key that may have leaked), safely for running
 * gateways: they hear of the new key, publish it, and all switch to it once services can have fetched it.
 */
export function keysCommand(): Command {
  const keys = new Command('keys').description('rotate signing keys')

  keys.addCommand(addStorageOptions(new Command('rotate')
    .description('publish a new key now; it signs once services can have fetched it, and the old one stays published until its tokens expire')
    .option('--identity', 'the key that signs X-Gatehouse-Identity'))
    .action(async (options: StorageOptions & { identity?: boolean }) => {
      if (!options.identity) throw new UsageError('give --identity (the key that signs X-Gatehouse-Identity; realm keys rotate by signing_key_rotation_seconds)')
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
