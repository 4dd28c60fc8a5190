import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { assertNoHorizontalOverflow, launchChromium, logIn, openPage, pageDrawn, screenshot } from '../helpers/chromium.ts'
import { call } from '../helpers/access.ts'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { applicationGrantStatus } from '../helpers/oidc.ts'

/**
 * An OAuth2 application's page in Chromium: `pkce_required` shown and changed, and a confidential application's
 * secret rotated, the new one shown once with until when the old one works, the API's refusals shown by their field.
 */
describe('an OAuth2 application\'s page in the web interface, in Chromium', () => {
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

  const grantStatus = (clientId: string, secret: string) => applicationGrantStatus(gw, clientId, secret)

  it('creates an application with PKCE required by default, and turns it off on the application\'s page', async () => {
    const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/admin/applications')
      await pageDrawn(page)
      const pkce = page.getByLabel('Require PKCE')
      assert.equal(await pkce.isChecked(), true, 'on for a new application, as the API defaults it')
      assert.match(await page.getByText(/must send a PKCE challenge/).first().innerText(), /S256/)
      await page.getByLabel('Name').fill('web portal')
      await page.getByLabel('Grant').selectOption({ label: 'Authorization code' })
      await page.getByLabel('Redirect URIs').fill('https://portal.example.com/callback')
      await page.getByRole('button', { name: 'Create application' }).click()
      const clientId = await page.locator('#new-client-id').innerText()
      const [created] = (await call(gw, 'GET', `applications/?client_id=${clientId}`)).body.results
      assert.equal(created.pkce_required, true)

      await page.getByRole('link', { name: 'web portal' }).click()
      await page.getByRole('heading', { name: 'Application web portal', level: 1 }).waitFor()
      assert.equal(new URL(page.url()).pathname, `/ui/admin/applications/${created.id}`)
      const form = page.getByRole('form', { name: 'Application' })
      assert.equal(await form.getByLabel('Require PKCE').isChecked(), true)
      // The API's refusal, by field: the redirect URIs the grant needs.
      await form.getByLabel('Redirect URIs').fill('')
      await form.getByRole('button', { name: 'Save' }).click()
      const uris = form.getByLabel('Redirect URIs')
      await form.getByText('Redirect URIs are required for the authorization-code grant.').waitFor()
      assert.equal(await uris.getAttribute('aria-invalid'), 'true')
      assert.equal(await page.evaluate<string>('document.activeElement.id'), await uris.getAttribute('id'), 'the focus on the field refused')
      assert.equal((await call(gw, 'GET', `applications/${created.id}/`)).body.redirect_uris, 'https://portal.example.com/callback', 'nothing saved')

      await uris.fill('https://portal.example.com/callback')
      await form.getByLabel('Require PKCE').uncheck()
      await form.getByRole('button', { name: 'Save' }).click()
      await page.locator('#toasts').getByText('Saved.').waitFor()
      assert.equal((await call(gw, 'GET', `applications/${created.id}/`)).body.pkce_required, false)
      await page.reload()
      await pageDrawn(page)
      assert.equal(await page.getByRole('form', { name: 'Application' }).getByLabel('Require PKCE').isChecked(), false)
      assert.equal(await page.getByRole('button', { name: 'Rotate secret' }).count(), 0, 'a public application has no secret')
      assert.deepEqual(problems, [])
      assert.deepEqual(failedResponses, [`400 PATCH /api/gateway/v1/applications/${created.id}/`])
    } finally {
      await context.close()
    }
  })

  it('rotates a confidential application\'s secret, showing the new one once and until when the old one works', async () => {
    const made = await call(gw, 'POST', 'applications/', { name: 'nightly sync', client_type: 'confidential', authorization_grant_type: 'password' })
    assert.equal(made.status, 201)
    const { id, client_id: clientId, client_secret: first } = made.body
    const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, `/ui/admin/applications/${id}`)
      await pageDrawn(page)
      const section = page.getByRole('region', { name: 'Secret' })
      await section.getByLabel('Keep the old secret working for').selectOption({ label: '1 hour' })
      await section.getByRole('button', { name: 'Rotate secret' }).click()
      const dialog = page.getByRole('dialog', { name: 'Rotate secret' })
      assert.match(await dialog.innerText(), /The old one stops working in 1 hour/)
      await dialog.getByRole('button', { name: 'Rotate secret' }).click()
      const shown = page.getByRole('region', { name: 'New secret of "nightly sync"' })
      await shown.waitFor()
      assert.equal(await page.evaluate<string | null>("document.activeElement.getAttribute('aria-labelledby')"), 'new-application-heading', 'the focus on the new secret')
      const second = await shown.locator('#new-client-secret').innerText()
      const until = await shown.locator('#previous-secret time').getAttribute('datetime')
      assert.ok(Math.abs(Date.parse(until!) - Date.now() - 3600_000) < 60_000, `the old secret works an hour more, until ${until}`)
      assert.match(await shown.locator('#previous-secret').innerText(), /^The old secret works until .+\.$/)
      assert.equal(await grantStatus(clientId, second), 201)
      assert.equal(await grantStatus(clientId, first), 201, 'the old secret works during the grace')
      await screenshot(page, 'desktop-admin-application-rotated')
      await assertNoHorizontalOverflow(page, 'the rotated secret')

      await shown.getByRole('button', { name: 'Done' }).click()
      await section.getByLabel('Keep the old secret working for').selectOption({ label: 'Not at all: it stops now' })
      await section.getByRole('button', { name: 'Rotate secret' }).click()
      assert.match(await dialog.innerText(), /stops working now/)
      await dialog.getByRole('button', { name: 'Rotate secret' }).click()
      await shown.getByText('The old secret no longer works.').waitFor()
      const third = await shown.locator('#new-client-secret').innerText()
      assert.equal(await grantStatus(clientId, second), 401)
      assert.equal(await grantStatus(clientId, third), 201)

      // Deleted meanwhile: the API's answer is shown, and nothing is drawn as if it had worked.
      assert.equal((await call(gw, 'DELETE', `applications/${id}/`)).status, 204)
      await shown.getByRole('button', { name: 'Done' }).click()
      await section.getByRole('button', { name: 'Rotate secret' }).click()
      await dialog.getByRole('button', { name: 'Rotate secret' }).click()
      await section.getByRole('alert').getByText('No such application.').waitFor()
      assert.equal(await shown.count(), 0)
      assert.deepEqual(problems, [])
      assert.deepEqual(failedResponses, [`404 POST /api/gateway/v1/applications/${id}/client_secret/`])
    } finally {
      await context.close()
    }
  })

  it('shows an application just made at the head of the list, however many there are', async () => {
    // More than a page of the list (50) besides those the other cases made.
    for (let i = 1; i <= 51; i++) assert.equal((await call(gw, 'POST', 'applications/', { name: `older ${i}`, client_type: 'public', authorization_grant_type: 'password' })).status, 201)
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/admin/applications?page=2')
      await pageDrawn(page)
      await page.getByLabel('Name').fill('made just now')
      await page.getByRole('button', { name: 'Create application' }).click()
      await page.getByRole('region', { name: 'Application "made just now"' }).waitFor()
      await page.locator('main .pager [role=status]', { hasText: /^Page 1 of 2/ }).waitFor()
      const names = await page.locator('main tbody tr td:first-child').allInnerTexts()
      assert.deepEqual(names.slice(0, 3), ['made just now', 'older 51', 'older 50'])
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  const focused = (page: Page) => page.evaluate<string | null | undefined>('document.activeElement?.getAttribute("name")')

  it('puts the keyboard focus back on the first field of the form that made a token or an application after Done', async () => {
    const { page, context, problems } = await openPage(browser, 'phone')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/tokens')
      await pageDrawn(page)
      await page.getByLabel('Description').fill('deploy script')
      await page.getByLabel('Description').press('Enter')
      await page.locator('#new-token-value').waitFor()
      await page.keyboard.press('Tab')
      await page.keyboard.press('Tab')
      assert.equal(await page.evaluate<string | null | undefined>('document.activeElement?.textContent'), 'Done')
      await page.keyboard.press('Enter')
      await page.locator('#new-token-value').waitFor({ state: 'detached' })
      assert.equal(await focused(page), 'description')

      await page.goto(`${gw.url}/ui/admin/applications`)
      await pageDrawn(page)
      await page.getByLabel('Name').fill('Build robot')
      await page.getByRole('button', { name: 'Create application' }).click()
      const done = page.getByRole('region', { name: 'Application "Build robot"' }).getByRole('button', { name: 'Done' })
      await done.focus()
      await page.keyboard.press('Enter')
      await done.waitFor({ state: 'detached' })
      assert.equal(await focused(page), 'name')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
