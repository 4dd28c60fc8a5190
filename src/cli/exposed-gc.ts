import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * V8's gc() without running Node with --expose-gc: the flag is on only while a context that has the function is
 * made. V8 refuses a code cache made under other flags, and the one Node ships for its own modules is made without
 * that flag: with it on for the whole run, every start compiled Node's modules from their source (some 30 to 60 ms).
 */
export function exposedGc(): (options?: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void {
  setFlagsFromString('--expose-gc')
  try {
    return runInNewContext('gc')
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}
