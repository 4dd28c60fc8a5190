import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { openPage, type WatchedPage } from '../helpers/chromium.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { startKeycloakJsSetup, type KeycloakJsApp, type KeycloakJsSetup } from '../helpers/keycloak-js-app.ts'
import { REALM } from '../helpers/oidc.ts'
import { SSO } from '../helpers/sso.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'

const LOGIN_PAGE = `/realms/${REALM}/login-actions/`
const IMPLICIT_DISABLED = 'Client is not allowed to initiate browser login with given response_type. Implicit flow is disabled for the client.'

/**
 * keycloak-js 26 in Chromium with the `init` and `login` options Keycloak documents besides the defaults: each
 * app page of the test app is one set of `init` options.
 */
describe('keycloak-js 26 options in Chromium against the realm', () => {
  let gw: TestGateway
  let app: KeycloakJsApp
  let browser: Browser
  let setup: KeycloakJsSetup | undefined
  /** An upstream provider of the gateway's single sign-on, for `login({ idpHint })`. */
  let corp: UpstreamIdp | undefined

  before(async () => {
    corp = await startUpstreamIdp({ hana: { sub: 'sub-hana', password: 'hana-upstream-pw', claims: { preferred_username: 'hana', email: 'hana@corp.example' } } })
    setup = await startKeycloakJsSetup((appUrl) => ({
      'login-required': { onLoad: 'login-required' },
      'silent-check-sso': { onLoad: 'check-sso', silentCheckSsoRedirectUri: `${appUrl}/silent-check-sso.html` },
      'check-sso': { onLoad: 'check-sso', checkLoginIframe: false },
      'query': { onLoad: 'login-required', responseMode: 'query', pkceMethod: 'S256' },
      'implicit': { onLoad: 'login-required', flow: 'implicit' },
      'hybrid': { onLoad: 'login-required', flow: 'hybrid' },
      'no-pkce': { onLoad: 'login-required', pkceMethod: false },
    }), {}, { sso: [corp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret' })] })
    ;({ gw, app, browser } = setup)
    corp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [`${gw.url}${SSO}corp/callback/`] })
  })
  after(async () => {
    await setup?.close()
    await corp?.close()
  })

  const appUrl = (name: string) => `${app.url}/${name}`

  async function initResult(page: Page): Promise<unknown> {
    await page.waitForFunction('window.initResult !== undefined', undefined, { timeout: 20_000 })
    return page.evaluate('window.initResult')
  }

  async function fillLogin(page: Page): Promise<void> {
    await page.waitForURL((url) => url.pathname.startsWith(LOGIN_PAGE))
    await page.fill('#username', 'alice')
    await page.fill('#password', 'alice-password')
    await page.click('button[type=submit]')
    await page.waitForURL((url) => url.origin === app.url)
  }

  /** Opens an app page in a new browser context, and closes the context after `steps`. */
  async function inNewBrowser(steps: (watched: WatchedPage) => Promise<void>): Promise<void> {
    const watched = await openPage(browser)
    try {
      await steps(watched)
    } finally {
      await watched.context.close()
    }
  }

  it('check-sso with a silent check SSO page: not signed in, the app stays on its page; signed in, it gets tokens without a visible redirect', async () => {
    await inNewBrowser(async ({ page, context, problems }) => {
      const navigations: string[] = []
      page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations.push(frame.url()) })
      await page.goto(appUrl('silent-check-sso'))
      assert.deepEqual(await initResult(page), { authenticated: false })
      assert.deepEqual(navigations.map((u) => new URL(u).origin), [app.url], 'the check ran in the iframe, the page never left the app')

      const other = await context.newPage()
      await other.goto(appUrl('login-required'))
      await fillLogin(other)
      assert.deepEqual(await initResult(other), { authenticated: true })

      await page.reload()
      assert.deepEqual(await initResult(page), { authenticated: true })
      assert.equal(await page.evaluate('keycloak.sessionId'), await other.evaluate('keycloak.sessionId'))
      assert.equal(new URL(page.url()).pathname, '/silent-check-sso')

      // The session ends in the other tab: the login status iframe says `changed` at the next update, keycloak-js
      // clears its tokens and calls onAuthLogout; check-sso needs no login, so the page stays.
      await other.evaluate('void keycloak.logout()')
      await other.waitForURL((url) => url.pathname.startsWith(LOGIN_PAGE))
      await page.evaluate('keycloak.updateToken(5).catch(() => {})')
      await page.waitForFunction('window.events.includes("logout")')
      assert.equal(await page.evaluate('keycloak.authenticated'), false)
      assert.equal(new URL(page.url()).pathname, '/silent-check-sso')
      assert.deepEqual(problems, [])
    })
  })

  it('check-sso without the iframe: login({ prompt: \'none\' }) comes back unauthenticated and without an error when not signed in', async () => {
    await inNewBrowser(async ({ page, problems }) => {
      await page.goto(appUrl('check-sso'))
      assert.deepEqual(await initResult(page), { authenticated: false })
      assert.deepEqual(await page.evaluate('window.events'), [])
      assert.equal(new URL(page.url()).search, '')
      assert.equal(new URL(page.url()).hash, '')
      assert.deepEqual(problems, [])
    })
  })

  it('login({ idpHint }) naming an upstream provider goes straight to it, and comes back signed in as its person', async () => {
    await inNewBrowser(async ({ page, problems }) => {
      await page.goto(appUrl('check-sso'))
      assert.deepEqual(await initResult(page), { authenticated: false })
      await page.evaluate(`void keycloak.login({ idpHint: 'corp' })`)
      await page.waitForURL((url) => url.origin === corp!.issuer)
      await page.fill('input[name=username]', 'hana')
      await page.fill('input[name=password]', 'hana-upstream-pw')
      await page.click('button[type=submit]')
      await page.getByRole('button', { name: 'Allow' }).click()
      await page.waitForURL((url) => url.origin === app.url)
      assert.deepEqual(await initResult(page), { authenticated: true })
      assert.equal(await page.evaluate('keycloak.tokenParsed.preferred_username'), 'hana')
      assert.equal(await page.evaluate('keycloak.idTokenParsed.acr'), '1')
      assert.deepEqual(problems, [])
    })
  })

  it('logs in with responseMode \'query\', and the code leaves the address bar', async () => {
    await inNewBrowser(async ({ page, problems }) => {
      await page.goto(appUrl('query'))
      await fillLogin(page)
      assert.deepEqual(await initResult(page), { authenticated: true })
      assert.equal(new URL(page.url()).search, '', 'keycloak-js takes code, state, session_state and iss out of the query')
      assert.equal(await page.evaluate('keycloak.tokenParsed.preferred_username'), 'alice')
      assert.deepEqual(problems, [])
    })
  })

  for (const flow of ['implicit', 'hybrid']) {
    it(`refuses flow: '${flow}' as Keycloak refuses it for a client without the implicit flow, and init rejects with the error`, async () => {
      await inNewBrowser(async ({ page }) => {
        await page.goto(appUrl(flow))
        assert.deepEqual(await initResult(page), { error: { error: 'unauthorized_client', error_description: IMPLICIT_DISABLED } })
        assert.deepEqual(await page.evaluate('window.events'), ['error'])
        assert.equal(new URL(page.url()).origin, app.url)
      })
    })
  }

  it('without PKCE (pkceMethod: false), a client that requires it gets Keycloak\'s refusal and init rejects', async () => {
    await inNewBrowser(async ({ page }) => {
      await page.goto(appUrl('no-pkce'))
      assert.deepEqual(await initResult(page), { error: { error: 'invalid_request', error_description: 'Missing parameter: code_challenge_method' } })
    })
  })

  it('judges token expiry with the clock skew it measures from the token\'s iat: a browser clock two hours ahead still refreshes only when due', async () => {
    await inNewBrowser(async ({ page, context, problems }) => {
      const ahead = 2 * 3600
      await context.clock.install({ time: Date.now() + ahead * 1000 })
      await page.goto(appUrl('login-required'))
      await fillLogin(page)
      assert.deepEqual(await initResult(page), { authenticated: true })
      const skew = await page.evaluate<number>('keycloak.timeSkew')
      assert.ok(Math.abs(skew - ahead) <= 5, `timeSkew ${skew}`)
      assert.equal(await page.evaluate('keycloak.isTokenExpired(5)'), false)
      assert.equal(await page.evaluate('keycloak.updateToken(5)'), false, 'a fresh token is not refreshed')
      const before = await page.evaluate<string>('keycloak.token')
      assert.equal(await page.evaluate('keycloak.updateToken(400)'), true, 'a token valid for less than minValidity (the realm gives 300 s) is refreshed')
      assert.notEqual(await page.evaluate('keycloak.token'), before)
      assert.deepEqual(problems, [])
    })
  })

  it('signed in: loadUserInfo(), accountManagement(), login options (scope, locale, idpHint, acr, maxAge), register()', async () => {
    await inNewBrowser(async ({ page, problems, failedResponses }) => {
      await page.goto(appUrl('login-required'))
      await fillLogin(page)
      assert.deepEqual(await initResult(page), { authenticated: true })

      const info = await page.evaluate<Record<string, unknown>>('keycloak.loadUserInfo()')
      assert.equal(info.preferred_username, 'alice')
      assert.equal(info.sub, await page.evaluate('keycloak.subject'))

      // Options the realm takes and, signed in, passes over: back on the app at once with new tokens.
      const sid = await page.evaluate('keycloak.sessionId')
      await page.evaluate(`void keycloak.login({ scope: 'openid phone', locale: 'de', idpHint: 'github', acr: { values: ['1'], essential: false }, acrValues: '1' })`)
      await page.waitForURL((url) => url.origin === app.url)
      assert.deepEqual(await initResult(page), { authenticated: true })
      assert.equal(await page.evaluate('keycloak.sessionId'), sid)
      assert.match(await page.evaluate<string>('keycloak.tokenParsed.scope'), /\bphone\b/)
      // Signed in by the realm session, not the form: Keycloak's acr for single sign-on (the acr asked for is ignored).
      assert.equal(await page.evaluate('keycloak.idTokenParsed.acr'), '0')

      // maxAge: 0 asks for the password again, in the same session.
      await page.evaluate('void keycloak.login({ maxAge: 0 })')
      await fillLogin(page)
      assert.deepEqual(await initResult(page), { authenticated: true })
      assert.equal(await page.evaluate('keycloak.sessionId'), sid)
      assert.equal(await page.evaluate('keycloak.idTokenParsed.acr'), '1')

      await page.evaluate('void keycloak.accountManagement()')
      await page.waitForURL((url) => url.origin === gw.url && url.pathname.startsWith('/ui/'))

      await page.goto(appUrl('login-required'))
      assert.deepEqual(await initResult(page), { authenticated: true })
      await page.evaluate('void keycloak.register()')
      await page.waitForURL((url) => url.pathname === `/realms/${REALM}/protocol/openid-connect/registrations`)
      assert.match(await page.textContent('body') ?? '', /Registration not allowed/)
      assert.deepEqual(failedResponses, [`400 GET /realms/${REALM}/protocol/openid-connect/registrations`])
      assert.deepEqual(problems, [])
    })
  })
})
