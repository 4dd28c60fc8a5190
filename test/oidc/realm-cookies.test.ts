import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, testRealms } from '../helpers/oidc.ts'

/** What a TLS-terminating proxy in front adds to every request it forwards. */
const FROM_TLS_PROXY = { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' }

/** A browser's request through the proxy, following the gateway's redirects, every hop with the proxy's headers. */
function walk(gw: TestGateway, jar: CookieJar, url: string, form?: Record<string, string>): Promise<{ response: Response; url: string }> {
  const posted = form && { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() }
  return browse(gw, jar, url, { ...posted, everyHop: FROM_TLS_PROXY })
}

/**
 * Signs a browser in at the realm's login page through the proxy, posts the used login page again (which restarts
 * the login, as Keycloak's KC_RESTART does), and signs it out at the gateway: every cookie the realm sets on the way.
 */
async function realmCookiesOfABrowser(gw: TestGateway): Promise<string[]> {
  const jar = new CookieJar()
  const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url')
  const authorization = realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' })}`)
  const page = await walk(gw, jar, authorization)
  assert.equal(page.response.status, 200)
  const html = await page.response.text()
  const action = new URL(/<form method="post" action="([^"]+)"/.exec(html)![1]!.replaceAll('&amp;', '&'), page.url).href
  const hidden = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!.replaceAll('&amp;', '&')]))
  const signedIn = await walk(gw, jar, action, { ...hidden, username: 'alice', password: 'alice-password-long' })
  assert.ok(signedIn.url.startsWith(CLIENT_REDIRECT), `signed in: ${signedIn.url}`)
  assert.ok(new URL(signedIn.url).searchParams.get('code'))
  const restarted = await walk(gw, jar, action, { ...hidden, username: 'alice', password: 'alice-password-long' })
  assert.ok(restarted.url.startsWith(CLIENT_REDIRECT), `a used login page restarts the login: ${restarted.url}`)
  const signedOut = await walk(gw, jar, `${gw.url}/api/gateway/v1/logout/`)
  assert.equal(signedOut.response.status, 200)
  return jar.setCookies().filter((line) => !/^(gateway_sessionid|csrftoken)=/.test(line))
}

const named = (lines: string[], name: string) => lines.filter((line) => line.startsWith(`${name}=`))
const attribute = (line: string, name: string) => line.split(';').slice(1).map((part) => part.trim().toLowerCase()).find((part) => part === name || part.startsWith(`${name}=`))

/**
 * Behind a TLS-terminating proxy without `server.public_url`, the realms' cookies (oidc-provider's, Keycloak's
 * KEYCLOAK_SESSION, the login restart's) are Secure exactly when the gateway's own are: when a trusted proxy says
 * the browser's request was https (src/auth/csrf.ts `isSecure`).
 */
describe('realm cookies behind a TLS-terminating proxy', () => {
  const EVERY_REALM_COOKIE = ['gatehouse_oidc_interaction', 'gatehouse_oidc_resume', 'gatehouse_oidc_session', 'KEYCLOAK_SESSION', 'gatehouse_login_restarted']
  let trusting: TestGateway
  let distrusting: TestGateway

  before(async () => {
    const server = { host: '127.0.0.1', port: 0 }
    ;[trusting, distrusting] = await Promise.all([
      startGateway({ config: { server: { ...server, trusted_proxies: ['127.0.0.1'] }, realms: testRealms } }),
      startGateway({ config: { server: { ...server, trusted_proxies: ['192.0.2.1'] }, realms: testRealms } }),
    ])
    for (const gw of [trusting, distrusting]) await gw.app.accounts.create({ username: 'alice', password: 'alice-password-long' })
  })
  after(() => Promise.all([trusting?.close(), distrusting?.close()]))

  it('marks every realm cookie Secure when a trusted proxy says the request was https, as the gateway\'s own', async () => {
    const lines = await realmCookiesOfABrowser(trusting)
    for (const name of EVERY_REALM_COOKIE) assert.ok(named(lines, name).length, `${name} was set`)
    for (const line of lines) assert.equal(attribute(line, 'secure'), 'secure', line)
    // keycloak-js's login status iframe reads it inside the client's page: SameSite=None, which needs Secure.
    assert.ok(named(lines, 'KEYCLOAK_SESSION').some((line) => attribute(line, 'samesite') === 'samesite=none'))
  })

  it('believes no X-Forwarded-Proto from an address that is not a trusted proxy: no cookie is Secure, none SameSite=None', async () => {
    const lines = await realmCookiesOfABrowser(distrusting)
    for (const name of EVERY_REALM_COOKIE) assert.ok(named(lines, name).length, `${name} was set`)
    for (const line of lines) {
      assert.equal(attribute(line, 'secure'), undefined, line)
      assert.notEqual(attribute(line, 'samesite'), 'samesite=none', line)
    }
  })
})
