import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { call, createOrgAndTeam, grant, roleId, userId } from '../helpers/access.ts'
import { launchChromium, logIn, openPage, pageDrawn } from '../helpers/chromium.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * The access page and a member's page offer each person the changes the API lets them make, worked out from their
 * roles, and nothing it would refuse them for their roles.
 */
describe('the changes the web interface offers each person, in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  const people = ['olga', 'pat', 'lena', 'quinn', 'mia']
  const auth = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    for (const name of people) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    // None of these names is in the configuration's access rules, which only a superuser may delete.
    const north = await createOrgAndTeam(gw, 'North', 'Builders')
    const south = await createOrgAndTeam(gw, 'South', 'Runners')
    const leads = (await call(gw, 'POST', 'teams/', { name: 'Leads', organization: north.organization })).body.id
    const grants: [string, string, number][] = [
      ['olga', 'Organization Admin', north.organization],
      ['olga', 'Organization Member', south.organization],
      ['pat', 'Team Member', north.team!],
      ['lena', 'Team Member', leads],
      ['quinn', 'Organization Member', north.organization],
      ['quinn', 'Organization Member', south.organization],
      ['mia', 'Organization Member', north.organization],
    ]
    for (const [name, role, object] of grants) assert.equal((await grant(gw, name, role, object)).status, 201)
    // Lena administers North through her team, which holds the role.
    const byTeam = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Organization Admin'), team: leads, object_id: north.organization })
    assert.equal(byTeam.status, 201)
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  /** The row actions the access page offers, as their names ("Delete team Builders"), once it is drawn. */
  const offered = async (page: Page) => {
    await pageDrawn(page)
    return page.locator('main td.actions-cell button').evaluateAll((buttons) => buttons.map((button) => button.getAttribute('aria-label')).sort())
  }

  /** The cells on screen that show a label (a card's, on a phone) and nothing beside it, as `<label> of row <n>`. */
  const emptyLabelledCells = (page: Page) => page.evaluate<string[]>(`[...document.querySelectorAll('main td')]
    .filter((cell) => cell.getClientRects().length > 0 && !cell.textContent.trim() && !['none', 'normal', '""'].includes(getComputedStyle(cell, '::before').content))
    .map((cell) => cell.dataset.label + ' of row ' + cell.parentElement.rowIndex)`)

  it('offers a superuser every change, an organization admin those on their organization, and someone who administers nothing none', async () => {
    const seen: Record<string, string[]> = {}
    for (const [name, password] of [['admin', 'admin-test-password'], ['olga', 'olga-password-long'], ['pat', 'pat-password-long'], ['lena', 'lena-password-long']]) {
      const { page, context, problems } = await openPage(browser, name === 'pat' ? 'phone' : 'desktop')
      try {
        await logIn(page, gw.url, name!, password!, '/ui/access')
        seen[name!] = await offered(page)
        // On a phone each row is a card of labelled values: a row with nothing to do shows no Actions label with nothing.
        assert.deepEqual(await emptyLabelledCells(page), [], name)
        assert.deepEqual(problems, [], name)
      } finally {
        await context.close()
      }
    }
    const organizations = (await call(gw, 'GET', 'organizations/?page_size=200')).body
    const teams = (await call(gw, 'GET', 'teams/?page_size=200')).body
    const assignments = (await call(gw, 'GET', 'role_user_assignments/?page_size=200')).body
    assert.equal(seen.admin!.filter((label) => label.startsWith('Delete organization')).length, organizations.count)
    assert.equal(seen.admin!.filter((label) => label.startsWith('Delete team')).length, teams.count)
    assert.equal(seen.admin!.filter((label) => label.startsWith('Revoke role')).length, assignments.count)

    // Olga sees South as its member, and its assignments: none of them hers to change.
    assert.deepEqual(seen.olga!.filter((label) => !label.startsWith('Revoke role')), ['Delete organization North', 'Delete team Builders', 'Delete team Leads'])
    assert.deepEqual(seen.olga!.filter((label) => label.startsWith('Revoke role')), [
      'Revoke role Organization Admin of olga', 'Revoke role Organization Member of mia', 'Revoke role Organization Member of quinn',
      'Revoke role Team Member of lena', 'Revoke role Team Member of pat',
    ])
    // Through her team, Lena may do what Olga may in North.
    assert.deepEqual(seen.lena!.filter((label) => !label.startsWith('Revoke role')), ['Delete organization North', 'Delete team Builders', 'Delete team Leads'])
    assert.deepEqual(seen.pat, [])

    // What was not offered, the API refuses, and nothing changes.
    const south = organizations.results.find((o: any) => o.name === 'South').id
    const runners = teams.results.find((t: any) => t.name === 'Runners').id
    const builders = teams.results.find((t: any) => t.name === 'Builders').id
    const onSouth = assignments.results.filter((a: any) => a.object_id === String(south))
    assert.ok(onSouth.length >= 2)
    for (const path of [`organizations/${south}/`, `teams/${runners}/`, ...onSouth.map((a: any) => `role_user_assignments/${a.id}/`)]) {
      // 404 for what she does not even see (South's teams).
      assert.ok([403, 404].includes((await call(gw, 'DELETE', path, undefined, auth('olga'))).status), `olga: DELETE ${path}`)
    }
    const patsOwn = assignments.results.find((a: any) => a.summary_fields.user.username === 'pat').id
    for (const path of [`teams/${builders}/`, `role_user_assignments/${patsOwn}/`]) {
      assert.equal((await call(gw, 'DELETE', path, undefined, auth('pat'))).status, 403, `pat: DELETE ${path}`)
    }
    assert.equal((await call(gw, 'GET', 'role_user_assignments/')).body.count, assignments.count)
  })

  it('offers an organization admin the form of a member whose roles are all hers, and shows her any other member\'s record', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'olga', 'olga-password-long', '/ui/access')
      for (const [name, changeable] of [['mia', true], ['quinn', false]] as const) {
        const id = await userId(gw, name)
        await page.goto(`${gw.url}/ui/access/users/${id}`)
        await pageDrawn(page)
        assert.equal(await page.getByRole('form', { name: 'Account' }).count(), changeable ? 1 : 0, name)
        assert.equal(await page.locator('[data-note=not-yours]').count(), changeable ? 0 : 1, name)
        const change = await call(gw, 'PATCH', `users/${id}/`, { first_name: 'Checked' }, auth('olga'))
        assert.equal(change.status, changeable ? 200 : 403, `the API on olga changing ${name}`)
      }
      // Another organization admin: a superuser's record is never hers to change.
      await page.goto(`${gw.url}/ui/access/users/1`)
      await pageDrawn(page)
      assert.equal(await page.getByRole('form', { name: 'Account' }).count(), 0)
      assert.equal((await call(gw, 'PATCH', 'users/1/', { first_name: 'Checked' }, auth('olga'))).status, 403)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('offers no new user form to someone the API would not let create users', async () => {
    const { page, context, problems } = await openPage(browser, 'phone')
    try {
      await logIn(page, gw.url, 'pat', 'pat-password-long', '/ui/access/users/new')
      await pageDrawn(page)
      assert.equal(await page.getByRole('form', { name: 'New user' }).count(), 0)
      await page.getByText('Superusers and organization admins create users. Your account is neither.').waitFor()
      assert.equal((await call(gw, 'POST', 'users/', { username: 'by-pat' }, auth('pat'))).status, 403)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('offers an organization admin the organizations she may add teams to for a new team, not one she is a member of', async () => {
    const { page, context, problems } = await openPage(browser, 'desktop')
    try {
      await logIn(page, gw.url, 'olga', 'olga-password-long', '/ui/access')
      await pageDrawn(page)
      const organization = page.getByRole('form', { name: 'New team' }).getByRole('combobox', { name: 'Organization' })
      await organization.fill('th')
      await page.getByRole('option', { name: 'North' }).waitFor()
      assert.deepEqual(await page.getByRole('listbox', { name: 'Organization' }).getByRole('option').allInnerTexts(), ['North'])
      await organization.fill('South')
      await page.getByText('No organization you may choose matches "South".').waitFor()
      const south = (await call(gw, 'GET', 'organizations/?name=South')).body.results[0].id
      assert.equal((await call(gw, 'POST', 'teams/', { name: 'By olga', organization: south }, auth('olga'))).status, 403)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
