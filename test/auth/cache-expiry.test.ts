import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it, mock } from 'node:test'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login } from '../helpers/session.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

const HOSTS = '/api/controller/v2/hosts/'

/**
 * Whatever a process remembers of an account, a session or a token is read again once it is older than
 * `auth.max_stale_seconds`, so a change whose news never arrived (written behind the gateway's back here) still
 * takes effect within that bound.
 */
describe('remembered credentials after auth.max_stale_seconds', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { auth: { max_stale_seconds: 2 } } })
  })
  after(() => gw.close())

  it('refuses a user disabled without news once what was remembered of them is older than the bound', async () => {
    const { id } = await gw.app.accounts.create({ username: 'unnoticed', password: 'unnoticed-password' })
    const credentials = {
      basic: { authorization: basic('unnoticed', 'unnoticed-password') },
      token: bearer((await createToken(gw, { authorization: basic('unnoticed', 'unnoticed-password') })).token),
      session: { cookie: (await login(gw, 'unnoticed', 'unnoticed-password')).cookie },
    }
    for (const headers of Object.values(credentials)) assert.equal((await gw.fetch(HOSTS, { headers })).status, 200)

    // Straight to the database: no event, as if its news had been lost.
    await gw.store.users.update(id, { isActive: false })

    for (const [kind, headers] of Object.entries(credentials)) {
      const deadline = Date.now() + 8000
      while ((await gw.fetch(HOSTS, { headers })).status !== 401) {
        assert.ok(Date.now() < deadline, `${kind} is still accepted`)
        await sleep(100)
      }
    }
  })

  it('refuses them within the bound though the machine\'s clock stepped back after they were remembered', async () => {
    const { id } = await gw.app.accounts.create({ username: 'stepped', password: 'stepped-password' })
    const credentials = {
      basic: { authorization: basic('stepped', 'stepped-password') },
      token: bearer((await createToken(gw, { authorization: basic('stepped', 'stepped-password') })).token),
      session: { cookie: (await login(gw, 'stepped', 'stepped-password')).cookie },
    }
    for (const headers of Object.values(credentials)) assert.equal((await gw.fetch(HOSTS, { headers })).status, 200)
    // An NTP correction or a virtual machine resumed: the wall clock goes back an hour.
    const machineNow = Date.now
    mock.method(Date, 'now', () => machineNow() - 3600_000)
    try {
      await gw.store.users.update(id, { isActive: false })
      for (const [kind, headers] of Object.entries(credentials)) {
        const began = performance.now()
        while ((await gw.fetch(HOSTS, { headers })).status !== 401) {
          assert.ok(performance.now() - began < 8000, `${kind} is still accepted`)
          await sleep(100)
        }
      }
    } finally {
      mock.restoreAll()
    }
  })

  it('applies a setting saved without news within the bound, and reads unchanged settings again without dropping what it remembers', async () => {
    await gw.app.accounts.create({ username: 'settled', password: 'settled-password' })
    const headers = { authorization: basic('settled', 'settled-password') }
    assert.equal((await gw.fetch(HOSTS, { headers })).status, 200)
    let changes = 0
    gw.app.settings.onChange(() => changes++)

    // Settings read again but unchanged tell no one (the listeners drop the remembered basic credentials).
    await gw.app.settings.reload()
    assert.equal(changes, 0)

    // Basic auth switched off straight in the database, as if its news had been lost.
    await gw.store.settings.put({ gateway_basic_auth_enabled: false })
    try {
      const began = Date.now()
      while ((await gw.fetch(HOSTS, { headers })).status !== 401) {
        assert.ok(Date.now() - began < 8000, 'basic credentials are still accepted')
        await sleep(100)
      }
      assert.equal(changes, 1)
      assert.equal(gw.app.settings.current.gateway_basic_auth_enabled, false)
    } finally {
      await gw.app.settings.update({ gateway_basic_auth_enabled: true })
    }
  })
})
