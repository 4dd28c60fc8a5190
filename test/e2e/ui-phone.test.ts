import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { createOrgAndTeam } from '../helpers/access.ts'
import { CHROMIUM, launchChromium, logIn, pageDrawn, SCREENSHOTS } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin } from '../helpers/oidc.ts'
import { createToken } from '../helpers/tokens.ts'

/**
 * A phone held upright: 390 x 844 CSS px at three device pixels each, with touch. Playwright applies these with
 * the DevTools protocol's `Emulation.setDeviceMetricsOverride` (`mobile: true`, so the page's viewport meta tag
 * counts) and `Emulation.setTouchEmulationEnabled`.
 */
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true } as const

/**
 * Every page of the interface (src/ui/static/js/addresses.js); `{carol}` is a user's id, `{long}` the id of a user
 * whose username is as long as one may be, without a space (the pages put it in headings and buttons' labels).
 */
const PAGES = ['account', 'tokens', 'sessions', 'access', 'admin/users', 'admin/users/{carol}', 'admin/users/{long}', 'admin/users/new', 'admin/tokens', 'admin/tokens?user={long}', 'admin/sessions', 'admin/applications', 'admin/settings', 'admin/services', 'admin/activity']

/** The smallest target a finger is asked to hit, in CSS px (WCAG 2.2, 2.5.8 Target Size (Minimum)). */
const MIN_TARGET = 24

