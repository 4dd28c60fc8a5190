import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { call, createOrgAndTeam, grant, userId } from '../helpers/access.ts'
import { launchChromium, logIn, openPage, pageDrawn } from '../helpers/chromium.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createToken } from '../helpers/tokens.ts'

/** A change made from a page shows in every list of the page it changed, not only in the one it was made from. */
describe('the lists of a page after a change made from it, in Chromium', () => {
  let gw: TestGateway
  let browser: Browser

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    await gw.app.accounts.create({ username: 'carol', password: 'carol-password-long' })
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  it('takes the teams of a deleted organization, and the roles held on them, out of their lists', async () => {
    const temporary = await createOrgAndTeam(gw, 'Temporary', 'Short-lived')
    assert.equal((await grant(gw, 'carol', 'Team Member', temporary.team)).status, 201)
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/access')
      await pageDrawn(page)
      const teamRow = page.getByRole('region', { name: 'Teams' }).locator('tr', { hasText: 'Short-lived' })
      const assignmentRow = page.getByRole('region', { name: 'Who holds which role' }).locator('tr', { hasText: 'carol' })
      await teamRow.waitFor()
      await assignmentRow.waitFor()
      await page.getByRole('button', { name: 'Delete organization Temporary' }).click()
      await page.locator('dialog.confirm').getByRole('button', { name: 'Delete' }).click()
      await page.locator('.toast', { hasText: 'Done.' }).waitFor()
      assert.equal((await call(gw, 'GET', 'teams/?name=Short-lived')).body.count, 0)
      assert.equal(await teamRow.count(), 0, 'the team is gone from the list')
      assert.equal(await assignmentRow.count(), 0, 'the role held on it is gone from the list')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('empties a user\'s lists of tokens and sessions once a new password set from the page ended them', async () => {
    const carol = { authorization: basic('carol', 'carol-password-long') }
    await createToken(gw, carol, { description: 'laptop' })
    const elsewhere = await openPage(browser, 'phone')
    await logIn(elsewhere.page, gw.url, 'carol', 'carol-password-long', '/ui/account')
    await elsewhere.context.close()
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', `/ui/admin/users/${await userId(gw, 'carol')}`)
      await pageDrawn(page)
      const tokens = page.getByRole('region', { name: 'Tokens' })
      const sessions = page.getByRole('region', { name: 'Sessions' })
      await tokens.getByRole('cell', { name: 'laptop', exact: true }).waitFor()
      await sessions.locator('tbody tr').first().waitFor()
      const form = page.getByRole('form', { name: 'Set password' })
      await form.getByLabel('New password').fill('a-new-carol-password')
      await form.getByLabel('Also revoke the user\'s personal tokens').check()
      await form.getByRole('button', { name: 'Set password' }).click()
      await page.getByText('Password set.').waitFor()
      assert.equal((await call(gw, 'GET', `users/${await userId(gw, 'carol')}/tokens/`)).body.count, 0)
      await tokens.getByText('No tokens.').waitFor({ timeout: 5000 })
      await sessions.getByText('No sessions.').waitFor({ timeout: 5000 })
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  // Last: the administrator is renamed.
  it('shows the signed-in user\'s new username in the header once they renamed themselves', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', `/ui/admin/users/${await userId(gw, 'admin')}`)
      await pageDrawn(page)
      const form = page.getByRole('form', { name: 'Account' })
      await form.getByLabel('Username').fill('chief')
      await form.getByRole('button', { name: 'Save' }).click()
      await page.getByText('Saved.').waitFor()
      assert.equal(await page.locator('#who .username').innerText(), 'chief')
      await page.getByRole('navigation').getByRole('link', { name: 'Profile' }).click()
      await page.locator('main:not([aria-busy])').getByRole('heading', { name: 'My account' }).waitFor()
      assert.equal(await page.locator('#who .username').innerText(), 'chief')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
