import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, logIn, openPage, pageDrawn } from '../helpers/chromium.ts'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { ADMIN_PASSWORD, adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createToken } from '../helpers/tokens.ts'

/** Markup that would show as an element carrying `data-injected` if any page ever parsed it. */
const markup = (where: string) => `<img data-injected src=x onerror="document.title='injected'"><b data-injected>${where}</b>`

describe('values people and administrators control, shown by the web interface in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  let maryId: number

  before(async () => {
    gw = await startGateway()
    browser = await launchChromium()
    const mary = await call(gw, 'POST', 'users/', { username: 'mary', password: 'mary-password-long', first_name: markup('first name'), last_name: markup('last name') })
    assert.equal(mary.status, 201, JSON.stringify(mary.body))
    maryId = mary.body.id
    // As a directory or a single sign-on provider writes an account (the users list shows it): its email is the
    // provider's, not checked as a form's.
    await gw.app.accounts.create({ username: 'dir-person', source: 'ldap', external: true, email: markup('directory email'), firstName: markup('directory first name'), lastName: markup('directory last name') })
    const created = await createOrgAndTeam(gw, markup('organization').slice(0, 100), markup('team').slice(0, 100))
    assert.equal((await call(gw, 'PATCH', `organizations/${created.organization}/`, { description: markup('organization description') })).status, 200)
    assert.equal((await call(gw, 'PATCH', `teams/${created.team}/`, { description: markup('team description') })).status, 200)
    assert.equal((await grant(gw, 'mary', 'Team Member', created.team)).status, 201)
    assert.equal((await call(gw, 'POST', 'applications/', { name: markup('application'), client_type: 'public', authorization_grant_type: 'password' })).status, 201)
    await createToken(gw, { authorization: basic('mary', 'mary-password-long') }, { description: markup('token description') })
    await createToken(gw, adminAuth, { description: markup('admin token description') })
    // A failed login under a made-up name, and a session whose browser calls itself markup: both reach the pages.
    await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic(markup('login name'), 'wrong') } })
    await gw.app.audit.flush()
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  const pagesShowText = async (username: string, password: string, pages: string[]) => {
    const { page, context, problems } = await openPage(browser)
    try {
      await context.setExtraHTTPHeaders({ 'user-agent': markup('user agent') })
      await logIn(page, gw.url, username, password)
      for (const name of pages) {
        await page.goto(`${gw.url}/ui/${name}`)
        await pageDrawn(page)
        assert.equal(await page.locator('[data-injected]').count(), 0, `${name}: no markup became elements`)
        assert.match(await page.locator('main').innerText(), /<img data-injected/, `${name}: the markup is shown as the text it is`)
        assert.doesNotMatch(await page.title(), /injected/, `${name}: no handler ran`)
      }
      assert.deepEqual(problems, [], 'no script was refused either')
    } finally {
      await context.close()
    }
  }

  it('keeps a username typed on the login page as the field\'s value after a failed login', async () => {
    const { page, context, problems } = await openPage(browser)
    try {
      await page.goto(`${gw.url}/ui/`)
      await page.fill('#username', markup('typed username'))
      await page.fill('#password', 'wrong')
      await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')])
      await page.getByRole('alert').waitFor()
      assert.equal(await page.inputValue('#username'), markup('typed username'))
      assert.equal(await page.locator('[data-injected]').count(), 0)
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('shows a filter of the address that none of a list\'s choices names as the choice it is, as text', async () => {
    const { page, context, problems } = await openPage(browser)
    try {
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD)
      for (const [path, label] of [['admin/activity?operation=', 'What happened'], ['admin/users?source=', 'Source']] as const) {
        await page.goto(`${gw.url}/ui/${path}${encodeURIComponent(markup('filter'))}`)
        await pageDrawn(page)
        assert.equal(await page.getByLabel(label, { exact: true }).inputValue(), markup('filter'), `${path}: the choice shows the filter the list has`)
        assert.equal(await page.locator('[data-injected]').count(), 0)
      }
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('shows a user their own names, teams, tokens and sessions as text', () => pagesShowText('mary', 'mary-password-long', ['account', 'tokens', 'sessions', 'access']))

  it('shows an administrator every user\'s values, applications and the activity as text', () => pagesShowText('admin', ADMIN_PASSWORD, ['admin/users', `admin/users/${maryId}`, 'admin/tokens', 'admin/sessions', 'admin/applications', 'admin/activity']))
})
