import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { validateConfig, ConfigError } from '../../src/config/load.ts'
import { redirectMatches } from '../../src/oidc/redirects.ts'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, passwordLogin, REALM, realmUrl, realmWith, SERVICE_SECRET, TOKEN_PATH } from '../helpers/oidc.ts'

const APP = 'https://app.example.com'

/** What Keycloak's browser adapters need of a realm besides the protocol: redirect URI rules, CORS, the iframe pages, the account endpoint. */
describe('the realm for browser applications', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({
      config: {
        realms: realmWith([
            { client_id: 'spa', redirect_uris: [`${APP}/*`], web_origins: ['+'], post_logout_redirect_uris: ['+'] },
            { client_id: 'closed', redirect_uris: [`${APP}/cb`], web_origins: [] },
            { client_id: 'under-path', redirect_uris: [`${APP}/app/*`], post_logout_redirect_uris: ['+'] },
            { client_id: 'native', redirect_uris: ['http://127.0.0.1/callback', 'http://localhost/callback', 'http://127.0.0.1:8400/fixed', 'http://intranet.example/callback'], post_logout_redirect_uris: ['+'] },
        ]),
      },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com' })
    await gw.app.accounts.create({ username: 'nemo', password: 'nemo-password' })
  })
  after(() => gw.close())

  const authorize = (clientId: string, redirectUri: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth?${new URLSearchParams({
    client_id: clientId, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
  })}`, { headers: { accept: 'text/html' } })

  it('accepts redirect URIs under a pattern ending in *, and nothing that leaves it', async () => {
    const accepted = await authorize('spa', `${APP}/deep/page?x=1`)
    assert.equal(accepted.status, 302)
    assert.match(accepted.headers.get('location')!, /\/login-actions\//)
    for (const uri of ['https://app.example.com.evil.example/', 'https://evil.example/?https://app.example.com/', 'http://app.example.com/x']) {
      const refused = await authorize('spa', uri)
      assert.equal(refused.status, 400, uri)
      assert.equal(refused.headers.get('location'), null, uri)
      assert.match(await refused.text(), /<p>Invalid parameter: redirect_uri<\/p>/, 'in Keycloak\'s words')
    }
  })

  it('refuses PKCE parameters in Keycloak\'s words (AuthorizationEndpointChecker), sent back to the client', async () => {
    const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
    const refusal = async (clientId: string, pkce: Record<string, string>, responseMode = 'query') => {
      const response = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth?${new URLSearchParams({ client_id: clientId, redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'st', response_mode: responseMode, ...pkce })}`)
      assert.ok(response.status >= 300 && response.status < 400, `${clientId} ${JSON.stringify(pkce)}: ${response.status}`)
      const location = new URL(response.headers.get('location')!)
      assert.equal(`${location.origin}${location.pathname}`, CLIENT_REDIRECT)
      const answer = new URLSearchParams(responseMode === 'fragment' ? location.hash.slice(1) : location.search)
      assert.equal(answer.get('error'), 'invalid_request', `${clientId} ${JSON.stringify(pkce)}`)
      assert.equal(answer.get('state'), 'st')
      return answer.get('error_description')
    }
    // end-users is public, so PKCE (S256) is required of it; reports is confidential, so PKCE is optional.
    const cases: [string, Record<string, string>, string][] = [
      ['end-users', {}, 'Missing parameter: code_challenge_method'],
      ['end-users', { code_challenge: CHALLENGE }, 'Missing parameter: code_challenge_method'],
      ['end-users', { code_challenge: CHALLENGE, code_challenge_method: 'plain' }, 'Invalid parameter: code challenge method is not matching the configured one'],
      ['end-users', { code_challenge_method: 'S256' }, 'Missing parameter: code_challenge'],
      ['end-users', { code_challenge: 'too-short', code_challenge_method: 'S256' }, 'Invalid parameter: code_challenge'],
      ['end-users', { code_challenge: `${CHALLENGE.slice(1)}!`, code_challenge_method: 'S256' }, 'Invalid parameter: code_challenge'],
      ['reports', { code_challenge: CHALLENGE, code_challenge_method: 'plain' }, 'Invalid parameter: code_challenge_method'],
      ['reports', { code_challenge: CHALLENGE, code_challenge_method: 'S512' }, 'Invalid parameter: code_challenge_method'],
      ['reports', { code_challenge_method: 'S256' }, 'Missing parameter: code_challenge'],
      ['reports', { code_challenge: 'x'.repeat(129), code_challenge_method: 'S256' }, 'Invalid parameter: code_challenge'],
    ]
    for (const [clientId, pkce, description] of cases) assert.equal(await refusal(clientId, pkce), description, `${clientId} ${JSON.stringify(pkce)}`)
    assert.equal(await refusal('end-users', {}, 'fragment'), 'Missing parameter: code_challenge_method', 'in every response mode')

    // A pushed authorization request (RFC 9126) is checked the same way, answered in JSON.
    const pushed = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/ext/par/request`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'reports', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', code_challenge: CHALLENGE, code_challenge_method: 'plain' }),
    })
    assert.equal(pushed.status, 400)
    assert.deepEqual(await pushed.json(), { error: 'invalid_request', error_description: 'Invalid parameter: code_challenge_method' })
  })

  it('matches wildcards on the URL a browser would follow', () => {
    const patterns = [`${APP}/app/*`]
    assert.equal(redirectMatches(`${APP}/app/x`, patterns), true)
    assert.equal(redirectMatches(`${APP}/app`, patterns), true)
    assert.equal(redirectMatches(`${APP}/app/../admin`, patterns), false)
    assert.equal(redirectMatches(`${APP}/app/%2e%2e/admin`, patterns), false)
    assert.equal(redirectMatches(`https://user@app.example.com/app/x`, patterns), false)
    assert.equal(redirectMatches(`${APP}/application`, patterns), false)
    // A fragment (an application routing by it) is no part of where the browser goes.
    assert.equal(redirectMatches(`${APP}/app/#/dashboard`, patterns), true)
    assert.equal(redirectMatches(`${APP}/app#/dashboard`, patterns), true)
    assert.equal(redirectMatches(`${APP}/#/app/x`, patterns), false)
    assert.equal(redirectMatches(`${APP}/app/../admin#/app/`, patterns), false)
    assert.equal(redirectMatches(`https://user@app.example.com/app/#/x`, patterns), false)
    assert.equal(redirectMatches(`${APP}/cb#x`, [`${APP}/cb`]), false, 'an exact URI is matched exactly, as in Keycloak')
    // Nor is a query: Keycloak matches a wildcard on the URI without it (a page's own address, with its query).
    assert.equal(redirectMatches(`${APP}/app?tab=2`, patterns), true)
    assert.equal(redirectMatches(`${APP}/app/x?next=https://evil.example/`, patterns), true)
    assert.equal(redirectMatches(`${APP}/application?/app/`, patterns), false)
    assert.equal(redirectMatches(`${APP}/cb?x=1`, [`${APP}/cb`]), false)
    // A pattern with a query is compared as written, as Keycloak compares it (the configuration refuses one).
    assert.equal(redirectMatches(`${APP}/bye?x=1`, [`${APP}/bye?x=*`]), false)
    assert.equal(redirectMatches(`${APP}/bye?x=*`, [`${APP}/bye?x=*`]), true)
  })

  it('signs in and out an application whose address has a fragment, as keycloak-js sends it from a page routed by one', async () => {
    const from = `${APP}/app/#/dashboard`
    const started = await authorize('under-path', from)
    assert.equal(started.status, 302)
    const logout = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/logout?${new URLSearchParams({ client_id: 'under-path', post_logout_redirect_uri: `${APP}/app/#/settings` })}`, { headers: { accept: 'text/html' } })
    assert.equal(logout.status, 200)
  })

  it('keeps a wildcard to its path when the path is percent-encoded, at login and at logout', async () => {
    // A server that decodes %2F (or a second layer of encoding) before it resolves `..` serves these from /admin.
    const leaving = [`${APP}/app/..%2fadmin`, `${APP}/app/..%2Fadmin`, `${APP}/app/%2e%2e%2fadmin`, `${APP}/app/x/..%2f..%2fadmin`,
      `${APP}/app/%252e%252e%252fadmin`, `${APP}/app/..%5cadmin`, `${APP}/app/%25zz`]
    const staying = [`${APP}/app/a%20b`, `${APP}/app/x%2fy`, `${APP}/app/x?next=..%2fadmin`]
    const logout = (uri: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/logout?${new URLSearchParams({ client_id: 'under-path', post_logout_redirect_uri: uri })}`, { headers: { accept: 'text/html' } })
    for (const uri of leaving) {
      assert.equal((await authorize('under-path', uri)).status, 400, uri)
      assert.equal((await logout(uri)).status, 400, uri)
    }
    for (const uri of staying) {
      assert.equal((await authorize('under-path', uri)).status, 302, uri)
      assert.equal((await logout(uri)).status, 200, uri)
    }
  })

  it('lets a native application\'s loopback redirect URI registered without a port take any port, as Keycloak (RFC 8252 §7.3)', async () => {
    const logout = (uri: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/logout?${new URLSearchParams({ client_id: 'native', post_logout_redirect_uri: uri })}`, { headers: { accept: 'text/html' } })
    // The default port written out is a port like any other (Keycloak strips whatever port is written).
    for (const uri of ['http://127.0.0.1:49152/callback', 'http://localhost:8000/callback', 'http://127.0.0.1:8400/fixed', 'http://127.0.0.1:80/callback', 'http://localhost:80/callback']) {
      assert.equal((await authorize('native', uri)).status, 302, uri)
      assert.equal((await logout(uri)).status, 200, uri)
    }
    // Only the port may differ, on the loopback host named, over http: nothing that leaves the machine.
    for (const uri of ['http://127.0.0.1:49152/other', 'http://127.0.0.1:49152/callback?x=1', 'http://127.0.0.1:8401/fixed', 'http://127.0.0.1:80/fixed', 'https://127.0.0.1:49152/callback', 'http://127.0.0.2:49152/callback',
      'http://localhost.evil.example:80/callback', 'http://localhost:1234@evil.example/callback', 'http://evil.example:80@localhost:1234/callback', 'http://localhost:8000/callback#x', 'http://intranet.example:8080/callback']) {
      assert.equal((await authorize('native', uri)).status, 400, uri)
      assert.equal((await logout(uri)).status, 400, uri)
    }
    // Clients with other redirect URIs get no such latitude.
    assert.equal((await authorize('spa', 'https://app.example.com:8443/x')).status, 400)
  })

  it('refuses wildcards that could widen the host in the configuration, and a wildcard after a query', () => {
    for (const uri of ['https://app.example.com*', 'https://*.example.com/', 'https://app.example.com/*/x']) {
      assert.throws(() => validateConfig({ realms: [{ name: 'r', clients: [{ client_id: 'c', redirect_uris: [uri] }] }] }), ConfigError, uri)
    }
    for (const field of ['redirect_uris', 'post_logout_redirect_uris']) {
      assert.throws(() => validateConfig({ realms: [{ name: 'r', clients: [{ client_id: 'c', [field]: ['https://app.example.com/bye?x=*'] }] }] }), /after a query/, field)
    }
  })

  /** The realm's own pages, by name, as a browser in the middle of a login gets them. */
  const realmPages = async (): Promise<[string, Response][]> => {
    const login = await authorize('spa', `${APP}/app/x`)
    const { id_token: idToken } = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const pages = {
      login: login.headers.get('location')!,
      logout: `/realms/${REALM}/protocol/openid-connect/logout`,
      'logout with id_token_hint': `/realms/${REALM}/protocol/openid-connect/logout?${new URLSearchParams({ id_token_hint: idToken })}`,
      device: `/realms/${REALM}/device`,
      error: `/realms/${REALM}/protocol/openid-connect/auth?client_id=spa&redirect_uri=https://evil.example/`,
      callback: `/realms/${REALM}/gatehouse/callback?code=x`,
    }
    const cookie = login.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ')
    const answers: [string, Response][] = []
    for (const [name, path] of Object.entries(pages)) answers.push([name, await gw.fetch(path.replace(gw.url, ''), { headers: { accept: 'text/html', cookie } })])
    return answers
  }

  it('expires the cookie of a finished login at the realm on the login\'s own path, where a logout could not reach it', async () => {
    const jar = new CookieJar()
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const set = jar.setCookies().find((line) => line.startsWith('gatehouse_oidc_interaction='))
    assert.match(set ?? '', new RegExp(`; path=${action.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(;|$)`, 'i'), 'set on the login\'s own path')
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'alice', password: 'alice-password' }).toString() })
    assert.ok(new URL(done.url).searchParams.get('code'), 'the login went through')
    const cleared = jar.setCookies().filter((line) => line.startsWith('gatehouse_oidc_interaction=') && line !== set)
    assert.equal(cleared.length, 1, cleared.join('\n'))
    assert.match(cleared[0]!, /^gatehouse_oidc_interaction=;/)
    assert.match(cleared[0]!, /expires=Thu, 01 Jan 1970/i)
    assert.match(cleared[0]!, new RegExp(`; path=${action.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(;|$)`, 'i'), 'expired on the path it was set on')
    assert.doesNotMatch(jar.header(), /gatehouse_oidc_interaction=/)
  })

  it('lets no other page frame the realm\'s own pages: login, logout, device code, errors', async () => {
    for (const [name, page] of await realmPages()) {
      assert.match(page.headers.get('content-type')!, /^text\/html/, name)
      assert.equal(page.headers.get('x-frame-options'), 'DENY', name)
      assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, name)
      assert.equal(page.headers.get('x-content-type-options'), 'nosniff', name)
      await page.arrayBuffer()
    }
  })

  it('keeps none of the realm\'s own pages in a cache, as Keycloak sends its pages: login, logout, device code, errors', async () => {
    for (const [name, page] of await realmPages()) {
      assert.match(page.headers.get('cache-control') ?? '', /\bno-store\b/, name)
      await page.arrayBuffer()
    }
  })

  const records = async () => Number((await gw.store.database.db.selectFrom('oidc_records').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)

  it('keeps no realm session for a browser whose session cookie names none (made up, or its session gone) when nothing is kept in it', async () => {
    const before = await records()
    const cookie = 'gatehouse_oidc_session=no-such-session'
    const silent = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth?${new URLSearchParams({
      client_id: 'spa', redirect_uri: `${APP}/cb`, response_type: 'code', scope: 'openid', prompt: 'none', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`, { redirect: 'manual', headers: { cookie } })
    assert.equal(new URL(silent.headers.get('location')!).searchParams.get('error'), 'login_required')
    const confirm = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/logout/confirm`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, body: 'xsrf=forged' })
    assert.equal(confirm.status, 400)
    await confirm.arrayBuffer()
    assert.equal(await records(), before)
  })

  it('answers the device code form without a browser session (posted from elsewhere, or its session gone) with the form again, writing nothing', async () => {
    const before = await records()
    const asked: [string, RequestInit][] = [
      ['/device', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, body: 'xsrf=forged&user_code=BCDF-GHJK' }],
      ['/device', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', cookie: 'gatehouse_oidc_session=no-such-session' }, body: 'user_code=BCDF-GHJK' }],
      ['/device/no-such-login/', { headers: { accept: 'text/html' } }],
    ]
    for (const [path, init] of asked) {
      const answer = await gw.fetch(`/realms/${REALM}${path}`, { redirect: 'manual', ...init })
      const page = await answer.text()
      assert.equal(answer.status, 400, `${init.method ?? 'GET'} ${path}: ${page.slice(0, 200)}`)
      assert.match(page, /name="user_code"/, `${path}: the form again`)
    }
    assert.equal(await records(), before)
  })

  it('refuses a NUL character or a body too large at the device code, login and logout pages with a page for a browser, and JSON for anyone else, writing nothing', async () => {
    const before = await records()
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    const asked: [string, RequestInit, string][] = [
      ['/device', { method: 'POST', headers: form, body: 'xsrf=x&user_code=BCDF%00GHJK' }, 'Null characters are not allowed.'],
      ['/device?user_code=BCDF%00GHJK', {}, 'Null characters are not allowed.'],
      ['/device', { method: 'POST', headers: form, body: `user_code=${'B'.repeat(17 * 1024)}` }, 'Request body too large'],
      ['/protocol/openid-connect/auth?client_id=spa%00', {}, 'Null characters are not allowed.'],
      ['/protocol/openid-connect/logout', { method: 'POST', headers: form, body: 'client_id=spa%00' }, 'Null characters are not allowed.'],
    ]
    for (const [path, init, message] of asked) {
      const label = `${init.method ?? 'GET'} ${path.slice(0, 60)}`
      const browser = await gw.fetch(`/realms/${REALM}${path}`, { redirect: 'manual', ...init, headers: { ...init.headers as Record<string, string>, accept: 'text/html,application/xhtml+xml' } })
      assert.equal(browser.status, 400, label)
      assert.match(browser.headers.get('content-type') ?? '', /^text\/html/, label)
      assert.ok((await browser.text()).includes(`<p>${message}</p>`), `${label}: the reason on the page`)
      const script = await gw.fetch(`/realms/${REALM}${path}`, { redirect: 'manual', ...init })
      assert.equal(script.status, 400, label)
      assert.deepEqual(await script.json(), { error: 'invalid_request', error_description: message }, label)
    }
    assert.equal(await records(), before)
  })

  it('runs no script on the realm\'s own pages but the logout page\'s own, whatever markup reached them', async () => {
    for (const [name, page] of await realmPages()) {
      const directives = new Map((page.headers.get('content-security-policy') ?? '').split(';').map((d) => d.trim().split(/\s+/)).map(([key, ...values]) => [key!, values]))
      assert.deepEqual(directives.get('default-src'), ["'none'"], name)
      assert.deepEqual(directives.get('base-uri'), ["'none'"], name)
      const scripts = directives.get('script-src') ?? directives.get('default-src')!
      assert.ok(scripts.every((source) => /^'sha256-[A-Za-z0-9+/]+=*'$/.test(source) || source === "'none'"), `${name}: ${scripts}`)
      // The scripts the page has are exactly those the policy names.
      const html = await page.text()
      if (name === 'logout with id_token_hint') assert.match(html, /<script>/, 'the page submits itself')
      for (const [, script] of html.matchAll(/<script>([\s\S]*?)<\/script>/g)) {
        assert.ok(scripts.includes(`'sha256-${createHash('sha256').update(script!).digest('base64')}'`), `${name}: its own script runs`)
      }
    }
  })

  it('answers the token endpoint\'s CORS with credentials for the client\'s web origins only', async () => {
    const { refresh_token: refreshToken } = await passwordLogin(gw, 'alice', 'alice-password')
    const post = (clientId: string, origin: string) => gw.fetch(TOKEN_PATH, { method: 'POST', headers: { origin }, body: new URLSearchParams({ client_id: clientId, grant_type: 'refresh_token', refresh_token: refreshToken }) })
    const spa = await post('spa', APP)
    assert.equal(spa.headers.get('access-control-allow-origin'), APP)
    assert.equal(spa.headers.get('access-control-allow-credentials'), 'true')
    for (const [clientId, origin] of [['spa', 'https://evil.example'], ['closed', APP]] as const) {
      const refused = await post(clientId, origin)
      assert.equal(refused.headers.get('access-control-allow-origin'), null, `${clientId} from ${origin}`)
      assert.equal(refused.headers.get('access-control-allow-credentials'), null)
    }
  })

  it('publishes the login status iframe in discovery, and serves keycloak-js\'s iframe pages', async () => {
    const discovery = await json(await gw.fetch(`/realms/${REALM}/.well-known/openid-configuration`))
    assert.equal(discovery.check_session_iframe, realmUrl(gw, '/protocol/openid-connect/login-status-iframe.html'))
    for (const page of ['3p-cookies/step1.html', '3p-cookies/step2.html', 'login-status-iframe.html']) {
      const response = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/${page}`)
      assert.equal(response.status, 200, page)
      assert.match(response.headers.get('content-type')!, /^text\/html/)
      assert.match(response.headers.get('content-security-policy')!, /script-src 'sha256-/)
      assert.equal(response.headers.get('x-frame-options'), null, 'other sites frame it')
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', page)
      assert.match(await response.text(), /<script type="module">/)
    }
    assert.equal((await gw.fetch(`/realms/${REALM}/protocol/openid-connect/login-status-iframe.html?version=other`)).status, 404)
    // Framed by another site's page, step 1 says at once that the realm's (SameSite=Lax) session cookies do not reach it.
    const step1 = async (site: string) => {
      const response = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/3p-cookies/step1.html`, { headers: { 'sec-fetch-site': site } })
      assert.equal(response.headers.get('vary'), 'Sec-Fetch-Site')
      return response.text()
    }
    assert.match(await step1('cross-site'), /parent\.postMessage\('unsupported', '\*'\)<\/script>/)
    for (const site of ['same-site', 'same-origin']) assert.match(await step1(site), /step2\.html/, site)
  })

  it('lets the login status iframe check only a client\'s own web origins', async () => {
    const init = (clientId: string, origin: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/login-status-iframe.html/init?${new URLSearchParams({ client_id: clientId, origin })}`)
    assert.equal((await init('spa', APP)).status, 204)
    assert.equal((await init('spa', 'https://evil.example')).status, 403)
    assert.equal((await init('closed', APP)).status, 403)
    assert.equal((await init('nobody', APP)).status, 403)
  })

  it('serves the account profile to a live access token, with CORS for web origins', async () => {
    const { access_token: token } = await passwordLogin(gw, 'alice', 'alice-password')
    const account = `/realms/${REALM}/account`
    const preflight = await gw.fetch(account, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } })
    assert.equal(preflight.status, 204)
    assert.equal(preflight.headers.get('access-control-allow-origin'), APP)
    assert.match(preflight.headers.get('access-control-allow-headers')!, /Authorization/)
    const profile = await gw.fetch(account, { headers: { authorization: `bearer ${token}`, accept: 'application/json', origin: APP } })
    assert.equal(profile.status, 200)
    const body = await json(profile)
    assert.equal(body.username, 'alice')
    assert.equal(body.email, 'alice@example.com')
    assert.equal(body.emailVerified, false)
    assert.equal(body.firstName, undefined, 'no name given, none said, as Keycloak leaves out what is not set')
    // An account without an address or names: Keycloak's profile leaves them out rather than sending empty text.
    const { access_token: nemos } = await passwordLogin(gw, 'nemo', 'nemo-password')
    const bare = await json(await gw.fetch(account, { headers: { authorization: `bearer ${nemos}`, accept: 'application/json' } }))
    assert.deepEqual(Object.keys(bare).sort(), ['attributes', 'emailVerified', 'id', 'username'])
    for (const headers of [{}, { authorization: 'Bearer x.y.z' }, { authorization: `Bearer ${token.slice(0, -4)}AAAA` }]) {
      const refused = await gw.fetch(account, { headers: { ...headers, accept: 'application/json' } })
      assert.equal(refused.status, 401)
      assert.match(refused.headers.get('www-authenticate')!, /^Bearer/)
    }
    const browser = await gw.fetch(account, { headers: { accept: 'text/html' } })
    assert.equal(browser.status, 302)
    assert.equal(browser.headers.get('location'), '/ui/account')
  })
})
