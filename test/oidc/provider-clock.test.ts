import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { loadProviderClass } from '../../src/oidc/provider.ts'

/**
 * oidc-provider takes every time it stamps and judges from its `epoch_time` helper; Gatehouse's stands in for it
 * (src/oidc/provider-clock.ts), reading the clock it is given: the process's view of the database's.
 */
describe('oidc-provider\'s clock', () => {
  it('is the clock the provider class was loaded with, not the machine\'s', async () => {
    const twoMinutesAhead = () => Date.now() + 120_000
    await loadProviderClass(twoMinutesAhead)
    // @ts-expect-error: oidc-provider declares types for its entry point only.
    const { default: epochTime } = await import('oidc-provider/lib/helpers/epoch_time.js') as { default: (date?: number) => number }
    const stamped = epochTime()
    assert.ok(Math.abs(stamped - Math.floor(twoMinutesAhead() / 1000)) <= 1, `stamped ${stamped}, the clock given ${Math.floor(twoMinutesAhead() / 1000)}`)
    assert.equal(epochTime(1_000_999), 1000, 'a time it is handed is taken as it is')
    await loadProviderClass(() => Date.now())
    assert.ok(Math.abs(epochTime() - Math.floor(Date.now() / 1000)) <= 1)
  })
})
