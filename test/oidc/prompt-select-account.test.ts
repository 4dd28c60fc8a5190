import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, realmWith, submitForm, tokenRequest } from '../helpers/oidc.ts'

const ALICE = { username: 'alice', password: 'alice-password-long' }

/**
 * `prompt=select_account` as Keycloak answers it: accepted, and, since a browser holds one account's session only
 * (keycloak/keycloak#42064), taken as no prompt at all. The login form is shown to a browser that must log in, and a
 * signed-in browser gets its code without it: only `prompt=login` (OIDCLoginProtocol `isPromptLogin`) or `max_age`
 * make Keycloak's cookie authenticator ask again.
 */
describe('prompt=select_account', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([]) } })
    await gw.app.accounts.create(ALICE)
  })
  after(() => gw.close())

  /** An authorization for `end-users` in the browser of `jar` with `prompt`; the login form filled in if it is shown. */
  async function authorize(jar: CookieJar, prompt: string): Promise<{ formShown: boolean; location: string }> {
    const verifier = randomBytes(32).toString('base64url')
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
      client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, prompt,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    })}`))
    const formShown = !page.url.startsWith(CLIENT_REDIRECT)
    if (formShown) {
      assert.equal(page.response.status, 200)
      const done = await submitForm(gw, jar, page, ALICE)
      return { formShown, location: done.url }
    }
    const code = new URL(page.url).searchParams.get('code')
    assert.ok(code, `a code at the redirect URI, not ${page.url}`)
    const tokens = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
    return { formShown, location: page.url }
  }

  it('is accepted: a browser without a session gets the login form, then a code', async () => {
    const jar = new CookieJar()
    const first = await authorize(jar, 'select_account')
    assert.equal(first.formShown, true)
    const answer = new URL(first.location)
    assert.equal(`${answer.origin}${answer.pathname}`, CLIENT_REDIRECT)
    assert.equal(answer.searchParams.get('error'), null, first.location)
    assert.ok(answer.searchParams.get('code'))
  })

  it('a browser signed in at the realm gets its code without the form, as without a prompt; with login as well, the form again', async () => {
    const jar = new CookieJar()
    assert.equal((await authorize(jar, 'select_account')).formShown, true)
    assert.equal((await authorize(jar, 'select_account')).formShown, false)
    assert.equal((await authorize(jar, 'select_account login')).formShown, true)
  })

  it('a browser signed in only at the gateway is signed in by its gateway session, as without a prompt', async () => {
    const jar = new CookieJar()
    const loginPage = await browse(gw, jar, `${gw.url}/api/gateway/v1/login/`)
    const csrf = /csrftoken=([^;]+)/.exec(jar.header())?.[1]
    assert.ok(csrf)
    const signedIn = await browse(gw, jar, loginPage.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': csrf, referer: loginPage.url },
      body: new URLSearchParams(ALICE).toString(),
    })
    assert.ok(signedIn.response.status < 400, String(signedIn.response.status))
    assert.match(jar.header(), /gateway_sessionid=/)
    assert.equal((await authorize(jar, 'select_account')).formShown, false)
  })
})
