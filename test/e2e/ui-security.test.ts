import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { launchChromium, logIn, openPage, pageDrawn, signIn, type SignedIn, type WatchedPage } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { OFF_SITE_NEXTS } from '../helpers/open-redirect.ts'
import { LOGIN, login, withCsrf } from '../helpers/session.ts'
import { createToken } from '../helpers/tokens.ts'

const HTML = { accept: 'text/html,application/xhtml+xml' }
/** Markup that would show as an element carrying `data-injected`, and retitle the page, if anything parsed it. */
const MARKUP = `<img data-injected src=x onerror="document.title='injected'"><b data-injected>x</b>`

/**
 * The web interface and the pages around it (login, realm login, error pages) as an attacker meets them: another
 * site framing them or forging their requests, markup in addresses, a planted session, a shared computer after
 * logout, a cache keeping a secret shown once, a login that would send the browser elsewhere.
 */
describe('the web interface against attacks from other sites and other people', () => {
  let gw: TestGateway
  let browser: Browser
  let vicId: number
  /** The admin's session, logged in once for the tests that look at the pages behind the login, not at the login. */
  let adminSignedIn: SignedIn

  before(async () => {
    const demo = loadConfigFile(demoConfigFile)
    gw = await startGateway({
      config: {
        // Takes the realm's tokens and no gateway session: a browser is sent to the realm's login page.
        services: [...demo.services, { name: 'realm-app', prefix: '/realm-app/', upstream: 'builtin:demo', accepts: ['oidc'], oidc: { realm: 'platform', client_id: 'end-users' } }],
      },
    })
    vicId = (await gw.app.accounts.create({ username: 'vic', password: 'vic-password-long' })).id
    browser = await launchChromium()
    adminSignedIn = await signIn(browser, gw.url, 'admin', ADMIN_PASSWORD)
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  const inBrowser = async (body: (watched: WatchedPage) => Promise<void>) => {
    const watched = await openPage(browser)
    try {
      await body(watched)
    } finally {
      await watched.context.close()
    }
  }
  const cookieValue = async (context: BrowserContext, name: string) => (await context.cookies(gw.url)).find((c) => c.name === name)?.value
  const apiStatus = async (sessionId: string) => (await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${sessionId}` } })).status
  const assertNothingInjected = async (page: Page, what: string) => {
    assert.equal(await page.locator('[data-injected]').count(), 0, `${what}: no markup became elements`)
    assert.doesNotMatch(await page.title(), /injected/, `${what}: no handler ran`)
  }

  it('lets no other site frame any HTML page, runs no script a page does not name, and tells no other site its address', async () => {
    const admin = await login(gw, 'admin', ADMIN_PASSWORD)
    const user = await login(gw, 'vic', 'vic-password-long')
    const realmLogin = await gw.fetch('/realm-app/page', { headers: HTML })
    const authorization = await gw.fetch(new URL(realmLogin.headers.get('location')!, gw.url).pathname + new URL(realmLogin.headers.get('location')!, gw.url).search, { headers: HTML })
    const realmLoginPage = new URL(authorization.headers.get('location')!, gw.url)
    const cookiesOf = (response: Response) => response.headers.getSetCookie().map((header) => header.split(';', 1)[0]).join('; ')
    const pages: [string, Response][] = [
      ['the interface', await gw.fetch('/ui/account', { headers: { ...HTML, cookie: user.cookie } })],
      ['an administration page refused', await gw.fetch('/ui/admin/users', { headers: { ...HTML, cookie: user.cookie } })],
      ['no page', await gw.fetch('/ui/nowhere', { headers: { ...HTML, cookie: admin.cookie } })],
      ['the login page', await gw.fetch(`${LOGIN}?next=/ui/`, { headers: HTML })],
      ['a failed login', await gw.fetch(LOGIN, { method: 'POST', headers: { ...HTML, 'content-type': 'application/x-www-form-urlencoded', origin: gw.url }, body: 'username=vic&password=wrong' })],
      ['the realm\'s login page', await gw.fetch(realmLoginPage.pathname, { headers: { ...HTML, cookie: cookiesOf(authorization) } })],
      ['the realm\'s error page', await gw.fetch('/realms/platform/protocol/openid-connect/auth?client_id=nobody', { headers: HTML })],
      ['the device page', await gw.fetch('/realms/platform/device', { headers: HTML })],
      ['the realm\'s logout page', await gw.fetch('/realms/platform/protocol/openid-connect/logout', { headers: HTML })],
      ['an error page', await gw.fetch('/nowhere', { headers: HTML })],
      ['an API refusal', await gw.fetch('/api/gateway/v1/settings/', { headers: { ...HTML, cookie: user.cookie } })],
      ['the API\'s documentation', await gw.fetch('/api/gateway/v1/docs/', { headers: HTML })],
    ]
    for (const [what, response] of pages) {
      assert.match(response.headers.get('content-type') ?? '', /^text\/html/, `${what}: ${response.status}`)
      const csp = response.headers.get('content-security-policy') ?? ''
      assert.match(csp, /frame-ancestors 'none'/, `${what}: ${csp}`)
      assert.equal(response.headers.get('x-frame-options'), 'DENY', what)
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', what)
      // The page's address (a login's parameters, a path someone typed) is for this site only, never another's.
      assert.match(response.headers.get('referrer-policy') ?? '', /^(same-origin|no-referrer)$/, what)
      const scripts = /script-src ([^;]*)/.exec(csp)?.[1] ?? /default-src ([^;]*)/.exec(csp)?.[1]
      assert.ok(scripts, `${what}: a policy for scripts in ${csp}`)
      for (const source of scripts.trim().split(/\s+/)) assert.match(source, /^'(none|self|sha256-[A-Za-z0-9+/=]+)'$/, `${what}: script source ${source}`)
      // Injected styles can read a page's values out (attribute selectors loading images): none but the page's own.
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `${what}: ${csp}`)
      const inline = [...(await response.text()).matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)].filter(([, attributes, body]) => !/\bsrc=/i.test(attributes!) && body!.trim())
      if (inline.length) assert.match(scripts, /sha256-/, `${what}: an inline script only by its hash`)
    }
  })

  it('shows markup in the address and in error messages as text, never as markup', () => inBrowser(async ({ page, context, problems }) => {
    const m = encodeURIComponent(MARKUP)
    await page.goto(`${gw.url}${LOGIN}?next=${m}`)
    await assertNothingInjected(page, 'the login page with markup as next')
    await page.goto(`${gw.url}/nowhere/${m}`)
    await assertNothingInjected(page, 'an error page for an address with markup')
    await page.goto(`${gw.url}/realms/platform/protocol/openid-connect/auth?client_id=${m}&response_type=${m}&redirect_uri=${m}&scope=${m}&state=${m}`)
    await assertNothingInjected(page, 'the realm\'s error page for parameters with markup')
    await context.addCookies(adminSignedIn.cookies)
    for (const path of [`/ui/admin/users?username=${m}`, `/ui/admin/tokens?user=${m}`, `/ui/admin/activity?username=${m}&object_name=${m}&address=${m}&code=${m}&operation=${m}&object_type=${m}`, `/ui/${m}`, `/ui/admin/users/${m}`]) {
      await page.goto(gw.url + path)
      await pageDrawn(page)
      await assertNothingInjected(page, path)
    }
    assert.deepEqual(problems, [], 'no script was refused either')
  }))

  it('starts a new session at every login: neither a session planted before nor the one held before is kept', () => inBrowser(async ({ page, context }) => {
    // Another site (or someone at the keyboard before) sets the cookies the victim then logs in with.
    await context.addCookies([
      { name: 'gateway_sessionid', value: 'PLANTEDPLANTEDPLANTEDPLANTEDPLANTEDPLANTED0', url: gw.url },
      { name: 'csrftoken', value: 'plantedplantedplantedplantedplan', url: gw.url },
    ])
    await logIn(page, gw.url, 'vic', 'vic-password-long')
    const first = await cookieValue(context, 'gateway_sessionid')
    assert.ok(first && !first.startsWith('PLANTED'), 'a session id of the gateway\'s choosing')
    assert.notEqual(await cookieValue(context, 'csrftoken'), 'plantedplantedplantedplantedplan', 'the CSRF token changes at login')
    assert.equal(await apiStatus(first), 200)

    // Logging in again while logged in replaces the session: the earlier id is dead.
    await page.goto(`${gw.url}${LOGIN}`)
    await page.fill('#username', 'vic')
    await page.fill('#password', 'vic-password-long')
    await Promise.all([page.waitForURL((url) => url.pathname.startsWith('/ui/')), page.click('button[type=submit]')])
    const second = await cookieValue(context, 'gateway_sessionid')
    assert.ok(second && second !== first)
    assert.equal(await apiStatus(first), 401, 'the session held before the login ended')
    assert.equal(await apiStatus(second), 200)
  }))

  it('logs out completely: the session ends on the server, its cookie goes, and going back shows no account', () => inBrowser(async ({ page, context }) => {
    // Signed in at the realm's login page, so at the realm and at the gateway alike.
    await page.goto(`${gw.url}/realm-app/page`)
    assert.match(new URL(page.url()).pathname, /^\/realms\/platform\//)
    await page.fill('#username', 'vic')
    await page.fill('#password', 'vic-password-long')
    await Promise.all([page.waitForURL(`${gw.url}/realm-app/page`), page.click('button[type=submit]')])
    assert.ok((await context.cookies()).some((c) => c.name === 'gatehouse_oidc_session'), 'the realm\'s session cookie before logout')
    await page.goto(`${gw.url}/ui/account`)
    await page.locator('main h1').first().waitFor()
    const session = await cookieValue(context, 'gateway_sessionid')
    assert.ok(session)

    await Promise.all([page.waitForURL((url) => url.pathname === LOGIN), page.getByRole('button', { name: 'Log out' }).click()])
    assert.equal(await cookieValue(context, 'gateway_sessionid'), undefined, 'the session cookie is gone')
    // oidc-provider's cookie of the finished login (at that login's own path, which a logout never sees) may stay.
    assert.deepEqual((await context.cookies()).filter((c) => /^(gatehouse_oidc_session|KEYCLOAK)/i.test(c.name)).map((c) => c.name), [], 'and the realm\'s session cookies')
    assert.equal(await apiStatus(session), 401, 'the session ended on the server')
    await page.goBack()
    await page.waitForLoadState('load')
    assert.equal(new URL(page.url()).pathname, LOGIN, 'going back asks for the login again')
    assert.doesNotMatch(await page.locator('body').innerText(), /vic/, 'and shows nothing of the account')
  }))

  it('logs out a browser that kept its session over a restart but not the csrftoken, which lasts only as long as the browser', () => inBrowser(async ({ page, context }) => {
    await logIn(page, gw.url, 'vic', 'vic-password-long', '/ui/account')
    const session = await cookieValue(context, 'gateway_sessionid')
    assert.ok(session)
    const csrf = (await context.cookies(gw.url)).find((c) => c.name === 'csrftoken')
    assert.equal(csrf?.expires, -1, 'the csrftoken is a cookie of the browser\'s session')
    // What a browser restart leaves: the session cookie (it has a Max-Age), without the csrftoken.
    await context.clearCookies({ name: 'csrftoken' })
    await page.goto(`${gw.url}/ui/account`)
    await pageDrawn(page)
    await Promise.all([page.waitForURL((url) => url.pathname === LOGIN), page.getByRole('button', { name: 'Log out' }).click()])
    assert.equal(await apiStatus(session), 401, 'the session ended on the server')
  }))

  it('makes its changes with the gateway\'s own csrftoken, not one planted for the pages\' path', () => inBrowser(async ({ page, context }) => {
    await logIn(page, gw.url, 'vic', 'vic-password-long', '/ui/tokens')
    // What a sibling subdomain, or a service published on this host, can set: listed first on the pages, never sent to the API.
    await context.addCookies([{ name: 'csrftoken', value: 'P'.repeat(64), domain: new URL(gw.url).hostname, path: '/ui/' }])
    await page.reload()
    await page.getByRole('heading', { name: 'My tokens', level: 1 }).waitFor()
    assert.match(await page.evaluate<string>('document.cookie'), /^csrftoken=P{64}/, 'the planted cookie comes first')
    await page.getByLabel('Description').fill('made past a planted cookie')
    await page.getByRole('button', { name: 'Create token' }).click()
    await page.locator('#new-token-value').waitFor()
    const tokens = await json(await gw.fetch(`/api/gateway/v1/tokens/?user=${vicId}`, { headers: adminAuth })) as { results: { description: string }[] }
    assert.ok(tokens.results.some((token) => token.description === 'made past a planted cookie'))
  }))

  it('tells the browser which password each password field takes', () => inBrowser(async ({ page, context, problems }) => {
    const fieldsOf = async (what: string) => {
      await page.locator('input[type=password]').first().waitFor()
      const fields = await page.locator('input[type=password]').evaluateAll((inputs) => inputs.map((input) => input.getAttribute('autocomplete')))
      assert.ok(fields.length > 0, what)
      for (const autocomplete of fields) assert.match(autocomplete ?? '', /^(current-password|new-password)$/, `${what}: autocomplete=${autocomplete}`)
      return fields
    }
    await page.goto(`${gw.url}/realm-app/page`)
    assert.deepEqual(await fieldsOf('the realm\'s login page'), ['current-password'])
    await page.goto(`${gw.url}/ui/`)
    assert.deepEqual(await fieldsOf('the login page'), ['current-password'])
    assert.equal(await page.getAttribute('#username', 'autocomplete'), 'username')
    await context.addCookies(adminSignedIn.cookies)
    for (const [path, expected] of [['/ui/account', ['current-password', 'new-password']], ['/ui/admin/users/new', ['new-password']], [`/ui/admin/users/${vicId}`, ['new-password']]] as const) {
      await page.goto(gw.url + path)
      assert.deepEqual(await fieldsOf(path), expected, path)
    }
    // An administrator setting another account's password: the form names that account for the password manager.
    const named = await page.locator('form[aria-labelledby=password-heading] input[autocomplete=username]').evaluateAll((inputs) => inputs.map((input) => (input as unknown as { value: string }).value))
    assert.deepEqual(named, ['vic'], 'the Set password form names its account')
    assert.deepEqual(problems, [], 'the login pages\' own style is not refused')
  }))

  it('refuses every change the interface makes without the session\'s CSRF token, and changes nothing', async () => {
    const admin = await login(gw, 'admin', ADMIN_PASSWORD)
    const other = await login(gw, 'admin', ADMIN_PASSWORD)
    const victim = await login(gw, 'vic', 'vic-password-long')
    const { organization, team } = await createOrgAndTeam(gw, 'Forged Org', 'Forged Team')
    const assignment = (await grant(gw, 'vic', 'Team Member', team)).body.id
    const token = await createToken(gw, adminAuth, { description: 'kept' })
    const application = (await call(gw, 'POST', 'applications/', { name: 'kept', client_type: 'confidential', authorization_grant_type: 'password' })).body.id
    const victimSession = (await json(await gw.fetch('/api/gateway/v1/me/sessions/', { headers: { cookie: victim.cookie } }))).results[0].id
    const before = await state()

    const changes: [string, string, unknown?][] = [
      ['PATCH', 'me/', { first_name: 'Forged' }],
      ['POST', 'me/password/', { current_password: ADMIN_PASSWORD, new_password: 'forged-password-long' }],
      ['POST', 'tokens/', { description: 'forged' }],
      ['DELETE', `tokens/${token.id}/`],
      ['POST', 'tokens/revoke/', {}],
      ['DELETE', `me/sessions/${victimSession}/`],
      ['POST', 'me/sessions/end_others/'],
      ['POST', 'organizations/', { name: 'Forged' }],
      ['DELETE', `organizations/${organization}/`],
      ['POST', 'teams/', { name: 'Forged', organization }],
      ['DELETE', `teams/${team}/`],
      ['POST', 'role_user_assignments/', { role_definition: 1, user: vicId }],
      ['DELETE', `role_user_assignments/${assignment}/`],
      ['POST', 'users/', { username: 'forged', password: 'forged-password-long' }],
      ['PATCH', `users/${vicId}/`, { is_superuser: true }],
      ['DELETE', `users/${vicId}/`],
      ['DELETE', `users/${vicId}/sessions/`],
      ['DELETE', `sessions/${victimSession}/`],
      ['POST', 'applications/', { name: 'forged', client_type: 'public', authorization_grant_type: 'password' }],
      ['PATCH', `applications/${application}/`, { name: 'forged' }],
      ['POST', `applications/${application}/client_secret/`, { grace_seconds: 0 }],
      ['DELETE', `applications/${application}/`],
      ['POST', '/admin/realms/platform/logout-all'],
      ['PATCH', 'settings/all/', { gateway_basic_auth_enabled: false }],
      ['POST', 'session/'],
      ['POST', 'logout/'],
    ]
    const forged = [
      { what: 'no token', headers: { cookie: admin.cookie } },
      { what: 'another session\'s token', headers: { cookie: admin.cookie, 'x-csrftoken': other.csrf } },
      { what: 'the right token from another site', headers: { ...withCsrf(admin), origin: 'https://evil.example' } },
    ]
    for (const [method, path, body] of changes) {
      for (const { what, headers } of forged) {
        // A path from the root is outside the gateway's API: a realm's admin endpoint, which the Sessions page calls.
        const response = await gw.fetch(path.startsWith('/') ? path : `/api/gateway/v1/${path}`, {
          method,
          headers: { ...headers, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        })
        assert.equal(response.status, 403, `${method} ${path} with ${what}`)
        assert.match((await json(response)).code, /^csrf_/, `${method} ${path} with ${what}`)
      }
    }
    assert.deepEqual(await state(), before, 'nothing changed')
    assert.equal(await apiStatus(admin.sessionId), 200, 'the session still works')
    assert.equal(await apiStatus(victim.sessionId), 200)

    async function state() {
      const read = async (path: string) => (await call(gw, 'GET', path)).body
      return {
        me: (await read('me/')).results[0].first_name,
        users: (await read('users/')).results.map((u: any) => [u.username, u.is_superuser, u.is_active]),
        tokens: (await read('tokens/')).results.map((t: any) => t.id),
        sessions: (await read('sessions/')).count,
        organizations: (await read('organizations/')).results.map((o: any) => o.name),
        teams: (await read('teams/')).results.map((t: any) => t.name),
        assignments: (await read('role_user_assignments/')).count,
        applications: (await read('applications/')).results.map((a: any) => a.name),
        settings: await read('settings/all/'),
      }
    }
  })

  it('keeps every secret shown once out of caches', async () => {
    const admin = await login(gw, 'admin', ADMIN_PASSWORD)
    const write = (path: string, body: unknown) => gw.fetch(`/api/gateway/v1/${path}`, {
      method: 'POST', headers: { ...withCsrf(admin), origin: gw.url, 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body),
    })
    const token = await write('tokens/', { description: 'shown once' })
    assert.equal(token.status, 201)
    assert.equal(token.headers.get('cache-control'), 'no-store')
    assert.match((await json(token)).token, /^gatehouse_pat_/)
    const application = await write('applications/', { name: 'secretive', client_type: 'confidential', authorization_grant_type: 'password' })
    assert.equal(application.status, 201)
    assert.equal(application.headers.get('cache-control'), 'no-store')
    assert.ok((await json(application)).client_secret)
    const shell = await gw.fetch('/ui/tokens', { headers: { ...HTML, cookie: admin.cookie } })
    assert.equal(shell.headers.get('cache-control'), 'no-store', 'the page that shows them')
  })

  it('brings a browser back only to this site after logging in, whatever next says', () => inBrowser(async ({ page }) => {
    await page.route((url) => url.hostname === 'evil.example', (route) => route.fulfill({ status: 200, body: 'evil' }))
    // Each kind once (test/api/login.test.ts tries every spelling over HTTP): absolute, scheme-relative, backslash,
    // a script URL, an encoded slash, a scheme without slashes.
    const kinds = ['https://evil.example/', '//evil.example/x', '/\\evil.example/x', 'javascript:alert(1)', '/%2F/evil.example/', 'https:evil.example']
    assert.ok(kinds.every((next) => OFF_SITE_NEXTS.includes(next)))
    for (const next of kinds) {
      await page.goto(`${gw.url}${LOGIN}?next=${encodeURIComponent(next)}`)
      await page.fill('#username', 'vic')
      await page.fill('#password', 'vic-password-long')
      await Promise.all([page.waitForURL((url) => url.pathname !== LOGIN), page.click('button[type=submit]')])
      assert.equal(new URL(page.url()).origin, gw.url, `${JSON.stringify(next)} -> ${page.url()}`)
    }
  }))
})

