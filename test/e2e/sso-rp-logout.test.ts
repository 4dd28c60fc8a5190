import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { Agent } from 'undici'
import { Browser } from '../helpers/browser.ts'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { launchChromium, openPage } from '../helpers/chromium.ts'
import { honestIdToken, startForgingIdp, type ForgedSignIn, type ForgingIdp } from '../helpers/forging-idp.ts'
import { adminAuth, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { LOGIN, SSO } from '../helpers/sso.ts'

// Signing out of Gatehouse in a browser signs the person out at the provider their session came from too (OpenID
// Connect RP-Initiated Logout 1.0), for a provider with `sign_out_at_provider`: the session ends here first, then the
// browser goes to the provider's end_session_endpoint, which sends it back to the login page.

const CLIENT_ID = 'gatehouse'
const LOGOUT = '/api/gateway/v1/logout/'

describe('signing out at the upstream provider (RP-initiated logout)', () => {
  let withEndpoint: ForgingIdp
  let withoutEndpoint: ForgingIdp
  let insecureEndpoint: ForgingIdp
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []
  /** Every ID token the providers issued, to look for in the gateway's answers and log. */
  const issued: string[] = []

  before(async () => {
    withEndpoint = await startForgingIdp({ sub: 'sub-alice', username: 'alice' })
    withEndpoint.endSessionEndpoint = `${withEndpoint.issuer}/logout?tenant=main`
    withoutEndpoint = await startForgingIdp({ sub: 'sub-bob', username: 'bob' })
    insecureEndpoint = await startForgingIdp({ sub: 'sub-carl', username: 'carl' })
    insecureEndpoint.endSessionEndpoint = 'http://id.example.com/logout'
    for (const idp of [withEndpoint, withoutEndpoint, insecureEndpoint]) idp.idToken = recorded(honestIdToken)
    gw = await startGateway({
      logLines,
      config: {
        sso: [
          withEndpoint.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: CLIENT_ID, sign_out_at_provider: true }),
          withEndpoint.ssoConfig({ name: 'quiet', label: 'Quiet ID', client_id: CLIENT_ID }),
          withEndpoint.ssoConfig({ name: 'hintless', label: 'Hintless ID', client_id: CLIENT_ID, sign_out_at_provider: true, sign_out_id_token_hint: false }),
          withEndpoint.ssoConfig({ name: 'clientless', label: 'Clientless ID', client_id: CLIENT_ID, sign_out_at_provider: true, sign_out_client_id: false }),
          withoutEndpoint.ssoConfig({ name: 'partner', label: 'Partner', client_id: CLIENT_ID, sign_out_at_provider: true }),
          insecureEndpoint.ssoConfig({ name: 'clear', label: 'Clear', client_id: CLIENT_ID, sign_out_at_provider: true }),
        ],
      },
    })
  })
  after(async () => {
    await gw?.close()
    await Promise.all([withEndpoint, withoutEndpoint, insecureEndpoint].map((idp) => idp?.close()))
  })

  function recorded(idToken: (signIn: ForgedSignIn) => Promise<string>) {
    return async (signIn: ForgedSignIn) => {
      const token = await idToken(signIn)
      issued.push(token)
      return token
    }
  }

  /** A browser signed in through `provider`; with the ID token its provider issued. */
  async function signIn(provider: string): Promise<{ browser: Browser; session: string; idToken: string }> {
    const browser = new Browser()
    const page = await browser.navigate(`${gw.url}${SSO}${provider}/`)
    assert.equal(page.response.status, 200, page.body)
    const session = browser.cookie(gw.url, 'gateway_sessionid')
    assert.ok(session, 'the sign-in starts a session')
    return { browser, session, idToken: issued.at(-1)! }
  }

  async function signedIn(session: string): Promise<boolean> {
    return (await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${session}` } })).status === 200
  }

  it('ends the session, then sends the browser to the provider\'s end_session_endpoint with the hint, client, return address and state', async () => {
    const { browser, session, idToken } = await signIn('corp')
    const answer = await browser.request(gw.url + LOGOUT)
    assert.equal(answer.status, 302)
    const location = new URL(answer.headers.get('location')!)
    assert.equal(location.origin + location.pathname, `${withEndpoint.issuer}/logout`)
    assert.equal(location.searchParams.get('tenant'), 'main', 'the endpoint\'s own query is kept')
    assert.equal(location.searchParams.get('id_token_hint'), idToken)
    assert.equal(location.searchParams.get('client_id'), CLIENT_ID)
    assert.equal(location.searchParams.get('post_logout_redirect_uri'), `${gw.url}${SSO}corp/logged-out/`)
    const state = location.searchParams.get('state')
    assert.match(state ?? '', /^[A-Za-z0-9_-]{43}$/)
    assert.equal(await signedIn(session), false, 'the session here ended before the browser left')
    assert.equal(browser.cookie(gw.url, 'gateway_sessionid'), undefined, 'and its cookie is gone')

    // The provider signs the person out and sends the browser back: the login page says both sign-outs happened.
    const back = await browser.navigate(`${gw.url}${SSO}corp/logged-out/?state=${state}`)
    assert.equal(back.response.status, 200)
    assert.match(back.body, /signed out, and out of Corp ID too/)
    assert.match(back.body, /Sign in with Corp ID/, 'the login page, ready to sign in again')
    // The state is taken once: the same answer again, or another state, shows only the login page.
    const again = await browser.navigate(`${gw.url}${SSO}corp/logged-out/?state=${state}`)
    assert.equal(again.response.status, 200)
    assert.doesNotMatch(again.body, /out of Corp ID too/)
    const { browser: other } = await signIn('corp')
    const forged = await other.request(gw.url + LOGOUT)
    assert.match(forged.headers.get('location')!, /^http:\/\/127\.0\.0\.1:\d+\/logout\?/)
    const wrong = await other.navigate(`${gw.url}${SSO}corp/logged-out/?state=${'A'.repeat(43)}`)
    assert.equal(wrong.response.status, 200)
    assert.doesNotMatch(wrong.body, /out of Corp ID too/, 'a state that is not this browser\'s sign-out')
  })

  it('sends a browser\'s form logout with its CSRF token to the provider as well', async () => {
    const { browser, session } = await signIn('corp')
    const csrf = browser.cookie(gw.url, 'csrftoken')!
    const answer = await browser.request(gw.url + LOGOUT, { method: 'POST', form: { csrfmiddlewaretoken: csrf }, headers: { 'x-csrftoken': csrf } })
    assert.equal(answer.status, 302)
    assert.ok(answer.headers.get('location')!.startsWith(`${withEndpoint.issuer}/logout?`))
    assert.equal(await signedIn(session), false)
  })

  it('answers a program\'s logout as the platform does, whatever started its session', async () => {
    const { session } = await signIn('corp')
    const answer = await gw.fetch(LOGOUT, { headers: { accept: 'application/json', cookie: `gateway_sessionid=${session}` } })
    assert.equal(answer.status, 302)
    assert.equal(answer.headers.get('location'), '/api/')
    assert.equal(answer.headers.getSetCookie().some((cookie) => cookie.startsWith('gateway_sso_logout=')), false)
    assert.equal(await signedIn(session), false)
  })

  it('ends only the session here for a provider without the setting, without an end_session_endpoint, or with one in clear', async () => {
    for (const provider of ['quiet', 'partner', 'clear']) {
      const { browser, session } = await signIn(provider)
      const answer = await browser.request(gw.url + LOGOUT)
      assert.equal(answer.status, 302, provider)
      assert.equal(answer.headers.get('location'), LOGIN, provider)
      assert.equal(await signedIn(session), false, provider)
    }
    assert.ok(logLines.some((line) => line.msg === 'single sign-on sign-out at the provider skipped' && line.sso === 'clear'), 'the unusable endpoint is logged')
  })

  it('leaves the hint out for an ID token too long to keep', async () => {
    withEndpoint.idToken = recorded((signIn) => signIn.sign({ ...signIn.claims, padding: 'x'.repeat(16 * 1024) }))
    try {
      const { browser } = await signIn('corp')
      const location = new URL((await browser.request(gw.url + LOGOUT)).headers.get('location')!)
      assert.equal(location.searchParams.get('id_token_hint'), null)
      assert.equal(location.searchParams.get('client_id'), CLIENT_ID, 'the provider still learns which client it is')
    } finally {
      withEndpoint.idToken = recorded(honestIdToken)
    }
  })

  it('leaves the hint out, and keeps no ID token, for a provider with sign_out_id_token_hint off', async () => {
    const { browser } = await signIn('hintless')
    const kept = await gw.store.database.db.selectFrom('sessions').select('sso_id_token').where('sso_provider', '=', 'hintless').execute()
    assert.deepEqual(kept.map((row) => row.sso_id_token), [null], 'the session keeps no ID token it would never send')
    const location = new URL((await browser.request(gw.url + LOGOUT)).headers.get('location')!)
    assert.equal(location.origin + location.pathname, `${withEndpoint.issuer}/logout`)
    assert.equal(location.searchParams.get('id_token_hint'), null)
    assert.equal(location.searchParams.get('client_id'), CLIENT_ID)
    assert.equal(location.searchParams.get('post_logout_redirect_uri'), `${gw.url}${SSO}hintless/logged-out/`)
    assert.match(location.searchParams.get('state') ?? '', /^[A-Za-z0-9_-]{43}$/)
  })

  it('leaves client_id out for a provider with sign_out_client_id off, the endpoint\'s own query kept', async () => {
    const { browser, idToken } = await signIn('clientless')
    const location = new URL((await browser.request(gw.url + LOGOUT)).headers.get('location')!)
    assert.equal(location.searchParams.get('tenant'), 'main')
    assert.equal(location.searchParams.get('id_token_hint'), idToken)
    assert.equal(location.searchParams.has('client_id'), false)
    assert.equal(location.searchParams.get('post_logout_redirect_uri'), `${gw.url}${SSO}clientless/logged-out/`)
  })

  it('sends the web interface\'s "Log out" of a single sign-on\'s session on to the provider, and back to the login page', async () => {
    const chromium = await launchChromium()
    try {
      const { page, context, problems } = await openPage(chromium)
      await page.goto(`${gw.url}${SSO}corp/?next=/ui/account`)
      await page.locator('main h1').first().waitFor()
      const session = (await context.cookies(gw.url)).find((c) => c.name === 'gateway_sessionid')!.value
      const provider: string[] = []
      page.on('request', (request) => { if (request.url().startsWith(`${withEndpoint.issuer}/logout`)) provider.push(request.url()) })
      await Promise.all([page.waitForURL((url) => url.pathname === `${SSO}corp/logged-out/`), page.getByRole('button', { name: 'Log out' }).click()])
      assert.equal(provider.length, 1, 'the browser went to the provider\'s end_session_endpoint')
      assert.match(await page.locator('body').innerText(), /signed out, and out of Corp ID too/)
      assert.equal(await signedIn(session), false)
      assert.deepEqual(problems, [])
    } finally {
      await chromium.close()
    }
  })

  it('never shows the kept ID token in an answer of the API, the audit trail or the log', async () => {
    const { session, idToken } = await signIn('corp')
    const own = { cookie: `gateway_sessionid=${session}` }
    const answers = await Promise.all([
      gw.fetch('/api/gateway/v1/me/', { headers: own }),
      gw.fetch('/api/gateway/v1/me/sessions/', { headers: own }),
      gw.fetch('/api/gateway/v1/sessions/', { headers: adminAuth }),
      gw.fetch('/api/gateway/v1/activitystream/?page_size=200', { headers: adminAuth }),
    ])
    for (const answer of answers) {
      assert.equal(answer.status, 200, answer.url)
      const text = await answer.text()
      for (const token of issued) assert.ok(!text.includes(token.split('.')[2]!), `${answer.url} shows no ID token`)
    }
    assert.ok(issued.includes(idToken))
    const log = JSON.stringify(logLines)
    for (const token of issued) assert.ok(!log.includes(token.split('.')[2]!), 'the log holds no ID token')
  })
})

describe('signing out at the upstream provider over HTTPS', () => {
  const certDir = tempDir()
  const certificate = selfSignedCertificate(certDir, 'gatehouse.test')
  const trusting = new Agent({ connect: { ca: readFileSync(certificate.cert, 'utf8') } })
  let idp: ForgingIdp
  let gw: TestGateway

  before(async () => {
    idp = await startForgingIdp({ sub: 'sub-alice', username: 'alice' })
    idp.endSessionEndpoint = `${idp.issuer}/logout`
    gw = await startGateway({ tls: certificate, config: { sso: [idp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: CLIENT_ID, sign_out_at_provider: true })] } })
  })
  after(async () => {
    await gw?.close()
    await idp?.close()
    await trusting.close()
    rmSync(certDir, { recursive: true, force: true })
  })

  /** Signs a browser in through the provider, then out here: the state the provider is handed, and the Set-Cookie that went with it. */
  async function signInAndOut(): Promise<{ browser: Browser; state: string; setCookies: string[] }> {
    const browser = new Browser(undefined, trusting)
    const page = await browser.navigate(`${gw.url}${SSO}corp/`)
    assert.equal(page.response.status, 200, page.body)
    assert.ok(browser.cookie(gw.url, 'gateway_sessionid'), 'the sign-in starts a session')
    const answer = await browser.request(gw.url + LOGOUT)
    assert.equal(answer.status, 302)
    const state = new URL(answer.headers.get('location')!).searchParams.get('state')!
    assert.match(state, /^[A-Za-z0-9_-]{43}$/)
    return { browser, state, setCookies: answer.headers.getSetCookie() }
  }

  it('keeps the sign-out\'s key in __Host-gateway_sso_logout, as the sign-in\'s, and shows the notice when the provider sends the browser back', async () => {
    const { browser, state, setCookies } = await signInAndOut()
    const cookie = setCookies.find((value) => value.includes('gateway_sso_logout='))
    assert.match(cookie ?? '', /^__Host-gateway_sso_logout=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/)
    const back = await browser.navigate(`${gw.url}${SSO}corp/logged-out/?state=${state}`)
    assert.equal(back.response.status, 200)
    assert.match(back.body, /signed out, and out of Corp ID too/)
    assert.equal(browser.cookie(gw.url, '__Host-gateway_sso_logout'), undefined, 'the key is taken once')
  })

  it('ignores an unprefixed gateway_sso_logout planted from a sibling subdomain', async () => {
    // The attacker signs out of their own session and keeps the key and the state instead of using them.
    const { browser, state } = await signInAndOut()
    const key = browser.cookie(gw.url, '__Host-gateway_sso_logout') ?? browser.cookie(gw.url, 'gateway_sso_logout')
    assert.ok(key)
    const victim = new Browser(undefined, trusting)
    const planted = await victim.request(`${gw.url}${SSO}corp/logged-out/?state=${state}`, { headers: { cookie: `gateway_sso_logout=${key}` } })
    assert.equal(planted.status, 200)
    assert.doesNotMatch(await planted.text(), /out of Corp ID too/, 'the victim is not told of a sign-out they did not make')
    // The same key under the name only this host can set still shows it: the refusal was the name's.
    const own = await browser.navigate(`${gw.url}${SSO}corp/logged-out/?state=${state}`)
    assert.match(own.body, /out of Corp ID too/)
  })
})
