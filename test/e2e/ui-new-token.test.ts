import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { launchChromium, logIn, openPage, pageDrawn } from '../helpers/chromium.ts'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createToken } from '../helpers/tokens.ts'

/** One more than a page of the API's lists holds (50). */
const TOKENS = 51

/**
 * A token made on the My tokens page is in the list below the form at once, however many tokens the person had: the
 * lists of tokens show the newest first.
 */
describe('a new token in the web interface\'s lists of tokens, in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  let danaId: number
  const dana = { authorization: basic('dana', 'dana-password-long') }

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    danaId = (await gw.app.accounts.create({ username: 'dana', password: 'dana-password-long' })).id
    for (let i = 1; i <= TOKENS; i++) await createToken(gw, dana, { description: `older ${String(i).padStart(2, '0')}` })
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  const descriptions = (page: Page) => page.locator('main tbody tr td:first-child').allInnerTexts()
  const status = (page: Page) => page.locator('main .pager [role=status]').innerText()

  it('shows the token just made, from whichever page of the list was on display', async () => {
    const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'dana', 'dana-password-long', '/ui/tokens?page=2')
      await pageDrawn(page)
      assert.match(await status(page), /^Page 2 of 2 · 51 in all/)
      assert.deepEqual(await descriptions(page), ['older 01'], 'the oldest is last')

      await page.getByLabel('Description').fill('made just now')
      await page.getByRole('button', { name: 'Create token' }).click()
      await page.getByRole('region', { name: 'Your new token' }).waitFor()
      await page.locator('main .pager [role=status]', { hasText: 'Page 1 of 2 · 52 in all' }).waitFor()
      const shown = await descriptions(page)
      assert.equal(shown[0], 'made just now', 'the new token heads the list')
      assert.deepEqual(shown.slice(1, 3), ['older 51', 'older 50'])
      assert.equal(new URL(page.url()).searchParams.get('page'), null, 'the address says the first page')
      assert.deepEqual(problems, [])
      assert.deepEqual(failedResponses, [])
    } finally {
      await context.close()
    }
  })

  it('lists a user\'s tokens, and everyone\'s, newest first on the administrators\' pages', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      const newest = await createToken(gw, adminAuth, { description: 'the admin\'s newest' })
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/admin/tokens')
      await pageDrawn(page)
      assert.deepEqual((await page.locator('main tbody tr').first().locator('td').nth(1).innerText()), 'the admin\'s newest')
      assert.equal(await page.locator('main tbody tr').first().getAttribute('data-id'), String(newest.id))

      await page.goto(`${gw.url}/ui/admin/users/${danaId}`)
      await pageDrawn(page)
      const tokens = page.getByRole('region', { name: 'Tokens' })
      assert.equal(await tokens.locator('tbody tr').first().locator('td').first().innerText(), 'made just now')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
