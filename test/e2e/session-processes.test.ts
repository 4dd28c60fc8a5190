import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, basic, json, spawnGatewayPair, type GatewayPair } from '../helpers/gateway.ts'
import { Browser } from '../helpers/browser.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
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

/**
 * A browser signed in at the realm through one process, whose gateway session its owner ends through the other:
 * the realm's session of that browser ends for both processes at once, on each backend.
 */
for (const backend of ['SQLite', 'PostgreSQL']) {
  describe(`the realm session of a browser whose gateway session ends on another process, on ${backend}`, () => {
    let pair: GatewayPair
    let dropDatabase: (() => Promise<void>) | undefined
    before(async () => {
      const database = backend === 'PostgreSQL' ? await createTestDatabase() : undefined
      dropDatabase = database?.drop
      pair = await spawnGatewayPair(database ? ['--database', database.url] : undefined)
      const created = await at(pair.first.url).fetch('/api/gateway/v1/users/', {
        method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'kim', password: 'kim-password' }),
      })
      assert.equal(created.status, 201)
    })
    after(async () => {
      await pair?.stop()
      await dropDatabase?.()
    })

    /** What the realm of the process at `url` answers a browser holding `realmSession` that asks for a code without a login page. */
    const silentAuthorization = async (url: string, realmSession: string) => {
      const realm = `${url}/realms/platform`
      const response = await fetch(`${realm}/protocol/openid-connect/auth?${new URLSearchParams({
        client_id: 'end-users', redirect_uri: `${realm}/gatehouse/callback`, response_type: 'code', scope: 'openid', prompt: 'none',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
      })}`, { headers: { cookie: `gatehouse_oidc_session=${realmSession}` }, redirect: 'manual' })
      const location = new URL(response.headers.get('location') ?? '', url)
      return location.searchParams.get('code') ? 'code' : location.searchParams.get('error')
    }

    it('ends it on both processes', async () => {
      const laptop = new Browser()
      const login = await laptop.navigate(`${pair.first.url}/demo-app/x`)
      const back = await laptop.submit(login, { username: 'kim', password: 'kim-password' })
      assert.equal(JSON.parse(back.body).identity.username, 'kim')
      const realmSession = laptop.cookie(pair.first.url, 'gatehouse_oidc_session')!
      for (const url of [pair.first.url, pair.second.url]) assert.equal(await silentAuthorization(url, realmSession), 'code')

      const ended = await at(pair.second.url).fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: { authorization: basic('kim', 'kim-password') } })
      assert.equal((await json(ended)).ended, 1)
      for (const url of [pair.first.url, pair.second.url]) assert.equal(await silentAuthorization(url, realmSession), 'login_required')
      const again = await laptop.navigate(`${pair.first.url}/demo-app/x`)
      assert.match(new URL(again.url).pathname, /\/login-actions\//, 'the realm asks the laptop for the password again')
    })
  })
}
