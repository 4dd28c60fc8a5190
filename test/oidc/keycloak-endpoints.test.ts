import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, REALM, realmUrl, realmWith, tokenRequest } from '../helpers/oidc.ts'

const ENDPOINTS = `/realms/${REALM}/protocol/openid-connect`
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/** The realm's endpoints besides the token endpoint, as Keycloak's clients and scripts call them. */
describe('the realm\'s endpoints answer as Keycloak\'s', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([{ client_id: 'spa', redirect_uris: [CLIENT_REDIRECT], post_logout_redirect_uris: ['+'] }]) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com' })
  })
  after(() => gw.close())

  /** The authorization code flow through the login page; the jar then holds the realm's browser session. */
  async function browserLogin(jar: CookieJar): Promise<{ access_token: string; refresh_token: string; id_token: string }> {
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: FORM, body: 'username=alice&password=alice-password' })
    const code = new URL(done.url).searchParams.get('code')!
    const { status, body } = await tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    assert.equal(status, 200)
    return body
  }

  it('logs out with a form POST, as keycloak-js does with logoutMethod POST, and sends the browser back with its state', async () => {
    const jar = new CookieJar()
    const tokens = await browserLogin(jar)
    const logout = await browse(gw, jar, realmUrl(gw, '/protocol/openid-connect/logout'), {
      method: 'POST', headers: FORM, body: new URLSearchParams({ id_token_hint: tokens.id_token, client_id: 'spa', post_logout_redirect_uri: CLIENT_REDIRECT, state: 'st-1' }).toString(),
    })
    const page = await logout.response.text()
    assert.equal(logout.response.status, 200, page)
    // The confirmation submits itself when the request names the session (id_token_hint); a browser without scripts clicks.
    const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(page)![1]!
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page)![1]!
    const back = await browse(gw, jar, action, { method: 'POST', headers: FORM, body: new URLSearchParams({ xsrf, logout: 'yes' }).toString() })
    const returned = new URL(back.url)
    assert.equal(`${returned.origin}${returned.pathname}`, CLIENT_REDIRECT)
    assert.equal(returned.searchParams.get('state'), 'st-1')
    const refresh = await tokenRequest(gw, { client_id: 'spa', grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
    assert.equal(refresh.body.error, 'invalid_grant')
  })

  it('starts a login from a form POST to the authorization endpoint', async () => {
    const jar = new CookieJar()
    const { response } = await browse(gw, jar, realmUrl(gw, '/protocol/openid-connect/auth'), {
      method: 'POST', headers: FORM, body: new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }).toString(),
    })
    assert.equal(response.status, 200)
    assert.match(await response.text(), /name="password"/)
  })

  it('never puts a client secret sent to the logout or authorization endpoint into a URL', async () => {
    for (const endpoint of ['/logout', '/auth']) {
      const answer = await gw.fetch(`${ENDPOINTS}${endpoint}`, { method: 'POST', headers: FORM, body: new URLSearchParams({ client_id: 'reports', client_secret: 'reports-secret-0123456789', state: 's' }).toString() })
      assert.equal(answer.status, 303, endpoint)
      const location = answer.headers.get('location')!
      assert.doesNotMatch(location, /secret/, endpoint)
      assert.match(location, /state=s/, endpoint)
    }
  })

  it('answers the legacy redirect_uri of logout with an error page, as Keycloak since 18', async () => {
    for (const request of [
      () => gw.fetch(`${ENDPOINTS}/logout?redirect_uri=${encodeURIComponent(CLIENT_REDIRECT)}`, { headers: { accept: 'text/html' } }),
      () => gw.fetch(`${ENDPOINTS}/logout`, { method: 'POST', headers: { ...FORM, accept: 'text/html' }, body: new URLSearchParams({ redirect_uri: CLIENT_REDIRECT }).toString() }),
    ]) {
      const answer = await request()
      assert.equal(answer.status, 400)
      assert.match(answer.headers.get('content-type')!, /^text\/html/)
      assert.equal(answer.headers.get('x-frame-options'), 'DENY')
      assert.match(await answer.text(), /Invalid parameter: redirect_uri/)
      assert.equal(answer.headers.getSetCookie().length, 0)
    }
  })
})
