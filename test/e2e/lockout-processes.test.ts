import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, basic, json, runCli, spawnGatewayPair, type GatewayPair } from '../helpers/gateway.ts'
import { at, type Target } from '../helpers/session.ts'

const admin = { authorization: basic('admin', ADMIN_PASSWORD) }
const jsonAdmin = { ...admin, 'content-type': 'application/json' }

describe('login lockout across gateway processes sharing one database', () => {
  let pair: GatewayPair
  let a: Target
  let b: Target
  before(async () => {
    pair = await spawnGatewayPair()
    a = at(pair.first.url)
    b = at(pair.second.url)
    const settings = await a.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: jsonAdmin, body: JSON.stringify({ login_failures_before_lockout: 3 }) })
    assert.equal(settings.status, 200)
    for (const username of ['alice', 'bob']) {
      const created = await a.fetch('/api/gateway/v1/users/', { method: 'POST', headers: jsonAdmin, body: JSON.stringify({ username, password: `${username}-password` }) })
      assert.equal(created.status, 201)
    }
  })
  after(async () => {
    await pair?.stop()
  })

  const code = async (target: Target, username: string, password: string) =>
    (await json(await target.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(username, password) } }))).code as string | undefined

  it('holds a lock caused on one process on the other, for the right password too, until the CLI clears it', async () => {
    for (let i = 0; i < 3; i++) assert.equal(await code(a, 'alice', 'wrong'), 'invalid_credentials')
    assert.equal(await code(b, 'alice', 'alice-password'), 'account_locked')
    assert.equal(await code(a, 'alice', 'alice-password'), 'account_locked')

    const unlocked = await runCli(['users', 'unlock', 'alice', '--data-dir', pair.dir])
    assert.equal(unlocked.code, 0, unlocked.stderr)
    for (const target of [a, b]) assert.equal((await target.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('alice', 'alice-password') } })).status, 200)
  })

  it('adds up failures made on different processes', async () => {
    assert.equal(await code(a, 'bob', 'wrong-1'), 'invalid_credentials')
    assert.equal(await code(b, 'bob', 'wrong-2'), 'invalid_credentials')
    assert.equal(await code(a, 'bob', 'wrong-3'), 'invalid_credentials')
    assert.equal(await code(b, 'bob', 'bob-password'), 'account_locked')
  })
})
