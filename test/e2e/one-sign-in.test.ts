import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { loadConfigFile, demoConfigFile } from '../../src/config/load.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { SessionManager } from '../../src/auth/session-manager.ts'
import { Browser } from '../helpers/browser.ts'
import { ADMIN_PASSWORD, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, REALM, realmUrl, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { KEYCLOAK_ROUTES } from '../../src/oidc/provider-paths.ts'
import { recordKey } from '../../src/oidc/record-keys.ts'
import { USER_TOPIC } from '../../src/store/topics.ts'
import { offSiteNexts, resolvedOrigin } from '../helpers/open-redirect.ts'

const demo = loadConfigFile(demoConfigFile)
const demoApp = demo.services.find((s) => s.name === 'demo-app')!

/** A browser signs in once, whether at the gateway's login page or at the realm's, and signs out once. */
describe('one sign-in for the browser', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({
      config: {
        realms: [{ ...testRealms[0], clients: testRealms[0]!.clients.map((c) => c.client_id === 'end-users' ? { ...c, post_logout_redirect_uris: [CLIENT_REDIRECT] } : c) }],
        services: [...demo.services, { ...demoApp, name: 'redirect-app', prefix: '/redirect-app/', unauthenticated: 'redirect' }],
      },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  /** The realm's authorization endpoint for the public client, stopping before the browser would leave for the app. */
  const authorize = (browser: Browser, extra: Record<string, string> = {}) => browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
    client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...extra,
  })}`, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })

  async function gatewayLogin(browser: Browser): Promise<void> {
    const page = await browser.navigate(`${gw.url}/api/gateway/v1/login/`)
    const done = await browser.submit(page, { username: 'alice', password: 'alice-password' })
    assert.equal(new URL(done.url).pathname, '/ui/')
  }
  const me = async (browser: Browser) => browser.request(`${gw.url}/api/gateway/v1/me/`, { headers: { accept: 'application/json' } })

  it('does not ask a browser signed in to the gateway to log in again at the realm, unless the client asks for a fresh login', async () => {
    const browser = new Browser()
    await gatewayLogin(browser)
    const silent = await authorize(browser)
    assert.ok(silent.stoppedAt, silent.body.slice(150, 800))
    assert.ok(new URL(silent.stoppedAt).searchParams.get('code'))
    const forced = await authorize(browser, { prompt: 'login' })
    assert.equal(forced.stoppedAt, undefined)
    assert.match(new URL(forced.url).pathname, /\/login-actions\//)
  })

  it('signs a browser that logged in at the realm in to the gateway too', async () => {
    const browser = new Browser()
    assert.equal((await me(browser)).status, 401)
    const page = await authorize(browser)
    const done = await browser.submit(page, { username: 'alice', password: 'alice-password' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
    assert.ok(done.stoppedAt)
    const response = await me(browser)
    assert.equal(response.status, 200)
    assert.equal((await json(response)).results[0].username, 'alice')
  })

  it('signs out of both at once, from the realm or from the gateway', async () => {
    const fromRealm = new Browser()
    await gatewayLogin(fromRealm)
    const code = await authorize(fromRealm)
    assert.ok(code.stoppedAt)
    const confirm = await fromRealm.navigate(`${realmUrl(gw, '/protocol/openid-connect/logout')}?${new URLSearchParams({ client_id: 'end-users', post_logout_redirect_uri: CLIENT_REDIRECT })}`)
    await fromRealm.submit(confirm, { logout: 'yes' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
    assert.equal((await me(fromRealm)).status, 401)

    const fromGateway = new Browser()
    await gatewayLogin(fromGateway)
    assert.ok((await authorize(fromGateway)).stoppedAt)
    const csrf = fromGateway.cookie(gw.url, 'csrftoken')!
    const logout = await fromGateway.request(`${gw.url}/api/gateway/v1/logout/`, { method: 'POST', headers: { 'x-csrftoken': csrf, accept: 'application/json', referer: `${gw.url}/ui/` } })
    assert.equal(logout.status, 302, 'redirected to /api/, as the platform answers logout')
    assert.equal(logout.headers.get('location'), '/api/')
    const again = await authorize(fromGateway)
    assert.equal(again.stoppedAt, undefined, 'the realm asks for the password again')
    assert.match(new URL(again.url).pathname, /\/login-actions\//)
  })

  it('brings a browser that a service sent to the realm back to the page it asked for, signed in', async () => {
    const browser = new Browser()
    const login = await browser.navigate(`${gw.url}/demo-app/files/box/a.csv?x=1`)
    assert.match(new URL(login.url).pathname, /\/login-actions\//)
    const back = await browser.submit(login, { username: 'alice', password: 'alice-password' })
    assert.equal(back.url, `${gw.url}/demo-app/files/box/a.csv?x=1`)
    const seen = JSON.parse(back.body)
    assert.equal(seen.identity.username, 'alice')
    // Signed in at the realm already, another page of the service needs no form at all.
    const next = await browser.navigate(`${gw.url}/redirect-app/pipelines`)
    assert.equal(next.response.status, 200)
    assert.equal(JSON.parse(next.body).identity.username, 'alice')
  })

  it('does not bring back through the realm a gateway session that expired, however the browser asks', async () => {
    const carol = await gw.app.accounts.create({ username: 'carol', password: 'carol-password' })
    const laptop = new Browser()
    const login = await laptop.navigate(`${gw.url}/demo-app/x`)
    const back = await laptop.submit(login, { username: 'carol', password: 'carol-password' })
    assert.equal(JSON.parse(back.body).identity.username, 'carol')
    // The gateway session expires; the realm's browser session, which lasts longer, does not end with it.
    await gw.store.database.db.updateTable('sessions').set({ expires_at: Date.now() - 1000 }).where('user_id', '=', carol.id).execute()
    gw.app.sessions.forgetUser(carol.id)
    assert.equal((await me(laptop)).status, 401)
    // An hour has passed since the laptop's owner logged in at the realm.
    const { instance: provider } = await gw.app.oidc.get(REALM)!.provider()
    const realmSession = (await provider.Session.find(laptop.cookie(gw.url, 'gatehouse_oidc_session')!))!
    assert.ok(realmSession, 'an expired gateway session leaves the realm session alone')
    realmSession.loginTs = realmSession.loginTs! - 3600
    await realmSession.persist()
    const again = await laptop.navigate(`${gw.url}/demo-app/x`)
    assert.match(new URL(again.url).pathname, /\/login-actions\//, 'the realm asks for the password again')
    // Asked without prompt=login, the realm's browser session gives a code at once; the gateway does not take it.
    const silent = await laptop.navigate(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
      client_id: 'end-users', redirect_uri: realmUrl(gw, '/gatehouse/callback'), response_type: 'code', scope: 'openid',
      state: Buffer.from('/demo-app/x').toString('base64url'), code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`)
    assert.equal(silent.response.status, 400)
    assert.equal((await me(laptop)).status, 401)
  })

  it('starts a login again from a login page used already (the back button), and signs the browser in at once', async () => {
    const browser = new Browser()
    const page = await authorize(browser, { state: 'state-of-the-app' })
    const first = await browser.submit(page, { username: 'alice', password: 'alice-password' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
    assert.ok(first.stoppedAt)
    // The same page, submitted again: its login is over, and the browser has a realm session by now.
    const again = await browser.submit(page, { username: 'alice', password: 'alice-password' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
    assert.ok(again.stoppedAt, again.body.slice(0, 300))
    const back = new URL(again.stoppedAt)
    assert.ok(back.searchParams.get('code'))
    assert.equal(back.searchParams.get('state'), 'state-of-the-app', 'the application gets its own request answered')
    assert.ok(browser.hops.some((hop) => hop.method === 'POST' && hop.status === 303 && hop.location?.includes('/protocol/openid-connect/auth?')))
  })

  it('starts a login again from a login page that timed out, saying so, and then logs the browser in', async () => {
    const browser = new Browser()
    const page = await authorize(browser, { state: 'timed-out-state' })
    await gw.store.database.db.deleteFrom('oidc_records').where('model', '=', 'Interaction').execute()
    const restarted = await browser.submit(page, { username: 'alice', password: 'alice-password' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
    assert.equal(restarted.stoppedAt, undefined, 'the password of a timed-out page is not used')
    assert.equal(restarted.response.status, 200)
    assert.match(new URL(restarted.url).pathname, /\/login-actions\//)
    assert.notEqual(new URL(restarted.url).pathname, new URL(page.url).pathname, 'a new login')
    assert.match(restarted.body, /role="alert"[^>]*>Your login attempt timed out/)
    assert.equal(browser.cookie(gw.url, 'gateway_sessionid'), undefined)
    const done = await browser.submit(restarted, { username: 'alice', password: 'alice-password' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
    assert.equal(new URL(done.stoppedAt!).searchParams.get('state'), 'timed-out-state')
    // The notice is shown once.
    const later = await authorize(new Browser())
    assert.doesNotMatch(later.body, /role="alert"/)
  })

  it('answers a stale login page that carries no request to restart with an HTML page, and changes nothing', async () => {
    const browser = new Browser()
    const page = await authorize(browser)
    await gw.store.database.db.deleteFrom('oidc_records').where('model', '=', 'Interaction').execute()
    for (const form of [{ username: 'alice', password: 'alice-password' }, { username: 'alice', password: 'alice-password', restart: 'x=1' }] as Record<string, string>[]) {
      const stale = await browser.request(new URL(new URL(page.url).pathname, gw.url).href, { form })
      assert.equal(stale.status, 400)
      assert.match(stale.headers.get('content-type')!, /^text\/html/)
      assert.match(await stale.text(), /Login expired/)
    }
    const reloaded = await browser.request(page.url)
    assert.equal(reloaded.status, 400)
    assert.match(reloaded.headers.get('content-type')!, /^text\/html/)
    assert.equal(browser.cookie(gw.url, 'gateway_sessionid'), undefined)
  })

  it('refuses a code that another browser\'s login produced (login CSRF)', async () => {
    const attacker = new Browser()
    const login = await attacker.navigate(`${gw.url}/demo-app/x`)
    const planted = await attacker.submit(login, { username: 'admin', password: ADMIN_PASSWORD }, { stopBefore: (url) => url.includes('/gatehouse/callback') })
    assert.ok(planted.stoppedAt)
    const victim = new Browser()
    const landed = await victim.navigate(planted.stoppedAt)
    assert.equal(landed.response.status, 400)
    assert.equal(victim.cookie(gw.url, 'gateway_sessionid'), undefined)
    // Presented once, it is used up, as at the token endpoint: not even the browser that logged in may use it now.
    assert.equal((await attacker.navigate(planted.stoppedAt)).response.status, 400)
  })

  it('lets the browser that logged in use its code once', async () => {
    const browser = new Browser()
    const login = await browser.navigate(`${gw.url}/demo-app/x`)
    const landing = await browser.submit(login, { username: 'admin', password: ADMIN_PASSWORD }, { stopBefore: (url) => url.includes('/gatehouse/callback') })
    assert.ok(landing.stoppedAt)
    const own = await browser.navigate(landing.stoppedAt)
    assert.equal(JSON.parse(own.body).identity.username, 'admin')
    assert.equal((await browser.navigate(landing.stoppedAt)).response.status, 400, 'a code serves once')
  })

  it('sends a browser back from the realm only to a page of this site, whatever state the link to the realm carried', async () => {
    // Anyone can write a link to the realm's authorization endpoint with the gateway's callback and a state of their own.
    const states = [...offSiteNexts(gw.url), '/\u0001x', '/\u0100x', '/caf\u00e9?q=\u2603']
    for (const state of states) {
      const browser = new Browser()
      const login = await browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
        client_id: 'end-users', redirect_uri: realmUrl(gw, '/gatehouse/callback'), response_type: 'code', scope: 'openid',
        state: Buffer.from(state).toString('base64url'), code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
      })}`)
      const landing = await browser.submit(login, { username: 'alice', password: 'alice-password' }, { stopBefore: (url) => url.includes('/gatehouse/callback') })
      assert.ok(landing.stoppedAt, JSON.stringify(state))
      const back = await browser.request(landing.stoppedAt)
      assert.equal(back.status, 302, JSON.stringify(state))
      assert.equal(resolvedOrigin(back.headers.get('location')!, landing.stoppedAt), gw.url, JSON.stringify(state))
    }
  })

  it('shows no text a link brought on the sign-in callback\'s error page', async () => {
    const spoof = 'Your account is locked. Call +1 555 0100 and give your password to unlock it.'
    for (const error of ['access_denied', 'server_error', '<b>x</b>']) {
      const page = await gw.fetch(`/realms/${REALM}/gatehouse/callback?${new URLSearchParams({ error, error_description: spoof })}`, { headers: { accept: 'text/html' } })
      assert.equal(page.status, 400)
      const body = await page.text()
      assert.doesNotMatch(body, /Call \+1|<b>/, error)
      assert.match(body, /Login failed/)
    }
  })

  it('sends a failed credential to the login page where the service redirects, and keeps 401 for API clients under auto', async () => {
    const forged = { authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln' }
    for (const method of ['GET', 'POST']) {
      const redirected = await gw.fetch('/redirect-app/pipelines/p/trials', { method, headers: { ...forged, 'content-type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) })
      assert.equal(redirected.status, 302, method)
      assert.ok(redirected.headers.get('location')!.startsWith(`${realmUrl(gw)}/protocol/openid-connect/auth?`))
    }
    const api = await gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { ...forged, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(api.status, 401)
    assert.equal((await json(api)).code, 'invalid_token')
    const browser = await gw.fetch('/demo-app/pipelines/p/trials', { headers: { ...forged, accept: 'text/html' } })
    assert.equal(browser.status, 302)
  })
})

/** The gateway's own login through the realm, on each storage backend: its callback's code serves once. */
for (const backend of gatewayBackends) {
  describe(`the gateway's sign-in callback, on ${backend.name}`, () => {
    let gw: TestGateway
    before(async () => {
      gw = await backend.start({ config: { realms: testRealms, services: demo.services } })
    })
    after(() => gw.close())

    it('opens one session only for a code that many requests bring at once', async () => {
      const browser = new Browser()
      const login = await browser.navigate(`${gw.url}/demo-app/x`)
      const landing = await browser.submit(login, { username: 'admin', password: ADMIN_PASSWORD }, { stopBefore: (url) => url.includes('/gatehouse/callback') })
      assert.ok(landing.stoppedAt)
      const callbacks = await Promise.all(Array.from({ length: 10 }, () => browser.request(landing.stoppedAt!)))
      assert.deepEqual(callbacks.map((callback) => callback.status).sort(), [302, ...Array(9).fill(400)])
    })
  })
}

/**
 * A browser signs out once: whatever ends its gateway session (the owner on another device, an administrator, its
 * own logout) ends the realm's browser session of the same browser on the server, and the tokens issued under it,
 * as Keycloak ends a user session and its refresh tokens. On each storage backend.
 */
for (const backend of gatewayBackends) {
  describe(`ending a gateway session ends the same browser's realm session, on ${backend.name}`, () => {
    let gw: TestGateway
    const userIds = new Map<string, number>()
    before(async () => {
      gw = await backend.start({ config: { realms: testRealms, services: demo.services } })
      for (const username of ['dave', 'erin', 'frank', 'grace', 'henry', 'ivy', 'judy', 'kate', 'leo', 'mia', 'nina', 'oscar', 'pia', 'quinn', 'rita', 'sam', 'tara', 'uma', 'vera']) userIds.set(username, (await gw.app.accounts.create({ username, password: `${username}-password` })).id)
    })
    after(() => gw.close())

    /** RFC 7636's example verifier, whose challenge `authorize` sends. */
    const VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'
    const authorizationUrl = (extra: Record<string, string> = {}) => `${realmUrl(gw, KEYCLOAK_ROUTES.authorization)}?${new URLSearchParams({
      client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...extra,
    })}`
    const authorize = (browser: Browser, extra: Record<string, string> = {}) => browser.navigate(authorizationUrl(extra), { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })

    /** A browser that signs in at the realm's login page, as keycloak-js does, with the tokens its app got. */
    async function realmSignIn(username: string): Promise<{ browser: Browser; refreshToken: string; accessToken: string }> {
      const browser = new Browser()
      const page = await authorize(browser)
      const done = await browser.submit(page, { username, password: `${username}-password` }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
      const code = new URL(done.stoppedAt!).searchParams.get('code')!
      const tokens = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: VERIFIER })
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
      assert.ok(browser.cookie(gw.url, 'gateway_sessionid'), 'signed in to the gateway as well')
      return { browser, refreshToken: tokens.body.refresh_token, accessToken: tokens.body.access_token }
    }
    const refresh = (refreshToken: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })
    const asksForPassword = async (browser: Browser) => {
      const page = await authorize(browser)
      return page.stoppedAt === undefined && new URL(page.url).pathname.includes('/login-actions/')
    }

    /** The code in `codeRedirect` and the refresh token are refused: 400 `invalid_grant`. */
    async function assertCodeAndRefreshRefused(codeRedirect: string, refreshToken: string): Promise<void> {
      const exchanged = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code: new URL(codeRedirect).searchParams.get('code')!, redirect_uri: CLIENT_REDIRECT, code_verifier: VERIFIER })
      assert.equal(exchanged.status, 400, JSON.stringify(exchanged.body))
      assert.equal(exchanged.body.error, 'invalid_grant')
      const refused = await refresh(refreshToken)
      assert.equal(refused.status, 400, JSON.stringify(refused.body))
      assert.equal(refused.body.error, 'invalid_grant')
    }

    /** What the device's realm session still gives, once its gateway session ended: nothing. */
    async function assertSignedOutAtRealm(device: { browser: Browser; refreshToken: string; accessToken: string }): Promise<void> {
      const refused = await refresh(device.refreshToken)
      assert.equal(refused.status, 400, 'the refresh token still works')
      assert.equal(refused.body.error, 'invalid_grant')
      const app = await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${device.accessToken}` } })
      assert.equal(app.status, 401, 'the access token issued under the ended session is refused at once')
      assert.equal((await gw.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${device.accessToken}` } })).status, 401)
      assert.ok(await asksForPassword(device.browser), 'the realm asks the browser for the password again')
    }

    it('ends the realm session of a lost device when its owner ends every other session', async () => {
      const lost = await realmSignIn('dave')
      assert.equal((await refresh(lost.refreshToken)).status, 200)
      assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${lost.accessToken}` } })).status, 200)
      // The owner, on another device signed in at the realm too, ends every other session.
      const current = await realmSignIn('dave')
      const csrf = current.browser.cookie(gw.url, 'csrftoken')!
      const ended = await current.browser.request(`${gw.url}/api/gateway/v1/me/sessions/end_others/`, { method: 'POST', headers: { 'x-csrftoken': csrf, accept: 'application/json', referer: `${gw.url}/ui/` } })
      assert.equal(ended.status, 200)
      assert.equal((await json(ended)).ended, 1)
      await assertSignedOutAtRealm(lost)
      // The device the owner is using stays signed in at both.
      assert.equal((await refresh(current.refreshToken)).status, 200)
      assert.ok((await authorize(current.browser)).stoppedAt, 'no password asked of the current device')
    })

    it('ends a realm session that a save brought back after its gateway session ended, as soon as its browser uses it', async () => {
      const laptop = await realmSignIn('mia')
      const keyHash = SessionManager.hashOf(laptop.browser.cookie(gw.url, 'gateway_sessionid')!)
      // A save of the realm session that lost the race with the end of its gateway session: the realm session is
      // there, linked to nothing, and the gateway session is gone.
      await gw.store.database.db.updateTable('oidc_records').set({ gateway_session: null }).where('model', '=', 'Session').where('gateway_session', '=', keyHash).execute()
      await gw.app.sessions.end(keyHash)
      assert.ok(await gw.store.oidc.find('Session', recordKey(laptop.browser.cookie(gw.url, 'gatehouse_oidc_session')!), Date.now()), 'the realm session outlived the end')
      // The laptop's app asks the realm again, with the realm's cookie and the ended gateway session's.
      const again = await authorize(laptop.browser)
      assert.ok(again.stoppedAt, 'the realm session it loaded answered this request')
      const code = new URL(again.stoppedAt).searchParams.get('code')!
      const tokens = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: VERIFIER })
      assert.equal(tokens.status, 400, 'the code of that last request is refused')
      assert.equal(tokens.body.error, 'invalid_grant')
      await assertSignedOutAtRealm(laptop)
    })

    it('ends the realm session of a login at the realm whose browser logged out before the login came back to the realm', async () => {
      const untilResume = { stopBefore: (url: string) => url.startsWith(`${realmUrl(gw, KEYCLOAK_ROUTES.authorization)}/`) }
      const signIns: [string, (browser: Browser) => Promise<{ stoppedAt?: string; body: string }>][] = [
        ['its password at the realm\'s login page', async (browser) => browser.submit(await browser.navigate(authorizationUrl()), { username: 'oscar', password: 'oscar-password' }, untilResume)],
        ['its gateway session', async (browser) => {
          await browser.submit(await browser.navigate(`${gw.url}/api/gateway/v1/login/`), { username: 'oscar', password: 'oscar-password' })
          return browser.navigate(authorizationUrl(), untilResume)
        }],
      ]
      for (const [how, signIn] of signIns) {
        const browser = new Browser()
        // The browser is signed in to the gateway, and on its way back to the realm to finish the login.
        const signedIn = await signIn(browser)
        assert.ok(signedIn.stoppedAt, `${how}: ${signedIn.body.slice(0, 300)}`)
        assert.ok(browser.cookie(gw.url, 'gateway_sessionid'), how)
        // Another tab of the browser logs out meanwhile: the gateway session ends and its cookie is gone.
        assert.equal((await browser.request(`${gw.url}/api/gateway/v1/logout/`)).status, 302)
        assert.equal(browser.cookie(gw.url, 'gateway_sessionid'), undefined)
        const finished = await browser.navigate(signedIn.stoppedAt, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
        // The realm's answer was on its way when the save of its session found the gateway session ended.
        assert.ok(finished.stoppedAt, `${how}: ${finished.body.slice(0, 300)}`)
        const code = new URL(finished.stoppedAt).searchParams.get('code')!
        const tokens = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: VERIFIER })
        assert.equal(tokens.status, 400, `${how}: the code of the login is refused`)
        assert.equal(tokens.body.error, 'invalid_grant')
        assert.ok(await asksForPassword(browser), `${how}: the realm asks the browser that logged out for the password again`)
      }
    })

    it('never brings back a realm session that was ended while a request of its browser without the gateway cookie was saving it', async () => {
      const device = await realmSignIn('pia')
      device.browser.forget(gw.url, 'gateway_sessionid')
      // The realm answers the app again; its code's write is held, after the realm session was loaded and before it is saved.
      const records = gw.store.oidc
      const upsert = records.upsert.bind(records)
      let held!: () => void
      const holding = new Promise<void>((resolve) => { held = resolve })
      let release!: () => void
      const released = new Promise<void>((resolve) => { release = resolve })
      records.upsert = async (input) => {
        if (input.model === 'AuthorizationCode') {
          records.upsert = upsert
          held()
          await released
        }
        return upsert(input)
      }
      try {
        const asking = authorize(device.browser)
        await holding
        // An administrator ends the user's sessions meanwhile.
        assert.equal((await gw.fetch(`/api/gateway/v1/users/${userIds.get('pia')}/sessions/`, { method: 'DELETE', headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).status, 204)
        release()
        const asked = await asking
        assert.ok(asked.stoppedAt, 'the realm session it loaded answered this request')
        const code = new URL(asked.stoppedAt).searchParams.get('code')!
        const tokens = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: VERIFIER })
        assert.equal(tokens.status, 400, 'the code of that request is refused')
      } finally {
        records.upsert = upsert
        release()
      }
      await assertSignedOutAtRealm(device)
    })

    it('keeps the realm session of a browser whose gateway session cookie is not one Gatehouse could have set', async () => {
      const device = await realmSignIn('nina')
      const realmCookie = device.browser.cookie(gw.url, 'gatehouse_oidc_session')!
      const asked = await fetch(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
        client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
      })}`, { redirect: 'manual', headers: { accept: 'text/html', cookie: `gatehouse_oidc_session=${realmCookie}; gateway_sessionid=not-a-session-id` } })
      assert.ok(asked.headers.get('location')!.startsWith(CLIENT_REDIRECT), 'signed in at the realm still')
      assert.ok(await gw.store.oidc.find('Session', recordKey(realmCookie), Date.now()), 'the realm session was saved, not ended')
      assert.equal((await refresh(device.refreshToken)).status, 200)
    })

    it('ends the realm session of a browser whose gateway session an administrator ends', async () => {
      const device = await realmSignIn('erin')
      const user = { id: userIds.get('erin')! }
      const listed = await json(await gw.fetch(`/api/gateway/v1/sessions/?user=${user.id}`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } }))
      assert.equal(listed.count, 1)
      assert.equal((await gw.fetch(`/api/gateway/v1/sessions/${listed.results[0].id}/`, { method: 'DELETE', headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).status, 204)
      await assertSignedOutAtRealm(device)

      const again = await realmSignIn('erin')
      assert.equal((await gw.fetch(`/api/gateway/v1/users/${user.id}/sessions/`, { method: 'DELETE', headers: { authorization: basic('admin', ADMIN_PASSWORD) } })).status, 204)
      await assertSignedOutAtRealm(again)
    })

    it('ends the realm session on the server when the browser logs out at the gateway', async () => {
      const device = await realmSignIn('frank')
      const realmCookie = device.browser.cookie(gw.url, 'gatehouse_oidc_session')!
      const csrf = device.browser.cookie(gw.url, 'csrftoken')!
      const logout = await device.browser.request(`${gw.url}/api/gateway/v1/logout/`, { method: 'POST', headers: { 'x-csrftoken': csrf, accept: 'application/json', referer: `${gw.url}/ui/` } })
      assert.equal(logout.status, 302)
      // The browser dropped the realm's cookie; a copy of it kept elsewhere opens nothing either.
      const { instance: provider } = await gw.app.oidc.get(REALM)!.provider()
      assert.equal(await provider.Session.find(realmCookie), undefined)
      await assertSignedOutAtRealm(device)
    })

    it('ends the gateway session linked to a browser\'s realm session when its app logs out with the refresh token, and no other', async () => {
      const device = await realmSignIn('tara')
      const elsewhere = new Browser()
      await elsewhere.submit(await elsewhere.navigate(`${gw.url}/api/gateway/v1/login/`), { username: 'tara', password: 'tara-password' })
      const signedIn = async (browser: Browser) => (await browser.request(`${gw.url}/api/gateway/v1/me/`, { headers: { accept: 'application/json' } })).status
      assert.equal(await signedIn(device.browser), 200)
      const logout = await gw.fetch(`/realms/${REALM}${KEYCLOAK_ROUTES.end_session}`, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', refresh_token: device.refreshToken }) })
      assert.equal(logout.status, 204, await logout.text())
      assert.equal(await signedIn(device.browser), 401, 'the gateway session of the browser that signed in at the realm ended')
      await assertSignedOutAtRealm(device)
      assert.equal(await signedIn(elsewhere), 200, 'the same person\'s gateway session on another device stays')
      // Recorded as the gateway's own logout records a session's end: a delete of it, by its user, from the logout's address.
      await gw.app.audit.flush()
      const stream = await json(await gw.fetch(`/api/gateway/v1/activitystream/?${new URLSearchParams({ content_type: 'session', created_by__username: 'tara', order_by: 'id', page_size: '50' })}`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } }))
      const entries = stream.results.map((entry: { operation: string; object_id: string; source_address: string; auth_method: string }) => [entry.operation, entry.object_id, entry.source_address, entry.auth_method])
      const [deviceSession, otherSession] = entries.filter(([operation]: string[]) => operation === 'create').map(([, id]: string[]) => id)
      assert.deepEqual(entries.filter(([operation]: string[]) => operation === 'delete'), [['delete', deviceSession, '127.0.0.1', 'oidc']], JSON.stringify(entries))
      assert.notEqual(deviceSession, otherSession)
    })

    it('ends the realm session of a browser whose gateway session its owner ends with End', async () => {
      const device = await realmSignIn('judy')
      const owner = { authorization: basic('judy', 'judy-password') }
      const listed = await json(await gw.fetch('/api/gateway/v1/me/sessions/', { headers: owner }))
      assert.equal((await gw.fetch(`/api/gateway/v1/me/sessions/${listed.results[0].id}/`, { method: 'DELETE', headers: owner })).status, 204)
      await assertSignedOutAtRealm(device)
    })

    it('ends the realm session of the oldest gateway session a newer login pushes over sessions_per_user_limit', async () => {
      const admin = { authorization: basic('admin', ADMIN_PASSWORD), 'content-type': 'application/json' }
      const limit = (value: number) => gw.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: admin, body: JSON.stringify({ sessions_per_user_limit: value }) })
      assert.equal((await limit(1)).status, 200)
      try {
        const oldest = await realmSignIn('henry')
        const newer = await realmSignIn('henry')
        await assertSignedOutAtRealm(oldest)
        assert.equal((await refresh(newer.refreshToken)).status, 200)
      } finally {
        assert.equal((await limit(0)).status, 200)
      }
    })

    it('ends the realm session of a disabled account for good: enabled again, the browser signs in again', async () => {
      const device = await realmSignIn('ivy')
      const admin = { authorization: basic('admin', ADMIN_PASSWORD), 'content-type': 'application/json' }
      for (const active of [false, true]) {
        const changed = await gw.fetch(`/api/gateway/v1/users/${userIds.get('ivy')}/`, { method: 'PATCH', headers: admin, body: JSON.stringify({ is_active: active }) })
        assert.equal(changed.status, 200)
      }
      await assertSignedOutAtRealm(device)
    })

    it('ends every realm session and grant of a disabled account, those linked to no gateway session too: enabled again, nothing of them works', async () => {
      const device = await realmSignIn('quinn')
      // A realm session whose gateway session is gone some other way (it expired): linked to nothing.
      const keyHash = SessionManager.hashOf(device.browser.cookie(gw.url, 'gateway_sessionid')!)
      await gw.store.database.db.updateTable('oidc_records').set({ gateway_session: null }).where('model', '=', 'Session').where('gateway_session', '=', keyHash).execute()
      const admin = { authorization: basic('admin', ADMIN_PASSWORD), 'content-type': 'application/json' }
      const disabled = await gw.fetch(`/api/gateway/v1/users/${userIds.get('quinn')}/`, { method: 'PATCH', headers: admin, body: JSON.stringify({ is_active: false }) })
      assert.equal(disabled.status, 200)
      const silent = await authorize(device.browser, { prompt: 'none' })
      assert.ok(silent.stoppedAt, silent.body.slice(150, 800))
      assert.equal(new URL(silent.stoppedAt).searchParams.get('code'), null, 'no silent login for a disabled account')
      assert.equal((await refresh(device.refreshToken)).status, 400)
      const enabled = await gw.fetch(`/api/gateway/v1/users/${userIds.get('quinn')}/`, { method: 'PATCH', headers: admin, body: JSON.stringify({ is_active: true }) })
      assert.equal(enabled.status, 200)
      await assertSignedOutAtRealm(device)
    })

    it('refuses a disabled account\'s realm session, codes and refresh tokens even where their records survived the disabling', async () => {
      const device = await realmSignIn('rita')
      const id = userIds.get('rita')!
      const code = await authorize(device.browser)
      assert.ok(code.stoppedAt, 'a code of the live session, not yet exchanged')
      // Disabled behind the realm's back, as a request that wrote its records just after the account's were ended
      // would leave them: every record of the account is still there.
      await gw.store.database.db.updateTable('users').set({ is_active: false }).where('id', '=', id).execute()
      await gw.app.bus.publish(USER_TOPIC, String(id))
      const silent = await authorize(device.browser, { prompt: 'none' })
      assert.ok(silent.stoppedAt, silent.body.slice(150, 800))
      assert.equal(new URL(silent.stoppedAt).searchParams.get('code'), null, 'no silent login for a disabled account')
      assert.equal(new URL(silent.stoppedAt).searchParams.get('error'), 'login_required')
      await assertCodeAndRefreshRefused(code.stoppedAt, device.refreshToken)
    })

    it('refuses a realm session, code and refresh token issued before the account\'s not-before, as where they raced a disable', async () => {
      const device = await realmSignIn('sam')
      const id = userIds.get('sam')!
      const code = await authorize(device.browser)
      assert.ok(code.stoppedAt, 'a code of the live session, not yet exchanged')
      // Into the next second: a code's or token's iat counts whole seconds.
      await sleep(1001 - (Date.now() % 1000))
      // The not-before a disable and the enabling again set, with every record of the account still there, as the
      // writes of a login in flight during the disable would leave them.
      await gw.store.database.db.updateTable('users').set({ not_before: Date.now() }).where('id', '=', id).execute()
      await gw.app.bus.publish(USER_TOPIC, String(id))
      const silent = await authorize(device.browser, { prompt: 'none' })
      assert.ok(silent.stoppedAt, silent.body.slice(150, 800))
      assert.equal(new URL(silent.stoppedAt).searchParams.get('code'), null, 'no silent login on a realm session from before it')
      await assertCodeAndRefreshRefused(code.stoppedAt, device.refreshToken)
      // Signing in again works.
      assert.ok((await realmSignIn('sam')).refreshToken)
    })

    it('lets a browser signed in at the realm log in there as someone else: the first person\'s realm session ends, the second stays signed in at both', async () => {
      const first = await realmSignIn('kate')
      const browser = first.browser
      const page = await authorize(browser, { prompt: 'login' })
      const switching = await browser.submit(page, { username: 'leo', password: 'leo-password' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
      assert.equal(switching.response.status, 200, 'the realm signs the first person out before it signs the second in')
      // The page submits itself with a script; a browser without one submits its form.
      const done = await browser.submit(switching, {}, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
      assert.ok(done.stoppedAt && new URL(done.stoppedAt).searchParams.get('code'), done.body.slice(0, 300))
      const me = await browser.request(`${gw.url}/api/gateway/v1/me/`, { headers: { accept: 'application/json' } })
      assert.equal(me.status, 200)
      assert.equal((await json(me)).results[0].username, 'leo')
      assert.equal((await refresh(first.refreshToken)).status, 400, 'the first person\'s realm session ended')
      assert.ok((await authorize(browser)).stoppedAt, 'the second person is not asked for the password again')
      // The second person's realm session follows their gateway session.
      const ended = await gw.fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: { authorization: basic('leo', 'leo-password') } })
      assert.equal((await json(ended)).ended, 1)
      assert.ok(await asksForPassword(browser))
    })

    it('signs the browser in at the realm as whoever logged in at the gateway after the previous person\'s gateway session expired, never as that person', async () => {
      const first = await realmSignIn('uma')
      const browser = first.browser
      // Uma leaves the computer signed in: her gateway session expires, and the browser drops its cookie; her realm
      // session, which lasts longer, stays in the browser.
      await gw.store.database.db.updateTable('sessions').set({ expires_at: Date.now() - 1000 }).where('user_id', '=', userIds.get('uma')!).execute()
      gw.app.sessions.forgetUser(userIds.get('uma')!)
      browser.forget(gw.url, 'gateway_sessionid')
      // Vera logs in at the gateway's login page in the same browser.
      await browser.submit(await browser.navigate(`${gw.url}/api/gateway/v1/login/`), { username: 'vera', password: 'vera-password' })
      const signedInAs = async (redirect: string | undefined) => {
        const code = redirect && new URL(redirect).searchParams.get('code')
        if (!code) return undefined
        const tokens = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: VERIFIER })
        assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
        return JSON.parse(Buffer.from(tokens.body.id_token.split('.')[1], 'base64url').toString()).preferred_username
      }
      // An application's request for a new password asks Vera for hers, not Uma for hers.
      const action = await authorize(browser, { kc_action: 'UPDATE_PASSWORD' })
      assert.match(action.body, /New password for vera/, action.body.slice(0, 300))
      // An application's silent check gets no code of Uma's.
      const silent = await authorize(browser, { prompt: 'none' })
      assert.ok(silent.stoppedAt, silent.body.slice(0, 300))
      assert.notEqual(await signedInAs(silent.stoppedAt), 'uma', 'a silent check in Vera\'s browser signed in as Uma')
      // Its login signs in Vera, without her password: the realm signs Uma out first.
      let page = await authorize(browser)
      if (!page.stoppedAt) page = await browser.submit(page, {}, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
      assert.equal(await signedInAs(page.stoppedAt), 'vera', page.body.slice(0, 300))
      assert.equal((await refresh(first.refreshToken)).status, 400, 'Uma\'s realm session ended')
      const me = await browser.request(`${gw.url}/api/gateway/v1/me/`, { headers: { accept: 'application/json' } })
      assert.equal(me.status, 200, 'Vera\'s gateway session goes on')
      assert.equal((await json(me)).results[0].username, 'vera')
    })

    it('passes the realm session on to the gateway session that replaces the browser\'s, and ends it with that one', async () => {
      const device = await realmSignIn('grace')
      // Signing in again at the gateway's login page replaces the browser's gateway session: the realm's stays.
      const page = await device.browser.navigate(`${gw.url}/api/gateway/v1/login/`)
      await device.browser.submit(page, { username: 'grace', password: 'grace-password' })
      assert.equal((await refresh(device.refreshToken)).status, 200)
      const ended = await gw.fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: { authorization: basic('grace', 'grace-password') } })
      assert.equal((await json(ended)).ended, 1)
      await assertSignedOutAtRealm(device)
    })
  })
}
