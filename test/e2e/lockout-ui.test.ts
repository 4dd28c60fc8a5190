import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, logIn, openPage } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('login lockout in the web interface (Chromium)', () => {
  let gw: TestGateway
  let browser: Browser
  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    await gw.app.accounts.create({ username: 'carol', password: 'carol-password' })
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  it('lists both lockout settings with labels, and saves a change', async () => {
    const { page, context, problems } = await openPage(browser)
    try {
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/admin/settings')
      const failures = page.getByLabel('Failed logins before lockout')
      const duration = page.getByLabel('Lockout duration (seconds)')
      assert.equal(await failures.inputValue(), '10')
      assert.equal(await duration.inputValue(), '60')
      await failures.fill('5')
      await duration.fill('300')
      await page.getByRole('button', { name: 'Save settings' }).click()
      await page.getByText('Settings saved.').waitFor()
      const saved = await json(await gw.fetch('/api/gateway/v1/settings/all/', { headers: adminAuth }))
      assert.equal(saved.login_failures_before_lockout, 5)
      assert.equal(saved.login_lockout_seconds, 300)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('tells a person on the login page that the username is locked', async () => {
    await gw.app.settings.update({ login_failures_before_lockout: 2 })
    const { page, context } = await openPage(browser)
    try {
      await page.goto(`${gw.url}/api/gateway/v1/login/`)
      for (const password of ['wrong-1', 'wrong-2', 'carol-password']) {
        await page.fill('#username', 'carol')
        await page.fill('#password', password)
        await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('button[type=submit]')])
        await page.locator('#username').waitFor()
      }
      const alert = page.getByRole('alert').filter({ hasText: 'Too many failed logins' })
      await alert.waitFor({ timeout: 10_000 })
      assert.match(await alert.innerText(), /Too many failed logins for this username\. Try again later \(in \d+ seconds\)\./)
    } finally {
      await context.close()
    }
  })
})
