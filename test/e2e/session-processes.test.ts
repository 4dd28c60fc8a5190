import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, basic, json, spawnGatewayPair, type GatewayPair } from '../helpers/gateway.ts'
import { at, login, withCsrf, type Target } from '../helpers/session.ts'

const admin = { authorization: basic('admin', ADMIN_PASSWORD) }

describe('sessions across gateway processes sharing one database', () => {
  let pair: GatewayPair
  let a: Target
  let b: Target
  before(async () => {
    pair = await spawnGatewayPair()
    a = at(pair.first.url)
    b = at(pair.second.url)
    const created = await a.fetch('/api/gateway/v1/users/', {
      method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice-password' }),
    })
    assert.equal(created.status, 201)
  })
  after(async () => {
    await pair?.stop()
  })

  const status = async (target: Target, path: string, sessionId: string) =>
    (await target.fetch(path, { headers: { cookie: `gateway_sessionid=${sessionId}` } })).status

  it('accepts a session made on one process on the other, and logout on one ends it on both at once', async () => {
    const session = await login(a, 'alice', 'alice-password')
    for (const target of [a, b]) {
      assert.equal(await status(target, '/api/gateway/v1/me/', session.sessionId), 200)
      const seen = await json(await target.fetch('/api/controller/v2/hosts/', { headers: { cookie: session.cookie } }))
      assert.equal(seen.identity.username, 'alice')
      assert.equal(seen.identity.auth_method, 'session')
    }
    const logout = await a.fetch('/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(session) })
    assert.equal(logout.status, 302)
    assert.equal(await status(b, '/api/gateway/v1/me/', session.sessionId), 401)
    assert.equal(await status(b, '/api/controller/v2/hosts/', session.sessionId), 401)
    assert.equal(await status(a, '/api/gateway/v1/me/', session.sessionId), 401)
  })

  it('ends a session for every process when an administrator ends it on one', async () => {
    const session = await login(b, 'alice', 'alice-password')
    assert.equal(await status(a, '/api/gateway/v1/me/', session.sessionId), 200)
    const listed = await json(await b.fetch('/api/gateway/v1/sessions/', { headers: admin }))
    const id = listed.results.find((s: { username: string }) => s.username === 'alice').id
    assert.equal((await b.fetch(`/api/gateway/v1/sessions/${id}/`, { method: 'DELETE', headers: admin })).status, 204)
    assert.equal(await status(a, '/api/gateway/v1/me/', session.sessionId), 401)
  })

  it('ends a user\'s sessions on every process when the password changes on one', async () => {
    const session = await login(a, 'alice', 'alice-password')
    assert.equal(await status(b, '/api/controller/v2/hosts/', session.sessionId), 200)
    const users = await json(await b.fetch('/api/gateway/v1/users/?username=alice', { headers: admin }))
    const patch = await b.fetch(`/api/gateway/v1/users/${users.results[0].id}/`, {
      method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ password: 'alice-password-2' }),
    })
    assert.equal(patch.status, 200)
    assert.equal(await status(a, '/api/controller/v2/hosts/', session.sessionId), 401)
    assert.equal(await status(b, '/api/controller/v2/hosts/', session.sessionId), 401)
  })

  it('shows an extension made on one process on the other', async () => {
    const settings = (body: object) => a.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.equal((await settings({ session_cookie_age: 60 })).status, 200)
    const session = await login(b, 'alice', 'alice-password-2')
    const before = await json(await a.fetch('/api/gateway/v1/session/', { headers: { cookie: session.cookie } }))
    assert.ok(before.expires_in_seconds <= 60)
    assert.equal((await settings({ session_cookie_age: 900 })).status, 200)
    assert.equal((await b.fetch('/api/gateway/v1/session/', { method: 'POST', headers: withCsrf(session) })).status, 200)
    const afterwards = await json(await a.fetch('/api/gateway/v1/session/', { headers: { cookie: session.cookie } }))
    assert.ok(afterwards.expires_in_seconds > 890, String(afterwards.expires_in_seconds))
  })
})
