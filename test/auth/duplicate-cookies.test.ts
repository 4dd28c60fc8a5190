import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { csrfToken, LOGIN, login, setCookie } from '../helpers/session.ts'

/** The gateway API answers through Fastify's router; a service's path through the lean proxy path. */
const PATHS = { fastify: '/api/gateway/v1/me/', lean: '/api/controller/v2/hosts/' }

async function whoAmI(gw: TestGateway, path: string, cookie: string): Promise<string | undefined> {
  const response = await gw.fetch(path, { headers: { cookie } })
  const body = await json(response)
  if (response.status !== 200) return `${response.status} ${body.code}`
  return path === PATHS.fastify ? body.results[0].username : body.identity.username
}

describe('a Cookie header with a gateway cookie twice', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] } } })
    await gw.app.accounts.create({ username: 'victim', password: 'victim-password' })
    await gw.app.accounts.create({ username: 'attacker', password: 'attacker-password' })
  })
  after(() => gw.close())

  it('takes the last session cookie, as Django does, on both request paths', async () => {
    // A sibling subdomain's `Domain=.example.com; Path=/api/` cookie has the longer path: browsers send it first.
    const planted = await login(gw, 'attacker', 'attacker-password')
    const own = await login(gw, 'victim', 'victim-password')
    const cookie = `gateway_sessionid=${planted.sessionId}; theme=dark; gateway_sessionid=${own.sessionId}`
    for (const [lane, path] of Object.entries(PATHS)) {
      assert.equal(await whoAmI(gw, path, cookie), 'victim', lane)
      assert.equal(await whoAmI(gw, path, `gateway_sessionid=${own.sessionId}; gateway_sessionid=${planted.sessionId}`), 'attacker', `${lane}: the order decides`)
    }
  })

  it('checks the CSRF header against the last csrftoken cookie', async () => {
    const own = await login(gw, 'victim', 'victim-password')
    const planted = await csrfToken(gw)
    const cookie = `csrftoken=${planted}; gateway_sessionid=${own.sessionId}; csrftoken=${own.csrf}`
    const post = (token: string) => gw.fetch(LOGIN.replace('login/', 'tokens/'), {
      method: 'POST',
      headers: { cookie, 'x-csrftoken': token, 'content-type': 'application/json', referer: gw.url + '/' },
      body: JSON.stringify({ description: 'duplicate cookies' }),
    })
    const withPlanted = await post(planted)
    assert.equal(withPlanted.status, 403)
    assert.equal((await json(withPlanted)).code, 'csrf_token_incorrect')
    assert.equal((await post(own.csrf)).status, 201)
  })

  it('clears a refused session cookie with the attributes it was set with, Secure behind HTTPS', async () => {
    const https = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gate.example.com' }
    for (const [lane, path] of Object.entries(PATHS)) {
      const response = await gw.fetch(path, { headers: { cookie: 'gateway_sessionid=not-a-session', ...https } })
      assert.equal(response.status, 401, lane)
      const cleared = setCookie(response, 'gateway_sessionid')
      assert.equal(cleared?.value, '', lane)
      const attributes = cleared!.attributes.split('; ')
      for (const attribute of ['Path=/', 'HttpOnly', 'SameSite=Lax', 'Secure']) assert.ok(attributes.includes(attribute), `${lane}: ${attribute} in ${cleared!.attributes}`)
      const plain = setCookie(await gw.fetch(path, { headers: { cookie: 'gateway_sessionid=not-a-session' } }), 'gateway_sessionid')
      assert.ok(!plain!.attributes.split('; ').includes('Secure'), `${lane}: not Secure on plain HTTP`)
    }
  })
})
