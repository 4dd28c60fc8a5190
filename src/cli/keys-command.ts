import { Command } from 'commander'
import { addDemoOption, addStorageOptions, lazyAction } from './common.ts'

/** What the keys command does (keys.ts), loaded when it runs. */
const actions = () => import('./keys.ts')

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
    .action(lazyAction(actions, 'rotateKey')))

  return keys
}