describe(`the web interface on a phone (${PHONE.viewport.width} x ${PHONE.viewport.height}, touch) in Chromium`, () => {
  let gw: TestGateway
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let carolId: number
  let longId: number
  /** Console errors and uncaught exceptions of the page, over every case. */
  const problems: string[] = []

  before(async () => {
    gw = await startGateway()
    // Long values without spaces, as addresses, emails and descriptions are: they must wrap, not widen the page.
    carolId = (await gw.app.accounts.create({ username: 'carol', password: 'carol-password', email: 'carol.with.a.rather.long.address@engineering.example.com', firstName: 'Carol', lastName: 'Jones' })).id
    await createToken(gw, { authorization: basic('carol', 'carol-password') }, { description: 'nightly-report-for-the-platform-engineering-team', scope: 'read' })
    await createToken(gw, adminAuth, { description: 'deploy pipeline', scope: 'write' })
    longId = (await gw.app.accounts.create({ username: 'l'.repeat(150), password: 'long-password' })).id
    await createToken(gw, { authorization: basic('l'.repeat(150), 'long-password') }, { description: 'long', scope: 'read' })
    await createOrgAndTeam(gw, 'Platform', 'Automation')
    browser = await launchChromium()
    context = await browser.newContext({ ...PHONE, locale: 'en-GB', timezoneId: 'UTC' })
    page = await context.newPage()
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`)
    })
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
    await logIn(page, gw.url, 'admin', ADMIN_PASSWORD)
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  /** Saves the whole page as test-results/screenshots/phone-390-<name>.png, one pixel per CSS pixel (quicker than three). */
  const screenshot = async (name: string) => {
    mkdirSync(SCREENSHOTS, { recursive: true })
    await page.screenshot({ path: join(SCREENSHOTS, `phone-390-${name}.png`), fullPage: true, scale: 'css' })
  }

  /** The page is as wide as the phone, no wider: nothing makes the reader scroll sideways. */
  const assertNoSidewaysScroll = async (what: string) => {
    const { scrollWidth, innerWidth } = await page.evaluate<{ scrollWidth: number; innerWidth: number }>('({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth })')
    assert.equal(innerWidth, PHONE.viewport.width, `${what}: the layout viewport is the phone's width`)
    assert.ok(scrollWidth <= innerWidth, `${what}: the page is ${scrollWidth} px wide on a ${innerWidth} px screen`)
  }

  /**
   * Each visible element that `selector` finds, scrolled to the middle of the screen: within the screen's width,
   * at least MIN_TARGET px each way, and the element a tap at its centre lands on (nothing covers it). Returns
   * what is wrong, one line per element.
   */
  const untappable = (selector: string): Promise<string[]> => page.evaluate<string[]>(`(() => {
    const wrong = []
    for (const element of document.querySelectorAll(${JSON.stringify(selector)})) {
      if (!element.checkVisibility()) continue
      element.scrollIntoView({ block: 'center', inline: 'nearest' })
      const box = element.getBoundingClientRect()
      const name = element.tagName.toLowerCase() + ' "' + (element.getAttribute('aria-label') || element.textContent || '').trim() + '"'
      if (box.left < 0 || box.right > window.innerWidth) wrong.push(name + ' reaches from ' + Math.round(box.left) + ' to ' + Math.round(box.right) + ' px')
      if (box.width < ${MIN_TARGET} || box.height < ${MIN_TARGET}) wrong.push(name + ' is ' + Math.round(box.width) + ' x ' + Math.round(box.height) + ' px')
      const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2)
      if (!hit || !element.contains(hit)) wrong.push(name + ' is covered by ' + (hit ? hit.outerHTML.slice(0, 80) : 'nothing'))
    }
    window.scrollTo(0, 0)
    return wrong
  })()`)

  /**
   * Every table either fits the width of the element around it, or that element scrolls sideways by itself, and
   * neither reaches past the screen's edge.
   */
  const tablesThatWidenThePage = (): Promise<string[]> => page.evaluate<string[]>(`(() => {
    const wrong = []
    for (const table of document.querySelectorAll('main table')) {
      if (!table.checkVisibility()) continue
      const container = table.parentElement
      const caption = table.caption?.textContent ?? 'a table'
      const scrolls = ['auto', 'scroll'].includes(getComputedStyle(container).overflowX)
      if (container.getBoundingClientRect().right > window.innerWidth) wrong.push('the box around ' + caption + ' reaches past the screen')
      if (!scrolls && table.scrollWidth > container.clientWidth) wrong.push(caption + ' is wider than the box around it, which does not scroll')
    }
    return wrong
  })()`)

  /** Opens the menu with a tap, checks each of its links can be tapped, and closes it again. */
  const assertMenuReachable = async (what: string) => {
    const menu = page.getByRole('button', { name: 'Menu' })
    assert.equal(await menu.isVisible(), true, `${what}: the Menu button is shown`)
    assert.equal(await page.locator('#nav').isVisible(), false, `${what}: the menu starts closed`)
    await menu.tap()
    await page.locator('#nav').waitFor({ state: 'visible' })
    assert.equal(await menu.getAttribute('aria-expanded'), 'true')
    assert.deepEqual(await untappable('#nav a'), [], `${what}: the menu's links`)
    await assertNoSidewaysScroll(`${what} with the menu open`)
    await menu.tap()
    await page.locator('#nav').waitFor({ state: 'hidden' })
  }

  it('runs on a phone-sized touch screen', async () => {
    const screen = await page.evaluate(`({ width: innerWidth, ratio: devicePixelRatio, touch: navigator.maxTouchPoints > 0, coarse: matchMedia('(pointer: coarse)').matches })`)
    assert.deepEqual(screen, { width: 390, ratio: 3, touch: true, coarse: true }, `${CHROMIUM} emulates the phone`)
  })

  for (const name of PAGES) {
    it(`shows ${name} without sideways scrolling, with the menu, the page's actions and its tables within reach`, async () => {
      const path = `/ui/${name.replace('{carol}', String(carolId)).replace('{long}', String(longId))}`
      await page.goto(gw.url + path)
      await pageDrawn(page)
      const drawn = new URL(page.url())
      assert.equal(drawn.pathname + drawn.search, path)
      assert.equal(await page.locator('main .form-error').count(), 0, `${name} shows an error`)
      await assertNoSidewaysScroll(name)
      await assertMenuReachable(name)
      assert.deepEqual(await untappable('.top button, main button, main a.button, main input[type=submit]'), [], `${name}: the page's actions`)
      assert.deepEqual(await tablesThatWidenThePage(), [], `${name}: its tables`)
      await screenshot(name.replace('{carol}', 'user').replace('{long}', 'long-user').replace('?user=', '-of-').replaceAll('/', '-'))
    })
  }

  it('creates a token, whose value fits the screen once shown, with Copy and Done within reach', async () => {
    await page.goto(`${gw.url}/ui/tokens`)
    await pageDrawn(page)
    await page.getByLabel('Description').fill('phone')
    await page.getByRole('button', { name: 'Create token' }).tap()
    const shown = page.locator('#new-token-value')
    await shown.waitFor()
    assert.match(await shown.inputValue(), /^gatehouse_pat_/)
    await assertNoSidewaysScroll('the new token')
    assert.deepEqual(await untappable('.new-token button, .new-token input'), [], 'the new token\'s value and buttons')
    await screenshot('token-created')
    await page.getByRole('button', { name: 'Done' }).tap()
    await shown.waitFor({ state: 'detached' })
  })

  it('scrolls a table wider than the phone within its own box, not the page', async () => {
    await page.goto(`${gw.url}/ui/admin/tokens`)
    await pageDrawn(page)
    // A value that cannot wrap, wider than the screen: what a long unbroken value in some later column would be.
    await page.evaluate(`(() => {
      const wide = document.createElement('span')
      wide.style.display = 'inline-block'
      wide.style.width = '600px'
      wide.textContent = 'a value that does not wrap'
      document.querySelector('main td[data-label="Description"] > div').append(wide)
    })()`)
    await assertNoSidewaysScroll('tokens with a wide value')
    assert.deepEqual(await tablesThatWidenThePage(), [])
    const scrolled = await page.evaluate(`(() => {
      const box = document.querySelector('main table').parentElement
      box.scrollBy({ left: 200 })
      return { scrollLeft: box.scrollLeft, page: document.documentElement.scrollLeft }
    })()`)
    assert.deepEqual(scrolled, { scrollLeft: 200, page: 0 }, 'the table moves sideways inside its box, the page stays')
  })

  it('follows a link of the menu with a tap', async () => {
    await page.goto(`${gw.url}/ui/account`)
    await pageDrawn(page)
    await page.getByRole('button', { name: 'Menu' }).tap()
    await page.getByRole('navigation').getByRole('link', { name: 'Applications' }).tap()
    await page.getByRole('heading', { name: 'Applications', level: 1 }).waitFor()
    assert.equal(new URL(page.url()).pathname, '/ui/admin/applications')
    assert.equal(await page.locator('#nav').isVisible(), false, 'the menu closes once the page changes')
  })

  it('signs everyone of a realm out from the Sessions page, after a confirmation, and shows the result', async () => {
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    const { access_token: accessToken } = await passwordLogin(gw, 'alice', 'alice-password')
    const use = () => gw.fetch('/demo-app/pipelines/', { headers: { authorization: `Bearer ${accessToken}` } })
    assert.equal((await use()).status, 200)

    await page.goto(`${gw.url}/ui/admin/sessions`)
    await pageDrawn(page)
    const realm = page.getByRole('region', { name: 'Realm platform' })
    const signOut = realm.getByRole('button', { name: 'Sign out everyone of realm platform' })
    await signOut.scrollIntoViewIfNeeded()
    assert.deepEqual(await untappable('main section[aria-label="Realm platform"] button'), [])
    await signOut.tap()
    const dialog = page.locator('dialog.confirm')
    await dialog.waitFor()
    assert.deepEqual(await untappable('dialog.confirm button'), [], 'the confirmation\'s buttons')
    await assertNoSidewaysScroll('the confirmation')
    await screenshot('sign-out-everyone-confirm')
    await dialog.getByRole('button', { name: 'Sign out everyone' }).tap()
    await realm.getByRole('status').getByText('No client of the realm has an admin URL to tell.').waitFor()
    await page.getByText('Everyone of realm platform signed out.').waitFor()
    assert.equal((await use()).status, 401, 'the realm\'s token is refused')
    await assertNoSidewaysScroll('the result')
    assert.deepEqual(await untappable('main button'), [], 'the page\'s actions after the change')
    await screenshot('sign-out-everyone-done')
  })

  it('logged no console errors or uncaught exceptions on any page', () => {
    assert.deepEqual(problems, [])
  })
})
