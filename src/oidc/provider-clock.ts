/**
 * oidc-provider's clock: this module stands in for its `lib/helpers/epoch_time.js` (`useProviderClock` has the
 * module loader hand it out under that name), from which oidc-provider takes every time it stamps and judges: the
 * `iat`, `exp` and `auth_time` of codes, tokens and sessions, and their expiry. It reads the process's view of the
 * database's clock (EventBus.clock), so that what any gateway process issues is stamped with the clock the accounts'
 * not-befores are taken in: a process whose clock runs ahead does not issue tokens that outlast a revocation, nor one
 * whose clock runs behind tokens refused as soon as they are issued.
 */
import { registerHooks } from 'node:module'

/** Epoch ms: the database's time as this process knows it; the machine's until a gateway's bus says otherwise. */
let clock: () => number = () => Date.now()

/** oidc-provider's `epochTime(date = now)`: whole seconds. */
export default function epochTime(date = clock()): number {
  return Math.floor(date / 1000)
}

/** The time oidc-provider's clock reads now, in epoch ms. */
export function providerNow(): number {
  return clock()
}

/** Sets what oidc-provider's clock reads: one per process, as the database and this machine's clock are. */
export function setProviderClock(now: () => number): void {
  clock = now
}

const EPOCH_TIME = /\/node_modules\/oidc-provider\/lib\/helpers\/epoch_time\.js$/
let hooked = false

/**
 * Has the module loader give oidc-provider this module for its own `epoch_time.js`: called before oidc-provider is
 * first imported (provider.ts `loadProviderClass`), it applies to every module of it loaded afterwards.
 */
export function useProviderClock(): void {
  if (hooked) return
  hooked = true
  const self = import.meta.url
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context)
      return EPOCH_TIME.test(resolved.url) ? { url: self, shortCircuit: true } : resolved
    },
  })
}
