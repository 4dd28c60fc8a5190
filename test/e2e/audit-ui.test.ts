import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { assertNoHorizontalOverflow, launchChromium, logIn, openPage, screenshot } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('the activity page in Chromium', () => {
  let gw: TestGateway
  let browser: Browser

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    await gw.app.accounts.create({ username: 'carol', password: 'carol-password' })
    // Something to show: a failed login, a successful one, and a change.
    await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', 'not-carols-password') } })
    await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('carol', 'carol-password') } })
    // An account that acted and is gone: its entries keep its name, with no link to a page that no longer exists.
    const dave = await gw.app.accounts.create({ username: 'dave', password: 'dave-password' })
    await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('dave', 'dave-password') } })
    assert.equal((await gw.fetch(`/api/gateway/v1/users/${dave.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
    const saved = await gw.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ session_cookie_age: 1800 }) })
    assert.equal(saved.status, 200)
    await gw.app.audit.flush()
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  for (const viewport of ['desktop', 'phone'] as const) {
    it(`lists who did what, and filters it (${viewport})`, async () => {
      const { page, context, problems } = await openPage(browser, viewport)
      try {
        await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/admin/activity')
        const rows = page.locator('table.data tbody tr')
        await rows.first().waitFor()
        assert.ok(await rows.filter({ hasText: 'session_cookie_age: 900 → 1800' }).count() === 1)
        assert.ok(await rows.filter({ hasText: 'invalid_credentials' }).count() >= 1)
        await assertNoHorizontalOverflow(page, 'activity')
        await screenshot(page, `activity-${viewport}`)

        await page.getByLabel('What happened').selectOption('login_error')
        await page.getByLabel('Object name').fill('carol')
        await Promise.all([page.waitForURL((url) => url.search.includes('operation=login_error')), page.getByRole('button', { name: 'Filter' }).click()])
        await page.locator('table.data tbody tr').first().waitFor()
        assert.equal(await page.locator('table.data tbody tr').count(), 1)
        assert.match(await page.locator('table.data tbody tr').innerText(), /Failed login[\s\S]*carol[\s\S]*invalid_credentials/)
        await screenshot(page, `activity-filtered-${viewport}`)
        assert.deepEqual(problems, [])
      } finally {
        await context.close()
      }
    })
  }

  it('links who acted to their page while their account exists, and names a deleted one without a link', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/admin/activity?operation=login')
      const rows = page.locator('table.data tbody tr')
      await rows.first().waitFor()
      const carols = rows.filter({ hasText: 'carol' }).first()
      assert.equal(await carols.getByRole('link', { name: 'carol' }).count(), 1)
      const daves = rows.filter({ hasText: 'dave' }).first()
      assert.equal(await daves.count(), 1)
      assert.equal(await daves.getByRole('link', { name: 'dave' }).count(), 0)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
