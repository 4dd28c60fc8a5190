import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { assertNoHorizontalOverflow, choose, launchChromium, openPage, openSignedIn, screenshot, signIn, type SignedIn } from '../helpers/chromium.ts'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('access control in the web interface, in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  /** Each person's session, logged in once: no test here is about the login. */
  const signedIn: Record<string, SignedIn> = {}

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    for (const name of ['olga', 'pat']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    const platform = await createOrgAndTeam(gw, 'Platform', 'Automation')
    await createOrgAndTeam(gw, 'Ops', 'Oncall')
    assert.equal((await grant(gw, 'olga', 'Organization Admin', platform.organization)).status, 201)
    await Promise.all([['admin', 'admin-test-password'], ['olga', 'olga-password-long'], ['pat', 'pat-password-long']].map(async ([username, password]) => {
      signedIn[username!] = await signIn(browser, gw.url, username!, password!)
    }))
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  it('lets an organization admin who is no superuser put someone in a team, who then reaches the team-only service', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop', signedIn.olga)
    try {
      await openSignedIn(page, gw.url)
      await page.getByRole('navigation').getByRole('link', { name: 'Organizations and teams' }).click()
      await page.getByRole('heading', { name: 'Organizations and teams', level: 1 }).waitFor()
      const form = page.getByRole('form', { name: 'Give a role' })
      // A blank or unknown username gives the role to nobody (an empty name would list every user, the first of them olga).
      const assignments = async () => (await call(gw, 'GET', 'role_user_assignments/')).body.count
      const before = await assignments()
      // A platform-wide role is a superuser's to give: it is not among hers.
      assert.equal(await form.getByLabel('Role').locator('option', { hasText: 'Platform Auditor' }).count(), 0)
      await form.getByLabel('Role').selectOption({ label: 'Organization Admin' })
      await choose(form.getByRole('combobox', { name: 'On' }), 'Platform', 'Organization Platform')
      for (const [typed, message] of [['   ', 'Enter the username of the person to give the role to.'], ['pa', 'No user with this username.']]) {
        await form.getByLabel('Username').fill(typed!)
        await form.getByRole('button', { name: 'Give role' }).click()
        await form.getByText(message!).waitFor()
      }
      assert.equal(await assignments(), before)
      await form.getByLabel('Username').fill('pat')
      await form.getByLabel('Role').selectOption({ label: 'Team Member' })
      await choose(form.getByRole('combobox', { name: 'On' }), 'Automation', 'Team Automation (Platform)')
      await form.getByRole('button', { name: 'Give role' }).click()
      await page.getByText('Role given to pat.').waitFor()
      await page.locator('tr', { hasText: 'pat' }).filter({ hasText: 'Team Automation' }).waitFor()
      await screenshot(page, 'access-role-given')
      const eda = await gw.fetch('/api/eda/v1/jobs/', { method: 'POST', headers: { authorization: basic('pat', 'pat-password-long') } })
      assert.equal(eda.status, 200)

      // A team of another organization is not hers to see, nor to change: the page does not offer it, and nothing changes.
      await form.getByLabel('Role').selectOption({ label: 'Team Member' })
      await form.getByRole('combobox', { name: 'On' }).fill('o')
      await form.getByRole('option', { name: 'Team Automation (Platform)' }).waitFor()
      assert.deepEqual((await form.getByRole('option').allInnerTexts()).filter((text) => /Oncall|Ops/.test(text)), [])
      const oncall = (await call(gw, 'GET', 'teams/?name=Oncall')).body.results[0].id
      const role = (await call(gw, 'GET', 'role_definitions/?name=Team%20Member')).body.results[0].id
      const pat = (await call(gw, 'GET', 'users/?username=pat')).body.results[0].id
      const elsewhere = await call(gw, 'POST', 'role_user_assignments/', { role_definition: role, user: pat, object_id: oncall }, { authorization: basic('olga', 'olga-password-long') })
      assert.equal(elsewhere.status, 403)
      assert.equal((await call(gw, 'GET', 'role_user_assignments/?content_type=shared.team')).body.count, 1)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('offers each person only the forms to create that the API lets them use', async () => {
    const offered = async (username: string) => {
      const { page, context, problems } = await openPage(browser, 'desktop', signedIn[username])
      try {
        await openSignedIn(page, gw.url, '/ui/access')
        await page.locator('main:not([aria-busy])').getByRole('heading', { name: 'Who holds which role' }).waitFor()
        const forms = await page.locator('main form').evaluateAll((found) => found.map((form) => form.getAttribute('aria-label')))
        const createUser = await page.getByRole('link', { name: 'Create user' }).count()
        // What an empty list says: that there is nothing only to whoever sees everything.
        const empty = await page.locator('main .table-wrap > p.muted:not([hidden])').allInnerTexts()
        assert.deepEqual(problems, [])
        return { forms, createUser, ...(empty.length ? { empty } : {}) }
      } finally {
        await context.close()
      }
    }
    assert.deepEqual(await offered('admin'), { forms: ['New organization', 'New team', 'Give a role'], createUser: 1 })
    // An organization admin adds teams and gives roles in her organization; only a superuser creates organizations.
    assert.deepEqual(await offered('olga'), { forms: ['New team', 'Give a role'], createUser: 1 })
    // Someone who administers nothing sees the lists, and no form the gateway would refuse.
    assert.deepEqual(await offered('pat'), { forms: [], createUser: 0, empty: ['No organization is visible to you.'] })
    const refused = await call(gw, 'POST', 'organizations/', { name: 'By pat' }, { authorization: basic('pat', 'pat-password-long') })
    assert.equal(refused.status, 403, 'the API refuses what the page does not offer')
  })

  it('draws a page again after a change made from it in the same entry of the history, so that Back leaves it', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop', signedIn.admin)
    try {
      await openSignedIn(page, gw.url, '/ui/account')
      await page.getByRole('navigation').getByRole('link', { name: 'Organizations and teams' }).click()
      await page.locator('main:not([aria-busy])').getByRole('heading', { name: 'Organizations and teams', level: 1 }).waitFor()
      const entries = await page.evaluate<number>('history.length')
      const form = page.getByRole('form', { name: 'New organization' })
      await form.getByLabel('Name').fill('Drawn again')
      await form.getByLabel('Name').press('Enter')
      await page.locator('main:not([aria-busy])').getByRole('cell', { name: 'Drawn again', exact: true }).waitFor()
      assert.equal(await page.evaluate<number>('history.length'), entries, 'the page drawn again is no new entry')
      await page.goBack()
      await page.locator('main:not([aria-busy])').getByRole('heading', { name: 'My account', level: 1 }).waitFor()
      assert.equal(new URL(page.url()).pathname, '/ui/account')

      // Saving one's details draws the profile again at its own address.
      await page.getByLabel('First name').fill('Ada')
      await page.getByLabel('First name').press('Enter')
      await page.getByText('Details saved.').waitFor()
      await page.locator('main:not([aria-busy]) #profile').waitFor()
      assert.equal(new URL(page.url()).pathname, '/ui/account')
      assert.equal(await page.evaluate<number>('history.length'), entries, 'saving added no entry')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('keeps the message naming a long name without a space within a phone\'s screen', async () => {
    const { page, context, problems } = await openPage(browser, 'phone', signedIn.admin)
    try {
      await openSignedIn(page, gw.url, '/ui/access')
      const form = page.getByRole('form', { name: 'New organization' })
      await form.getByLabel('Name').fill('Q'.repeat(150))
      await form.getByLabel('Name').press('Enter')
      const toast = page.locator('.toast', { hasText: 'QQQ' })
      await toast.waitFor()
      const box = (await toast.boundingBox())!
      const width = await page.evaluate<number>('window.innerWidth')
      assert.ok(box.x >= 0 && box.x + box.width <= width, `the message spans ${box.x} to ${box.x + box.width} px of a ${width} px screen`)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('keeps a refusal on screen until it is dismissed, as it may take longer to read than a success', async () => {
    const { page, context, problems, failedResponses } = await openPage(browser, 'desktop', signedIn.olga)
    try {
      // The page's timers run on a clock the test moves on, rather than waited out.
      await context.clock.install()
      // Olga administers Platform, but the configuration's access rules name its team Automation, which only a superuser
      // may delete: a rule beyond roles, which the page does not know, so it offers the Delete and shows the refusal.
      await openSignedIn(page, gw.url, '/ui/access')
      await page.getByRole('button', { name: 'Delete team Automation' }).click()
      await page.locator('dialog.confirm').getByRole('button', { name: 'Delete' }).click()
      const refusal = page.locator('.toast.error')
      await refusal.waitFor()
      // Longer than a success's message stays.
      await page.clock.runFor(6000)
      assert.equal(await refusal.count(), 1, 'the refusal is still there after a while')
      await refusal.getByRole('button', { name: 'Dismiss the message' }).click()
      await refusal.waitFor({ state: 'detached' })
      assert.deepEqual(failedResponses.filter((line) => !line.startsWith('403 DELETE /api/gateway/v1/teams/')), [])
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('shows a person their teams, organizations, roles and the services they may reach', async () => {
    const { page, context } = await openPage(browser, 'phone', signedIn.pat)
    try {
      await openSignedIn(page, gw.url, '/ui/account')
      const memberships = page.locator('#memberships')
      await memberships.waitFor()
      assert.match(await memberships.innerText(), /Automation/)
      assert.match(await memberships.innerText(), /Team Member/)
      assert.match(await page.locator('tr[data-service="eda"]').innerText(), /Allowed/)
      await assertNoHorizontalOverflow(page, 'account with access')
    } finally {
      await context.close()
    }
  })

  it('shows an administrator which services a user may reach, and revokes a role in the page', async () => {
    const { page, context } = await openPage(browser, 'desktop', signedIn.admin)
    try {
      await openSignedIn(page, gw.url, '/ui/access')
      const row = page.locator('tr', { hasText: 'pat' }).filter({ hasText: 'Team Member' })
      await row.getByRole('button', { name: 'Revoke' }).click()
      await page.locator('dialog.confirm').getByRole('button', { name: 'Revoke' }).click()
      await row.waitFor({ state: 'detached' })
      const patId = (await call(gw, 'GET', 'users/?username=pat')).body.results[0].id
      await page.goto(`${gw.url}/ui/admin/users/${patId}`)
      await page.locator('tr[data-service="eda"]').waitFor()
      assert.match(await page.locator('tr[data-service="eda"]').innerText(), /Refused/)
      assert.match(await page.locator('tr[data-service="controller"]').innerText(), /Allowed/)
    } finally {
      await context.close()
    }
  })
})
