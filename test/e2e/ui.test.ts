import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { assertNoHorizontalOverflow, launchChromium, logIn, openPage, openSignedIn, pageDrawn, screenshot, signIn, VIEWPORTS, type SignedIn, type ViewportName, type WatchedPage } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { bearer, createToken } from '../helpers/tokens.ts'
import { createOrgAndTeam } from '../helpers/access.ts'

const PAGES = ['account', 'tokens', 'sessions', 'access', 'admin/users', 'admin/users/1', 'admin/users/new', 'admin/tokens', 'admin/sessions', 'admin/applications', 'admin/applications/1', 'admin/settings', 'admin/services']

describe('the web interface in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  let carolId: number
  const carolAuth = { authorization: basic('carol', 'carol-password') }
  const erinAuth = { authorization: basic('erin', 'erin-password') }

  const patchSettings = async (changes: Record<string, unknown>) => {
    const response = await gw.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(changes) })
    assert.equal(response.status, 200)
  }
  /** The admin's session, logged in once: the tests that only need an administrator start from it. */
  let adminSignedIn: SignedIn
  /**
   * Erin's session, logged in once, for the tests that need someone who is no superuser but test neither the login
   * nor what happens to sessions: carol is theirs, as they end her sessions and count them.
   */
  let erinSignedIn: SignedIn

  /** Runs a test body in a fresh browser context (signed in with `signedIn`) and closes it, whatever happens. */
  const inBrowser = async (viewport: ViewportName, body: (watched: WatchedPage) => Promise<void>, signedIn?: SignedIn) => {
    const watched = await openPage(browser, viewport, signedIn)
    try {
      await body(watched)
    } finally {
      await watched.context.close()
    }
  }
  /** Clicks a button that asks first, then agrees in the dialog. */
  /** Logs in at the gateway's login page in a new tab of the browser `context`, and closes that tab. */
  const logInInAnotherTab = async (context: BrowserContext, username: string, password: string) => {
    const other = await context.newPage()
    await other.goto(`${gw.url}/api/gateway/v1/login/?next=/ui/account`)
    await other.fill('#username', username)
    await other.fill('#password', password)
    await Promise.all([other.waitForURL(`${gw.url}/ui/account`), other.click('button[type=submit]')])
    await other.close()
  }

  const clickAndConfirm = async (page: Page, name: string | RegExp, confirmLabel: string) => {
    await page.getByRole('button', { name }).click()
    await page.locator('dialog.confirm').getByRole('button', { name: confirmLabel }).click()
  }

  /**
   * The page has a language and a title, each control a label, each button and link a name, and each column a
   * header: what a screen reader announces for each, by the rules of the accessible name in its simplest cases.
   */
  const assertEveryPartNamed = async (page: Page, name: string) => {
    const missing = await page.evaluate<string[]>(`(() => {
      const missing = []
      const text = (element) => (element.getAttribute('aria-label') || element.textContent || '').trim()
      if (!document.documentElement.lang) missing.push('the language of the page')
      if (!document.title.trim()) missing.push('the title of the page')
      for (const control of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
        if (!control.labels.length && !control.getAttribute('aria-label') && !control.getAttribute('aria-labelledby')) missing.push('a label for ' + control.outerHTML.slice(0, 80))
      }
      for (const element of document.querySelectorAll('button, a[href]')) if (!text(element)) missing.push('a name for ' + element.outerHTML.slice(0, 80))
      for (const header of document.querySelectorAll('th')) if (!text(header)) missing.push('a column header in ' + header.closest('table').querySelector('caption').textContent)
      return missing
    })()`)
    assert.deepEqual(missing, [], name)
  }
  /** Opens a page of the interface in a context that starts signed in as the admin. */
  const openAsAdmin = async (page: Page, path: string) => {
    await page.goto(`${gw.url}${path}`)
    assert.equal(new URL(page.url()).pathname, path, 'the admin\'s session lets the page open')
    await pageDrawn(page)
  }

  before(async () => {
    // A single sign-on provider for the login page's button; it is never contacted here.
    gw = await startGateway({ config: { sso: [{ name: 'corp', label: 'Corp ID', issuer: 'https://id.example.invalid/realms/corp', client_id: 'gatehouse' }] } })
    browser = await launchChromium()
    carolId = (await gw.app.accounts.create({ username: 'carol', password: 'carol-password', email: 'carol@example.com', firstName: 'Carol', lastName: 'Jones' })).id
    // Something in the lists, so the screenshots show them.
    await createToken(gw, adminAuth, { description: 'deploy pipeline', scope: 'read', expires_in: 30 * 86400 })
    // Rows whose buttons must say which row they act on.
    await createOrgAndTeam(gw, 'Platform', 'Automation')
    // An application's page, with a confidential one's secret section.
    assert.equal((await gw.fetch('/api/gateway/v1/applications/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'reporting', client_type: 'confidential', authorization_grant_type: 'password' }) })).status, 201)
    await gw.app.accounts.create({ username: 'erin', password: 'erin-password' })
    ;[adminSignedIn, erinSignedIn] = await Promise.all([signIn(browser, gw.url, 'admin', ADMIN_PASSWORD), signIn(browser, gw.url, 'erin', 'erin-password')])
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  it('sends a visitor without a session to the login page, and back to the page asked for after login', () => inBrowser('desktop', async ({ page, problems }) => {
    await page.goto(`${gw.url}/ui/tokens`)
    assert.equal(new URL(page.url()).pathname, '/api/gateway/v1/login/')
    assert.equal(new URL(page.url()).searchParams.get('next'), '/ui/tokens')
    // The login page offers the single sign-on methods ui_auth/ lists, coming back to the same page.
    const [sso] = (await json(await gw.fetch('/api/gateway/v1/ui_auth/'))).ssos
    const button = page.getByRole('link', { name: 'Sign in with Corp ID' })
    const href = new URL((await button.getAttribute('href'))!, gw.url)
    assert.equal(href.pathname, sso.login_url)
    assert.equal(href.searchParams.get('next'), '/ui/tokens')
    await page.fill('#username', 'carol')
    await page.fill('#password', 'carol-password')
    await Promise.all([page.waitForURL(`${gw.url}/ui/tokens`), page.click('button[type=submit]')])
    await page.getByRole('heading', { name: 'My tokens', level: 1 }).waitFor()
    assert.match(await page.locator('.who').innerText(), /carol/)
    assert.deepEqual(problems, [])
  }))

  for (const viewport of Object.keys(VIEWPORTS) as ViewportName[]) {
    it(`shows every page at ${VIEWPORTS[viewport].width} px without overflow or console errors, with a language, a title, a label for each control, a name for each button and link, and headed columns`, () => inBrowser(viewport, async ({ page, problems, failedResponses }) => {
      await page.goto(`${gw.url}/ui/`)
      await assertNoHorizontalOverflow(page, 'login')
      await screenshot(page, `${viewport}-login`)
      // The admin's session from here on: the login itself is tested on its own.
      await page.context().addCookies(adminSignedIn.cookies)
      for (const name of PAGES) {
        await page.goto(`${gw.url}/ui/${name}`)
        await pageDrawn(page)
        assert.equal(await page.locator('main .form-error').count(), 0, `${name} shows an error`)
        await assertEveryPartNamed(page, name)
        await assertNoHorizontalOverflow(page, name)
        assert.equal(await page.locator('#nav').isVisible(), viewport !== 'phone', 'the menu starts closed on a phone, open elsewhere')
        if (viewport === 'phone') {
          await page.getByRole('button', { name: 'Menu' }).click()
          assert.equal(await page.locator('#nav').isVisible(), true)
          await assertNoHorizontalOverflow(page, `${name} with the menu open`)
          await page.getByRole('button', { name: 'Menu' }).click()
        }
        await screenshot(page, `${viewport}-${name.replaceAll('/', '-')}`)
      }
      assert.deepEqual(problems, [])
      // Every service answers the services page: demo-app takes OIDC, and so the browser's session too.
      assert.deepEqual(failedResponses, [])
    }))
  }

  it('gives the activity page a language, a title and names, and names a button repeated on every row by its row', () => inBrowser('desktop', async ({ page, problems }) => {
    await openAsAdmin(page, '/ui/admin/activity')
    await assertEveryPartNamed(page, 'admin/activity')
    await page.goto(`${gw.url}/ui/access`)
    await page.getByRole('button', { name: 'Delete organization Platform', exact: true }).waitFor()
    await page.getByRole('button', { name: 'Delete team Automation', exact: true }).waitFor()
    assert.deepEqual(problems, [])
  }, adminSignedIn))

  it('marks the main area busy while a page\'s data loads, and not once it is drawn', () => inBrowser('desktop', async ({ page, problems }) => {
    await openSignedIn(page, gw.url, '/ui/account')
    const main = page.locator('main')
    // The account page's heading shows while its data may still load.
    await pageDrawn(page)
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const asked = new Promise<void>((resolve) => {
      void page.route('**/api/gateway/v1/tokens/**', async (route) => {
        resolve()
        await held
        await route.continue()
      })
    })
    await page.getByRole('navigation').getByRole('link', { name: 'Tokens' }).click()
    await asked
    assert.equal(await main.getAttribute('aria-busy'), 'true')
    assert.match(await main.innerText(), /Loading/)
    release()
    await pageDrawn(page)
    assert.equal(await main.getAttribute('aria-busy'), null)
    assert.match(await main.innerText(), /You have no tokens\./)
    await page.unroute('**/api/gateway/v1/tokens/**')
    assert.deepEqual(problems, [])
  }, erinSignedIn))

  it('tells a browser without JavaScript that the interface needs it, after a login that works without it', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false })
    try {
      const page = await context.newPage()
      await page.goto(`${gw.url}/ui/tokens`)
      await page.fill('#username', 'carol')
      await page.fill('#password', 'carol-password')
      await Promise.all([page.waitForURL(`${gw.url}/ui/tokens`), page.click('button[type=submit]')])
      assert.match(await page.locator('main').innerText(), /needs JavaScript/)
      assert.doesNotMatch(await page.locator('main').innerText(), /Loading/)
    } finally {
      await context.close()
    }
  })

  it('keeps the keyboard focus on the list after revoking a token from it with the keyboard', () => inBrowser('desktop', async ({ page, problems }) => {
    await createToken(gw, erinAuth, { description: 'first key' })
    await createToken(gw, erinAuth, { description: 'second key' })
    await openSignedIn(page, gw.url, '/ui/tokens')
    await page.getByRole('button', { name: 'Revoke token first key' }).focus()
    await page.keyboard.press('Enter')
    const confirm = page.locator('dialog.confirm').getByRole('button', { name: 'Revoke' })
    await confirm.focus()
    await page.keyboard.press('Enter')
    await page.getByText('Token revoked.').waitFor()
    await page.locator('tr', { hasText: 'first key' }).waitFor({ state: 'detached' })
    assert.equal(await page.evaluate<boolean>("document.activeElement.closest('.table-wrap') !== null"), true, 'the focus is on the list, not lost to the page')
    await page.keyboard.press('Tab')
    assert.equal(await page.evaluate<string>('document.activeElement.getAttribute("aria-label")'), 'Revoke token second key', 'the next Tab reaches the list\'s next button')
    await clickAndConfirm(page, 'Revoke token second key', 'Revoke')
    await page.getByText('You have no tokens.').waitFor()
    assert.deepEqual(problems, [])
  }, erinSignedIn))

  it('closes the phone\'s menu with Escape, back on the Menu button', () => inBrowser('phone', async ({ page, problems }) => {
    await openSignedIn(page, gw.url)
    const menu = page.getByRole('button', { name: 'Menu' })
    await menu.focus()
    await page.keyboard.press('Enter')
    await page.locator('#nav').waitFor({ state: 'visible' })
    await page.getByRole('navigation').getByRole('link', { name: 'Tokens' }).focus()
    await page.keyboard.press('Escape')
    await page.locator('#nav').waitFor({ state: 'hidden' })
    assert.equal(await menu.getAttribute('aria-expanded'), 'false')
    assert.equal(await page.evaluate<string>("document.activeElement.id"), 'menu-button')
    assert.deepEqual(problems, [])
  }, erinSignedIn))

  it('creates an OAuth2 application at run time, whose client id gets tokens at /o/token/ until it is deleted in the page', () => inBrowser('desktop', async ({ page, problems, failedResponses }) => {
    await openAsAdmin(page, '/ui/admin/applications')
    await page.getByRole('heading', { name: 'Applications', level: 1 }).waitFor()
    await page.getByLabel('Name').fill('command line')
    await page.getByRole('button', { name: 'Create application' }).click()
    const clientId = await page.locator('#new-client-id').innerText()
    const grant = () => fetch(`${gw.url}/o/token/`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', client_id: clientId, username: 'admin', password: ADMIN_PASSWORD, scope: 'write' }) })
    const issued = await grant()
    assert.equal(issued.status, 201)
    const { access_token: accessToken } = await issued.json() as { access_token: string }
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${accessToken}` } })).status, 200)
    await page.getByRole('button', { name: 'Delete application command line' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('link', { name: 'command line' }).waitFor({ state: 'detached' })
    assert.equal((await grant()).status, 401)
    assert.deepEqual(problems, [])
    assert.deepEqual(failedResponses, [])
  }, adminSignedIn))

  it('creates a token shown once, which an HTTP client uses until it is revoked in the page', () => inBrowser('desktop', async ({ page, context, problems, failedResponses }) => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gw.url })
    await openSignedIn(page, gw.url)
    await page.getByRole('navigation').getByRole('link', { name: 'Tokens' }).click()
    await page.getByRole('heading', { name: 'My tokens', level: 1 }).waitFor()
    await page.getByLabel('Description').fill('nightly report')
    await page.getByLabel('Expires', { exact: true }).selectOption({ label: '7 days' })
    await page.getByRole('button', { name: 'Create token' }).click()

    const shown = page.locator('#new-token-value')
    await shown.waitFor()
    const token = await shown.inputValue()
    assert.match(token, /^gatehouse_pat_/)
    await page.getByRole('button', { name: 'Copy' }).click()
    await page.getByText('Copied.').waitFor()
    assert.equal(await page.evaluate<string>('navigator.clipboard.readText()'), token)
    const row = page.locator('tr', { hasText: 'nightly report' })
    assert.match(await row.innerText(), /Write/)
    await screenshot(page, 'token-created')

    // The HTTP client: the gateway API and a service behind the gateway, with the copied token.
    const me = await gw.fetch('/api/gateway/v1/me/', { headers: bearer(token) })
    assert.equal(me.status, 200)
    assert.equal((await json(me)).results[0].username, 'erin')
    const seen = await json(await gw.fetch('/api/controller/v2/hosts/', { headers: bearer(token) }))
    assert.deepEqual([seen.identity.username, seen.identity.auth_method, seen.identity.verified], ['erin', 'token', true])

    // Shown once: after leaving, the value is nowhere in the page, and the list says when it was last used.
    await page.getByRole('button', { name: 'Done' }).click()
    await page.reload()
    await row.waitFor()
    assert.equal(await page.locator('#new-token-value').count(), 0)
    assert.ok(!(await page.content()).includes(token))
    assert.doesNotMatch(await row.locator('td[data-label="Last used"]').innerText(), /Never/)
    assert.match(await row.locator('td[data-label="Expires"]').innerText(), /\d{4}/)

    await row.getByRole('button', { name: /Revoke/ }).click()
    await page.locator('dialog.confirm').getByRole('button', { name: 'Revoke' }).click()
    await page.getByText('Token revoked.').waitFor()
    await page.getByText('You have no tokens.').waitFor()
    const refused = await gw.fetch('/api/gateway/v1/me/', { headers: bearer(token) })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'invalid_token')
    assert.deepEqual(problems, [])
    assert.deepEqual(failedResponses, [])
  }, erinSignedIn))

  it('switches basic auth off in settings, after which basic calls fail, and on again', () => inBrowser('desktop', async ({ page, problems }) => {
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: carolAuth })).status, 200)
    await openAsAdmin(page, '/ui/admin/settings')
    const basicAuth = page.getByLabel('Gateway basic auth enabled')
    assert.equal(await basicAuth.isChecked(), true)
    await basicAuth.uncheck()
    await page.getByRole('button', { name: 'Save settings' }).click()
    await page.getByText('Settings saved.').waitFor()

    const refused = await gw.fetch('/api/gateway/v1/me/', { headers: carolAuth })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'basic_auth_disabled')
    assert.equal((await gw.fetch('/api/controller/v2/hosts/', { headers: carolAuth })).status, 401)

    await page.reload()
    assert.equal(await basicAuth.isChecked(), false, 'the saved value is what the page shows')
    await basicAuth.check()
    await page.getByRole('button', { name: 'Save settings' }).click()
    await page.getByText('Settings saved.').waitFor()
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: carolAuth })).status, 200)
    assert.deepEqual(problems, [])
  }, adminSignedIn))

  it('shows the server\'s message next to a wrong setting, and saves nothing of the form', () => inBrowser('phone', async ({ page, problems, failedResponses }) => {
    await openAsAdmin(page, '/ui/admin/settings')
    const age = page.getByLabel('Session cookie age (seconds)')
    // Each setting once, under Gatehouse's name: not again under the platform's, which the API shows beside it.
    assert.equal(await page.locator('[data-field="local_password_min_length"]').count(), 1)
    for (const name of ['password_min_length', 'SESSION_COOKIE_AGE']) assert.equal(await page.locator(`[data-field="${name}"]`).count(), 0, name)
    await age.fill('5')
    await page.getByLabel('Gateway basic auth enabled').uncheck()
    await page.getByRole('button', { name: 'Save settings' }).click()

    const field = page.locator('[data-field="session_cookie_age"]')
    const message = field.locator('.field-error')
    await message.waitFor()
    assert.match(await message.innerText(), /60/, 'the server says what the least value is')
    assert.equal(await age.getAttribute('aria-invalid'), 'true')
    assert.equal(await page.locator('[data-field="gateway_basic_auth_enabled"] .field-error').isVisible(), false)
    await assertNoHorizontalOverflow(page, 'settings with an error')
    await screenshot(page, 'settings-invalid')

    await age.fill('ten minutes')
    await page.getByRole('button', { name: 'Save settings' }).click()
    await field.locator('.field-error', { hasText: /valid integer/i }).waitFor()

    const saved = await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))
    assert.equal(saved.session_cookie_age, 900)
    assert.equal(saved.gateway_basic_auth_enabled, true)
    assert.deepEqual(problems, [])
    assert.deepEqual(failedResponses, ['400 PATCH /api/gateway/v1/settings/all/', '400 PATCH /api/gateway/v1/settings/all/'])
  }, adminSignedIn))

  it('lets a user change their details and password on the profile, staying signed in', () => inBrowser('desktop', async ({ page, problems, failedResponses }) => {
    await gw.app.accounts.create({ username: 'dora', password: 'dora-password' })
    await logIn(page, gw.url, 'dora', 'dora-password', '/ui/')
    await page.getByLabel('First name').fill('Dora')
    await page.getByLabel('Email').fill('dora@example.com')
    await page.getByRole('button', { name: 'Save details' }).click()
    await page.locator('#profile', { hasText: 'dora@example.com' }).waitFor()

    await page.getByLabel('Current password').fill('not-it')
    await page.getByLabel('New password').fill('dora-new-password')
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.locator('[data-field="current_password"] .field-error').waitFor()
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dora', 'dora-password') } })).status, 200, 'nothing changed')

    await page.getByLabel('Current password').fill('dora-password')
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.getByText('Password changed.').waitFor()
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dora', 'dora-new-password') } })).status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dora', 'dora-password') } })).status, 401)
    await page.getByRole('link', { name: 'Tokens' }).first().click()
    await page.getByRole('heading', { name: 'My tokens' }).first().waitFor()
    // The new password came with a new session, and its CSRF token: the page, not reloaded, makes changes with it.
    await page.getByLabel('Description').fill('after the new password')
    await page.getByRole('button', { name: 'Create token' }).click()
    await page.locator('#new-token-value').waitFor()
    await screenshot(page, 'password-changed')
    assert.deepEqual(problems, [])
    assert.deepEqual(failedResponses, ['400 POST /api/gateway/v1/me/password/'])
  }))

  it('keeps administration from a user who is not a superuser', () => inBrowser('phone', async ({ page, problems, failedResponses }) => {
    await openSignedIn(page, gw.url)
    await page.getByRole('button', { name: 'Menu' }).click()
    const nav = page.getByRole('navigation')
    assert.equal(await nav.getByText('Administration').count(), 0)
    assert.equal(await nav.getByRole('link', { name: 'Users' }).count(), 0)
    assert.equal(await nav.getByRole('link', { name: 'Settings' }).count(), 0)

    for (const name of ['users', 'settings', 'tokens']) {
      const response = await page.goto(`${gw.url}/ui/admin/${name}`)
      assert.equal(response?.status(), 403)
      await page.getByText('Administration is for superusers').waitFor()
      assert.equal(await page.locator('main table').count(), 0)
      assert.equal(await page.locator('main form').count(), 0)
    }
    await screenshot(page, 'phone-not-a-superuser')
    // The API, which is what protects the data, says no as well.
    const statuses = await page.evaluate(async () => Promise.all(['/api/gateway/v1/settings/', '/api/gateway/v1/sessions/'].map(async (path) => (await fetch(path)).status)))
    assert.deepEqual(statuses, [403, 403])
    assert.deepEqual(problems, [])
    assert.deepEqual(failedResponses, ['403 GET /ui/admin/users', '403 GET /ui/admin/settings', '403 GET /ui/admin/tokens', '403 GET /api/gateway/v1/settings/', '403 GET /api/gateway/v1/sessions/'])
  }, erinSignedIn))

  it('shows the session\'s remaining time, warns before it ends, and extends it on request', () => inBrowser('desktop', async ({ page, problems }) => {
    await patchSettings({ session_cookie_age: 100 })
    await logIn(page, gw.url, 'carol', 'carol-password')
    const banner = page.locator('#session-banner')
    await banner.getByText(/Your session ends in 1:[0-3]\d/).waitFor()
    assert.match(await page.locator('#session-clock').innerText(), /Session\s+1:[0-3]\d/)
    await screenshot(page, 'session-warning')

    await patchSettings({ session_cookie_age: 900 })
    await banner.getByRole('button', { name: 'Stay logged in' }).click()
    await banner.waitFor({ state: 'hidden' })
    assert.match(await page.locator('#session-clock').innerText(), /Session\s+1[45]:\d\d/)
    const session = await page.evaluate(async () => (await fetch('/api/gateway/v1/session/')).json() as Promise<{ expires_in_seconds: number }>)
    assert.ok(session.expires_in_seconds > 800, JSON.stringify(session))
    assert.deepEqual(problems, [])
  }))

  it('sends the person to the login page once the session has ended elsewhere, and back to the same page after it', () => inBrowser('desktop', async ({ page, problems, failedResponses }) => {
    const endCarolsSessions = async () => {
      const sessions = await json(await gw.fetch(`/api/gateway/v1/users/${carolId}/sessions/`, { headers: adminAuth }))
      for (const s of sessions.results) assert.equal((await gw.fetch(`/api/gateway/v1/sessions/${s.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
    }
    const toLogin = (next: string) => page.waitForURL((url) => url.pathname === '/api/gateway/v1/login/' && url.searchParams.get('next') === next)

    // Coming back to a tab whose session ended meanwhile: the page asks the server, and leaves for the login.
    await logIn(page, gw.url, 'carol', 'carol-password', '/ui/sessions')
    await endCarolsSessions()
    await Promise.all([toLogin('/ui/sessions'), page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")])
    assert.doesNotMatch(await page.content(), /carol@example\.com|This session/, 'nothing of the account stays on screen')
    assert.equal(await page.getByRole('status').innerText(), 'Your session has ended. Log in again to go on where you were.')
    await page.fill('#password', 'carol-password')
    await page.fill('#username', 'carol')
    await Promise.all([page.waitForURL(`${gw.url}/ui/sessions`), page.click('button[type=submit]')])
    await page.getByRole('heading', { name: 'My sessions', level: 1 }).waitFor()

    // Following a link after the session ended: the login, then the page the link named.
    await endCarolsSessions()
    await Promise.all([toLogin('/ui/account'), page.getByRole('navigation').getByRole('link', { name: 'Profile' }).click()])
    await screenshot(page, 'session-ended')
    assert.deepEqual(problems, [])
    assert.ok(failedResponses.length > 0 && failedResponses.every((r) => /^(401|404) GET \/api\/gateway\/v1\//.test(r)), failedResponses.join())
  }))

  it('shows a tab left open the person who logged in since in another tab, not the one it was drawn for', () => inBrowser('desktop', async ({ page, context, problems }) => {
    await logIn(page, gw.url, 'carol', 'carol-password', '/ui/account')
    await pageDrawn(page)
    assert.equal(await page.locator('#who .username').innerText(), 'carol')
    // Someone else logs in at the gateway in another tab of the same browser: the cookie is now theirs.
    await logInInAnotherTab(context, 'admin', ADMIN_PASSWORD)
    // Back on the first tab, which still shows carol's details in its form: the page asks the server whose session it is.
    await Promise.all([page.waitForEvent('load'), page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")])
    await pageDrawn(page)
    assert.equal(await page.locator('#who .username').innerText(), 'admin')
    assert.doesNotMatch(await page.content(), /carol@example\.com/, 'nothing of carol\'s account stays on screen')
    assert.deepEqual(problems, [])
  }))

  it('makes no change from a tab drawn for a login the browser no longer has, and starts that tab again as the login it has', () => inBrowser('desktop', async ({ page, context, problems, failedResponses }) => {
    await logIn(page, gw.url, 'carol', 'carol-password', '/ui/tokens')
    await page.getByRole('heading', { name: 'My tokens', level: 1 }).waitFor()
    await page.getByLabel('Description').fill('made from a stale tab')
    // Another login in another tab of the same browser, before this tab has asked whose session it is.
    await logInInAnotherTab(context, 'admin', ADMIN_PASSWORD)
    // The tab still says carol; its change is refused, not made as admin, and the tab starts again as admin.
    assert.equal(await page.locator('#who .username').innerText(), 'carol')
    await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Create token' }).click()])
    await pageDrawn(page)
    assert.equal(await page.locator('#who .username').innerText(), 'admin')
    assert.equal(await page.locator('#new-token-value').count(), 0, 'no token value shown')
    for (const headers of [adminAuth, carolAuth]) {
      const tokens = await json(await gw.fetch('/api/gateway/v1/tokens/?description=made+from+a+stale+tab', { headers }))
      assert.equal(tokens.count, 0, 'no one got the token')
    }
    assert.deepEqual(failedResponses, ['403 POST /api/gateway/v1/tokens/'])
    assert.deepEqual(problems, [])
  }))

  it('lists my sessions and ends all the others', () => {
    return inBrowser('desktop', async (first) => inBrowser('phone', async (second) => {
      await logIn(first.page, gw.url, 'carol', 'carol-password', '/ui/sessions')
      await logIn(second.page, gw.url, 'carol', 'carol-password', '/ui/sessions')
      await second.page.reload()
      const rows = second.page.locator('main tbody tr')
      await rows.first().waitFor()
      assert.equal(await rows.count(), 2)
      assert.equal(await rows.filter({ hasText: 'This session' }).count(), 1)
      // The other session's button says which session it ends: its browser, address and start.
      const end = rows.filter({ hasNotText: 'This session' }).getByRole('button')
      assert.match(await end.getAttribute('aria-label') ?? '', /^End the session in (HeadlessChrome|Chrome) \d+ on Linux from 127\.0\.0\.1, started .*\d{4}/)
      await screenshot(second.page, 'phone-my-sessions')

      await clickAndConfirm(second.page, 'End all other sessions', 'End them')
      await second.page.getByText('1 other session ended.').waitFor()
      assert.equal(await rows.count(), 1)

      const response = await first.page.goto(`${gw.url}/ui/account`)
      assert.equal(new URL(first.page.url()).pathname, '/api/gateway/v1/login/', 'the other browser is logged out')
      assert.equal(response?.status(), 200)
      await second.page.goto(`${gw.url}/ui/account`)
      await second.page.getByRole('heading', { name: 'My account' }).waitFor()
      assert.deepEqual([...first.problems, ...second.problems], [])
    }))
  })

  it('creates and edits a user in administration, with the server\'s messages next to the fields', () => inBrowser('desktop', async ({ page, problems }) => {
    await openAsAdmin(page, '/ui/admin/users')
    await page.getByRole('link', { name: 'New user' }).click()
    await page.getByRole('heading', { name: 'New user' }).waitFor()
    await page.getByLabel('Username').fill('dave smith')
    await page.getByLabel('Password').fill('dave-password')
    await page.getByLabel('Email').fill('not an email')
    await page.getByRole('button', { name: 'Create user' }).click()
    await page.locator('[data-field="email"] .field-error').waitFor()
    await screenshot(page, 'user-invalid')
    assert.equal((await json(await gw.fetch('/api/gateway/v1/users/?username=dave', { headers: adminAuth }))).count, 0)

    await page.getByLabel('Email').fill('dave@example.com')
    await page.getByRole('button', { name: 'Create user' }).click()
    await page.locator('[data-field="username"] .field-error').waitFor()
    await page.getByLabel('Username').fill('dave')
    await page.getByRole('button', { name: 'Create user' }).click()
    await page.getByRole('heading', { name: 'User dave' }).waitFor()
    assert.match(await page.locator('main .facts').first().innerText(), /Local account/)

    await page.getByLabel('Superuser (may administer the gateway)').check()
    await page.getByLabel('Active (may log in and use tokens)').uncheck()
    await page.getByRole('button', { name: 'Save', exact: true }).click()
    await page.getByText('Saved.').waitFor()
    await page.getByLabel('New password').fill('dave-new-password')
    await page.getByRole('button', { name: 'Set password' }).click()
    await page.getByText('Password set.').waitFor()

    const dave = (await json(await gw.fetch('/api/gateway/v1/users/?username=dave', { headers: adminAuth }))).results[0]
    assert.deepEqual([dave.email, dave.is_superuser, dave.is_active, dave.source], ['dave@example.com', true, false, 'local'])
    const disabled = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dave', 'dave-new-password') } })
    assert.equal((await json(disabled)).code, 'account_disabled', 'the new password is right, but the account is disabled')
    assert.deepEqual(problems, [])
  }, adminSignedIn))

  it('revokes the tokens of one user, then every token, from administration', () => inBrowser('desktop', async ({ page, problems }) => {
    const carols = await createToken(gw, carolAuth, { description: 'carol laptop' })
    const admins = await createToken(gw, adminAuth, { description: 'admin backup' })
    await openAsAdmin(page, '/ui/admin/tokens')
    await page.locator('tr', { hasText: 'carol laptop' }).waitFor()
    await page.locator('tr', { hasText: 'admin backup' }).waitFor()

    await page.getByLabel('User', { exact: true }).fill('carol')
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.waitForURL(`${gw.url}/ui/admin/tokens?user=${carolId}`)
    await page.getByRole('button', { name: 'Revoke all tokens of carol' }).waitFor()
    assert.equal(await page.locator('tr', { hasText: 'admin backup' }).count(), 0, 'the filter shows carol\'s tokens only')
    await screenshot(page, 'admin-tokens-filtered')
    await clickAndConfirm(page, 'Revoke all tokens of carol', 'Revoke')
    await page.getByText('1 token revoked.').waitFor()
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(carols.token) })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(admins.token) })).status, 200)

    await page.getByRole('link', { name: 'Show all' }).click()
    await page.locator('tr', { hasText: 'admin backup' }).waitFor()
    await clickAndConfirm(page, 'Revoke all tokens', 'Revoke')
    await page.getByText('There are no tokens.').waitFor()
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: bearer(admins.token) })).status, 401)
    assert.deepEqual(problems, [])
  }, adminSignedIn))

  it('keeps the tokens filtered by a user the address names who does not exist: an empty list, not everyone\'s tokens', () => inBrowser('desktop', async ({ page, problems, failedResponses }) => {
    await createToken(gw, adminAuth, { description: 'not the filtered user\'s' })
    await page.goto(`${gw.url}/ui/admin/tokens?user=99999`)
    await pageDrawn(page)
    await page.getByText('There is no user #99999.').waitFor()
    assert.equal(await page.locator('tr', { hasText: 'not the filtered user\'s' }).count(), 0, 'nobody else\'s tokens are listed under the filter')
    await page.getByRole('link', { name: 'Show all' }).click()
    await page.locator('tr', { hasText: 'not the filtered user\'s' }).waitFor()
    assert.deepEqual(problems, [])
    assert.deepEqual(failedResponses, ['404 GET /api/gateway/v1/users/99999/'])
  }, adminSignedIn))

  it('logs out, after which the pages ask for a login again', () => inBrowser('desktop', async ({ page, problems }) => {
    await logIn(page, gw.url, 'carol', 'carol-password')
    // A logout that does not reach the gateway leaves the session open: the page says so and stays, rather than
    // show the login page to whoever uses this browser next while the session lives on.
    await page.route('**/api/gateway/v1/logout/', (route) => route.abort())
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.getByText(/Could not log out/).waitFor()
    assert.equal(new URL(page.url()).pathname, '/ui/')
    assert.equal((await page.evaluate<number>("fetch('/api/gateway/v1/me/').then((r) => r.status)")), 200, 'the page told the truth: still signed in')
    await page.unroute('**/api/gateway/v1/logout/')
    await Promise.all([page.waitForURL(/\/api\/gateway\/v1\/login\//), page.getByRole('button', { name: 'Log out' }).click()])
    await page.goto(`${gw.url}/ui/account`)
    assert.equal(new URL(page.url()).pathname, '/api/gateway/v1/login/')
    assert.deepEqual(problems, [`console: Failed to load resource: net::ERR_FAILED (${gw.url}/api/gateway/v1/logout/)`], 'only the logout the test cut off')
  }))
})
