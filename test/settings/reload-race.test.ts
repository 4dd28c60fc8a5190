import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout } from 'node:timers/promises'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

const SETTINGS = '/api/gateway/v1/settings/all/'

/**
 * A reload that read the settings before a change and finishes after it (the periodic one, or one for missed news)
 * must not put the settings before the change back until the next reload.
 */
describe('settings reloads overlapping a change', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  it('keeps basic auth switched off by a PATCH made while a slower reload was reading', async () => {
    const settings = gw.store.settings
    const readAll = settings.all.bind(settings)
    let entered!: () => void
    const held = new Promise<void>((resolve) => (entered = resolve))
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    let holdNext = true
    settings.all = async () => {
      const stored = await readAll()
      if (holdNext) {
        holdNext = false
        entered()
        await released
      }
      return stored
    }
    try {
      const slowReload = gw.app.settings.reload()
      await held
      const patched = gw.fetch(SETTINGS, {
        method: 'PATCH',
        headers: { ...adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ gateway_basic_auth_enabled: false }),
      })
      // The slow read ends once the change has committed; the PATCH's answer may wait for the reloads it asked for.
      while ((await readAll()).gateway_basic_auth_enabled !== false) await setTimeout(10)
      release()
      await slowReload
      const off = await patched
      assert.equal(off.status, 200)
      assert.equal((await json(off)).gateway_basic_auth_enabled, false)
    } finally {
      release()
      settings.all = readAll
    }
    assert.equal(gw.app.settings.current.gateway_basic_auth_enabled, false)
    const refused = await gw.fetch(SETTINGS, { headers: adminAuth })
    assert.equal(refused.status, 401)
  })
})
