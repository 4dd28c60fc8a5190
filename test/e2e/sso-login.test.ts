import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { RuleMatch } from '../../src/config/access.ts'
import { loadConfigFile, demoConfigFile } from '../../src/config/load.ts'
import { Browser, linksTo, type Page } from '../helpers/browser.ts'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { offSiteNexts, resolvedOrigin } from '../helpers/open-redirect.ts'
import { LOGIN, openProviderLogin as openLogin, signInUpstream as signInAt, signInWithSso, SSO } from '../helpers/sso.ts'
import { startUpstreamIdp, type IdpUser, type UpstreamIdp } from '../helpers/upstream-idp.ts'

// A real upstream provider (oidc-provider) on one loopback port, a second one on another, and the gateway:
// every step of each sign-in is a real HTTP request made by a client that keeps cookies like a browser.

const callbackOf = (name: string) => `${SSO}${name}/callback/`
const demo = loadConfigFile(demoConfigFile)
/** A service that takes a browser's session, for rules to guard. */
const ruled = (name: string, users: NonNullable<RuleMatch['users']>) => ({ name, prefix: `/${name}/`, upstream: 'builtin:demo', accepts: ['session'], access: [{ allow: { users } }] })

const person = (sub: string, username: string, groups: string[] = []): IdpUser => ({
  sub,
  password: `${username}-upstream-pw`,
  claims: { preferred_username: username, email: `${username}@corp.example`, given_name: username[0]!.toUpperCase() + username.slice(1), family_name: 'Upstream', groups },
})

