import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, decodeJwtPart, passwordLogin, REALM, realmUrl, realmWith, submitForm, tokenRequest } from '../helpers/oidc.ts'

const ALICE = { username: 'alice', password: 'alice-password' }

/**
 * `acr` as Keycloak sets it without levels of authentication (AcrProtocolMapper, AuthenticationManager
 * `isSSOAuthentication`): "1" when the person typed their password in this authorization, "0" when the browser's
 * single sign-on signed them in without the form; a refresh keeps its authorization's value.
 */
describe('acr by how the authorization signed the person in', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([{ client_id: 'tv', public_client: true, device_authorization_grant: true }]) } })
    await gw.app.accounts.create(ALICE)
  })
  after(() => gw.close())

  /** An authorization for `end-users` in the browser of `jar`, the login form filled in if it is shown; its token answer. */
  async function authorize(jar: CookieJar, extra: Record<string, string> = {}): Promise<{ formShown: boolean; body: any }> {
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    let { response, url } = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
      client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', ...extra,
    })}`))
    const formShown = !url.startsWith(CLIENT_REDIRECT)
    if (formShown) {
      const action = /<form method="post" action="([^"]+)"/.exec(await response.text())![1]!
      ;({ url } = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(ALICE).toString() }))
    }
    const code = new URL(url).searchParams.get('code')
    assert.ok(code, `a code at the redirect URI, not ${url}`)
    const { status, body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    assert.equal(status, 200)
    return { formShown, body }
  }

  /** The `acr` of the access and the ID token of a token answer. */
  const acrs = (body: any) => [decodeJwtPart(body.access_token, 1).acr, decodeJwtPart(body.id_token, 1).acr]
  const refresh = async (body: any, clientId = 'end-users') => {
    const refreshed = await tokenRequest(gw, { client_id: clientId, grant_type: 'refresh_token', refresh_token: body.refresh_token })
    assert.equal(refreshed.status, 200)
    return refreshed.body
  }

  /** Two sign-ins in one new browser: the first with the login form (acr 1), the second by its realm session (acr 0). */
  async function formThenSingleSignOn(signIn: (jar: CookieJar) => Promise<{ formShown: boolean; body: any }>): Promise<{ first: { body: any }; second: { body: any } }> {
    const jar = new CookieJar()
    const first = await signIn(jar)
    assert.equal(first.formShown, true)
    assert.deepEqual(acrs(first.body), ['1', '1'])
    const second = await signIn(jar)
    assert.equal(second.formShown, false, 'the realm session signs the browser in without the form')
    assert.deepEqual(acrs(second.body), ['0', '0'])
    return { first, second }
  }

  it('says 1 after the login form and 0 for the browser\'s single sign-on, and keeps each through refreshes', async () => {
    const { first, second } = await formThenSingleSignOn(authorize)
    assert.equal(decodeJwtPart(second.body.id_token, 1).sid, decodeJwtPart(first.body.id_token, 1).sid, 'the same SSO session')

    // Each refresh keeps its own authorization's value, whatever the other did since; and so does the next refresh.
    const firstRefreshed = await refresh(first.body)
    const secondRefreshed = await refresh(second.body)
    assert.deepEqual(acrs(firstRefreshed), ['1', '1'])
    assert.deepEqual(acrs(secondRefreshed), ['0', '0'])
    assert.deepEqual(acrs(await refresh(firstRefreshed)), ['1', '1'])
    assert.deepEqual(acrs(await refresh(secondRefreshed)), ['0', '0'])
  })

  it('says 1 when the client asks for the password again (max_age=0, prompt=login), and 0 again after', async () => {
    const jar = new CookieJar()
    await authorize(jar)
    for (const fresh of [{ max_age: '0' }, { prompt: 'login' }] as Record<string, string>[]) {
      const again = await authorize(jar, fresh)
      assert.equal(again.formShown, true)
      assert.deepEqual(acrs(again.body), ['1', '1'])
      assert.deepEqual(acrs(await refresh(again.body)), ['1', '1'])
      assert.deepEqual(acrs((await authorize(jar)).body), ['0', '0'])
    }
  })

  it('says 0 when the gateway session signs the browser in at the realm, without the form', async () => {
    const jar = new CookieJar()
    const page = await browse(gw, jar, `${gw.url}/api/gateway/v1/login/`)
    assert.equal(page.response.status, 200)
    const csrf = /csrftoken=([^;]+)/.exec(jar.header())![1]!
    const login = await browse(gw, jar, `${gw.url}/api/gateway/v1/login/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': csrf, referer: `${gw.url}/api/gateway/v1/login/` },
      body: new URLSearchParams(ALICE).toString(),
    })
    assert.ok(/gateway_sessionid=/.test(jar.header()), `a gateway session, not ${login.response.status}`)
    const signedIn = await authorize(jar)
    assert.equal(signedIn.formShown, false)
    assert.deepEqual(acrs(signedIn.body), ['0', '0'])
  })

  it('says 1 for the password grant, in its tokens and after a refresh', async () => {
    const body = await passwordLogin(gw, ALICE.username, ALICE.password, { scope: 'openid' })
    assert.deepEqual(acrs(body), ['1', '1'])
    assert.deepEqual(acrs(await refresh(body)), ['1', '1'])
  })

  const submit = (jar: CookieJar, page: { response: Response; url: string }, fields: Record<string, string>) => submitForm(gw, jar, page, fields)

  /** A device grant for `tv` approved in the browser of `jar`, the login form filled in if it is shown; its token answer. */
  async function deviceGrant(jar: CookieJar): Promise<{ formShown: boolean; body: any }> {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', scope: 'openid' }) })
    const { device_code: deviceCode, user_code: userCode } = await started.json() as { device_code: string; user_code: string }
    const confirm = await submit(jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
    const next = await submit(jar, confirm, {})
    const formShown = next.url.includes('/login-actions/')
    if (formShown) await submit(jar, next, ALICE)
    const { status, body } = await tokenRequest(gw, { client_id: 'tv', grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode })
    assert.equal(status, 200, JSON.stringify(body))
    return { formShown, body }
  }

  it('says 1 for a device approved with the login form, 0 for one the browser\'s session approved, as Keycloak\'s device grant', async () => {
    const { first, second } = await formThenSingleSignOn(deviceGrant)
    assert.deepEqual(acrs(await refresh(second.body, 'tv')), ['0', '0'])
    assert.deepEqual(acrs(await refresh(first.body, 'tv')), ['1', '1'])
  })
})
