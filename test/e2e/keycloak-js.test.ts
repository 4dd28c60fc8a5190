import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { openPage, type WatchedPage } from '../helpers/chromium.ts'
import { basic, json, type TestGateway } from '../helpers/gateway.ts'
import { startKeycloakJsSetup, type KeycloakJsSetup } from '../helpers/keycloak-js-app.ts'
import { REALM, tokenRequest } from '../helpers/oidc.ts'

describe('keycloak-js 26 in Chromium against the realm', () => {
  let gw: TestGateway
  let appUrl: string
  let browser: Browser
  let setup: KeycloakJsSetup | undefined

  before(async () => {
    // Keycloak's documented setup, with default options (PKCE S256, fragment response mode, third-party cookie
    // check, login status iframe).
    setup = await startKeycloakJsSetup((url) => ({
      '': { onLoad: 'login-required' },
      'check-sso': { onLoad: 'check-sso', silentCheckSsoRedirectUri: `${url}/silent-check-sso.html` },
    }), { audiences: ['demo-app'] })
    ;({ gw, browser } = setup)
    appUrl = setup.app.url
  })
  after(() => setup?.close())

  /** Opens the app: keycloak-js sends the browser to the realm's login page, which is filled in; back on the app, init() resolves. */
  async function logIn({ page }: Pick<WatchedPage, 'page'>, from = appUrl): Promise<void> {
    await page.goto(from)
    await page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
    await page.fill('#username', 'alice@example.com')
    await page.fill('#password', 'alice-password')
    await page.click('button[type=submit]')
    await backAtApp(page)
  }

  /** Waits for the browser to be back at the app, and keycloak-js to have finished its init there. */
  async function backAtApp(page: WatchedPage['page']): Promise<void> {
    await page.waitForURL((url) => url.origin === appUrl)
    await page.waitForFunction('window.initResult !== undefined', undefined, { timeout: 20_000 })
  }

  /** Opens the app in a new browser context, logs in, and runs `steps` on the signed-in app; the context is closed after. */
  async function withSignedInApp(steps: (watched: WatchedPage) => Promise<void>): Promise<void> {
    const watched = await openPage(browser)
    try {
      await logIn(watched)
      assert.deepEqual(await watched.page.evaluate('window.initResult'), { authenticated: true })
      await steps(watched)
    } finally {
      await watched.context.close()
    }
  }

  it('logs in, refreshes, calls a service, loads the profile and logs out', async () => {
    await withSignedInApp(async ({ page, problems }) => {
      const parsed = await page.evaluate<Record<string, any>>(`({
        token: keycloak.tokenParsed, refresh: keycloak.refreshTokenParsed, id: keycloak.idTokenParsed,
        subject: keycloak.subject, sessionId: keycloak.sessionId, realmAccess: keycloak.realmAccess,
      })`)
      assert.equal(parsed.token.preferred_username, 'alice')
      assert.equal(parsed.token.azp, 'spa')
      assert.equal(parsed.token.scope, 'openid profile email', 'Keycloak\'s default client scopes, as in every flow')
      assert.equal(parsed.refresh.typ, 'Refresh')
      assert.equal(parsed.id.typ, 'ID')
      assert.equal(parsed.id.azp, 'spa')
      assert.equal(parsed.sessionId, parsed.token.sid)
      assert.equal(parsed.refresh.sid, parsed.token.sid)
      assert.ok(parsed.realmAccess.roles.includes('offline_access'))

      // updateToken asks the login status iframe first (the session is unchanged), then refreshes over CORS.
      const before = await page.evaluate<string>('keycloak.token')
      assert.equal(await page.evaluate('keycloak.updateToken(-1)'), true)
      const token = await page.evaluate<string>('keycloak.token')
      assert.notEqual(token, before)
      assert.equal(await page.evaluate('keycloak.authenticated'), true)

      const seen = await json(await gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' }))
      assert.equal(seen.identity.username, 'alice')
      assert.equal(seen.identity.auth_method, 'oidc')

      const profile = await page.evaluate<Record<string, unknown>>('keycloak.loadUserProfile()')
      assert.equal(profile.username, 'alice')
      assert.equal(profile.email, 'alice@example.com')
      assert.equal(profile.firstName, 'Alice')
      assert.equal(profile.lastName, 'Liddell')

      const refreshToken = await page.evaluate<string>('keycloak.refreshToken')
      await page.evaluate('void keycloak.logout()')
      // Logged out, the app's login-required init sends the browser back to the login page.
      await page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
      assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })).status, 401)
      const refresh = await tokenRequest(gw, { client_id: 'spa', grant_type: 'refresh_token', refresh_token: refreshToken })
      assert.equal(refresh.body.error, 'invalid_grant')
      assert.deepEqual(problems, [])
    })
  })

  it('logs in and out from a page routed by its fragment, whose address keycloak-js sends as its redirect URI', async () => {
    const { page, context, problems } = await openPage(browser)
    try {
      await logIn({ page }, `${appUrl}/#/dashboard`)
      assert.deepEqual(await page.evaluate('window.initResult'), { authenticated: true })
      await page.evaluate(`location.hash = '#/settings'`)
      await page.evaluate('void keycloak.logout()')
      // Back at the app, signed out: its login-required init sends the browser to the login page again.
      await page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('check-sso signs a browser signed in only at the gateway in silently, in its iframe; signed out there, the app stays anonymous', async () => {
    const { page, context, problems } = await openPage(browser)
    try {
      // Signed in at the gateway's own login page: no realm session yet.
      await page.goto(`${gw.url}/api/gateway/v1/login/`)
      await page.fill('#username', 'alice')
      await page.fill('#password', 'alice-password')
      await page.click('button[type=submit]')
      await page.waitForURL((url) => url.pathname === '/ui/')
      assert.equal((await context.cookies(gw.url)).some((cookie) => cookie.name === 'gatehouse_oidc_session'), false)

      const navigations: string[] = []
      page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations.push(frame.url()) })
      await page.goto(`${appUrl}/check-sso`)
      await page.waitForFunction('window.initResult !== undefined', undefined, { timeout: 20_000 })
      assert.deepEqual(await page.evaluate('window.initResult'), { authenticated: true })
      assert.deepEqual(navigations.map((url) => new URL(url).origin), [appUrl], 'the check ran in the iframe, the page never left the app')
      const token = await page.evaluate<Record<string, unknown>>('keycloak.tokenParsed')
      assert.equal(token.preferred_username, 'alice')
      assert.equal(token.acr, '0', 'single sign-on: no password typed for this app')

      // Signed out at the gateway, the realm session the check made ends with it: the next check finds no one.
      const csrf = (await context.cookies(gw.url)).find((cookie) => cookie.name === 'csrftoken')!.value
      const logout = await page.request.post(`${gw.url}/api/gateway/v1/logout/`, { headers: { 'x-csrftoken': csrf, referer: `${gw.url}/ui/`, accept: 'application/json' }, maxRedirects: 0 })
      assert.equal(logout.status(), 302)
      await page.reload()
      await page.waitForFunction('window.initResult !== undefined', undefined, { timeout: 20_000 })
      assert.deepEqual(await page.evaluate('window.initResult'), { authenticated: false })
      assert.equal(new URL(page.url()).origin, appUrl)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('logs out with a form POST (logoutMethod: \'POST\'), which ends the realm session', async () => {
    await withSignedInApp(async ({ page, problems }) => {
      const token = await page.evaluate<string>('keycloak.token')
      const refreshToken = await page.evaluate<string>('keycloak.refreshToken')
      await page.evaluate("void keycloak.logout({ logoutMethod: 'POST' })")
      // Back on the app, logged out: its login-required init sends the browser to the login page again.
      await page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
      await page.waitForSelector('#password')
      assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })).status, 401)
      assert.equal((await tokenRequest(gw, { client_id: 'spa', grant_type: 'refresh_token', refresh_token: refreshToken })).body.error, 'invalid_grant')
      assert.deepEqual(problems, [])
    })
  })

  it('cannot refresh, and logs in again, once the owner ended the browser\'s sessions from another device', async () => {
    await withSignedInApp(async ({ page }) => {
      const token = await page.evaluate<string>('keycloak.token')
      // The laptop is lost: its owner ends every other session from another device.
      const ended = await gw.fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: { authorization: basic('alice', 'alice-password') } })
      assert.equal((await json(ended)).ended, 1)
      assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })).status, 401)
      // The refresh is refused (400 invalid_grant), so keycloak-js clears its tokens and, the app requiring a login,
      // starts one; the realm has no session of this browser any more and asks for the password. The update is
      // started, not awaited: the navigation may destroy the page before its promise settles.
      await page.evaluate('void keycloak.updateToken(-1).catch(() => {})')
      await page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
      await page.waitForSelector('#password')
    })
  })

  it('login({ action: \'UPDATE_PASSWORD\' }) shows the Update password page and calls onActionUpdate(\'success\', \'UPDATE_PASSWORD\')', async () => {
    const user = await gw.store.users.findByUsername('alice')
    try {
      await withSignedInApp(async ({ page, problems }) => {
        // Signed in moments ago, the browser is not asked for its password again.
        await page.evaluate("void keycloak.login({ action: 'UPDATE_PASSWORD' })")
        await page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
        await page.fill('#password-new', 'alice-new-passphrase')
        await page.fill('#password-confirm', 'alice-new-passphrase')
        await page.click('button:text-is("Submit")')
        await backAtApp(page)
        assert.deepEqual(await page.evaluate('window.initResult'), { authenticated: true })
        assert.deepEqual(await page.evaluate('window.events'), ['action:success:UPDATE_PASSWORD'])
        assert.equal(new URL(page.url()).hash, '', 'keycloak-js takes the answer out of the address')
        const token = await page.evaluate<string>('keycloak.token')
        assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })).status, 200)
        assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: basic('alice', 'alice-new-passphrase') } })).status, 200)
        assert.deepEqual(problems, [])
      })
    } finally {
      await gw.app.accounts.update(user!.id, { password: 'alice-password' })
    }
  })

  it('login({ action: \'UPDATE_PROFILE\' }) shows the account information page and calls onActionUpdate(\'success\', \'UPDATE_PROFILE\')', async () => {
    const user = (await gw.store.users.findByUsername('alice'))!
    try {
      await withSignedInApp(async ({ page, problems }) => {
        await page.evaluate("void keycloak.login({ action: 'UPDATE_PROFILE' })")
        await page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
        assert.equal(await page.inputValue('#email'), 'alice@example.com', 'the account\'s address, filled in')
        await page.fill('#firstName', 'Alice')
        await page.fill('#lastName', 'Liddell')
        await page.click('button:text-is("Submit")')
        await backAtApp(page)
        assert.deepEqual(await page.evaluate('window.initResult'), { authenticated: true })
        assert.deepEqual(await page.evaluate('window.events'), ['action:success:UPDATE_PROFILE'])
        const parsed = await page.evaluate<{ given_name?: string; family_name?: string }>('keycloak.tokenParsed')
        assert.deepEqual([parsed.given_name, parsed.family_name], ['Alice', 'Liddell'])
        assert.deepEqual(problems, [])
      })
    } finally {
      await gw.app.accounts.update(user.id, { firstName: user.firstName, lastName: user.lastName })
    }
  })

  it('sees a logout in another tab through the login status iframe', async () => {
    const watched = await openPage(browser)
    try {
      await logIn(watched)
      const other = await watched.context.newPage()
      await other.goto(appUrl)
      await other.waitForFunction('window.initResult !== undefined')
      assert.deepEqual(await other.evaluate('window.initResult'), { authenticated: true }, 'the second tab is signed in by the realm\'s session, without a form')
      assert.equal(await other.evaluate('keycloak.sessionId'), await watched.page.evaluate('keycloak.sessionId'))
      await other.evaluate('void keycloak.logout()')
      await other.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
      // The first tab's next token update asks the iframe, which reports the session changed: keycloak-js starts a new login.
      // The update is started, not awaited: the navigation it causes may destroy the page before its promise settles.
      // On a loaded machine the iframe's own five-second poll may have seen the change first and already sent the tab
      // to the login page (where there is no `keycloak`): either way the tab must end up there.
      await watched.page.evaluate('window.keycloak && void keycloak.updateToken(5).catch(() => {})').catch(() => {})
      await watched.page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
    } finally {
      await watched.context.close()
    }
  })
})
