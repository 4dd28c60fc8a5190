import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { roleId } from '../helpers/access.ts'
import { choose, launchChromium, logIn, openPage, pageDrawn } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'

/** One more than a page of the API's lists holds (50). */
const ROWS = 51

/**
 * An organization, a team or a role assignment made on the access page is in its list at once, however many the list
 * holds: the list shows the page that holds it, its last (the API lists them oldest first).
 */
describe('a new organization, team or role on the web interface\'s access page, in Chromium', () => {
  let gw: TestGateway
  let browser: Browser

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    const member = await roleId(gw, 'Organization Member')
    const first = await gw.store.access.createOrganization({ name: 'Org 01' })
    for (let i = 2; i <= ROWS; i++) await gw.store.access.createOrganization({ name: `Org ${String(i).padStart(2, '0')}` })
    for (let i = 1; i <= ROWS; i++) {
      await gw.store.access.createTeam({ name: `Team ${String(i).padStart(2, '0')}`, organizationId: first.id })
      const user = await gw.app.accounts.create({ username: `member-${String(i).padStart(2, '0')}` })
      await gw.store.access.assign({ roleDefinitionId: member, actor: 'user', actorId: user.id, objectType: 'organization', objectId: first.id })
    }
    await gw.app.accounts.create({ username: 'newcomer' })
    await gw.app.access.reload()
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  const list = (page: Page, heading: string) => page.getByRole('region', { name: heading })
  const status = (page: Page, heading: string) => list(page, heading).locator('.pager [role=status]').innerText()

  it('shows what was just made in its list, whichever page of it was on display', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/access')
      await pageDrawn(page)
      assert.match(await status(page, 'Organizations'), /^Page 1 of 2/)

      const organizationForm = page.getByRole('form', { name: 'New organization' })
      await organizationForm.getByLabel('Name').fill('Made just now')
      await organizationForm.getByRole('button', { name: 'Create organization' }).click()
      await page.locator('#toasts').getByText('Organization Made just now created.').waitFor()
      await pageDrawn(page)
      await list(page, 'Organizations').getByRole('cell', { name: 'Made just now', exact: true }).waitFor({ timeout: 5000 })
      assert.match(await status(page, 'Organizations'), /^Page 2 of 2/)
      const entries = await page.evaluate<number>('history.length')

      const teamForm = page.getByRole('form', { name: 'New team' })
      await teamForm.getByLabel('Name').fill('Team just made')
      await choose(teamForm.getByRole('combobox', { name: 'Organization' }), 'Made just', 'Made just now')
      await teamForm.getByRole('button', { name: 'Create team' }).click()
      await page.locator('#toasts').getByText('Team Team just made created.').waitFor()
      await pageDrawn(page)
      await list(page, 'Teams').getByRole('cell', { name: 'Team just made', exact: true }).waitFor({ timeout: 5000 })

      const grantForm = page.getByRole('form', { name: 'Give a role' })
      await grantForm.getByLabel('Username').fill('newcomer')
      await grantForm.getByLabel('Role').selectOption({ label: 'Organization Member' })
      await choose(grantForm.getByRole('combobox', { name: 'On' }), 'Made just', 'Organization Made just now')
      await grantForm.getByRole('button', { name: 'Give role' }).click()
      await page.locator('#toasts').getByText('Role given to newcomer.').waitFor()
      await list(page, 'Who holds which role').locator('tr', { hasText: 'newcomer' }).waitFor({ timeout: 5000 })

      assert.equal(await page.evaluate<number>('history.length'), entries, 'each change kept the page\'s one entry in the history')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
