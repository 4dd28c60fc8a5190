import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { csrfToken, LOGIN } from '../helpers/session.ts'

const NUL = '\u0000'
const NUL_MESSAGE = 'Null characters are not allowed.'

/**
 * A NUL character in any text the gateway reads (JSON and form bodies, query strings, the OIDC endpoints'
 * parameters) is refused with 400 and changes nothing, on SQLite as on PostgreSQL, which cannot store one.
 */
function nulCharacterSuite(backend: string, databaseUrl: () => Promise<{ url?: string; drop: () => Promise<void> }>): void {
  describe(`NUL characters in input on ${backend}`, () => {
    let gw: TestGateway
    let drop: () => Promise<void>
    const user = { authorization: basic('nul-user', 'nul-user-password') }
    const send = (method: string, path: string, body: unknown, headers: Record<string, string> = adminAuth) =>
      gw.fetch(path, { method, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })

    before(async () => {
      const database = await databaseUrl()
      drop = database.drop
      gw = await startGateway(database.url ? { databaseUrl: database.url } : {})
      await gw.app.accounts.create({ username: 'nul-user', password: 'nul-user-password' })
    })
    after(async () => {
      await gw?.close()
      await drop?.()
    })

    async function refused(response: Response, field: string): Promise<void> {
      const body = await json(response)
      assert.equal(response.status, 400, JSON.stringify(body))
      assert.equal(body.code, 'invalid')
      assert.deepEqual(body.errors[field], [NUL_MESSAGE])
    }

    it('refuses a new user whose name fields hold NUL, and creates nothing', async () => {
      await refused(await send('POST', '/api/gateway/v1/users/', { username: 'zed', password: 'zed-password', first_name: `Z${NUL}ed` }), 'first_name')
      const listed = await json(await gw.fetch('/api/gateway/v1/users/?username=zed', { headers: adminAuth }))
      assert.equal(listed.count, 0)
    })

    it('refuses NUL in a query parameter', async () => {
      await refused(await gw.fetch(`/api/gateway/v1/users/?username=a%00b`, { headers: adminAuth }), 'username')
    })

    it('refuses NUL in a change to one\'s own profile, and keeps the old value', async () => {
      assert.equal((await send('PATCH', '/api/gateway/v1/me/', { last_name: 'Before' }, user)).status, 200)
      await refused(await send('PATCH', '/api/gateway/v1/me/', { last_name: `After${NUL}` }, user), 'last_name')
      const me = await json(await gw.fetch('/api/gateway/v1/me/', { headers: user }))
      assert.equal(me.results[0].last_name, 'Before')
    })

    it('refuses NUL in a token description, and issues no token', async () => {
      const before = (await json(await gw.fetch('/api/gateway/v1/tokens/', { headers: user }))).count
      await refused(await send('POST', '/api/gateway/v1/tokens/', { description: `mine${NUL}` }, user), 'description')
      assert.equal((await json(await gw.fetch('/api/gateway/v1/tokens/', { headers: user }))).count, before)
    })

    it('refuses NUL in a login form', async () => {
      const token = await csrfToken(gw)
      const response = await gw.fetch(LOGIN, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN },
        body: new URLSearchParams({ username: `nul-user${NUL}`, password: 'nul-user-password' }).toString(),
      })
      await refused(response, 'username')
    })

    it('refuses NUL in the parameters of the OpenID Connect endpoints, as Keycloak shapes errors', async () => {
      const token = await gw.fetch('/realms/platform/protocol/openid-connect/token', {
        method: 'POST',
        body: new URLSearchParams({ client_id: 'end-users', grant_type: 'refresh_token', refresh_token: `x${NUL}y` }),
      })
      assert.equal(token.status, 400)
      assert.equal((await json(token)).error, 'invalid_request')
      const auth = await gw.fetch(`/realms/platform/protocol/openid-connect/auth?client_id=end-users&response_type=code&state=a%00b`)
      assert.equal(auth.status, 400)
      assert.equal((await json(auth)).error, 'invalid_request')
    })
  })
}

nulCharacterSuite('SQLite', async () => ({ drop: async () => {} }))
nulCharacterSuite('PostgreSQL', createTestDatabase)

