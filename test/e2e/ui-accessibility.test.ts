import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createHash, randomBytes } from 'node:crypto'
import type { Browser, Page } from 'playwright-core'
import { assertNoHorizontalOverflow, launchChromium, logIn, lowContrastFields, lowContrastText, openPage, pageDrawn, type ViewportName, type WatchedPage } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, REALM, realmUrl, realmWith } from '../helpers/oidc.ts'

const COLOR_SCHEMES = ['light', 'dark'] as const
const INVALID_LOGIN = 'Invalid username or password.'
/** A client id in reverse domain notation, which has nowhere to wrap. */
const LONG_CLIENT_ID = 'com.example.television.inventorydashboard'

/** The page's text fields as a screen reader announces them (Chromium's accessibility tree): whether each is invalid, and what describes it. */
async function fieldsAnnounced(page: Page): Promise<Record<string, { invalid: string; description: string; focused: boolean }>> {
  // Every page asked here puts the focus on a field (autofocus), which the browser does once it has drawn the page.
  await page.waitForFunction('document.activeElement !== document.body')
  const cdp = await page.context().newCDPSession(page)
  try {
    const { nodes } = await cdp.send('Accessibility.getFullAXTree')
    const fields = nodes.filter((node) => !node.ignored && node.role?.value === 'textbox')
    return Object.fromEntries(fields.map((node) => {
      const property = (name: string) => node.properties?.find((p) => p.name === name)?.value.value
      return [String(node.name?.value), { invalid: String(property('invalid')), description: String(node.description?.value ?? ''), focused: property('focused') === true }]
    }))
  } finally {
    await cdp.detach()
  }
}

