import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, logIn, lowContrastText, openPage, pageDrawn, type WatchedPage } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'

const COLOR_SCHEMES = ['light', 'dark'] as const

/**
 * The login pages and the web interface as people with low vision and screen readers meet them, in Chromium: the
 * contrast of their text in the light and the dark colour scheme (the pages follow the system's).
 */
describe('the pages for low vision and assistive technology', () => {
  let gw: TestGateway
  let browser: Browser

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  const inBrowser = async (body: (watched: WatchedPage) => Promise<void>) => {
    const watched = await openPage(browser)
    try {
      await body(watched)
    } finally {
      await watched.context.close()
    }
  }

  for (const colorScheme of COLOR_SCHEMES) {
    it(`shows a failed login's message with enough contrast in the ${colorScheme} scheme`, () => inBrowser(async ({ page }) => {
      await page.emulateMedia({ colorScheme })
      await page.goto(`${gw.url}/api/gateway/v1/login/?next=/ui/`)
      await page.fill('#username', 'admin')
      await page.fill('#password', 'not-the-password')
      await page.click('button[type=submit]')
      await page.getByRole('alert').waitFor()
      assert.deepEqual(await lowContrastText(page), [])
    }))

    it(`shows the interface's error messages with enough contrast in the ${colorScheme} scheme`, () => inBrowser(async ({ page }) => {
      await page.emulateMedia({ colorScheme })
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/account')
      await pageDrawn(page)
      // A logout that does not reach the gateway: the page stays, and says so in an error message.
      await page.route('**/api/gateway/v1/logout/', (route) => route.abort())
      await page.getByRole('button', { name: 'Log out' }).click()
      await page.locator('.toast.error').waitFor()
      assert.deepEqual(await lowContrastText(page), [])
    }))
  }
})