describe('text that is not Unicode', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw?.close())

  it('refuses a lone surrogate in a JSON body, naming the field, and stores nothing in its place', async () => {
    const organizations = async () => (await json(await gw.fetch('/api/gateway/v1/organizations/', { headers: adminAuth }))).count
    const before = await organizations()
    for (const body of ['{"name": "half \\ud800 a pair"}', '{"name": "low \\udc00"}', '{"name": "ok", "\\ud800": 1}']) {
      const response = await gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body })
      const error = await json(response)
      assert.equal(response.status, 400, body)
      assert.equal(error.code, 'invalid')
      assert.equal(Object.keys(error.errors).length, 1, body)
    }
    const pair = await gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: '{"name": "a whole pair \\ud83d\\ude00"}' })
    assert.equal(pair.status, 201)
    assert.equal((await json(pair)).name, 'a whole pair \u{1F600}')
    assert.equal(await organizations(), before + 1)
  })

  it('refuses a body that is not UTF-8, or says it is in another charset, and stores nothing in its place', async () => {
    const organizations = async () => (await json(await gw.fetch('/api/gateway/v1/organizations/?page_size=200', { headers: adminAuth }))).results.map((o: any) => o.name)
    const before = await organizations()
    const post = (type: string, body: Buffer | string) => gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...adminAuth, 'content-type': type }, body })
    const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9])
    const cases: [string, Buffer | string, number, string][] = [
      ['application/json', Buffer.concat([Buffer.from('{"name": "'), latin1, Buffer.from('"}')]), 400, 'invalid_json'],
      ['application/json; charset=iso-8859-1', '{"name": "declared latin-1"}', 415, 'unsupported_media_type'],
      ['application/json; charset=utf-16', '{"name": "declared utf-16"}', 415, 'unsupported_media_type'],
      ['application/x-www-form-urlencoded', 'name=caf%E9', 400, 'malformed_escape'],
      ['application/x-www-form-urlencoded', 'name=caf%ZZ', 400, 'malformed_escape'],
      ['application/x-www-form-urlencoded', Buffer.concat([Buffer.from('name='), latin1]), 400, 'malformed_escape'],
      ['application/x-www-form-urlencoded; charset=iso-8859-1', 'name=declared', 415, 'unsupported_media_type'],
    ]
    for (const [type, body, status, code] of cases) {
      const response = await post(type, body)
      const error = await json(response)
      assert.deepEqual([response.status, error.code], [status, code], `${type}: ${body}`)
    }
    assert.deepEqual(await organizations(), before)
    for (const [type, body] of [['application/json; charset=UTF-8', '{"name": "caf\u00e9 json"}'], ['application/x-www-form-urlencoded', 'name=caf%C3%A9+form']]) {
      const created = await post(type!, body!)
      assert.equal(created.status, 201, type)
    }
    assert.deepEqual((await organizations()).filter((name: string) => name.startsWith('caf')), ['café json', 'café form'])
  })

  it('answers a path whose id is longer than the router takes 404, without repeating the path back', async () => {
    const long = 'a'.repeat(5000)
    // Whatever the method, one a route with a parameter there has (DELETE users/{id}/) or not (POST): docs/api.md.
    for (const [method, path] of [['GET', `/api/gateway/v1/users/${long}/`], ['GET', `/api/gateway/v1/teams/${long}/users/`], ['DELETE', `/api/gateway/v1/users/${long}/`], ['POST', `/api/gateway/v1/users/${long}/`]] as const) {
      const response = await gw.fetch(path, { method, headers: adminAuth })
      const error = await json(response)
      assert.deepEqual([response.status, error.code], [404, 'not_found'], `${method} ${path.slice(0, 40)}`)
      assert.ok(!String(error.detail).includes('aaaa'), error.detail)
    }
    const page = await gw.fetch(`/api/gateway/v1/users/${long}/`, { headers: { ...adminAuth, accept: 'text/html' } })
    assert.equal(page.status, 404)
    assert.ok((await page.text()).length < 2000)
  })

  it('answers a body of a type it does not read 415, as Django REST framework does, and takes an empty one of any type', async () => {
    const post = (path: string, type: string, body?: string) => gw.fetch(path, { method: 'POST', headers: { ...adminAuth, 'content-type': type }, body })
    for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/xml', 'application/octet-stream']) {
      for (const path of ['/api/gateway/v1/organizations/', '/api/gateway/v1/tokens/revoke/', '/api/gateway/v1/me/sessions/end_others/']) {
        const response = await post(path, type, '{"name": "as text", "user": 1}')
        assert.deepEqual([response.status, (await json(response)).code], [415, 'unsupported_media_type'], `${type} to ${path}`)
      }
      const empty = await post('/api/gateway/v1/me/sessions/end_others/', type)
      assert.equal(empty.status, 200, `an empty ${type} body`)
    }
    const named = await json(await post('/api/gateway/v1/organizations/', 'text/plain', 'x'))
    assert.equal(named.detail, 'Unsupported media type "text/plain" in request.')
  })
})