describe('single sign-on through an upstream OpenID Connect provider', () => {
  let corp: UpstreamIdp
  let partner: UpstreamIdp
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    corp = await startUpstreamIdp({
      alice: person('sub-alice', 'alice', ['gatehouse-admins', 'devs']),
      bob: person('sub-bob', 'bob', ['devs']),
      dave: person('sub-dave', 'dave'),
      erin: person('sub-erin', 'erin'),
      frank: person('sub-frank', 'frank'),
      'admin-upstream': person('sub-admin', 'admin'),
      'admin-shouting': person('sub-admin-shouting', 'ADMIN'),
      'carol-capital': person('sub-carol-capital', 'Carol'),
      gina: person('sub-gina', 'gina'),
      hana: person('sub-hana', 'hana'),
      ivy: { sub: 'sub-ivy', password: 'ivy-upstream-pw', claims: { preferred_username: 'ivy', given_name: 'I\u0000vy\r\n', family_name: '\ud83dUp' + '\u{1F600}'.repeat(200), email: 'ivy\u0000@corp.example' } },
    })
    partner = await startUpstreamIdp({
      carol: person('partner-carol', 'carol'),
      'other-alice': person('partner-alice', 'alice'),
    })
    gw = await startGateway({
      logLines,
      config: {
        services: [
          ...demo.services,
          // Rules written for a local `hana` before her account exists: the first trusts any source with the name.
          ruled('named-alone', ['hana']),
          ruled('named-local', [{ username: 'hana', source: 'local' }]),
          ruled('named-sso', [{ username: 'hana', source: 'sso' }]),
        ],
        sso: [
          corp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret', superuser_groups: ['gatehouse-admins'], named_groups: { developers: ['devs'] } }),
          partner.ssoConfig({ name: 'partner', label: 'Partner', client_id: 'gatehouse-at-partner', client_secret: 'partner-secret', token_endpoint_auth_method: 'client_secret_basic' }),
          { name: 'down', label: 'Down', issuer: 'http://127.0.0.1:1', client_id: 'x', allow_insecure_http: true, timeout_seconds: 2 },
          corp.ssoConfig({ name: 'misconfigured', label: 'Misconfigured', client_id: 'gatehouse-2', client_secret: 'not-the-secret' }),
        ],
      },
    })
    corp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [gw.url + callbackOf('corp')] })
    partner.addClient({ client_id: 'gatehouse-at-partner', client_secret: 'partner-secret', redirect_uris: [gw.url + callbackOf('partner')] })
    corp.addClient({ client_id: 'gatehouse-2', client_secret: 'the-secret', redirect_uris: [gw.url + callbackOf('misconfigured')] })
  })
  after(async () => {
    await gw?.close()
    await corp?.close()
    await partner?.close()
  })

  const usersBySource = async (source: string): Promise<any[]> =>
    (await json(await gw.fetch(`/api/gateway/v1/users/?source=${source}&page_size=200`, { headers: adminAuth }))).results
  const userNamed = async (username: string) => (await usersBySource('sso')).find((u) => u.username === username)

  const openProviderLogin = (browser: Browser, label: string, next?: string) => openLogin(gw, browser, label, next)
  const signInUpstream = (browser: Browser, page: Page, login: string, password: string, decision = 'allow') => signInAt(gw, browser, page, login, password, decision)
  const signIn = (label: string, login: string, idp: UpstreamIdp, next?: string) => signInWithSso(gw, label, login, idp, next)

  /** What a refused sign-in must leave unchanged. */
  async function snapshot() {
    const sessions = await gw.store.sessions.list({ offset: 0, limit: 1, now: Date.now() })
    return { users: await gw.store.users.count(), sessions: sessions.count }
  }

  /** Requests a (tampered) callback as an API client would, to read the error code. */
  async function refusedCallback(browser: Browser, url: string): Promise<{ status: number; code: string }> {
    const response = await browser.request(url, { headers: { accept: 'application/json' } })
    assert.equal(response.headers.getSetCookie().some((c) => c.startsWith('gateway_sessionid=')), false, 'no session cookie')
    return { status: response.status, code: (await json(response)).code }
  }

  it('lists every configured provider in ui_auth and as a button on the login page', async () => {
    const uiAuth = await json(await gw.fetch('/api/gateway/v1/ui_auth/'))
    assert.deepEqual(uiAuth.ssos, [
      { name: 'corp', label: 'Corp ID', type: 'oidc', login_url: `${SSO}corp/` },
      { name: 'partner', label: 'Partner', type: 'oidc', login_url: `${SSO}partner/` },
      { name: 'down', label: 'Down', type: 'oidc', login_url: `${SSO}down/` },
      { name: 'misconfigured', label: 'Misconfigured', type: 'oidc', login_url: `${SSO}misconfigured/` },
    ])
    const page = await new Browser().navigate(`${gw.url}${LOGIN}?next=${encodeURIComponent('/api/eda/v1/x?y=1')}`)
    assert.deepEqual(linksTo(page.body, /Sign in with/), [
      `${SSO}corp/?next=${encodeURIComponent('/api/eda/v1/x?y=1')}`,
      `${SSO}partner/?next=${encodeURIComponent('/api/eda/v1/x?y=1')}`,
      `${SSO}down/?next=${encodeURIComponent('/api/eda/v1/x?y=1')}`,
      `${SSO}misconfigured/?next=${encodeURIComponent('/api/eda/v1/x?y=1')}`,
    ])
  })

  it('signs a person in through the whole browser redirect chain and starts a normal session', async () => {
    const browser = new Browser()
    const page = await openProviderLogin(browser, 'Corp ID', '/api/controller/v2/hosts/')
    const start = browser.hops.find((hop) => hop.url.startsWith(`${gw.url}${SSO}corp/`))!
    assert.equal(start.status, 302)
    const authorize = new URL(start.location!)
    assert.equal(authorize.origin + authorize.pathname, `${corp.issuer}/auth`)
    assert.equal(authorize.searchParams.get('response_type'), 'code')
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256')
    assert.ok(authorize.searchParams.get('state') && authorize.searchParams.get('nonce') && authorize.searchParams.get('code_challenge'))
    assert.equal(authorize.searchParams.get('redirect_uri'), gw.url + callbackOf('corp'))
    assert.ok(browser.cookie(`${gw.url}${SSO}`, 'gateway_sso'), 'the sign-in is bound to this browser')
    assert.doesNotMatch(browser.cookieHeader(new URL(`${gw.url}/api/controller/v2/`)), /gateway_sso=/, 'and its cookie is sent only to the sign-in endpoints')

    const consent = await browser.submit(page, { username: 'alice', password: corp.users.get('alice')!.password })
    const end = await browser.submit(consent, { decision: 'allow' })
    const callback = browser.hops.find((hop) => hop.url.startsWith(gw.url + callbackOf('corp')))
    assert.ok(callback, 'came back to the callback')
    assert.equal(callback.status, 302)
    assert.equal(callback.location, '/api/controller/v2/hosts/', 'continues to next')

    assert.equal(end.response.status, 200, end.body)
    const seen = JSON.parse(end.body)
    assert.equal(seen.identity.username, 'alice')
    assert.equal(seen.identity.auth_method, 'session')
    assert.equal(seen.identity.verified, true)
    assert.ok(browser.cookie(gw.url, 'gateway_sessionid'))
    assert.ok(browser.cookie(gw.url, 'csrftoken'))
    assert.equal(browser.cookie(`${gw.url}${SSO}`, 'gateway_sso'), undefined, 'the sign-in cookie is gone')

    const alice = await userNamed('alice')
    assert.equal(alice.source, 'sso')
    assert.equal(alice.external, true)
    assert.equal(alice.email, 'alice@corp.example')
    assert.equal(alice.first_name, 'Alice')
    assert.equal(alice.last_name, 'Upstream')
    assert.equal(alice.is_superuser, true, 'mapped from the groups claim')
    assert.deepEqual(alice.groups, ['developers'])
    assert.ok(alice.last_login)
    assert.equal((await gw.store.users.findByUsername('alice'))!.passwordHash, null, 'no password is kept')
  })

  it('lets a signed-in SSO user create tokens only while allow_external_users_to_create_oauth2_tokens is on', async () => {
    const { browser } = await signIn('Corp ID', 'bob', corp)
    const createToken = () => fetch(`${gw.url}/api/gateway/v1/tokens/`, {
      method: 'POST',
      headers: {
        cookie: browser.cookieHeader(new URL(`${gw.url}/api/gateway/v1/tokens/`)),
        'x-csrftoken': browser.cookie(gw.url, 'csrftoken')!,
        'content-type': 'application/json',
        referer: gw.url + LOGIN,
      },
      body: JSON.stringify({ description: 'from sso' }),
    })
    const me = await json(await fetch(`${gw.url}/api/gateway/v1/me/`, { headers: { cookie: browser.cookieHeader(new URL(gw.url + '/api/gateway/v1/me/')) } }))
    assert.equal(me.results[0].username, 'bob')

    const refused = await createToken()
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'external_users_cannot_create_tokens')

    const patch = await gw.fetch('/api/gateway/v1/settings/', { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ allow_external_users_to_create_oauth2_tokens: true }) })
    assert.equal(patch.status, 200)
    try {
      const created = await createToken()
      assert.equal(created.status, 201)
      const token = (await json(created)).token
      const viaToken = await json(await gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: `Bearer ${token}` } }))
      assert.equal(viaToken.identity.username, 'bob')
    } finally {
      await gw.app.settings.update({ allow_external_users_to_create_oauth2_tokens: false })
    }
  })

  it('finds the same account by issuer and subject when the upstream username and groups change', async () => {
    await signIn('Corp ID', 'dave', corp)
    const before = await userNamed('dave')
    const dave = corp.users.get('dave')!
    dave.claims = { ...dave.claims, preferred_username: 'david', email: 'david@corp.example', groups: ['devs'] }
    try {
      const { page } = await signIn('Corp ID', 'dave', corp, '/api/controller/v2/me/')
      assert.equal(JSON.parse(page.body).identity.username, 'david')
      const after = await userNamed('david')
      assert.equal(after.id, before.id, 'the same account')
      assert.equal(after.email, 'david@corp.example')
      assert.deepEqual(after.groups, ['developers'])
      assert.equal(await userNamed('dave'), undefined)
    } finally {
      dave.claims = { ...dave.claims, preferred_username: 'dave' }
    }
  })

  it('signs in a person whose provider sends control characters, a lone surrogate or overlong names, storing them cleaned', async () => {
    // What people may type into their profile at the provider must not stop their sign-in: the store refuses a NUL.
    const { page } = await signIn('Corp ID', 'ivy', corp, '/api/controller/v2/me/')
    assert.equal(JSON.parse(page.body).identity.username, 'ivy')
    const ivy = await userNamed('ivy')
    assert.equal(ivy.first_name, 'Ivy')
    assert.equal(ivy.last_name, '\uFFFDUp' + '\u{1F600}'.repeat(147), 'cut to 150 characters, none of them halved')
    assert.equal(ivy.email, '', 'an address with a control character is none')
  })

  it('signs people in through each of several providers', async () => {
    const { browser, page } = await signIn('Partner', 'carol', partner)
    // Without a next page, the web interface, as after the password login.
    assert.equal(browser.hops.find((hop) => hop.url.startsWith(gw.url + callbackOf('partner')))!.location, '/ui/', 'the default next')
    assert.equal(page.url, `${gw.url}/ui/`)
    assert.equal(page.response.status, 200)
    assert.ok(browser.hops.some((hop) => hop.url.startsWith(`${partner.issuer}/auth`)))
    assert.ok(!browser.hops.some((hop) => hop.url.startsWith(corp.issuer)), 'the other provider was not involved')
    const carol = await userNamed('carol')
    assert.equal(carol.source, 'sso')
    assert.equal(carol.external, true)
    assert.equal(carol.is_superuser, false)
  })

  it('refuses a username that belongs to a local account or to another provider\'s person, and changes nothing', async () => {
    await signIn('Corp ID', 'alice', corp)
    const before = await snapshot()

    const takeover = new Browser()
    const callback = await signInUpstream(takeover, await openProviderLogin(takeover, 'Partner'), 'other-alice', partner.users.get('other-alice')!.password)
    assert.deepEqual(await refusedCallback(takeover, callback), { status: 403, code: 'sso_identity_conflict' })

    const local = new Browser()
    const localCallback = await signInUpstream(local, await openProviderLogin(local, 'Corp ID'), 'admin-upstream', corp.users.get('admin-upstream')!.password)
    assert.deepEqual(await refusedCallback(local, localCallback), { status: 403, code: 'account_source_conflict' })

    assert.deepEqual(await snapshot(), before)
    const admin = (await gw.store.users.findByUsername('admin'))!
    assert.equal(admin.source, 'local')
    assert.equal((await gw.store.sso.findIdentity(corp.issuer, 'sub-admin')), undefined)
  })

  it('treats a username differing only in case from another account\'s as that account\'s, but lets an account change its own name\'s case', async () => {
    // A realm login ignores case, as Keycloak's does: an `ADMIN` beside `admin` would make both logins fail.
    await signIn('Partner', 'carol', partner)
    const before = await snapshot()
    for (const [login, code] of [['admin-shouting', 'account_source_conflict'], ['carol-capital', 'sso_identity_conflict']] as const) {
      const browser = new Browser()
      const callback = await signInUpstream(browser, await openProviderLogin(browser, 'Corp ID'), login, corp.users.get(login)!.password)
      assert.deepEqual(await refusedCallback(browser, callback), { status: 403, code }, login)
    }
    assert.deepEqual(await snapshot(), before)

    await signIn('Corp ID', 'gina', corp)
    const gina = corp.users.get('gina')!
    try {
      gina.claims = { ...gina.claims, preferred_username: 'Carol' }
      const browser = new Browser()
      const callback = await signInUpstream(browser, await openProviderLogin(browser, 'Corp ID'), 'gina', gina.password)
      assert.deepEqual(await refusedCallback(browser, callback), { status: 403, code: 'sso_identity_conflict' }, 'a rename to another account\'s name in another case')
      gina.claims = { ...gina.claims, preferred_username: 'Gina' }
      const { page } = await signIn('Corp ID', 'gina', corp, '/api/controller/v2/me/')
      assert.equal(JSON.parse(page.body).identity.username, 'Gina', 'its own name in another case')
    } finally {
      gina.claims = { ...gina.claims, preferred_username: 'gina' }
    }
  })

  it('lets a rule name a user with their source, which an upstream provider choosing that name does not meet', async () => {
    // A name alone is trusted from every source: the provider picks its people's usernames (docs/access.md).
    const { browser } = await signIn('Corp ID', 'hana', corp)
    const status = async (prefix: string) => (await browser.request(`${gw.url}${prefix}pipelines`, { headers: { accept: 'application/json' } })).status
    assert.equal(await status('/named-alone/'), 200)
    assert.equal(await status('/named-local/'), 403)
    assert.equal(await status('/named-sso/'), 200)
  })

  it('refuses a disabled account, and leaves it as it was whatever the provider now says of its person', async () => {
    await signIn('Corp ID', 'erin', corp)
    await gw.app.accounts.update((await userNamed('erin')).id, { isActive: false })
    const disabled = await userNamed('erin')
    const before = await snapshot()
    const upstream = corp.users.get('erin')!
    const claims = upstream.claims
    // What an administrator disabled the account for may be what its person still has upstream: the superuser group.
    upstream.claims = { ...claims, email: 'erin@elsewhere.example', given_name: 'Changed', groups: ['gatehouse-admins', 'devs'] }
    try {
      const browser = new Browser()
      const callback = await signInUpstream(browser, await openProviderLogin(browser, 'Corp ID'), 'erin', upstream.password)
      assert.deepEqual(await refusedCallback(browser, callback), { status: 401, code: 'account_disabled' })
    } finally {
      upstream.claims = claims
    }
    assert.deepEqual(await snapshot(), before)
    const after = await userNamed('erin')
    assert.equal(after.is_active, false, 'single sign-on does not re-enable it')
    assert.deepEqual(after, disabled, 'nor change its profile, groups or flags')
  })

  it('goes only to a same-site next', async () => {
    const { browser } = await signIn('Corp ID', 'bob', corp, 'https://evil.example/steal')
    const callback = browser.hops.find((hop) => hop.url.startsWith(gw.url + callbackOf('corp')))!
    assert.equal(callback.location, '/ui/')
  })

  it('never sends the browser to another site after signing in, however the next page is spelled', async () => {
    const site = new URL(gw.url).origin
    for (const next of offSiteNexts(gw.url)) {
      const browser = new Browser()
      const providerLogin = await browser.navigate(`${gw.url}${SSO}corp/?next=${encodeURIComponent(next)}`)
      const callback = await signInUpstream(browser, providerLogin, 'bob', corp.users.get('bob')!.password)
      const response = await browser.request(callback)
      assert.equal(response.status, 302, JSON.stringify(next))
      assert.ok(browser.cookie(gw.url, 'gateway_sessionid'), 'a genuine sign-in')
      const location = response.headers.get('location')!
      assert.equal(resolvedOrigin(location, callback), site, `${JSON.stringify(next)} -> ${location}`)
    }
  })

  describe('bad input is refused clearly and changes nothing', () => {
    /** A sign-in of frank up to the redirect back, for a test to tamper with. */
    async function pendingCallback(): Promise<{ browser: Browser; callback: URL }> {
      const browser = new Browser()
      const callback = await signInUpstream(browser, await openProviderLogin(browser, 'Corp ID'), 'frank', corp.users.get('frank')!.password)
      return { browser, callback: new URL(callback) }
    }

    it('refuses a wrong state, leaving the browser\'s own sign-in as it was', async () => {
      const { browser, callback } = await pendingCallback()
      const before = await snapshot()
      const forged = new URL(callback)
      forged.searchParams.set('state', 'x'.repeat(43))
      assert.deepEqual(await refusedCallback(browser, forged.href), { status: 403, code: 'sso_state_mismatch' })
      const another = await pendingCallback()
      assert.deepEqual(await refusedCallback(browser, another.callback.href), { status: 403, code: 'sso_state_mismatch' }, 'another browser\'s answer')
      assert.deepEqual(await snapshot(), before)
      assert.equal(await userNamed('frank'), undefined)

      const genuine = await browser.navigate(callback.href)
      assert.equal(genuine.response.status, 200, 'the genuine answer still signs in')
      assert.equal(genuine.url, `${gw.url}/ui/`)
      await gw.app.accounts.delete((await userNamed('frank')).id)
    })

    it('shows a browser refused before its sign-in is read the login page with its own next', async () => {
      const next = '/api/controller/v2/'
      const browser = new Browser()
      const callback = new URL(await signInUpstream(browser, await openProviderLogin(browser, 'Corp ID', next), 'frank', corp.users.get('frank')!.password))
      const forged = new URL(callback)
      forged.searchParams.set('state', 'x'.repeat(43))
      const page = await browser.navigate(forged.href)
      assert.equal(page.response.status, 403)
      assert.match(page.body, /action="\/api\/gateway\/v1\/login\/"/, 'on the login page')
      assert.ok(linksTo(page.body, /Sign in with Corp ID/)[0]!.endsWith(`?next=${encodeURIComponent(next)}`), 'ready to go on where it was going')
      assert.match(page.body, new RegExp(`name="next" value="${next.replaceAll('/', '\\/')}"`), 'the password form too')

      const genuine = await browser.navigate(callback.href)
      assert.equal(genuine.url, `${gw.url}${next}`, 'the genuine answer still signs in, to its next')
      await gw.app.accounts.delete((await userNamed('frank')).id)
    })

    it('logs a refusal shown as the login page with the code its JSON answer carries', async () => {
      const browser = new Browser()
      const page = await browser.navigate(`${gw.url}${callbackOf('corp')}?state=${'x'.repeat(43)}&code=c`)
      assert.match(page.body, /action="\/api\/gateway\/v1\/login\/"/, 'on the login page')
      const json = await refusedCallback(new Browser(), `${gw.url}${callbackOf('corp')}?state=${'x'.repeat(43)}&code=c`)
      assert.equal(json.code, 'sso_login_unknown', 'no sign-in under way in this browser')
      assert.equal(page.response.status, json.status)
      const line = logLines.find((entry) => entry.msg === 'request' && entry.reqId === page.response.headers.get('x-request-id'))
      assert.equal(line?.status, json.status, JSON.stringify(line))
      assert.equal(line?.code, json.code)
    })

    it('refuses an ID token issued with another nonce', async () => {
      const browser = new Browser()
      const loginPage = await browser.navigate(gw.url + LOGIN)
      const start = await browser.navigate(new URL(linksTo(loginPage.body, /Corp ID/)[0]!, gw.url).href, { stopBefore: (url) => url.startsWith(corp.issuer) })
      const authorize = new URL(start.stoppedAt!)
      authorize.searchParams.set('nonce', 'a-nonce-this-browser-never-sent')
      const callback = await signInUpstream(browser, await browser.navigate(authorize.href), 'frank', corp.users.get('frank')!.password)
      const before = await snapshot()
      assert.deepEqual(await refusedCallback(browser, callback), { status: 403, code: 'sso_nonce_mismatch' })
      assert.deepEqual(await snapshot(), before)
      assert.equal(await userNamed('frank'), undefined)
    })

    it('refuses a code whose PKCE challenge this browser did not make', async () => {
      const browser = new Browser()
      const loginPage = await browser.navigate(gw.url + LOGIN)
      const start = await browser.navigate(new URL(linksTo(loginPage.body, /Corp ID/)[0]!, gw.url).href, { stopBefore: (url) => url.startsWith(corp.issuer) })
      const authorize = new URL(start.stoppedAt!)
      authorize.searchParams.set('code_challenge', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM')
      const callback = await signInUpstream(browser, await browser.navigate(authorize.href), 'frank', corp.users.get('frank')!.password)
      const before = await snapshot()
      assert.deepEqual(await refusedCallback(browser, callback), { status: 400, code: 'sso_code_rejected' })
      assert.deepEqual(await snapshot(), before)
    })

    it('refuses a callback without a code, or with a parameter given twice', async () => {
      const { browser, callback } = await pendingCallback()
      const before = await snapshot()
      callback.searchParams.delete('code')
      assert.deepEqual(await refusedCallback(browser, callback.href), { status: 400, code: 'sso_code_missing' })

      const second = await pendingCallback()
      second.callback.searchParams.append('code', 'another')
      assert.deepEqual(await refusedCallback(second.browser, second.callback.href), { status: 400, code: 'sso_callback_invalid' })
      assert.deepEqual(await snapshot(), before)
    })

    it('shows the login page with the reason when the person declines at the provider', async () => {
      const before = await snapshot()
      const browser = new Browser()
      const callback = await signInUpstream(browser, await openProviderLogin(browser, 'Corp ID', '/api/controller/v2/'), 'frank', corp.users.get('frank')!.password, 'deny')
      assert.equal(new URL(callback).searchParams.get('error'), 'access_denied')
      const page = await browser.navigate(callback)
      assert.equal(page.response.status, 401)
      assert.match(page.response.headers.get('content-type')!, /text\/html/)
      assert.match(page.body, /role="alert"/, 'with a message')
      assert.match(page.body, /action="\/api\/gateway\/v1\/login\/"/, 'on the login page')
      assert.ok(linksTo(page.body, /Sign in with Corp ID/)[0]!.endsWith(`?next=${encodeURIComponent('/api/controller/v2/')}`), 'ready to try again')
      assert.equal(browser.cookie(gw.url, 'gateway_sessionid'), undefined)

      const json = new Browser()
      const again = await signInUpstream(json, await openProviderLogin(json, 'Corp ID'), 'frank', corp.users.get('frank')!.password, 'deny')
      assert.deepEqual(await refusedCallback(json, again), { status: 401, code: 'sso_access_denied' })
      assert.deepEqual(await snapshot(), before)
    })

    it('refuses a replayed callback, one from another browser, and an expired sign-in', async () => {
      const { browser, callback } = await pendingCallback()
      const cookie = browser.cookie(`${gw.url}${SSO}`, 'gateway_sso')!
      const first = await browser.navigate(callback.href)
      assert.equal(first.response.status, 200, 'the first use signs in')
      const before = await snapshot()
      const replay = await fetch(callback, { headers: { cookie: `gateway_sso=${cookie}`, accept: 'application/json' }, redirect: 'manual' })
      assert.equal(replay.status, 400)
      assert.equal((await json(replay)).code, 'sso_login_unknown')
      assert.equal(replay.headers.getSetCookie().some((c) => c.startsWith('gateway_sessionid=')), false)

      const other = await pendingCallback()
      assert.deepEqual(await refusedCallback(new Browser(), other.callback.href), { status: 400, code: 'sso_login_unknown' })

      const late = await pendingCallback()
      await gw.store.database.db.updateTable('sso_logins').set({ expires_at: Date.now() - 1 }).execute()
      assert.deepEqual(await refusedCallback(late.browser, late.callback.href), { status: 400, code: 'sso_login_expired' })
      assert.deepEqual(await snapshot(), before)
    })

    it('answers 404 for a provider that is not configured, and for HEAD', async () => {
      for (const path of [`${SSO}nope/`, `${SSO}nope/callback/?code=x&state=y`]) {
        const response = await gw.fetch(path)
        assert.equal(response.status, 404)
        assert.equal((await json(response)).code, 'sso_provider_unknown')
      }
      const head = await gw.fetch(`${SSO}corp/`, { method: 'HEAD' })
      assert.equal(head.status, 404)
      assert.equal(head.headers.getSetCookie().length, 0, 'no sign-in was started')
    })

    it('answers 502 when the provider refuses the client (a wrong client secret)', async () => {
      const before = await snapshot()
      const browser = new Browser()
      const callback = await signInUpstream(browser, await openProviderLogin(browser, 'Misconfigured'), 'frank', corp.users.get('frank')!.password)
      assert.deepEqual(await refusedCallback(browser, callback), { status: 502, code: 'sso_provider_error' })
      assert.deepEqual(await snapshot(), before)
    })

    it('answers 503 when the provider cannot be reached, and stores nothing', async () => {
      const rows = async () => (await gw.store.database.db.selectFrom('sso_logins').select('id').execute()).length
      const before = await rows()
      const response = await gw.fetch(`${SSO}down/`)
      assert.equal(response.status, 503)
      assert.equal((await json(response)).code, 'sso_provider_unavailable')
      assert.equal(response.headers.getSetCookie().length, 0)
      assert.equal(await rows(), before)

      const page = await new Browser().navigate(`${gw.url}${SSO}down/?next=/api/eda/`)
      assert.equal(page.response.status, 503)
      assert.match(page.body, /role="alert"/)
      assert.deepEqual(linksTo(page.body, /Sign in with Down/), [`${SSO}down/?next=${encodeURIComponent('/api/eda/')}`], 'a browser stays on the login page, ready to retry')
    })
  })
})