/** An application's authorization request to the realm (keycloak-js's shape), optionally asking for an action. */
function authorizationUrl(gw: TestGateway, extra: Record<string, string> = {}): string {
  const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url')
  return realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
    client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'state', nonce: 'nonce',
    code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  })}`)
}

/** Signs dana in with a wrong password at the login page open, and checks the refusal is read out with both fields, marked invalid. */
async function refusesWrongPassword(page: Page): Promise<void> {
  await page.fill('#username', 'dana')
  await page.fill('#password', 'not-the-password')
  await Promise.all([page.waitForEvent('load'), page.click('button[type=submit]')])
  await page.getByRole('alert').waitFor()
  assert.deepEqual(await fieldsAnnounced(page), {
    Username: { invalid: 'true', description: INVALID_LOGIN, focused: false },
    Password: { invalid: 'true', description: INVALID_LOGIN, focused: true },
  })
}

/** Signs dana in at a realm's login page of an authorization asking for `action`, and waits for the action's page. */
async function signedInToAction(page: Page, gw: TestGateway, action: string, heading: string): Promise<void> {
  await page.goto(authorizationUrl(gw, { kc_action: action }))
  await page.fill('#username', 'dana')
  await page.fill('#password', 'dana-password-long')
  await page.click('button[type=submit]')
  await page.getByRole('heading', { name: heading }).waitFor()
}

/**
 * The login pages and the web interface as people with low vision and screen readers meet them, in Chromium: the
 * contrast of their text in the light and the dark colour scheme (the pages follow the system's), and a refused
 * form's message read out with its fields.
 */
describe('the pages for low vision and assistive technology', () => {
  let gw: TestGateway
  let browser: Browser

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([{ client_id: LONG_CLIENT_ID, public_client: true, device_authorization_grant: true }]) } })
    await gw.app.accounts.create({ username: 'dana', password: 'dana-password-long' })
    browser = await launchChromium()
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  const inBrowser = async (body: (watched: WatchedPage) => Promise<void>, viewport: ViewportName = 'desktop') => {
    const watched = await openPage(browser, viewport)
    try {
      await body(watched)
    } finally {
      await watched.context.close()
    }
  }

  for (const colorScheme of COLOR_SCHEMES) {
    it(`shows a failed login's message with enough contrast in the ${colorScheme} scheme`, () => inBrowser(async ({ page }) => {
      await page.emulateMedia({ colorScheme })
      await page.goto(`${gw.url}/api/gateway/v1/login/?next=/ui/`)
      await page.fill('#username', 'admin')
      await page.fill('#password', 'not-the-password')
      await page.click('button[type=submit]')
      await page.getByRole('alert').waitFor()
      assert.deepEqual(await lowContrastText(page), [])
    }))

    it(`shows where the interface's form fields are, with borders of enough contrast, in the ${colorScheme} scheme`, () => inBrowser(async ({ page }) => {
      await page.emulateMedia({ colorScheme })
      await page.goto(`${gw.url}/api/gateway/v1/login/?next=/ui/`)
      assert.deepEqual(await lowContrastFields(page), [], 'the login page')
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/account')
      for (const path of ['/ui/account', '/ui/tokens', '/ui/access', '/ui/admin/users/new', '/ui/admin/activity']) {
        await page.goto(gw.url + path)
        await pageDrawn(page)
        assert.deepEqual(await lowContrastFields(page), [], path)
      }
    }))

    it(`shows the interface's error messages with enough contrast in the ${colorScheme} scheme`, () => inBrowser(async ({ page }) => {
      await page.emulateMedia({ colorScheme })
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/account')
      await pageDrawn(page)
      // A logout that does not reach the gateway: the page stays, and says so in an error message.
      await page.route('**/api/gateway/v1/logout/', (route) => route.abort())
      await page.getByRole('button', { name: 'Log out' }).click()
      await page.locator('.toast.error').waitFor()
      assert.deepEqual(await lowContrastText(page), [])
    }))
  }

  it('has the live region of its short messages on the page before the first message, so that screen readers read it out', () => inBrowser(async ({ page }) => {
    await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/account')
    await pageDrawn(page)
    // Screen readers read out what changes in a live region already on the page, not a region added with its text.
    const region = page.locator('[aria-live=polite]#toasts')
    assert.equal(await region.count(), 1, 'the region is there before any message')
    assert.equal(await region.innerText(), '')
    await page.evaluate(`document.getElementById('toasts').dataset.before = 'yes'`)
    await page.getByRole('button', { name: 'Save details' }).click()
    await page.locator('[data-before=yes] .toast', { hasText: 'Details saved.' }).waitFor()
  }))

  it('reads a confirmation\'s question out when the focus moves into it', () => inBrowser(async ({ page }) => {
    await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/tokens')
    await pageDrawn(page)
    await page.getByLabel('Description').fill('laptop')
    await page.getByRole('button', { name: 'Create token' }).click()
    await page.getByRole('button', { name: 'Done' }).click()
    await page.getByRole('button', { name: 'Revoke token laptop' }).click()
    const question = await page.locator('dialog.confirm p').innerText()
    const cdp = await page.context().newCDPSession(page)
    try {
      const { nodes } = await cdp.send('Accessibility.getFullAXTree')
      const dialog = nodes.find((node) => node.role?.value === 'dialog')
      assert.equal(dialog?.name?.value, 'Revoke')
      assert.equal(dialog?.description?.value, question)
    } finally {
      await cdp.detach()
    }
  }))

  it('reads a refused login\'s message out with its fields, and marks them invalid only when the username and password were wrong', () => inBrowser(async ({ page, context }) => {
    await page.goto(`${gw.url}/api/gateway/v1/login/?next=/ui/`)
    await refusesWrongPassword(page)

    // A form that expired (the browser's cookies were cleared meanwhile) is no fault of what was typed.
    await context.clearCookies()
    await page.fill('#password', 'dana-password-long')
    await Promise.all([page.waitForEvent('load'), page.click('button[type=submit]')])
    const expired = await page.getByRole('alert').innerText()
    assert.match(expired, /expired/)
    assert.deepEqual(await fieldsAnnounced(page), {
      Username: { invalid: 'false', description: expired, focused: false },
      Password: { invalid: 'false', description: expired, focused: true },
    })

    // A realm's login page too.
    await page.goto(authorizationUrl(gw))
    await refusesWrongPassword(page)
  }))

  it('reads a refused new password\'s reason out with the password fields of a realm\'s Update password page', () => inBrowser(async ({ page }) => {
    await signedInToAction(page, gw, 'UPDATE_PASSWORD', 'Update password')
    await page.getByLabel('New password for dana').fill('a-brand-new-passphrase-42')
    await page.getByLabel('Confirm password').fill('another-passphrase-42')
    await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Submit' }).click()])
    await page.getByRole('alert').waitFor()
    assert.deepEqual(await fieldsAnnounced(page), {
      'New password for dana': { invalid: 'true', description: 'Passwords don\'t match.', focused: true },
      'Confirm password': { invalid: 'true', description: 'Passwords don\'t match.', focused: false },
    })

    // A form whose secret is not the page's (it expired) is no fault of the password typed.
    await page.evaluate(`document.querySelector('input[name=form_secret]').value = 'expired'`)
    await page.getByLabel('New password for dana').fill('a-brand-new-passphrase-42')
    await page.getByLabel('Confirm password').fill('a-brand-new-passphrase-42')
    await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Submit' }).click()])
    const expired = await page.getByRole('alert').innerText()
    assert.doesNotMatch(expired, /match/)
    assert.deepEqual(await fieldsAnnounced(page), {
      'New password for dana': { invalid: 'false', description: expired, focused: true },
      'Confirm password': { invalid: 'false', description: expired, focused: false },
    })
  }))

  it('marks the refused field of a realm\'s Update Account Information page invalid, with the reasons, and puts the focus on it', () => inBrowser(async ({ page }) => {
    await signedInToAction(page, gw, 'UPDATE_PROFILE', 'Update Account Information')
    await page.getByLabel('Email').fill('dana@example.com')
    await page.getByLabel('First name').fill('  ')
    await page.getByLabel('Last name').fill('Scully')
    await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Submit' }).click()])
    await page.getByRole('alert').waitFor()
    assert.deepEqual(await fieldsAnnounced(page), {
      Email: { invalid: 'false', description: '', focused: false },
      'First name': { invalid: 'true', description: 'Please specify first name.', focused: true },
      'Last name': { invalid: 'false', description: '', focused: false },
    })
  }))

  it('labels the field of a realm\'s device page, and reads a wrong code\'s message out with it', () => inBrowser(async ({ page }) => {
    const label = 'Enter the code your device shows.'
    await page.goto(realmUrl(gw, '/device'))
    assert.deepEqual(await fieldsAnnounced(page), { [label]: { invalid: 'false', description: '', focused: true } })
    await page.getByLabel(label).fill('BCDF-GHJK')
    await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Continue' }).click()])
    const refusal = await page.getByRole('alert').innerText()
    assert.match(refusal, /not valid/)
    assert.deepEqual(await fieldsAnnounced(page), { [label]: { invalid: 'true', description: refusal, focused: true } })
  }))

  it('fits the error pages and the realm\'s pages into a phone\'s width, whatever long address they name', () => inBrowser(async ({ page }) => {
    // A mistyped address of a service's API, named by the gateway's error page.
    await page.goto(`${gw.url}/api/nothing/inventories/12/hosts/webserver01.example.com/facts/`)
    await page.getByRole('heading', { name: 'Not Found' }).waitFor()
    await assertNoHorizontalOverflow(page, 'the error page')
    for (const colorScheme of COLOR_SCHEMES) {
      await page.emulateMedia({ colorScheme })
      assert.deepEqual(await lowContrastText(page), [], colorScheme)
    }
    // The device page's confirmation names the application by its client id.
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: LONG_CLIENT_ID }) })
    const { user_code: userCode } = await json(started) as { user_code: string }
    await page.goto(realmUrl(gw, '/device'))
    await page.getByLabel('Enter the code your device shows.').fill(userCode)
    await page.getByRole('button', { name: 'Continue' }).click()
    await page.getByRole('heading', { name: 'Confirm device login' }).waitFor()
    await assertNoHorizontalOverflow(page, 'the device confirmation')
  }, 'phone'))
})
