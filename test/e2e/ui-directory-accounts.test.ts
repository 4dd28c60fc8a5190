import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { choose, launchChromium, logIn, openPage, pageDrawn, type SignedIn, type WatchedPage } from '../helpers/chromium.ts'
import { call, createOrgAndTeam, grant, userId } from '../helpers/access.ts'
import { ADMIN_PASSWORD, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'
import { createToken } from '../helpers/tokens.ts'

/** The user filter leaves out entries marked as former staff: changing the mark takes a person out of it. */
const USER_FILTER = '(&(uid={username})(!(employeeType=former)))'
const personDn = (uid: string) => `uid=${uid},ou=people,${SUFFIX}`

/**
 * The user form in the browser follows the users API on directory accounts (docs/access.md): the names and e-mail
 * address are the directory's, an organization admin disables such a member but never enables one, and organization
 * admins create users.
 */
describe('directory accounts and organization admins in the web interface', () => {
  let directory: TestDirectory
  let gw: TestGateway
  let browser: Browser
  let staff: number
  const ids: Record<string, number> = {}
  const signedIn: Record<string, SignedIn> = {}
  const asDirectory = (name: string) => ({ authorization: basic(name, PASSWORDS[name]!) })
  const shown = async (name: string) => (await call(gw, 'GET', `users/${ids[name]}/`)).body

  const inBrowser = async (who: string, body: (watched: WatchedPage) => Promise<void>) => {
    const watched = await openPage(browser, 'desktop', signedIn[who])
    try {
      await body(watched)
    } finally {
      await watched.context.close()
    }
  }
  const open = async (page: Page, path: string) => {
    await page.goto(`${gw.url}${path}`)
    await pageDrawn(page)
  }
  /** The bodies of the user changes the page sends. */
  const sentChanges = (page: Page) => {
    const bodies: Record<string, unknown>[] = []
    page.on('request', (request) => {
      if (['PATCH', 'POST', 'PUT'].includes(request.method()) && /\/api\/gateway\/v1\/users\//.test(request.url())) bodies.push(request.postDataJSON())
    })
    return bodies
  }
  const form = (page: Page) => page.getByRole('form', { name: 'Account' })

  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({ config: { ldap: directory.config({ user_search: { base: `ou=people,${SUFFIX}`, filter: USER_FILTER }, account_check: { interval_seconds: 0 }, timeouts: { connect_seconds: 1, lookup_seconds: 2 } }) } })
    browser = await launchChromium()
    await gw.app.settings.update({ allow_external_users_to_create_oauth2_tokens: true })
    await gw.app.accounts.create({ username: 'orgadmin', password: 'orgadmin-password-long' })
    staff = (await createOrgAndTeam(gw, 'Staff')).organization
    await createOrgAndTeam(gw, 'Elsewhere')
    assert.equal((await grant(gw, 'orgadmin', 'Organization Admin', staff)).status, 201)
    for (const name of ['carol', 'dave']) {
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: asDirectory(name) })).status, 200, `${name} signs in from the directory`)
      ids[name] = await userId(gw, name)
      assert.equal((await grant(gw, name, 'Organization Member', staff)).status, 201)
    }
    for (const [name, password] of [['admin', ADMIN_PASSWORD], ['orgadmin', 'orgadmin-password-long'], ['carol', PASSWORDS.carol!]] as const) {
      const signingIn = await openPage(browser)
      try {
        await logIn(signingIn.page, gw.url, name, password)
        signedIn[name] = await signingIn.context.storageState()
      } finally {
        await signingIn.context.close()
      }
    }
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
    await directory?.close()
  })

  it('shows a directory account\'s names and e-mail address read-only, saying the directory owns them, and does not send them', () => inBrowser('admin', async ({ page, problems }) => {
    await open(page, `/ui/admin/users/${ids.carol}`)
    for (const label of ['First name', 'Last name', 'Email']) {
      assert.equal(await form(page).getByLabel(label, { exact: true }).getAttribute('readonly'), '', `${label} is read-only`)
    }
    assert.match(await form(page).locator('[data-note=source-owned]').innerText(), /LDAP directory/)
    const bodies = sentChanges(page)
    await form(page).getByRole('button', { name: 'Save' }).click()
    await page.locator('.toast', { hasText: 'Saved.' }).waitFor()
    assert.equal(bodies.length, 1)
    for (const name of ['first_name', 'last_name', 'email']) assert.equal(name in bodies[0]!, false, `${name} is not sent`)
    assert.deepEqual(problems, [])
  }))

  it('offers an organization admin "Create user" on the Organizations and teams page, and a member of an organization none', async () => {
    await inBrowser('orgadmin', async ({ page }) => {
      await open(page, '/ui/access')
      await page.getByRole('link', { name: 'Create user' }).click()
      await pageDrawn(page)
      assert.equal(new URL(page.url()).pathname, '/ui/access/users/new')
    })
    await inBrowser('carol', async ({ page }) => {
      await open(page, '/ui/access')
      assert.equal(await page.getByRole('link', { name: 'Create user' }).count(), 0)
    })
  })

  it('lets an organization admin create a user in their organization, and shows a refusal as the form\'s error', () => inBrowser('orgadmin', async ({ page, problems }) => {
    await open(page, '/ui/access/users/new')
    const creating = page.getByRole('form', { name: 'New user' })
    assert.equal(await creating.getByLabel(/Superuser/).count(), 0, 'no superuser switch for an organization admin')
    await creating.getByLabel('Username').fill('frank')
    await creating.getByLabel('Password').fill('frank-password-long')
    await choose(creating.getByRole('combobox', { name: 'Organization' }), 'Sta', 'Staff')
    await creating.getByRole('button', { name: 'Create user' }).click()
    await page.waitForURL((url) => /^\/ui\/access\/users\/[0-9]+$/.test(url.pathname))
    const frank = await call(gw, 'GET', `users/${await userId(gw, 'frank')}/access/`)
    assert.deepEqual(frank.body.organizations.map((o: { name: string }) => o.name), ['Staff'])

    // A person in the directory has the name: the API's refusal is the form's error, and nothing is created.
    await open(page, '/ui/access/users/new')
    await creating.getByLabel('Username').fill('bob')
    await creating.getByLabel('Password').fill('bob-local-password-long')
    await creating.getByRole('button', { name: 'Create user' }).click()
    await creating.locator('.form-error').waitFor()
    assert.match(await creating.locator('.form-error').innerText(), /directory/)
    assert.equal((await call(gw, 'GET', 'users/?username=bob')).body.count, 0)
    assert.deepEqual(problems, [])
  }))

  it('lets an organization admin disable a directory member but offers no switch to enable them again', () => inBrowser('orgadmin', async ({ page, problems }) => {
    await open(page, `/ui/access/users/${ids.carol}`)
    assert.equal(await form(page).getByLabel(/Superuser/).count(), 0)
    const active = form(page).getByLabel('Active (may log in and use tokens)')
    assert.equal(await active.isChecked(), true)
    await active.uncheck()
    await form(page).getByRole('button', { name: 'Save' }).click()
    await page.locator('.toast', { hasText: 'Saved.' }).waitFor()
    assert.equal((await shown('carol')).is_active, false)

    await open(page, `/ui/access/users/${ids.carol}`)
    assert.equal(await form(page).getByLabel('Active (may log in and use tokens)').isDisabled(), true)
    assert.match(await form(page).locator('[data-field=is_active] .help').innerText(), /superuser/)
    assert.deepEqual(problems, [])
    // A superuser enables her again, the directory listing her.
    assert.equal((await call(gw, 'PATCH', `users/${ids.carol}/`, { is_active: true })).status, 200)
  }))

  it('shows a superuser the API\'s message when the directory no longer lists an account they enable, and leaves it disabled', () => inBrowser('admin', async ({ page, problems }) => {
    // The directory check asks about accounts that hold something live.
    await createToken(gw, asDirectory('dave'))
    await directory.replaceAttribute(personDn('dave'), 'employeeType', ['former'])
    assert.deepEqual((await gw.app.directoryCheck!.run()).disabled, ['dave'])
    await open(page, `/ui/admin/users/${ids.dave}`)
    const active = form(page).getByLabel('Active (may log in and use tokens)')
    assert.equal(await active.isDisabled(), false)
    await active.check()
    await form(page).getByRole('button', { name: 'Save' }).click()
    await form(page).locator('.form-error').waitFor()
    assert.match(await form(page).locator('.form-error').innerText(), /no longer lists/)
    assert.equal((await shown('dave')).is_active, false)
    assert.deepEqual(problems, [])
  }))
})
