import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gatewayBackends } from '../helpers/backends.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, decodeJwtPart, passwordLogin, realmUrl, realmWith, submitForm, tokenRequest } from '../helpers/oidc.ts'

const ALICE = { username: 'alice', password: 'alice-password-long' }
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/**
 * Keycloak's logout endpoint ends the user session an `id_token_hint` names (LogoutEndpoint `doBrowserLogout`, the
 * token's `sid`), whichever way it was signed in: a password login (the direct grant) has its user session too, whose
 * refresh tokens stop working.
 */
for (const backend of gatewayBackends) describe(`a logout whose id_token_hint is a password login's, on ${backend.name}`, () => {
  let gw: TestGateway

  before(async () => {
    gw = await backend.start({ config: { realms: realmWith([]) } })
    await gw.app.accounts.create(ALICE)
  })
  after(() => gw.close())

  const passwordSignIn = () => passwordLogin(gw, ALICE.username, ALICE.password, { scope: 'openid' })
  const refreshes = async (refreshToken: string) => (await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })).status === 200
  const userinfo = async (accessToken: string) => (await gw.fetch(realmUrl(gw, '/protocol/openid-connect/userinfo').slice(gw.url.length), { headers: { authorization: `Bearer ${accessToken}` } })).status

  /** A browser signed in at the realm through its login page: its jar holds the realm session. */
  async function browserSignedIn(): Promise<CookieJar> {
    const jar = new CookieJar()
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
      client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`))
    const done = await submitForm(gw, jar, page, ALICE)
    assert.ok(new URL(done.url).searchParams.get('code'), done.url)
    return jar
  }

  it('ends that login once the person confirms: its refresh and access tokens stop working; the browser\'s own session and another login go on', async () => {
    const jar = await browserSignedIn()
    const hinted = await passwordSignIn()
    const other = await passwordSignIn()
    assert.equal(decodeJwtPart(hinted.id_token, 1).sid, hinted.session_state, 'the ID token names the login\'s session')
    assert.notEqual(hinted.session_state, other.session_state)

    const asked = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/logout?${new URLSearchParams({ id_token_hint: hinted.id_token })}`))
    const page = await asked.response.text()
    assert.match(page, /Do you want to log out\?/)
    assert.doesNotMatch(page, /\.submit\(\)/, 'another session\'s hint is confirmed by the person')
    assert.ok(await refreshes(hinted.refresh_token), 'nothing ends before the person confirms')
    const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(page)![1]!
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page)![1]!
    const done = await browse(gw, jar, action, { method: 'POST', headers: FORM, body: new URLSearchParams({ xsrf, logout: 'yes' }).toString() })
    assert.equal(done.response.status, 200)
    assert.match(await done.response.text(), /You are logged out\./)

    assert.equal(await refreshes(hinted.refresh_token), false, 'the hinted login ended')
    assert.equal(await userinfo(hinted.access_token), 401, 'with its access token')
    assert.ok(await refreshes(other.refresh_token), 'another password login goes on')
    // The browser is still signed in at the realm: a silent sign-in gets a code.
    const again = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
      client_id: 'end-users', response_type: 'code', scope: 'openid', prompt: 'none', redirect_uri: CLIENT_REDIRECT,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`))
    assert.ok(new URL(again.url).searchParams.get('code'), again.url)
  })

  it('ends that login when the browser bringing the hint has no session, as for a browser session\'s hint', async () => {
    const hinted = await passwordSignIn()
    const other = await passwordSignIn()
    const elsewhere = new CookieJar()
    const page = await browse(gw, elsewhere, realmUrl(gw, `/protocol/openid-connect/logout?${new URLSearchParams({ id_token_hint: hinted.id_token })}`))
    assert.equal(page.response.status, 200)
    const done = await submitForm(gw, elsewhere, page, {})
    assert.match(await done.response.text(), /You are logged out\./)
    assert.equal(await refreshes(hinted.refresh_token), false)
    assert.equal(await userinfo(hinted.access_token), 401)
    assert.ok(await refreshes(other.refresh_token))
  })
})
