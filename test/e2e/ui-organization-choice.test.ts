import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { call, grant, userId } from '../helpers/access.ts'
import { assertNoHorizontalOverflow, launchChromium, logIn, openPage, pageDrawn } from '../helpers/chromium.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('choosing an organization among many in the web interface, in Chromium', () => {
  let gw: TestGateway
  let browser: Browser

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    // More than the largest page the API gives (200): the last ones are only found by searching.
    for (let i = 1; i <= 250; i++) await gw.store.access.createOrganization({ name: `Branch ${String(i).padStart(3, '0')}` })
    await gw.app.access.reload()
    await gw.app.accounts.create({ username: 'pat', password: 'pat-password-long' })
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  it('finds the 250th organization as the name is typed, and chooses it with the keyboard alone', async () => {
    const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/access')
      await pageDrawn(page)
      const form = page.getByRole('form', { name: 'New team' })
      await form.getByLabel('Name').fill('Night shift')
      await page.keyboard.press('Tab')
      const organization = form.getByRole('combobox', { name: 'Organization' })
      assert.equal(await page.evaluate<string | null | undefined>('document.activeElement?.getAttribute("aria-controls")'), await organization.getAttribute('aria-controls'))
      await page.keyboard.type('250')
      await form.getByRole('option', { name: 'Branch 250' }).waitFor()
      assert.equal(await organization.getAttribute('aria-expanded'), 'true')
      await page.keyboard.press('ArrowDown')
      assert.equal(await form.getByRole('option', { name: 'Branch 250' }).getAttribute('aria-selected'), 'true')
      await page.keyboard.press('Enter')
      assert.equal(await organization.inputValue(), 'Branch 250')
      assert.equal(await organization.getAttribute('aria-expanded'), 'false')
      await page.keyboard.press('Enter')
      await page.getByText('Team Night shift created.').waitFor()
      const created = (await call(gw, 'GET', 'teams/?name=Night%20shift')).body.results[0]
      assert.equal(created.summary_fields.organization.name, 'Branch 250')
      assert.deepEqual(problems, [])
      assert.deepEqual(failedResponses, [])
    } finally {
      await context.close()
    }
  })

  it('says when nothing matches, and when a name was typed but none chosen, and creates nothing', async () => {
    const { page, context, problems } = await openPage(browser, 'phone')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/access')
      await pageDrawn(page)
      const form = page.getByRole('form', { name: 'New team' })
      const organization = form.getByRole('combobox', { name: 'Organization' })
      await organization.fill('Branch 2')
      await form.getByRole('option', { name: 'Branch 002' }).waitFor()
      // More match than are listed: the page says so, and the list stays within the screen.
      const matching = (await call(gw, 'GET', 'organizations/?search=Branch%202')).body.count
      assert.ok(matching > 20)
      await form.getByText(`20 shown of ${matching}: type more of the name to find the others.`).waitFor()
      await assertNoHorizontalOverflow(page, 'the list of organizations open')
      await organization.fill('Headquarters')
      await form.getByText('No organization you may choose matches "Headquarters".').waitFor()
      assert.equal(await organization.getAttribute('aria-expanded'), 'false')
      assert.equal(await form.getByRole('option').count(), 0)
      await page.keyboard.press('Escape')

      const teams = (await call(gw, 'GET', 'teams/')).body.count
      await form.getByLabel('Name').fill('Unplaced')
      await form.getByRole('button', { name: 'Create team' }).click()
      await form.getByText('Type part of the organization\'s name, then choose it from the list.').waitFor()
      assert.equal(await organization.getAttribute('aria-invalid'), 'true')
      assert.equal((await call(gw, 'GET', 'teams/')).body.count, teams)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('gives a role on an organization past the first 200, found by name in the form that gives roles', async () => {
    const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/access')
      await pageDrawn(page)
      const form = page.getByRole('form', { name: 'Give a role' })
      await form.getByLabel('Username').fill('pat')
      await form.getByLabel('Role').selectOption({ label: 'Organization Admin' })
      const on = form.getByRole('combobox', { name: 'On' })
      await on.fill('branch 249')
      await form.getByRole('option', { name: 'Organization Branch 249' }).click()
      await form.getByRole('button', { name: 'Give role' }).click()
      await page.getByText('Role given to pat.').waitFor()
      const pat = await userId(gw, 'pat')
      const held = (await call(gw, 'GET', `role_user_assignments/?user=${pat}`)).body.results
      assert.deepEqual(held.map((a: any) => a.summary_fields.content_object.name), ['Branch 249'])
      // The form is empty again, its choice too.
      assert.equal(await on.inputValue(), '')
      await form.getByLabel('Username').fill('pat')
      await form.getByRole('button', { name: 'Give role' }).click()
      await form.getByText('Type part of the name of an organization or team, then choose it from the list.').waitFor()
      assert.deepEqual(problems, [])
      assert.deepEqual(failedResponses, [])
    } finally {
      await context.close()
    }
  })

  it('offers an organization admin the organizations they see, the 250th among them', async () => {
    assert.equal((await grant(gw, 'pat', 'Organization Admin', (await call(gw, 'GET', 'organizations/?name=Branch%20250')).body.results[0].id)).status, 201)
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'pat', 'pat-password-long', '/ui/access/users/new')
      await pageDrawn(page)
      const organization = page.getByRole('combobox', { name: 'Organization' })
      await organization.focus()
      await page.getByRole('option').first().waitFor()
      assert.deepEqual(await page.getByRole('option').allInnerTexts(), ['Branch 249', 'Branch 250'])
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('gives a role only on the kind of object it is held on, never on another object that has the same id', async () => {
    // An organization has the team's id: the API reads an id as the role's kind of object.
    const crew = await call(gw, 'POST', 'teams/', { name: 'Crew', organization: (await call(gw, 'GET', 'organizations/?name=Branch%20250')).body.results[0].id })
    const namesake = (await call(gw, 'GET', `organizations/${crew.body.id}/`)).body.name
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'admin', 'admin-test-password', '/ui/access')
      await pageDrawn(page)
      const form = page.getByRole('form', { name: 'Give a role' })
      const on = form.getByRole('combobox', { name: 'On', exact: true })
      await form.getByLabel('Username').fill('pat')
      await form.getByLabel('Role').selectOption({ label: 'Organization Member' })
      await on.fill(namesake)
      await form.getByRole('option', { name: `Organization ${namesake}` }).click()
      // The role changed after the organization was chosen: a team's role is not given on it, nor on the team of its id.
      await form.getByLabel('Role').selectOption({ label: 'Team Member' })
      await form.getByRole('button', { name: 'Give role' }).click()
      await form.getByText('"Team Member" is given on a team: choose one from the list.').waitFor()
      const pat = await userId(gw, 'pat')
      assert.equal((await call(gw, 'GET', `role_user_assignments/?user=${pat}&content_type=shared.team`)).body.count, 0)

      // With a team's role chosen, the list holds teams alone.
      await on.fill(namesake)
      await form.getByText(`No team you see matches "${namesake}".`).waitFor()
      await on.fill('Crew')
      await form.getByRole('option', { name: 'Team Crew (Branch 250)' }).click()
      await form.getByRole('button', { name: 'Give role' }).click()
      await page.getByText('Role given to pat.').waitFor()
      const held = (await call(gw, 'GET', `role_user_assignments/?user=${pat}&content_type=shared.team`)).body.results
      assert.deepEqual(held.map((a: any) => a.summary_fields.content_object.name), ['Crew'])
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
