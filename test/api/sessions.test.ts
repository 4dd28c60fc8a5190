import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login } from '../helpers/session.ts'

describe('session administration', () => {
  let gw: TestGateway
  let aliceId: number
  before(async () => {
    gw = await startGateway()
    aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })).id
  })
  after(() => gw.close())

  const me = (sessionId: string) => gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${sessionId}` } })

  it('lists live sessions to superusers, without their identifiers', async () => {
    const alice = await login(gw, 'alice', 'alice-password', { 'user-agent': 'test-browser/1.0' })
    const admin = await login(gw, 'admin', ADMIN_PASSWORD)
    const response = await gw.fetch('/api/gateway/v1/sessions/', { headers: { cookie: admin.cookie } })
    assert.equal(response.status, 200)
    const body = await json(response)
    assert.equal(body.count, 2)
    const mine = body.results.find((s: { username: string }) => s.username === 'admin')
    const hers = body.results.find((s: { username: string }) => s.username === 'alice')
    assert.equal(mine.current, true)
    assert.equal(hers.current, false)
    assert.equal(hers.user, aliceId)
    assert.equal(hers.user_agent, 'test-browser/1.0')
    assert.equal(hers.ip, '127.0.0.1')
    assert.ok(hers.expires_in_seconds > 890)
    assert.ok(!JSON.stringify(body).includes(alice.sessionId))
    const filtered = await json(await gw.fetch(`/api/gateway/v1/sessions/?user=${aliceId}`, { headers: adminAuth }))
    assert.deepEqual(filtered.results.map((s: { id: number }) => s.id), [hers.id])
    const single = await gw.fetch(`/api/gateway/v1/sessions/${hers.id}/`, { headers: adminAuth })
    assert.equal((await json(single)).username, 'alice')
  })

  it('records in the audit trail the User-Agent a session stores, within its bound', async () => {
    const userAgent = `Mozilla/${'X'.repeat(7000)}`
    await login(gw, 'alice', 'alice-password', { 'user-agent': userAgent })
    await gw.app.audit.flush()
    const { results: [entry] } = await json(await gw.fetch('/api/gateway/v1/activitystream/?content_type=session&order_by=-id', { headers: adminAuth }))
    assert.equal(entry.changes.added_fields.user_agent, userAgent.slice(0, 256))
    const { results } = await json(await gw.fetch(`/api/gateway/v1/sessions/?user=${aliceId}`, { headers: adminAuth }))
    assert.ok(results.some((session: { user_agent: string }) => session.user_agent === userAgent.slice(0, 256)))
  })

  it('refuses everyone but superusers', async () => {
    const alice = await login(gw, 'alice', 'alice-password')
    for (const path of ['/api/gateway/v1/sessions/', `/api/gateway/v1/users/${aliceId}/sessions/`]) {
      const bySession = await gw.fetch(path, { headers: { cookie: alice.cookie } })
      assert.equal(bySession.status, 403)
      const byBasic = await gw.fetch(path, { headers: { authorization: basic('alice', 'alice-password') } })
      assert.equal(byBasic.status, 403)
      assert.equal((await gw.fetch(path)).status, 401)
    }
    const endAll = await gw.fetch(`/api/gateway/v1/users/${aliceId}/sessions/`, { method: 'DELETE', headers: { authorization: basic('alice', 'alice-password') } })
    assert.equal(endAll.status, 403)
    assert.equal((await me(alice.sessionId)).status, 200)
  })

  it('ends one session at once', async () => {
    const alice = await login(gw, 'alice', 'alice-password')
    assert.equal((await me(alice.sessionId)).status, 200)
    const { results } = await json(await gw.fetch(`/api/gateway/v1/users/${aliceId}/sessions/`, { headers: adminAuth }))
    const newest = results.at(-1)
    const ended = await gw.fetch(`/api/gateway/v1/sessions/${newest.id}/`, { method: 'DELETE', headers: adminAuth })
    assert.equal(ended.status, 204)
    assert.equal((await me(alice.sessionId)).status, 401)
    assert.equal((await gw.fetch(`/api/gateway/v1/sessions/${newest.id}/`, { method: 'DELETE', headers: adminAuth })).status, 404)
    assert.equal((await gw.fetch(`/api/gateway/v1/sessions/${newest.id}/`, { headers: adminAuth })).status, 404)
  })

  it('ends all sessions of a user and no one else\'s', async () => {
    const a = await login(gw, 'alice', 'alice-password')
    const b = await login(gw, 'alice', 'alice-password')
    const admin = await login(gw, 'admin', ADMIN_PASSWORD)
    const response = await gw.fetch(`/api/gateway/v1/users/${aliceId}/sessions/`, { method: 'DELETE', headers: adminAuth })
    assert.equal(response.status, 204)
    assert.equal((await me(a.sessionId)).status, 401)
    assert.equal((await me(b.sessionId)).status, 401)
    assert.equal((await me(admin.sessionId)).status, 200)
    const listed = await json(await gw.fetch(`/api/gateway/v1/users/${aliceId}/sessions/`, { headers: adminAuth }))
    assert.equal(listed.count, 0)
  })

  it('answers unknown ids and bad filters with 4xx', async () => {
    assert.equal((await gw.fetch('/api/gateway/v1/sessions/999999/', { headers: adminAuth })).status, 404)
    assert.equal((await gw.fetch('/api/gateway/v1/sessions/abc/', { method: 'DELETE', headers: adminAuth })).status, 404)
    assert.equal((await gw.fetch('/api/gateway/v1/users/999999/sessions/', { headers: adminAuth })).status, 404)
    const bad = await gw.fetch('/api/gateway/v1/sessions/?user=alice', { headers: adminAuth })
    assert.equal(bad.status, 400)
    assert.equal((await json(bad)).code, 'invalid')
    const unknown = await gw.fetch('/api/gateway/v1/sessions/?usr=1', { headers: adminAuth })
    assert.equal(unknown.status, 400)
    assert.ok((await json(unknown)).errors.usr)
  })

  it('serves a known session from memory after its first lookup', async (t) => {
    const alice = await login(gw, 'alice', 'alice-password')
    const lookups = t.mock.method(gw.store.sessions, 'findByKeyHash')
    for (let i = 0; i < 10; i++) assert.equal((await me(alice.sessionId)).status, 200)
    assert.equal(lookups.mock.callCount(), 0)
  })
})
