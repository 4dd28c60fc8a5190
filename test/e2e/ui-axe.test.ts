import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { launchChromium, logIn, openPage, pageDrawn, type SignedIn, type ViewportName, type WatchedPage } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, realmUrl, realmWith } from '../helpers/oidc.ts'
import { createToken } from '../helpers/tokens.ts'

/** axe-core, the accessibility checker: a plain script that defines `window.axe` in the page it runs in. */
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

/**
 * What axe checks: every rule it runs by default (WCAG 2.0 to 2.2, A and AA, and its best practices: landmarks, the
 * order of headings, names of buttons and links, labels, contrast ...), and WCAG 2.2's minimum target size (24 px),
 * which it leaves off by default and docs/ui.md promises. Left off, as axe leaves them: its AAA rules (enhanced
 * contrast, links of the same name with the same purpose), which the interface does not claim, and its deprecated
 * and experimental ones.
 */
const AXE_OPTIONS = { resultTypes: ['violations'], rules: { 'target-size': { enabled: true } } }

/** The impacts that fail the test: what keeps someone from using a page, not what only makes it harder. */
const FAILING = ['serious', 'critical']

/** axe's findings of a failing impact on the page as it is now, one line each: `<rule> (<impact>): <help> at <element>`. */
async function violations(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(`(async () => {
    const results = await axe.run(document, ${JSON.stringify(AXE_OPTIONS)})
    return results.violations
      .filter((rule) => ${JSON.stringify(FAILING)}.includes(rule.impact))
      .flatMap((rule) => rule.nodes.map((node) => rule.id + ' (' + rule.impact + '): ' + rule.help + ' at ' + node.html.slice(0, 160)))
  })()`)
}

const PASSWORDS: Record<string, string> = { admin: ADMIN_PASSWORD, mia: 'mia-password-long', noah: 'noah-password-long' }
/** Each width is checked in one colour scheme, so that every page is checked in both. */
const SCHEMES = { desktop: 'light', phone: 'dark' } as const

/**
 * Every page of the web interface, as a superuser, an organization admin and a user with no role to administer see
 * it, at a desktop's width in the light colour scheme and a phone's in the dark one, checked with axe in Chromium:
 * lists, detail pages, forms (with the server's refusals shown), the confirmations and the other things a page
 * opens, the short messages and the session's warning; then the login pages (the gateway's and a realm's) and the
 * error pages.
 */
