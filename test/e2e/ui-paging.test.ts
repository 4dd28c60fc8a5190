import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { launchChromium, logIn, openPage, pageDrawn } from '../helpers/chromium.ts'
import { adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('the page of a list in the web interface\'s address, in Chromium', () => {
  let gw: TestGateway
  let browser: Browser

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    // With the admin, 121 users: three pages of 50.
    for (let i = 0; i < 120; i++) await gw.app.accounts.create({ username: `member-${String(i).padStart(3, '0')}` })
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  const status = (page: Page) => page.locator('main .pager [role=status]').innerText()
  const firstUser = (page: Page) => page.locator('main tbody tr').first().locator('a').innerText()
  const query = (page: Page) => Object.fromEntries(new URL(page.url()).searchParams)

  it('keeps the page on display in the address, through a reload, Back and a link', async () => {
    const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/admin/users?source=local')
      await pageDrawn(page)
      assert.match(await status(page), /^Page 1 of 3/)
      for (const expected of [2, 3]) {
        await page.getByRole('button', { name: 'Next' }).click()
        await page.locator('main .pager [role=status]', { hasText: `Page ${expected} of 3` }).waitFor()
      }
      assert.deepEqual(query(page), { source: 'local', page: '3' }, 'the filter and the page are both in the address')
      const onPageThree = await firstUser(page)
      const entries = await page.evaluate<number>('history.length')

      await page.reload()
      await pageDrawn(page)
      assert.match(await status(page), /^Page 3 of 3/)
      assert.equal(await firstUser(page), onPageThree)
      assert.equal(await page.getByLabel('Source').inputValue(), 'local')

      // Opening a user and coming Back shows the page the user was opened from.
      await page.locator('main tbody tr').first().locator('a').click()
      await page.locator('main:not([aria-busy])').getByRole('heading', { name: `User ${onPageThree}`, level: 1 }).waitFor()
      await page.goBack()
      await pageDrawn(page)
      assert.match(await status(page), /^Page 3 of 3/)
      assert.equal(await firstUser(page), onPageThree)

      // Previous goes back a page in the same entry of the history; page 1 has no number in the address.
      for (const expected of [2, 1]) {
        await page.getByRole('button', { name: 'Previous' }).click()
        await page.locator('main .pager [role=status]', { hasText: `Page ${expected} of 3` }).waitFor()
      }
      assert.deepEqual(query(page), { source: 'local' })
      assert.equal(await page.evaluate<number>('history.length'), entries + 1, 'only opening the user added an entry')

      // A link shared with someone else opens on its page.
      const shared = await openPage(browser, 'phone')
      try {
        await logIn(shared.page, gw.url, 'admin', 'admin-test-password', '/ui/admin/users?page=2')
        await pageDrawn(shared.page)
        assert.match(await status(shared.page), /^Page 2 of 3/)
        assert.deepEqual(shared.problems, [])
      } finally {
        await shared.context.close()
      }
      assert.deepEqual(problems, [])
      assert.deepEqual(failedResponses, [])
    } finally {
      await context.close()
    }
  })

  it('shows the last page for a page past the end, and the first for one that is no page number, never an error', async () => {
    const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/admin/users?page=999999')
      await pageDrawn(page)
      assert.match(await status(page), /^Page 3 of 3/)
      assert.deepEqual(query(page), { page: '3' }, 'the address says which page is shown')
      assert.equal(await page.locator('main .form-error').count(), 0)

      for (const given of ['abc', '0', '-2', '1e3']) {
        await page.goto(`${gw.url}/ui/admin/users?page=${given}`)
        await pageDrawn(page)
        assert.match(await status(page), /^Page 1 of 3/, `?page=${given}`)
        assert.deepEqual(query(page), {}, `?page=${given}`)
        assert.equal(await page.locator('main .form-error').count(), 0)
      }

      // A filter that leaves fewer pages than the address names: its last page, the filter kept.
      await page.goto(`${gw.url}/ui/admin/users?username=member-007&page=3`)
      await pageDrawn(page)
      assert.equal(await firstUser(page), 'member-007')
      assert.deepEqual(query(page), { username: 'member-007' })
      assert.deepEqual(problems, [])
      assert.deepEqual(failedResponses, [])
    } finally {
      await context.close()
    }
  })

  it('keeps each list of a page of several lists at its own page', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      const organizations = []
      for (let i = 0; i < 55; i++) organizations.push(`Organization ${String(i).padStart(2, '0')}`)
      for (const name of organizations) {
        const created = await gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name }) })
        assert.equal(created.status, 201)
      }
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/access')
      await pageDrawn(page)
      const organizationsPager = page.getByRole('region', { name: 'Organizations' }).locator('.pager')
      await organizationsPager.getByRole('button', { name: 'Next' }).click()
      await organizationsPager.getByText(/^Page 2 of 2/).waitFor()
      assert.deepEqual(query(page), { organizations_page: '2' })
      await page.reload()
      await pageDrawn(page)
      assert.match(await organizationsPager.locator('[role=status]').innerText(), /^Page 2 of 2/)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('keeps the keyboard focus in the pager when Next reaches the last page and Previous the first', async () => {
    const { page, context, problems } = await openPage(browser, 'phone')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/admin/users?page=2')
      await pageDrawn(page)
      const focused = () => page.evaluate<string | null | undefined>('document.activeElement?.textContent')
      await page.getByRole('button', { name: 'Next' }).focus()
      await page.keyboard.press('Enter')
      await page.locator('main .pager [role=status]', { hasText: 'Page 3 of 3' }).waitFor()
      assert.equal(await focused(), 'Previous')
      await page.keyboard.press('Enter')
      await page.locator('main .pager [role=status]', { hasText: 'Page 2 of 3' }).waitFor()
      await page.keyboard.press('Enter')
      await page.locator('main .pager [role=status]', { hasText: 'Page 1 of 3' }).waitFor()
      assert.equal(await focused(), 'Next')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
