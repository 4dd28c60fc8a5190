import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createOrgAndTeam, grant } from '../helpers/access.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login } from '../helpers/session.ts'

/**
 * `gateway.access`: only team Operators may use the gateway API and the web interface, and basic credentials only
 * from the office network (which the test client, on loopback, is not in).
 */
describe('the gateway\'s own access rules', () => {
  let gw: TestGateway
  const password = (name: string) => `${name}-password-long`
  const as = (name: string) => ({ authorization: basic(name, password(name)) })

  before(async () => {
    gw = await startGateway({
      config: {
        gateway: {
          access: [
            { allow: { superuser: true } },
            { allow: { auth_methods: ['basic'], networks: ['10.0.0.0/8'], teams: ['Operators'] } },
            { deny: { auth_methods: ['basic'] } },
            { allow: { teams: ['Operators'] } },
          ],
        },
      },
    })
    for (const name of ['operator', 'outsider']) await gw.app.accounts.create({ username: name, password: password(name) })
    const platform = await createOrgAndTeam(gw, 'Platform', 'Operators')
    assert.equal((await grant(gw, 'operator', 'Team Member', platform.team)).status, 201)
  })
  after(() => gw.close())

  it('lets a member of Operators use the gateway API and the web interface with a session', async () => {
    const { cookie } = await login(gw, 'operator', password('operator'))
    const me = await gw.fetch('/api/gateway/v1/me/', { headers: { cookie } })
    assert.equal(me.status, 200)
    assert.equal((await json(me)).results[0].username, 'operator')
    assert.equal((await gw.fetch('/ui/', { headers: { cookie } })).status, 200)
  })

  it('refuses a member of Operators using basic credentials from outside the office network, naming the rule', async () => {
    const response = await gw.fetch('/api/gateway/v1/me/', { headers: as('operator') })
    assert.equal(response.status, 403)
    const body = await json(response)
    assert.equal(body.code, 'access_denied')
    assert.match(body.detail, /Rule 3 .*deny auth_methods=basic/)
  })

  it('takes no forwarding header of a client outside the trusted proxies for being in the office network', async () => {
    for (const headers of [{ 'x-forwarded-for': '10.1.2.3' }, { 'x-real-ip': '10.1.2.3' }, { forwarded: 'for=10.1.2.3' }, { 'x-forwarded-for': '10.1.2.3, 127.0.0.1' }]) {
      const response = await gw.fetch('/api/gateway/v1/me/', { headers: { ...as('operator'), ...headers } })
      assert.equal(response.status, 403, JSON.stringify(headers))
      assert.equal((await json(response)).code, 'access_denied')
    }
  })

  it('refuses an outsider the gateway API\'s paths however they are spelt', async () => {
    for (const path of ['/api/gateway/v1/%75sers/', '/api/gateway/v1//users/', '/api/gateway/v1/USERS/', '/api/gateway/v1/users']) {
      const response = await gw.fetch(path, { headers: as('outsider'), redirect: 'manual' })
      assert.ok([301, 400, 403, 404].includes(response.status), `${path}: ${response.status}`)
      if (response.status === 301) assert.equal(new URL(response.headers.get('location')!, gw.url).pathname, '/api/gateway/v1/users/')
    }
  })

  it('refuses everyone else the gateway API and the web interface with 403, though they may still sign in', async () => {
    const { cookie } = await login(gw, 'outsider', password('outsider'))
    const me = await gw.fetch('/api/gateway/v1/me/', { headers: { cookie } })
    assert.equal(me.status, 403)
    const body = await json(me)
    assert.equal(body.code, 'access_denied')
    assert.match(body.detail, /No access rule/)
    assert.equal((await gw.fetch('/ui/', { headers: { cookie } })).status, 403)
  })

  it('lets a refused caller sign out', async () => {
    const { cookie, csrf } = await login(gw, 'outsider', password('outsider'))
    const out = await gw.fetch('/api/gateway/v1/logout/', { method: 'POST', headers: { cookie, 'x-csrftoken': csrf, referer: gw.url + '/api/gateway/v1/logout/' } })
    assert.equal(out.status, 302)
    assert.equal((await gw.fetch('/api/gateway/v1/session/', { headers: { cookie } })).status, 404)
  })

  it('keeps the built-in checks first: an Operator is still no administrator', async () => {
    const { cookie } = await login(gw, 'operator', password('operator'))
    assert.equal((await gw.fetch('/ui/admin/users', { headers: { cookie } })).status, 403)
  })

  it('lets superusers through by the first rule', async () => {
    assert.equal((await gw.fetch('/api/gateway/v1/users/', { headers: adminAuth })).status, 200)
  })

  it('never locks out the public routes, for anonymous and refused callers alike', async () => {
    for (const path of ['/api/gateway/v1/', '/api/gateway/v1/ping/', '/api/gateway/v1/jwks/', '/api/gateway/v1/login/']) {
      assert.equal((await gw.fetch(path)).status, 200, path)
      assert.equal((await gw.fetch(path, { headers: as('outsider') })).status, 200, path)
    }
  })
})
