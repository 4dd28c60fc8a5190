import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login, withCsrf, type LoggedIn } from '../helpers/session.ts'

describe('my sessions (me/sessions/)', () => {
  let gw: TestGateway
  const mine = (session: LoggedIn) => gw.fetch('/api/gateway/v1/me/sessions/', { headers: { cookie: session.cookie } })
  const stillWorks = async (session: LoggedIn) => (await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status === 200

  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'erin', password: 'erin-password' })
    await gw.app.accounts.create({ username: 'frank', password: 'frank-password' })
  })
  after(() => gw.close())

  it('lists the caller\'s own live sessions only, marking the one in use', async () => {
    const laptop = await login(gw, 'erin', 'erin-password', { 'user-agent': 'laptop' })
    await login(gw, 'erin', 'erin-password', { 'user-agent': 'phone' })
    await login(gw, 'frank', 'frank-password')
    const response = await mine(laptop)
    assert.equal(response.status, 200)
    const body = await json(response)
    assert.equal(body.count, 2)
    assert.deepEqual(body.results.map((s: { user_agent: string; current: boolean }) => [s.user_agent, s.current]).sort(), [['laptop', true], ['phone', false]])
    assert.ok(body.results.every((s: Record<string, unknown>) => !('key_hash' in s) && !('session_id' in s)))
    // Each links to where its owner may read it (sessions/{id}/ is superusers').
    for (const listed of body.results as { id: number; url: string }[]) {
      assert.equal(listed.url, `/api/gateway/v1/me/sessions/${listed.id}/`)
      const one = await gw.fetch(listed.url, { headers: { cookie: laptop.cookie } })
      assert.equal(one.status, 200)
      assert.deepEqual(await json(one), listed)
    }
    const franks = (await json(await gw.fetch('/api/gateway/v1/sessions/?page_size=200', { headers: { authorization: basic('admin', ADMIN_PASSWORD) } }))).results.filter((s: { username: string }) => s.username === 'frank')
    assert.equal((await gw.fetch(`/api/gateway/v1/me/sessions/${franks[0].id}/`, { headers: { cookie: laptop.cookie } })).status, 404, 'another\'s is not found')
  })

  it('ends one of the caller\'s sessions, and says "not found" for anyone else\'s', async () => {
    const erin = await login(gw, 'erin', 'erin-password')
    const frank = await login(gw, 'frank', 'frank-password')
    const franks = (await json(await mine(frank))).results as { id: number; current: boolean }[]
    const frankCurrent = franks.find((s) => s.current)!
    const refused = await gw.fetch(`/api/gateway/v1/me/sessions/${frankCurrent.id}/`, { method: 'DELETE', headers: withCsrf(erin) })
    assert.equal(refused.status, 404)
    assert.equal((await json(refused)).code, 'not_found')
    assert.ok(await stillWorks(frank))

    const ended = await gw.fetch(`/api/gateway/v1/me/sessions/${frankCurrent.id}/`, { method: 'DELETE', headers: withCsrf(frank) })
    assert.equal(ended.status, 204)
    assert.equal(await stillWorks(frank), false)
    for (const id of ['0', 'abc', '99999999']) {
      assert.equal((await gw.fetch(`/api/gateway/v1/me/sessions/${id}/`, { method: 'DELETE', headers: withCsrf(erin) })).status, 404, id)
    }
  })

  it('ends a session once when several DELETEs ask at once: the others are 404, and one end is recorded', async () => {
    const erin = { authorization: basic('erin', 'erin-password') }
    for (let round = 0; round < 5; round += 1) {
      const phone = await login(gw, 'erin', 'erin-password', { 'user-agent': `phone ${round}` })
      const { id } = (await json(await mine(phone))).results.find((s: { current: boolean }) => s.current)
      const statuses = (await Promise.all([1, 2, 3, 4].map(() => gw.fetch(`/api/gateway/v1/me/sessions/${id}/`, { method: 'DELETE', headers: erin })))).map((response) => response.status)
      assert.deepEqual(statuses.toSorted(), [204, 404, 404, 404], `round ${round}`)
      await gw.app.audit.flush()
      const recorded = await json(await gw.fetch(`/api/gateway/v1/activitystream/?operation=delete&object_id=${id}`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } }))
      assert.equal(recorded.results.filter((entry: any) => entry.content_type === 'session').length, 1, `round ${round}`)
    }
  })

  it('ends all the caller\'s other sessions and keeps the one in use', async () => {
    const here = await login(gw, 'erin', 'erin-password')
    const elsewhere = await login(gw, 'erin', 'erin-password')
    const frank = await login(gw, 'frank', 'frank-password')
    const response = await gw.fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: withCsrf(here) })
    assert.equal(response.status, 200)
    assert.ok((await json(response)).ended >= 1)
    assert.equal(await stillWorks(here), true)
    assert.equal(await stillWorks(elsewhere), false)
    assert.equal(await stillWorks(frank), true, 'other users keep their sessions')
    assert.equal((await json(await mine(here))).count, 1)
  })

  it('needs the CSRF token when a session asks', async () => {
    const erin = await login(gw, 'erin', 'erin-password')
    const response = await gw.fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: { cookie: erin.cookie } })
    assert.equal(response.status, 403)
    assert.equal((await json(response)).code, 'csrf_token_missing')
    assert.equal(await stillWorks(erin), true)
  })

  it('ends every session when asked with basic credentials, which have none to keep', async () => {
    const erin = await login(gw, 'erin', 'erin-password')
    const response = await gw.fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: { authorization: basic('erin', 'erin-password') } })
    assert.equal(response.status, 200)
    assert.equal(await stillWorks(erin), false)
  })

  it('requires authentication', async () => {
    const response = await gw.fetch('/api/gateway/v1/me/sessions/')
    assert.equal(response.status, 401)
    assert.equal((await json(response)).code, 'not_authenticated')
  })
})
