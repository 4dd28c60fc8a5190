import assert from 'node:assert/strict'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { argon2Tasks } from '../../src/directory/passwords.ts'
import { adminAuth, json, type TestGateway } from '../helpers/gateway.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { Browser, parseForm, type Page } from '../helpers/browser.ts'
import { CLIENT_REDIRECT, realmUrl, realmWith, tokenRequest } from '../helpers/oidc.ts'
import { eventually, rawClient } from '../helpers/raw-client.ts'
import { setTimeout as sleep } from 'node:timers/promises'

const OLD_PASSWORD = 'alice-password-long'
const NEW_PASSWORD = 'a-brand-new-passphrase-42'

/**
 * keycloak-js `login({ action })` (createLoginUrl): the authorization request it sends, with its default fragment
 * response mode, nonce and PKCE S256; and the answer it reads back from the redirect URI.
 */
function keycloakJsLogin(gw: TestGateway, action: string | undefined, extra: Record<string, string> = {}) {
  const verifier = randomBytes(48).toString('base64url')
  const state = randomUUID()
  const url = realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
    client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, state, response_mode: 'fragment', response_type: 'code', scope: 'openid',
    nonce: randomUUID(), ...(action === undefined ? {} : { kc_action: action }), code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256', ...extra,
  })}`)
  return { url, verifier, state }
}

/** The parameters of the redirect back to the application, from its fragment. */
function answerOf(location: string | undefined): URLSearchParams {
  assert.ok(location, 'the browser goes back to the application')
  const target = new URL(location)
  assert.equal(`${target.origin}${target.pathname}`, CLIENT_REDIRECT)
  assert.equal(target.search, '', 'the fragment response mode answers in the fragment')
  return new URLSearchParams(target.hash.slice(1))
}

const toApplication = (url: string) => url.startsWith(CLIENT_REDIRECT)

/** The application's answer after the person did `action`: success, for the login it asked for; its code redeemed. */
async function tokensAfterSuccess(gw: TestGateway, done: { stoppedAt?: string | undefined }, action: string, login: ReturnType<typeof keycloakJsLogin>) {
  const answer = answerOf(done.stoppedAt)
  assert.equal(answer.get('kc_action_status'), 'success')
  assert.equal(answer.get('kc_action'), action)
  assert.equal(answer.get('state'), login.state)
  const tokens = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code: answer.get('code')!, redirect_uri: CLIENT_REDIRECT, code_verifier: login.verifier })
  assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
  return tokens
}

async function passwordWorks(gw: TestGateway, password: string): Promise<boolean> {
  const { status } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password })
  return status === 200
}

/**
 * The update page's answer setting `password`, as a raw HTTP/1.1 request with the browser's cookies: its head, and
 * its body as curl --data sends it (not percent-encoded), for a socket of the test's own to send as it likes.
 */
function rawAnswer(browser: Browser, updatePage: Page, password: string): { head: Buffer; body: Buffer } {
  const form = parseForm(updatePage.body)
  const target = new URL(form.action, updatePage.url)
  const body = Buffer.from(`form_secret=${encodeURIComponent(form.fields.form_secret!)}&password-new=${password}&password-confirm=${password}`)
  const head = Buffer.from(`POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nCookie: ${browser.cookieHeader(target)}\r\n` +
    `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`)
  return { head, body }
}

function isUpdatePasswordPage(page: Page): boolean {
  return /<h1>Update password<\/h1>/.test(page.body)
}

function isUpdateProfilePage(page: Page): boolean {
  return /<h1>Update Account Information<\/h1>/.test(page.body)
}

for (const backend of gatewayBackends) describe(`application-initiated actions (kc_action), as keycloak-js asks for them, on ${backend.name}`, () => {
  let gw: TestGateway

  before(async () => {
    gw = await backend.start({ config: { realms: realmWith([
      { client_id: 'guarded', public_client: true, redirect_uris: [CLIENT_REDIRECT], access: [{ allow: { teams: ['Operators'] } }] },
      { client_id: 'tv', public_client: true, device_authorization_grant: true },
    ]) } })
    await gw.app.accounts.create({ username: 'alice', password: OLD_PASSWORD, email: 'alice@example.com' })
    await gw.app.accounts.create({ username: 'bob', password: 'bob-password-long', email: 'bob@example.com' })
  })
  after(() => gw.close())

  async function setPassword(password: string): Promise<void> {
    const user = await gw.store.users.findByUsername('alice')
    await gw.app.accounts.update(user!.id, { password })
  }

  /** Runs `test` with the gateway's clock (the database's time as it knows it) `seconds` ahead. */
  async function withClockAhead(seconds: number, test: () => Promise<void>): Promise<void> {
    const clock = gw.app.bus.clock
    const now = clock.now
    clock.now = () => now.call(clock) + seconds * 1000
    try {
      await test()
    } finally {
      clock.now = now
    }
  }

  /** Asks for UPDATE_PASSWORD in a browser whose login is too old: the login page first, naming alice, then the page. */
  async function reauthenticatedForUpdate(browser: Browser): Promise<void> {
    const stale = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
    assert.equal(isUpdatePasswordPage(stale), false)
    assert.match(stale.body, /Please re-authenticate to continue\./)
    assert.equal(parseForm(stale.body).fields.username, 'alice')
    const update = await browser.submit(stale, { password: OLD_PASSWORD }, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(update))
  }

  /** Signs alice in to the application with her password, as keycloak-js does without an action. */
  async function logInAtRealm(browser: Browser): Promise<void> {
    const signedIn = await browser.submit(await browser.navigate(keycloakJsLogin(gw, undefined).url), { username: 'alice', password: OLD_PASSWORD }, { stopBefore: toApplication })
    assert.ok(answerOf(signedIn.stoppedAt).get('code'))
  }

  /** A browser signed in at the realm moments ago, alice's password being OLD_PASSWORD. */
  async function signedInBrowser(): Promise<Browser> {
    await setPassword(OLD_PASSWORD)
    const browser = new Browser()
    await logInAtRealm(browser)
    return browser
  }

  it('UPDATE_PASSWORD: the login, then the update page; bad input gets the page again and changes nothing; then back with kc_action_status=success', async () => {
    await setPassword(OLD_PASSWORD)
    const user = await gw.store.users.findByUsername('alice')
    const before = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: OLD_PASSWORD })
    assert.equal(before.status, 200)
    const browser = new Browser()
    const login = keycloakJsLogin(gw, 'UPDATE_PASSWORD')
    const loginPage = await browser.navigate(login.url)
    assert.equal(loginPage.response.status, 200)
    assert.match(loginPage.body, /name="password"/)
    const updatePage = await browser.submit(loginPage, { username: 'alice', password: OLD_PASSWORD }, { stopBefore: toApplication })
    assert.equal(updatePage.stoppedAt, undefined, 'the login does not go back to the application yet')
    assert.ok(isUpdatePasswordPage(updatePage), updatePage.body.slice(0, 300))
    // The login page's protections: no framing, no script, the pages' own style only.
    assert.equal(updatePage.response.headers.get('x-frame-options'), 'DENY')
    assert.match(updatePage.response.headers.get('content-security-policy')!, /default-src 'none'; script-src 'none'.*frame-ancestors 'none'/)
    assert.equal(updatePage.response.headers.get('cache-control'), 'no-store')
    const form = parseForm(updatePage.body)
    assert.ok(form.fields.form_secret, 'the form carries its anti-forgery secret')

    const refusals: [Record<string, string>, number, RegExp][] = [
      [{ form_secret: '', 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }, 403, /did not come from this page/],
      [{ form_secret: 'forged', 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }, 403, /did not come from this page/],
      [{ 'password-new': NEW_PASSWORD, 'password-confirm': `${NEW_PASSWORD}x` }, 400, /Passwords don&#39;t match\./],
      [{ 'password-new': '', 'password-confirm': '' }, 400, /Please specify password\./],
      [{ 'password-new': 'short', 'password-confirm': 'short' }, 400, /too short/],
      [{ 'password-new': 'alice', 'password-confirm': 'alice' }, 400, /too short/],
      [{ 'password-new': OLD_PASSWORD, 'password-confirm': OLD_PASSWORD }, 400, /different from the current one/],
    ]
    for (const [fields, status, message] of refusals) {
      const again = await browser.submit(updatePage, fields, { stopBefore: toApplication })
      assert.equal(again.response.status, status, JSON.stringify(fields))
      assert.ok(isUpdatePasswordPage(again), JSON.stringify(fields))
      assert.match(again.body, message)
      assert.equal(parseForm(again.body).fields.form_secret, form.fields.form_secret, 'the page again is the same form')
    }
    assert.ok(await passwordWorks(gw, OLD_PASSWORD), 'nothing was changed')
    const stillValid = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: before.body.refresh_token })
    assert.equal(stillValid.status, 200, 'nor ended')

    const done = await browser.submit(updatePage, { 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }, { stopBefore: toApplication })
    const tokens = await tokensAfterSuccess(gw, done, 'UPDATE_PASSWORD', login)
    assert.equal(tokens.body.token_type, 'Bearer')

    // As any password change: the old password and what it got stop working; the new one works.
    assert.equal(await passwordWorks(gw, OLD_PASSWORD), false)
    assert.ok(await passwordWorks(gw, NEW_PASSWORD))
    const ended = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: before.body.refresh_token })
    assert.equal(ended.status, 400)
    assert.equal(ended.body.error, 'invalid_grant')
    const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token })
    assert.equal(refreshed.status, 200, 'the tokens of this login outlive the change')

    // In the audit trail, by the user, never with the password.
    await gw.app.audit.flush()
    const stream = await json(await gw.fetch(`/api/gateway/v1/activitystream/?order_by=-id&content_type=user&operation=update&object_id=${user!.id}`, { headers: adminAuth }))
    const change = stream.results[0]
    assert.deepEqual(change.changes.changed_fields, { password: ['$encrypted$', '$encrypted$'] })
    assert.equal(change.summary_fields.created_by.username, 'alice')
    assert.equal(change.auth_method, 'oidc')
    assert.ok(!JSON.stringify(stream).includes(NEW_PASSWORD))

    // The browser is signed in with the new password: the realm signs it in to the application without asking.
    const silent = await browser.navigate(keycloakJsLogin(gw, undefined, { prompt: 'none' }).url, { stopBefore: toApplication })
    assert.ok(answerOf(silent.stoppedAt).get('code'), 'a realm session of the new password')
  })

  it('Cancel goes back with kc_action_status=cancelled and changes nothing', async () => {
    await setPassword(OLD_PASSWORD)
    const browser = new Browser()
    const login = keycloakJsLogin(gw, 'UPDATE_PASSWORD', { response_mode: 'query' })
    const loginPage = await browser.navigate(login.url)
    const updatePage = await browser.submit(loginPage, { username: 'alice', password: OLD_PASSWORD }, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(updatePage))
    const done = await browser.submit(updatePage, { 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD, 'cancel-aia': 'true' }, { stopBefore: toApplication })
    const target = new URL(done.stoppedAt!)
    assert.equal(target.hash, '', 'the query response mode answers in the query')
    assert.equal(target.searchParams.get('kc_action_status'), 'cancelled')
    assert.equal(target.searchParams.get('kc_action'), 'UPDATE_PASSWORD')
    assert.ok(target.searchParams.get('code'))
    assert.ok(await passwordWorks(gw, OLD_PASSWORD))
    assert.equal(await passwordWorks(gw, NEW_PASSWORD), false)
  })

  it('UPDATE_PROFILE: the account information page with the account\'s values; bad input gets it again in Keycloak\'s words and changes nothing; then back with kc_action_status=success', async () => {
    const user = (await gw.store.users.findByUsername('alice'))!
    await gw.app.accounts.update(user.id, { firstName: '', lastName: '', email: 'alice@example.com' })
    try {
      const browser = await signedInBrowser()
      const before = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: OLD_PASSWORD })
      assert.equal(before.status, 200)
      // Signed in moments ago: the page at once, as for the password.
      const login = keycloakJsLogin(gw, 'UPDATE_PROFILE')
      const updatePage = await browser.navigate(login.url, { stopBefore: toApplication })
      assert.ok(isUpdateProfilePage(updatePage), updatePage.body.slice(0, 300))
      assert.equal(updatePage.response.headers.get('x-frame-options'), 'DENY')
      assert.equal(updatePage.response.headers.get('cache-control'), 'no-store')
      const form = parseForm(updatePage.body)
      assert.deepEqual({ email: form.fields.email, firstName: form.fields.firstName, lastName: form.fields.lastName }, { email: 'alice@example.com', firstName: '', lastName: '' })
      assert.ok(form.fields.form_secret)

      const valid = { email: 'alice.liddell@example.com', firstName: 'Alice', lastName: 'Liddell' }
      const refusals: [Record<string, string>, number, RegExp][] = [
        [{ ...valid, form_secret: 'forged' }, 403, /did not come from this page/],
        [{ ...valid, email: '' }, 400, /Please specify email\./],
        [{ ...valid, email: 'not-an-address' }, 400, /Invalid email address\./],
        [{ ...valid, firstName: '  ' }, 400, /Please specify first name\./],
        [{ ...valid, lastName: '' }, 400, /Please specify last name\./],
        [{ ...valid, lastName: 'x'.repeat(151) }, 400, /Maximal length is 150\./],
        // Keycloak's person-name-prohibited-characters: markup, and control characters (a NUL would not even be stored).
        [{ ...valid, firstName: '<img src=x onerror=alert(1)>' }, 400, /First name contains invalid character\./],
        [{ ...valid, lastName: 'Liddell\u0000' }, 400, /Last name contains invalid character\./],
        [{ ...valid, lastName: 'Lid\r\ndell' }, 400, /Last name contains invalid character\./],
        [{ ...valid, email: 'bob@example.com' }, 400, /Email already exists\./],
        [{ ...valid, email: 'BOB@Example.com' }, 400, /Email already exists\./],
      ]
      for (const [fields, status, message] of refusals) {
        const again = await browser.submit(updatePage, fields, { stopBefore: toApplication })
        assert.equal(again.response.status, status, JSON.stringify(fields))
        assert.ok(isUpdateProfilePage(again), JSON.stringify(fields))
        assert.match(again.body, message, JSON.stringify(fields))
        const shown = parseForm(again.body).fields
        assert.equal(shown.form_secret, form.fields.form_secret, 'the page again is the same form')
        if (status === 400) assert.equal(shown.email, fields.email!.trim(), 'with the values sent')
      }
      assert.deepEqual(await gw.store.users.findByUsername('alice').then((u) => [u!.email, u!.firstName, u!.lastName]), ['alice@example.com', '', ''], 'nothing was changed')

      const done = await browser.submit(updatePage, { ...valid, firstName: ' Alice ' }, { stopBefore: toApplication })
      const tokens = await tokensAfterSuccess(gw, done, 'UPDATE_PROFILE', login)
      const claims = JSON.parse(Buffer.from(tokens.body.access_token.split('.')[1], 'base64url').toString())
      assert.deepEqual([claims.email, claims.given_name, claims.family_name], [valid.email, 'Alice', 'Liddell'])
      assert.equal((await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: before.body.refresh_token })).status, 200, 'no session ends')

      await gw.app.audit.flush()
      const stream = await json(await gw.fetch(`/api/gateway/v1/activitystream/?order_by=-id&content_type=user&operation=update&object_id=${user.id}`, { headers: adminAuth }))
      const change = stream.results[0]
      assert.deepEqual(change.changes.changed_fields.first_name, ['', 'Alice'])
      assert.equal(change.summary_fields.created_by.username, 'alice')
      assert.equal(change.auth_method, 'oidc')

      // The answer that went back to the application ended the form.
      const late = await browser.submit(updatePage, { ...valid, firstName: 'Mallory' }, { stopBefore: toApplication })
      assert.equal(late.stoppedAt, undefined)
      assert.equal((await gw.store.users.findByUsername('alice'))!.firstName, 'Alice')
    } finally {
      await gw.app.accounts.update(user.id, { firstName: '', lastName: '', email: 'alice@example.com' })
    }
  })

  it('UPDATE_PROFILE: Cancel goes back with kc_action_status=cancelled and changes nothing', async () => {
    const browser = await signedInBrowser()
    const updatePage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PROFILE', { response_mode: 'query' }).url, { stopBefore: toApplication })
    assert.ok(isUpdateProfilePage(updatePage))
    const done = await browser.submit(updatePage, { email: 'cancelled@example.com', firstName: 'C', lastName: 'D', 'cancel-aia': 'true' }, { stopBefore: toApplication })
    const target = new URL(done.stoppedAt!)
    assert.equal(target.searchParams.get('kc_action_status'), 'cancelled')
    assert.equal(target.searchParams.get('kc_action'), 'UPDATE_PROFILE')
    assert.ok(target.searchParams.get('code'))
    assert.equal((await gw.store.users.findByUsername('alice'))!.email, 'alice@example.com')
  })

  it('UPDATE_PROFILE: shows a name with markup that the gateway API took (as the platform\'s does) as text', async () => {
    const user = (await gw.store.users.findByUsername('alice'))!
    const markup = '"><img src=x onerror=alert(1)>'
    await gw.app.accounts.update(user.id, { firstName: markup })
    try {
      const browser = await signedInBrowser()
      const updatePage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PROFILE').url, { stopBefore: toApplication })
      assert.ok(isUpdateProfilePage(updatePage))
      assert.ok(!updatePage.body.includes('<img'), 'no markup of the name reaches the page')
      assert.equal(parseForm(updatePage.body).fields.firstName, markup)
    } finally {
      await gw.app.accounts.update(user.id, { firstName: user.firstName })
    }
  })

  it('a page open longer than Keycloak\'s login action timeout (five minutes) changes nothing, nor goes back to the application', async () => {
    const answers: [string, (page: Page) => boolean, Record<string, string>][] = [
      ['UPDATE_PASSWORD', isUpdatePasswordPage, { 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }],
      ['UPDATE_PROFILE', isUpdateProfilePage, { email: 'late@example.com', firstName: 'L', lastName: 'T' }],
    ]
    for (const [action, isItsPage, fields] of answers) {
      const browser = await signedInBrowser()
      const updatePage = await browser.navigate(keycloakJsLogin(gw, action).url, { stopBefore: toApplication })
      assert.ok(isItsPage(updatePage), action)
      const clock = gw.app.bus.clock
      const now = clock.now
      clock.now = () => now.call(clock) + 5 * 60_000 + 1000
      try {
        for (const sent of [fields, { 'cancel-aia': 'true' }]) {
          const refused = await browser.submit(updatePage, sent, { stopBefore: toApplication })
          assert.equal(refused.stoppedAt, undefined, `${action} ${JSON.stringify(sent)}`)
          assert.equal(refused.response.status, 400)
          assert.match(refused.body, /timed out or was already used/)
        }
      } finally {
        clock.now = now
      }
    }
    assert.ok(await passwordWorks(gw, OLD_PASSWORD))
    assert.equal((await gw.store.users.findByUsername('alice'))!.email, 'alice@example.com')
  })

  it('a password set elsewhere while the page is open ends that login: its form sets nothing', async () => {
    await setPassword(OLD_PASSWORD)
    const browser = new Browser()
    const loginPage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url)
    const updatePage = await browser.submit(loginPage, { username: 'alice', password: OLD_PASSWORD }, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(updatePage))
    const ADMINS_CHOICE = 'set-by-an-administrator-7'
    await setPassword(ADMINS_CHOICE)
    const refused = await browser.submit(updatePage, { 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }, { stopBefore: toApplication })
    assert.equal(refused.stoppedAt, undefined)
    assert.equal(refused.response.status, 400)
    assert.match(refused.body, /timed out or was already used/)
    assert.ok(await passwordWorks(gw, ADMINS_CHOICE))
    assert.equal(await passwordWorks(gw, NEW_PASSWORD), false)
  })

  it('on a process whose clock runs ahead of the database\'s, a password set elsewhere after the page was shown still ends that login', { skip: backend.name !== 'PostgreSQL' && 'SQLite\'s clock is the machine\'s own' }, async () => {
    await setPassword(OLD_PASSWORD)
    const browser = new Browser()
    const loginPage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url)
    // The page is shown by a process whose clock is two minutes ahead (the test's own process: the gateway runs in it).
    const machineNow = Date.now
    Date.now = () => machineNow() + 120_000
    let updatePage: Page
    try {
      updatePage = await browser.submit(loginPage, { username: 'alice', password: OLD_PASSWORD }, { stopBefore: toApplication })
    } finally {
      Date.now = machineNow
    }
    assert.ok(isUpdatePasswordPage(updatePage))
    const ADMINS_CHOICE = 'set-by-an-administrator-8'
    await setPassword(ADMINS_CHOICE)
    const refused = await browser.submit(updatePage, { 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }, { stopBefore: toApplication })
    assert.equal(refused.response.status, 400)
    assert.match(refused.body, /timed out or was already used/)
    assert.ok(await passwordWorks(gw, ADMINS_CHOICE))
    assert.equal(await passwordWorks(gw, NEW_PASSWORD), false)
  })

  it('an administrator ending the account\'s sessions while the page is open ends that login too: its form sets nothing, and signs no one in', async () => {
    for (const signedInAlready of [false, true]) {
      const browser = signedInAlready ? await signedInBrowser() : new Browser()
      if (!signedInAlready) await setPassword(OLD_PASSWORD)
      const first = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
      const updatePage = signedInAlready ? first : await browser.submit(first, { username: 'alice', password: OLD_PASSWORD }, { stopBefore: toApplication })
      assert.ok(isUpdatePasswordPage(updatePage), `signed in already: ${signedInAlready}`)
      const endedCookie = browser.cookie(gw.url, 'gateway_sessionid')
      const user = await gw.store.users.findByUsername('alice')
      const ended = await gw.fetch(`/api/gateway/v1/users/${user!.id}/sessions/`, { method: 'DELETE', headers: adminAuth })
      assert.ok(ended.status < 300, String(ended.status))
      const refused = await browser.submit(updatePage, { 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }, { stopBefore: toApplication })
      assert.equal(refused.stoppedAt, undefined, `signed in already: ${signedInAlready}`)
      assert.equal(refused.response.status, 400)
      assert.match(refused.body, /timed out or was already used/)
      assert.equal(browser.cookie(gw.url, 'gateway_sessionid'), endedCookie, 'no gateway session was opened for the browser')
      assert.ok(await passwordWorks(gw, OLD_PASSWORD), 'nothing was changed')
    }
  })

  it('someone the client\'s access rules refuse gets the refusal, not the page', async () => {
    await setPassword(OLD_PASSWORD)
    const browser = new Browser()
    const loginPage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD', { client_id: 'guarded' }).url)
    const done = await browser.submit(loginPage, { username: 'alice', password: OLD_PASSWORD }, { stopBefore: toApplication })
    const answer = answerOf(done.stoppedAt)
    assert.equal(answer.get('error'), 'access_denied')
    assert.equal(answer.get('code'), null)
  })

  it('a browser signed in at the realm moments ago gets the update page at once; one signed in longer ago logs in again first', async () => {
    const browser = await signedInBrowser()

    const recent = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(recent), recent.body.slice(0, 300))
    const cancelled = await browser.submit(recent, { 'cancel-aia': 'true' }, { stopBefore: toApplication })
    assert.equal(answerOf(cancelled.stoppedAt).get('kc_action_status'), 'cancelled')

    // Past Keycloak's five minutes since the password: its realm session, and the gateway session its login opened.
    await withClockAhead(600, () => reauthenticatedForUpdate(browser))
  })

  it('a current password the policy now refuses is answered for the policy, as a wrong guess as long is: the page tells no one whether it is right', async () => {
    const browser = await signedInBrowser()
    const updatePage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(updatePage))
    const setMinimum = async (length: number) => {
      const changed = await gw.fetch('/api/gateway/v1/settings/all/', { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ local_password_min_length: length }) })
      assert.equal(changed.status, 200)
    }
    const WRONG_GUESS = OLD_PASSWORD.replace(/long$/, 'lung')
    assert.equal(WRONG_GUESS.length, OLD_PASSWORD.length)
    await setMinimum(OLD_PASSWORD.length + 5)
    try {
      const [right, wrong] = [
        await browser.submit(updatePage, { 'password-new': OLD_PASSWORD, 'password-confirm': OLD_PASSWORD }, { stopBefore: toApplication }),
        await browser.submit(updatePage, { 'password-new': WRONG_GUESS, 'password-confirm': WRONG_GUESS }, { stopBefore: toApplication }),
      ]
      assert.equal(right.response.status, 400)
      assert.match(right.body, /too short/)
      assert.equal(right.body, wrong.body)
    } finally {
      await setMinimum(12)
    }
    assert.ok(await passwordWorks(gw, OLD_PASSWORD), 'nothing was changed')
  })

  it('answers of one form sent at once are judged one after another: no more than one guess at the current password, and one password set', async () => {
    const browser = await signedInBrowser()
    const updatePage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(updatePage))
    const guesses = Array.from({ length: 6 }, (_, i) => `${NEW_PASSWORD}-guess-${i}`)
    const answers = await Promise.all(guesses.map((guess) => browser.submit(updatePage, { 'password-new': guess, 'password-confirm': guess }, { stopBefore: toApplication })))
    const set = answers.flatMap((answer, i) => answer.stoppedAt && answerOf(answer.stoppedAt).get('kc_action_status') === 'success' ? [guesses[i]!] : [])
    assert.equal(set.length, 1, `each answer judged against the same current password: ${answers.map((a) => a.stoppedAt ?? a.response.status).join(', ')}`)
    for (const answer of answers.filter((a) => a.stoppedAt === undefined)) {
      // Each waited its turn, and found the form ended by the answer that set a password.
      assert.equal(answer.response.status, 400)
      assert.match(answer.body, /timed out or was already used/)
    }
    assert.ok(await passwordWorks(gw, set[0]!))
  })

  it('answers of one form sent over and over while one is judged: a few wait their turn, the others are refused at once', async () => {
    const browser = await signedInBrowser()
    const updatePage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(updatePage))
    // Every core busy: the first answer's password check waits for one, holding the form's lease meanwhile.
    const { promise: gate, resolve: release } = Promise.withResolvers<void>()
    const held = Array.from({ length: argon2Tasks.limit }, () => argon2Tasks.run(() => gate))
    const sent = 30
    let answers: Promise<Page & { stoppedAt?: string }>[] = []
    try {
      answers = Array.from({ length: sent }, () => browser.submit(updatePage, { 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }, { stopBefore: toApplication }))
      // Those beyond the bound are answered while the first still waits for a core, long before a waiting one gives up.
      const refusedAtOnce = await Promise.all(answers.map((answer) => Promise.race([answer.then((page) => page.response.status), sleep(5000).then(() => 'waiting')])))
      const refusals = refusedAtOnce.filter((status) => status === 409).length
      assert.ok(refusals >= sent - 1 - 8, `${refusedAtOnce.join(', ')}`)
      assert.equal(refusals + refusedAtOnce.filter((status) => status === 'waiting').length, sent)
    } finally {
      release()
      await Promise.all(held)
    }
    const outcomes = await Promise.all(answers)
    assert.equal(outcomes.filter((answer) => answer.stoppedAt && answerOf(answer.stoppedAt).get('kc_action_status') === 'success').length, 1)
    assert.ok(await passwordWorks(gw, NEW_PASSWORD))
  })

  it('an answer whose sender stalls part way holds up no other: the form is read before its answer waits its turn', async () => {
    const browser = await signedInBrowser()
    const updatePage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(updatePage))
    const { head, body } = rawAnswer(browser, updatePage, `${NEW_PASSWORD}-stalled`)
    const stalled = await rawClient(gw.url, '127.0.0.1', Buffer.concat([head, body.subarray(0, 20)]))
    try {
      await eventually(() => stalled.socket.bytesWritten, (written) => written >= head.length + 20, 5000)
      // Past the time the stalled request takes to reach its handler, which it may have reached by now or not.
      await sleep(200)
      const done = await browser.submit(updatePage, { 'password-new': NEW_PASSWORD, 'password-confirm': NEW_PASSWORD }, { stopBefore: toApplication })
      assert.equal(answerOf(done.stoppedAt).get('kc_action_status'), 'success', `${done.response.status}`)
      stalled.socket.write(body.subarray(20))
      await stalled.closed
      assert.match(stalled.received(), /^HTTP\/1\.1 400 /, 'the form, answered meanwhile, is over')
    } finally {
      stalled.socket.destroy()
    }
    assert.ok(await passwordWorks(gw, NEW_PASSWORD))
  })

  it('a device authorization asking for an action logs in as without it: the device gets its tokens, and no password is asked for', async () => {
    await setPassword(OLD_PASSWORD)
    const started = await gw.fetch('/realms/platform/protocol/openid-connect/auth/device', { method: 'POST', body: new URLSearchParams({ client_id: 'tv', scope: 'openid', kc_action: 'UPDATE_PASSWORD' }) })
    assert.equal(started.status, 200)
    const { device_code: deviceCode, user_code: userCode } = await started.json() as { device_code: string; user_code: string }
    const browser = new Browser()
    const confirm = await browser.submit(await browser.navigate(realmUrl(gw, '/device')), { user_code: userCode })
    const loginPage = await browser.submit(confirm, {})
    assert.match(loginPage.body, /name="password"/)
    const done = await browser.submit(loginPage, { username: 'alice', password: OLD_PASSWORD })
    assert.ok(!isUpdatePasswordPage(done), 'no update page')
    assert.match(done.body, /Device login complete/)
    const tokens = await tokenRequest(gw, { client_id: 'tv', grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode })
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
    assert.ok(await passwordWorks(gw, OLD_PASSWORD))
  })

  it('reads a form sent as raw UTF-8 whole, however its bytes are split between reads', async () => {
    const browser = await signedInBrowser()
    const updatePage = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(updatePage))
    const password = 'pässwörd-ünïcode-42'
    const { head, body } = rawAnswer(browser, updatePage, password)
    const split = body.indexOf(Buffer.from('ä')) + 1
    const client = await rawClient(gw.url, '127.0.0.1', Buffer.concat([head, body.subarray(0, split)]))
    await eventually(() => client.socket.bytesWritten, (written) => written >= head.length + split, 5000)
    await sleep(200)
    client.socket.write(body.subarray(split))
    await client.closed
    assert.match(client.received(), /^HTTP\/1\.1 303 /, client.received().slice(0, 300))
    // On to the authorization, the password set: not the page again for a confirmation that differs.
    assert.match(client.received(), /\r\nlocation: [^\r]*\/protocol\/openid-connect\/auth\//)
    assert.ok(await passwordWorks(gw, password))
  })

  it('a browser signed in at the gateway within five minutes gets the page at once, and so does the realm session its gateway session signed in; past five minutes it logs in again first', async () => {
    await setPassword(OLD_PASSWORD)
    /** A browser signed in at the gateway's own login page, never at the realm. */
    const signedInAtGateway = async () => {
      const browser = new Browser()
      await browser.submit(await browser.navigate(`${gw.url}/api/gateway/v1/login/`), { username: 'alice', password: OLD_PASSWORD })
      assert.ok(browser.cookie(gw.url, 'gateway_sessionid'))
      return browser
    }

    const browser = await signedInAtGateway()
    const recent = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
    assert.ok(isUpdatePasswordPage(recent), recent.body.slice(0, 300))
    const cancelled = await browser.submit(recent, { 'cancel-aia': 'true' }, { stopBefore: toApplication })
    assert.equal(answerOf(cancelled.stoppedAt).get('kc_action_status'), 'cancelled')
    assert.ok(browser.cookie(gw.url, 'gatehouse_oidc_session'), 'the gateway session signed the realm in')
    // That realm session's login is the gateway session's, some three minutes ago by now: the page at once again.
    await withClockAhead(200, async () => {
      const profile = await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PROFILE').url, { stopBefore: toApplication })
      assert.ok(isUpdateProfilePage(profile), profile.body.slice(0, 300))
      await browser.submit(profile, { 'cancel-aia': 'true' }, { stopBefore: toApplication })
    })
    // Some three minutes more: the action answered without the password made that login no more recent.
    await withClockAhead(400, () => reauthenticatedForUpdate(browser))

    // Nor is a browser signed in only at the gateway that long ago.
    const gatewayOnly = await signedInAtGateway()
    await withClockAhead(400, async () => {
      const asked = await gatewayOnly.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD').url, { stopBefore: toApplication })
      assert.equal(isUpdatePasswordPage(asked), false)
      assert.match(asked.body, /Please re-authenticate to continue\./)
    })
    assert.equal(gatewayOnly.cookie(gw.url, 'gatehouse_oidc_session'), undefined, 'no realm session was made without the password')
  })

  it('with prompt=none, an action that needs the person is answered interaction_required (login_required without a realm session)', async () => {
    await setPassword(OLD_PASSWORD)
    const browser = new Browser()
    const anonymous = answerOf((await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD', { prompt: 'none' }).url, { stopBefore: toApplication })).stoppedAt)
    assert.equal(anonymous.get('error'), 'login_required')
    await logInAtRealm(browser)
    const answer = answerOf((await browser.navigate(keycloakJsLogin(gw, 'UPDATE_PASSWORD', { prompt: 'none' }).url, { stopBefore: toApplication })).stoppedAt)
    assert.equal(answer.get('error'), 'interaction_required')
    assert.equal(answer.get('code'), null)
    assert.equal(answer.get('kc_action_status'), null)
  })

  it('an action the realm does not have goes back with kc_action_status=error alone, as Keycloak answers one not configured', async () => {
    await setPassword(OLD_PASSWORD)
    const browser = new Browser()
    const loginPage = await browser.navigate(keycloakJsLogin(gw, 'delete_account').url)
    const done = await browser.submit(loginPage, { username: 'alice', password: OLD_PASSWORD }, { stopBefore: toApplication })
    const answer = answerOf(done.stoppedAt)
    assert.equal(answer.get('kc_action_status'), 'error')
    assert.equal(answer.get('kc_action'), null)
    assert.ok(answer.get('code'))
    // In every response mode: form_post's page posts it to the application.
    const posted = await browser.navigate(keycloakJsLogin(gw, 'VERIFY_EMAIL', { response_mode: 'form_post' }).url, { stopBefore: toApplication })
    const postedForm = parseForm(posted.body)
    assert.equal(postedForm.action, CLIENT_REDIRECT)
    assert.equal(postedForm.fields.kc_action_status, 'error')
    assert.ok(postedForm.fields.code)
    for (const action of ['CONFIGURE_TOTP', 'update_password', 'update_profile', 'webauthn-register']) {
      const signedIn = await browser.navigate(keycloakJsLogin(gw, action).url, { stopBefore: toApplication })
      const again = answerOf(signedIn.stoppedAt)
      assert.equal(again.get('kc_action_status'), 'error', action)
      assert.ok(again.get('code'), action)
    }
  })

  it('with prompt=none, an action the realm does not have is no interaction: a signed-in browser gets its code at once with kc_action_status=error', async () => {
    await setPassword(OLD_PASSWORD)
    const browser = new Browser()
    await logInAtRealm(browser)
    for (const action of ['delete_account', 'CONFIGURE_TOTP']) {
      const answer = answerOf((await browser.navigate(keycloakJsLogin(gw, action, { prompt: 'none' }).url, { stopBefore: toApplication })).stoppedAt)
      assert.equal(answer.get('error'), null, action)
      assert.ok(answer.get('code'), action)
      assert.equal(answer.get('kc_action_status'), 'error', action)
      assert.equal(answer.get('kc_action'), null, action)
    }
  })

  it('an account whose password and profile are kept elsewhere goes back with kc_action_status=error, changing nothing', async () => {
    const browser = await signedInBrowser()
    const user = await gw.store.users.findByUsername('alice')
    await gw.app.accounts.update(user!.id, { source: 'ldap' })
    try {
      for (const action of ['UPDATE_PASSWORD', 'UPDATE_PROFILE']) {
        const done = await browser.navigate(keycloakJsLogin(gw, action).url, { stopBefore: toApplication })
        const answer = answerOf(done.stoppedAt)
        assert.equal(answer.get('kc_action_status'), 'error', action)
        assert.equal(answer.get('kc_action'), null, action)
        assert.ok(answer.get('code'), action)
      }
    } finally {
      await gw.app.accounts.update(user!.id, { source: 'local' })
    }
  })
})
