import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { LOGIN, login, setCookie } from '../helpers/session.ts'

/** The gateway API answers through Fastify's router; a service's path through the lean proxy path. */
const PATHS = { fastify: '/api/gateway/v1/me/', lean: '/api/controller/v2/hosts/' }
const PUBLIC_URL = 'https://gate.example.com'

/** A cookie's attributes but its lifetime, which a clearing cookie sets to none. */
function attributesBesidesLifetime(response: Response): string[] {
  const cookie = setCookie(response, 'gateway_sessionid')
  assert.ok(cookie, 'a gateway_sessionid cookie is set')
  return cookie.attributes.split('; ').filter((attribute) => !/^(max-age|expires)=/i.test(attribute)).sort()
}

/**
 * A browser deletes a cookie only with one of the same name, domain and path; a Secure cookie besides cannot be
 * overwritten from plain HTTP. The cookie that clears a refused session has the attributes login set, even when the
 * request came over plain HTTP to a gateway whose public URL is https (a TLS-terminating proxy that is not trusted).
 */
describe('the cookie that clears a session, with an https public URL and a request over plain HTTP', () => {
  let gw: TestGateway
  let loginAttributes: string[]
  const ids: Record<string, number> = {}
  const signIn = async (username: string) => login(gw, username, `${username}-password-long`, { referer: PUBLIC_URL + LOGIN })

  before(async () => {
    gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, public_url: PUBLIC_URL } } })
    for (const name of ['alice', 'leaver']) ids[name] = (await gw.app.accounts.create({ username: name, password: `${name}-password-long` })).id
    const token = setCookie(await gw.fetch(LOGIN), 'csrftoken')!.value
    const response = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: PUBLIC_URL + LOGIN },
      body: new URLSearchParams({ username: 'alice', password: 'alice-password-long' }).toString(),
    })
    assert.equal(response.status, 302)
    loginAttributes = attributesBesidesLifetime(response)
    assert.ok(loginAttributes.includes('Secure'), `login sets Secure: ${loginAttributes.join('; ')}`)
  })
  after(() => gw.close())

  it('clears an unknown session with the attributes login set it with, on both request paths', async () => {
    for (const [lane, path] of Object.entries(PATHS)) {
      const response = await gw.fetch(path, { headers: { cookie: 'gateway_sessionid=not-a-session' } })
      assert.equal(response.status, 401, lane)
      assert.equal(setCookie(response, 'gateway_sessionid')?.value, '', lane)
      assert.deepEqual(attributesBesidesLifetime(response), loginAttributes, lane)
    }
  })

  it('clears the session of a disabled account with the attributes login set it with, on both request paths', async () => {
    for (const [lane, path] of Object.entries(PATHS)) {
      const session = await signIn('leaver')
      await gw.app.accounts.update(ids.leaver!, { isActive: false })
      const response = await gw.fetch(path, { headers: { cookie: session.cookie } })
      assert.ok(response.status === 401 || response.status === 403, `${lane}: ${response.status}`)
      assert.equal(setCookie(response, 'gateway_sessionid')?.value, '', lane)
      assert.deepEqual(attributesBesidesLifetime(response), loginAttributes, lane)
      await gw.app.accounts.update(ids.leaver!, { isActive: true })
    }
  })

  it('clears the session at logout with the attributes login set it with', async () => {
    const session = await signIn('alice')
    const response = await gw.fetch(LOGIN.replace('login/', 'logout/'), { headers: { cookie: session.cookie } })
    assert.equal(response.status, 302)
    assert.deepEqual(attributesBesidesLifetime(response), loginAttributes)
  })
})