describe('the web interface checked with axe, in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  let miaId: number
  let noahId: number
  let applicationId: number
  /** The cookies of each person's login, made once and shared by the cases. */
  const signedIn: Record<string, SignedIn> = {}

  before(async () => {
    // A single sign-on provider, for the login pages' "Sign in with" links; never reached.
    gw = await startGateway({ config: { realms: realmWith([]), sso: [{ name: 'corp', label: 'Corp ID', issuer: 'http://127.0.0.1:1', client_id: 'gatehouse', allow_insecure_http: true }] } })
    browser = await launchChromium()
    miaId = (await gw.app.accounts.create({ username: 'mia', password: PASSWORDS.mia, email: 'mia@example.com', firstName: 'Mia', lastName: 'Wong' })).id
    noahId = (await gw.app.accounts.create({ username: 'noah', password: PASSWORDS.noah })).id
    const { organization, team } = await createOrgAndTeam(gw, 'Platform', 'Automation')
    assert.equal((await grant(gw, 'mia', 'Organization Admin', organization)).status, 201)
    assert.equal((await grant(gw, 'noah', 'Team Member', team)).status, 201)
    await createToken(gw, { authorization: basic('noah', PASSWORDS.noah) }, { description: 'backup script', scope: 'read' })
    await createToken(gw, adminAuth, { description: 'deploy pipeline' })
    const application = await call(gw, 'POST', 'applications/', { name: 'Reports', client_type: 'confidential', authorization_grant_type: 'authorization-code', redirect_uris: 'https://reports.example.com/callback', organization })
    assert.equal(application.status, 201, JSON.stringify(application.body))
    applicationId = application.body.id
    for (const username of ['admin', 'mia', 'noah']) {
      const { page, context } = await openPage(browser)
      await logIn(page, gw.url, username, PASSWORDS[username]!, '/ui/account')
      signedIn[username] = await context.storageState()
      await context.close()
    }
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  /** A page at `viewport`, in its colour scheme or `scheme`, with axe in every document it loads; signed in as `username` if given. */
  const opened = async (viewport: ViewportName, username?: string, scheme: 'light' | 'dark' = SCHEMES[viewport]): Promise<WatchedPage> => {
    const watched = await openPage(browser, viewport, username ? signedIn[username] : undefined)
    await watched.page.emulateMedia({ colorScheme: scheme })
    await watched.context.addInitScript({ content: AXE })
    if (username) {
      await watched.page.goto(`${gw.url}/ui/account`)
      await pageDrawn(watched.page)
    }
    return watched
  }

  /** Runs `body` on a page of `opened`, and fails with every finding of every state `body` checked, by state. */
  const audit = async (viewport: ViewportName, username: string | undefined, body: (page: Page, check: (what: string) => Promise<void>) => Promise<void>, scheme?: 'light' | 'dark') => {
    const found: Record<string, string[]> = {}
    const { page, context, problems } = await opened(viewport, username, scheme)
    try {
      await body(page, async (what) => {
        const lines = await violations(page)
        if (lines.length) found[what] = lines
      })
      // Chromium logs a request that a test made fail (a logout that does not reach the gateway) as an error; swagger-ui
      // logs one when a link to an operation is followed whose name has an underscore, as the names it makes do.
      assert.deepEqual(problems.filter((line) => !/Failed to load resource: net::ERR_FAILED \(.*\/logout\/\)$|^console: Deprecated: escaping deep link whitespace with `_`/.test(line)), [])
    } finally {
      await context.close()
    }
    assert.deepEqual(found, {})
  }

  /**
   * Shows `path` of the interface, as a link within it does (the page is drawn anew without loading the shell and its
   * scripts again, axe among them), and waits for it to be drawn.
   */
  const show = async (page: Page, path: string) => {
    await page.evaluate(`history.pushState(null, '', ${JSON.stringify(path)}); dispatchEvent(new PopStateEvent('popstate'))`)
    await page.locator('main:not([aria-busy]) h1').first().waitFor()
  }

  /** Opens a confirmation with the button named `button`, checks it, and cancels it. */
  const confirmation = async (page: Page, check: (what: string) => Promise<void>, button: string | RegExp, what: string) => {
    await page.getByRole('button', { name: button }).first().click()
    await page.getByRole('dialog').waitFor()
    await check(what)
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click()
  }

  it('finds what it is there to find', async () => {
    const { page, context } = await opened('desktop')
    try {
      await page.goto(`${gw.url}/api/gateway/v1/login/?next=/ui/`)
      assert.deepEqual(await violations(page), [])
      // A field without a label, and a button without a name.
      await page.evaluate(`document.querySelector('form').append(document.createElement('input'), document.createElement('button'))`)
      const found = new Set((await violations(page)).map((line) => line.split(' ')[0]))
      assert.ok(found.has('label') && found.has('button-name'), [...found].join(', '))
    } finally {
      await context.close()
    }
  })

  /**
   * The API reference (swagger-ui, with the gateway's theme, script and plugin): as it opens, every operation as the
   * page is scrolled down through them (swagger-ui draws only those near the view), an operation opened, the
   * Authorize dialog before and after credentials are given, and the operation tried out with them and answered.
   */
  for (const [viewport, scheme] of [['desktop', 'light'], ['desktop', 'dark'], ['phone', 'light'], ['phone', 'dark']] as const) {
    it(`finds nothing serious on the API reference at a ${viewport}'s width in the ${scheme} colour scheme`, () => audit(viewport, undefined, async (page, check) => {
      await page.goto(`${gw.url}/api/gateway/v1/docs/`)
      await page.locator('.opblock-summary-path').first().waitFor()
      await check('the reference')
      for (let step = 0; await page.evaluate<boolean>('window.scrollY + window.innerHeight < document.documentElement.scrollHeight - 1'); step++) {
        await page.evaluate('window.scrollBy(0, window.innerHeight * 0.8)')
        await page.evaluate('new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))')
        await check(`the reference scrolled down ${step + 1} times`)
      }

      // A link to an operation, followed from elsewhere: the reference opens it and scrolls to it.
      await page.goto('about:blank')
      await page.goto(`${gw.url}/api/gateway/v1/docs/#/default/get_api_gateway_v1_me_`)
      const operation = page.locator('#operations-default-get_api_gateway_v1_me_')
      await operation.locator('.try-out__btn').waitFor()
      await check('an operation opened')

      // The Authorize button is at the top: back to the operation afterwards, which swagger-ui draws again once in view.
      const atOperation = await page.evaluate<number>('window.scrollY')
      await page.locator('.auth-wrapper .btn.authorize').click()
      const dialog = page.getByRole('dialog', { name: 'Available authorizations' })
      await dialog.getByRole('heading', { name: 'Available authorizations' }).waitFor()
      await check('the Authorize dialog')
      await dialog.getByLabel('Username:').fill('admin')
      await dialog.getByLabel('Password:').fill(ADMIN_PASSWORD)
      await dialog.getByRole('button', { name: 'Authorize', exact: true }).first().click()
      await dialog.getByRole('button', { name: 'Logout' }).waitFor()
      await check('the Authorize dialog with credentials given')
      await dialog.getByRole('button', { name: 'Close', exact: true }).first().click()
      await dialog.waitFor({ state: 'detached' })
      await page.evaluate(`window.scrollTo(0, ${atOperation})`)

      await operation.locator('.try-out__btn').click()
      await operation.locator('.execute').click()
      const answer = operation.locator('.live-responses-table tr.response .response-col_status').first()
      await answer.waitFor()
      assert.equal((await answer.innerText()).trim(), '200')
      // The buttons fade in again after a call: checked as they end up, not halfway.
      await page.evaluate('Promise.allSettled(document.getAnimations().map((animation) => animation.finished))')
      await check('an operation tried out, answered')
    }, scheme))
  }

  for (const viewport of ['desktop', 'phone'] as const) {
    const where = `at a ${viewport}'s width in the ${SCHEMES[viewport]} colour scheme`

    it(`finds nothing serious on a superuser's pages ${where}`, () => audit(viewport, 'admin', async (page, check) => {
      for (const path of [
        '/ui/account', '/ui/sessions', `/ui/access/users/${miaId}`, '/ui/admin/users', `/ui/admin/users/${miaId}`,
        '/ui/admin/users/new', '/ui/admin/tokens', `/ui/admin/tokens?user=${miaId}`, '/ui/admin/applications', '/ui/admin/settings',
        '/ui/admin/services', '/ui/admin/activity?operation=create',
      ]) {
        await show(page, path)
        await check(path)
      }
      if (viewport === 'phone') {
        await page.getByRole('button', { name: 'Menu' }).click()
        await check('the menu open')
        await page.getByRole('button', { name: 'Menu' }).click()
      }

      await show(page, '/ui/tokens')
      await check('/ui/tokens')
      await page.getByLabel('Expires', { exact: true }).selectOption('date')
      await page.getByRole('button', { name: 'Create token' }).click()
      await page.locator('main .field-error:not([hidden])').waitFor()
      await check('a token refused, its expiry date missing')
      await page.getByLabel('Description').fill('laptop')
      await page.getByLabel('Expires', { exact: true }).selectOption('')
      await page.getByRole('button', { name: 'Create token' }).click()
      await page.getByRole('region', { name: 'Your new token' }).waitFor()
      await check('a new token')
      await confirmation(page, check, 'Revoke token laptop', 'the confirmation before revoking a token')

      await show(page, '/ui/access')
      await check('/ui/access')
      await page.getByRole('form', { name: 'New organization' }).getByRole('button').click()
      await page.locator('main .field-error:not([hidden]), main .form-error').first().waitFor()
      await check('a new organization refused')
      await page.getByRole('form', { name: 'New team' }).getByRole('combobox', { name: 'Organization' }).fill('Plat')
      await page.getByRole('option', { name: 'Platform', exact: true }).waitFor()
      await check('the choices of an organization open')
      await confirmation(page, check, 'Delete team Automation', 'the confirmation before deleting a team')

      await show(page, '/ui/admin/applications')
      await page.getByLabel('Name', { exact: true }).fill(`Console at the ${viewport}`)
      await page.getByRole('button', { name: 'Create application' }).click()
      await page.locator('main .created-slot :is(h2, h3)').first().waitFor()
      await check('a new application\'s client id')
      await show(page, `/ui/admin/applications/${applicationId}`)
      await check('an application')
      await confirmation(page, check, 'Rotate secret', 'the confirmation before rotating a secret')

      await show(page, '/ui/admin/sessions')
      await check('/ui/admin/sessions')
      await confirmation(page, check, /^Sign out everyone/, 'the confirmation before signing out a realm\'s users')

      // The session about to end (the page is told it has 100 s left) and a message that stays until dismissed.
      await page.route('**/api/gateway/v1/session/', async (route) => {
        const response = await route.fetch()
        await route.fulfill({ response, json: { ...await response.json(), expires_in_seconds: 100 } })
      })
      await page.goto(`${gw.url}/ui/account`)
      await page.getByRole('button', { name: 'Stay logged in' }).waitFor()
      await pageDrawn(page)
      await page.route('**/api/gateway/v1/logout/', (route) => route.abort())
      await page.getByRole('button', { name: 'Log out' }).click()
      await page.getByRole('button', { name: 'Dismiss the message' }).waitFor()
      await check('the session\'s warning and a failed logout\'s message')
      await page.unrouteAll()

      await page.goto(`${gw.url}/ui/nowhere`)
      await page.locator('main:not([aria-busy]) h1').waitFor()
      await check('an address that is no page')
    }))

    it(`finds nothing serious on the pages of an organization admin and of a user who administers nothing ${where}`, async () => {
      await audit(viewport, 'mia', async (page, check) => {
        for (const path of ['/ui/access', `/ui/access/users/${noahId}`, '/ui/access/users/new']) {
          await show(page, path)
          await check(path)
        }
      })
      await audit(viewport, 'noah', async (page, check) => {
        for (const path of ['/ui/account', '/ui/tokens', '/ui/sessions', '/ui/access', '/ui/access/users/new', '/ui/admin/users']) {
          await show(page, path)
          await check(path)
        }
      })
    })

    it(`finds nothing serious on the login pages and the error pages ${where}`, () => audit(viewport, undefined, async (page, check) => {
      await page.goto(`${gw.url}/api/gateway/v1/login/?next=/ui/&ended=1`)
      await check('the login page, after a session ended')
      await page.fill('#username', 'noah')
      await page.fill('#password', 'not-the-password')
      await Promise.all([page.waitForEvent('load'), page.click('button[type=submit]')])
      await page.getByRole('alert').waitFor()
      await check('the login page, a login refused')

      // The gateway's error page, in front of a service.
      await page.goto(`${gw.url}/api/nothing/here/`)
      await check('the error page')

      // A realm's login page, and the pages an application asks a login to go through.
      const authorize = (action: string) => {
        const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url')
        return realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
          client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'state', nonce: 'nonce',
          code_challenge: challenge, code_challenge_method: 'S256', kc_action: action,
        })}`)
      }
      for (const [action, heading] of [['UPDATE_PASSWORD', 'Update password'], ['UPDATE_PROFILE', 'Update Account Information']]) {
        await page.context().clearCookies()
        await page.goto(authorize(action!))
        await page.getByRole('link', { name: 'Sign in with Corp ID' }).waitFor()
        await check('a realm\'s login page')
        await page.fill('#username', 'noah')
        await page.fill('#password', PASSWORDS.noah!)
        await page.click('button[type=submit]')
        await page.getByRole('heading', { name: heading }).waitFor()
        await check(`a realm's ${heading} page`)
      }
      await page.goto(realmUrl(gw, '/device'))
      await check('a realm\'s device page')
    }))
  }
})
