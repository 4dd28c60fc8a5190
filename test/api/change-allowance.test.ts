import assert from 'node:assert/strict'
import { after, before, describe, it, mock } from 'node:test'
import { ChangeAllowance } from '../../src/api/change-allowance.ts'
import { ChangesThrottled } from '../../src/errors.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('the allowance of changes an account that is not a superuser makes through the gateway API', () => {
  let gw: TestGateway
  const carol = { authorization: basic('carol', 'carol-long-password') }
  before(async () => {
    gw = await startGateway({ config: { gateway: { changes_per_user: 3 } } })
    await gw.app.accounts.create({ username: 'carol', password: 'carol-long-password' })
  })
  after(() => gw.close())

  const patchMe = (auth: Record<string, string>, firstName: string) =>
    gw.fetch('/api/gateway/v1/me/', { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ first_name: firstName }) })

  it('refuses a change past it with 429 changes_throttled and Retry-After, and changes nothing; reads go on', async () => {
    // A change refused for its input changes nothing and is not counted.
    const invalid = await gw.fetch('/api/gateway/v1/me/', { method: 'PATCH', headers: { ...carol, 'content-type': 'application/json' }, body: '{"first_name": 5}' })
    assert.equal(invalid.status, 400)
    for (const name of ['one', 'two', 'three']) assert.equal((await patchMe(carol, name)).status, 200, name)
    const refused = await patchMe(carol, 'four')
    const body = await json(refused)
    assert.equal(refused.status, 429)
    assert.equal(body.code, 'changes_throttled')
    assert.match(body.detail, /Too many changes from your account/)
    const retryAfter = Number(refused.headers.get('retry-after'))
    assert.ok(retryAfter >= 1 && retryAfter <= 600, String(retryAfter))
    const me = await json(await gw.fetch('/api/gateway/v1/me/', { headers: carol }))
    assert.equal(me.results[0].first_name, 'three', 'the refused change was not made')
    // Every changing method counts, on any path: a token made or deleted is a change as well.
    assert.equal((await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: carol })).status, 429)
  })

  it('does not count superusers, whose scripts change things in bulk', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await patchMe(adminAuth, `admin-${i}`)).status, 200, String(i))
  })

  it('refuses no longer than the window when the machine\'s clock steps back while an account is held back', async () => {
    await gw.app.accounts.create({ username: 'dave', password: 'dave-long-password' })
    const dave = { authorization: basic('dave', 'dave-long-password') }
    for (const name of ['one', 'two', 'three']) assert.equal((await patchMe(dave, name)).status, 200, name)
    // An NTP correction or a virtual machine resumed: the wall clock goes back an hour.
    const machineNow = Date.now
    mock.method(Date, 'now', () => machineNow() - 3600_000)
    try {
      const refused = await patchMe(dave, 'four')
      assert.equal(refused.status, 429)
      const retryAfter = Number(refused.headers.get('retry-after'))
      assert.ok(retryAfter >= 1 && retryAfter <= 600, `held back ${retryAfter} s`)
    } finally {
      mock.restoreAll()
    }
  })

  it('counts in fixed windows, and forgets an account once its window is over', () => {
    const allowance = new ChangeAllowance(2, 1000)
    allowance.admit(1, 0)
    allowance.admit(1, 10)
    allowance.admit(2, 20)
    assert.throws(() => allowance.admit(1, 999), (error: unknown) => error instanceof ChangesThrottled && error.headers['retry-after'] === '1')
    allowance.admit(1, 1000)
    const unlimited = new ChangeAllowance(0, 1000)
    for (let i = 0; i < 10; i++) unlimited.admit(1, i)
  })
})
