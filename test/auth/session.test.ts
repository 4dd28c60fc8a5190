import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { SessionManager } from '../../src/auth/session-manager.ts'
import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { csrfToken, login, setCookie, withCsrf } from '../helpers/session.ts'

const demo = loadConfigFile(demoConfigFile)

describe('session authorization', () => {
  let gw: TestGateway
  before(async () => {
    const demoApp = demo.services.find((s) => s.name === 'demo-app')!
    gw = await startGateway({ config: { services: [...demo.services, { ...demoApp, name: 'basic-app', prefix: '/basic-app/', accepts: ['basic'], oidc: undefined }] } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  it('authenticates the gateway API and a service with the session cookie alone', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const me = await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${session.sessionId}` } })
    assert.equal(me.status, 200)
    assert.equal((await json(me)).results[0].username, 'alice')
    const hosts = await gw.fetch('/api/controller/v2/hosts/', { headers: { cookie: `gateway_sessionid=${session.sessionId}; theme=dark` } })
    assert.equal(hosts.status, 200)
    const seen = await json(hosts)
    assert.deepEqual(seen.identity, { username: 'alice', user_id: seen.identity.user_id, auth_method: 'session', verified: true })
    assert.equal(seen.headers.cookie, 'theme=dark', 'the gateway cookies are not forwarded')
  })

  it('does not authenticate a service that accepts neither sessions nor OIDC', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const response = await gw.fetch('/basic-app/x', { headers: { cookie: `gateway_sessionid=${session.sessionId}` } })
    assert.equal(response.status, 401)
  })

  it('authenticates a service that takes OIDC with the browser\'s session, and checks CSRF on unsafe methods', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const cookie = `gateway_sessionid=${session.sessionId}`
    const seen = await json(await gw.fetch('/demo-app/x', { headers: { cookie } }))
    assert.equal(seen.identity.auth_method, 'session')
    const forged = await gw.fetch('/demo-app/x', { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(forged.status, 403)
    assert.equal((await json(forged)).code, 'csrf_cookie_missing')
  })

  it('refuses unknown, tampered and malformed session cookies with 401 and deletes the cookie', async () => {
    const { sessionId } = await login(gw, 'alice', 'alice-password')
    const tampered = sessionId.slice(0, -1) + (sessionId.endsWith('A') ? 'B' : 'A')
    for (const value of [tampered, 'A'.repeat(43), 'not-a-session', 'x'.repeat(8000), '%E0%A4%A']) {
      for (const path of ['/api/gateway/v1/me/', '/api/controller/v2/hosts/']) {
        const response = await gw.fetch(path, { headers: { cookie: `gateway_sessionid=${value}` } })
        assert.equal(response.status, 401, `${path} ${value.slice(0, 20)}`)
        assert.equal((await json(response)).code, 'invalid_session')
        assert.equal(setCookie(response, 'gateway_sessionid')?.value, '')
      }
    }
  })

  it('answers a cookie header too large to read with 431 and no session', async () => {
    const response = await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${'x'.repeat(20_000)}` } })
    assert.equal(response.status, 431)
    assert.equal((await json(response)).code, 'headers_too_large')
  })

  it('lets a session read without a CSRF token but not write', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const cookieOnly = { cookie: session.cookie }
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const service = await gw.fetch('/api/controller/v2/hosts/', { method, headers: cookieOnly })
      assert.equal(service.status, 403, method)
      assert.equal((await json(service)).code, 'csrf_token_missing')
    }
    const wrong = await gw.fetch('/api/controller/v2/hosts/', { method: 'POST', headers: { ...cookieOnly, 'x-csrftoken': 'x'.repeat(64) } })
    assert.equal((await json(wrong)).code, 'csrf_token_incorrect')
    const noCookie = await gw.fetch('/api/controller/v2/hosts/', { method: 'POST', headers: { cookie: `gateway_sessionid=${session.sessionId}`, 'x-csrftoken': session.csrf } })
    assert.equal((await json(noCookie)).code, 'csrf_cookie_missing')
    const ok = await gw.fetch('/api/controller/v2/hosts/', { method: 'POST', headers: withCsrf(session, { 'content-type': 'application/json' }), body: '{"name":"web"}' })
    assert.equal(ok.status, 200)
    assert.equal((await json(ok)).identity.auth_method, 'session')
  })

  it('needs CSRF on the gateway API too, and none for basic credentials', async () => {
    const admin = await login(gw, 'admin', ADMIN_PASSWORD)
    const body = JSON.stringify({ username: 'made-by-session' })
    const refused = await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: { cookie: admin.cookie, 'content-type': 'application/json' }, body })
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'csrf_token_missing')
    assert.equal(await gw.store.users.findByUsername('made-by-session'), undefined)
    const made = await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: withCsrf(admin, { 'content-type': 'application/json' }), body })
    assert.equal(made.status, 201)
    const byBasic = await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'made-by-basic' }) })
    assert.equal(byBasic.status, 201)
    const service = await gw.fetch('/api/controller/v2/hosts/', { method: 'DELETE', headers: { authorization: basic('alice', 'alice-password') } })
    assert.equal(service.status, 200)
  })

  it('refuses an expired session with 401 once its time is up', async (t) => {
    const session = await login(gw, 'alice', 'alice-password')
    const headers = { cookie: `gateway_sessionid=${session.sessionId}` }
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers })).status, 200)
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    t.mock.timers.tick(899_000)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers })).status, 200)
    t.mock.timers.tick(1_000)
    for (const path of ['/api/gateway/v1/me/', '/api/controller/v2/hosts/']) {
      const response = await gw.fetch(path, { headers })
      assert.equal(response.status, 401)
      assert.equal((await json(response)).code, 'session_expired')
    }
  })

  it('removes expired sessions from the database on a later login, without a cron job', async (t) => {
    const session = await login(gw, 'alice', 'alice-password')
    const keyHash = SessionManager.hashOf(session.sessionId)
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    t.mock.timers.tick(3_600_000)
    // The clean-up is spaced by the monotonic clock, which moves on as much.
    const machinePerformanceNow = performance.now.bind(performance)
    t.mock.method(performance, 'now', () => machinePerformanceNow() + 3_600_000)
    assert.ok(await gw.store.sessions.findByKeyHash(keyHash), 'nobody presented it yet')
    await login(gw, 'admin', ADMIN_PASSWORD)
    assert.equal(await gw.store.sessions.findByKeyHash(keyHash), undefined)
  })

  it('applies a changed session_cookie_age to new sessions and leaves running ones alone', async () => {
    const before = await login(gw, 'alice', 'alice-password')
    await gw.app.settings.update({ session_cookie_age: 120 })
    try {
      const token = await csrfToken(gw)
      const response = await gw.fetch('/api/gateway/v1/login/', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}` },
        body: 'username=alice&password=alice-password',
      })
      assert.match(setCookie(response, 'gateway_sessionid')!.attributes, /Max-Age=120(;|$)/)
      const fresh = await json(await gw.fetch('/api/gateway/v1/session/', { headers: { cookie: `gateway_sessionid=${setCookie(response, 'gateway_sessionid')!.value}` } }))
      assert.ok(fresh.expires_in_seconds <= 120 && fresh.expires_in_seconds >= 118, String(fresh.expires_in_seconds))
      const old = await json(await gw.fetch('/api/gateway/v1/session/', { headers: { cookie: `gateway_sessionid=${before.sessionId}` } }))
      assert.ok(old.expires_in_seconds > 800, String(old.expires_in_seconds))
    } finally {
      await gw.app.settings.update({ session_cookie_age: 900 })
    }
  })

  it('ends the oldest session when a user goes over sessions_per_user_limit', async () => {
    const bob = await gw.app.accounts.create({ username: 'bob', password: 'bob-password' })
    await gw.app.settings.update({ sessions_per_user_limit: 2 })
    try {
      const first = await login(gw, 'bob', 'bob-password')
      const second = await login(gw, 'bob', 'bob-password')
      const me = (s: { sessionId: string }) => gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${s.sessionId}` } })
      assert.equal((await me(first)).status, 200)
      const third = await login(gw, 'bob', 'bob-password')
      assert.equal((await me(first)).status, 401)
      assert.equal((await me(second)).status, 200)
      assert.equal((await me(third)).status, 200)
      assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now(), userId: bob.id })).count, 2)
      await gw.app.settings.update({ sessions_per_user_limit: 0 })
      await login(gw, 'bob', 'bob-password')
      assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now(), userId: bob.id })).count, 3, '0: no limit')
    } finally {
      await gw.app.settings.update({ sessions_per_user_limit: 1000 })
    }
  })

  it('ends every session of a user whose password changes or whose account is disabled', async () => {
    const carol = await gw.app.accounts.create({ username: 'carol', password: 'carol-password' })
    const me = (s: { sessionId: string }) => gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${s.sessionId}` } })
    const a = await login(gw, 'carol', 'carol-password')
    const b = await login(gw, 'carol', 'carol-password')
    const alice = await login(gw, 'alice', 'alice-password')
    const patch = (body: object) => gw.fetch(`/api/gateway/v1/users/${carol.id}/`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.equal((await patch({ email: 'carol@example.com' })).status, 200)
    assert.equal((await me(a)).status, 200, 'other changes keep sessions')
    assert.equal((await patch({ password: 'new-password' })).status, 200)
    assert.equal((await me(a)).status, 401)
    assert.equal((await me(b)).status, 401)
    assert.equal((await me(alice)).status, 200)
    const c = await login(gw, 'carol', 'new-password')
    assert.equal((await patch({ is_active: false })).status, 200)
    assert.equal((await me(c)).status, 401)
    assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now(), userId: carol.id })).count, 0)
  })
})

describe('expired sessions', () => {
  it('are deleted by the next sign-in a minute after the last clean-up, though the machine\'s clock stepped back meanwhile', async (t) => {
    const gw = await startGateway()
    try {
      const { id } = await gw.app.accounts.create({ username: 'nell', password: 'nell-password-long' })
      const origin = { ip: '127.0.0.1', userAgent: 'test' }
      await gw.app.sessions.start(id, origin)
      const expiredAt = Date.now() - 7200_000
      const { session: expired } = await gw.app.sessions.start(id, origin, expiredAt - 1000)
      assert.ok(await gw.store.sessions.findByKeyHash(expired.keyHash))
      // An NTP correction or a virtual machine resumed sets the wall clock back an hour; a minute passes.
      const machineNow = Date.now
      const machinePerformanceNow = performance.now.bind(performance)
      t.mock.method(Date, 'now', () => machineNow() - 3600_000)
      t.mock.method(performance, 'now', () => machinePerformanceNow() + 61_000)
      await gw.app.sessions.start(id, origin)
      assert.equal(await gw.store.sessions.findByKeyHash(expired.keyHash), undefined)
    } finally {
      t.mock.restoreAll()
      await gw.close()
    }
  })
})
