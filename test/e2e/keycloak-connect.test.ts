import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it, mock } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import express, { type Express, type RequestHandler } from 'express'
import session from 'express-session'
import Keycloak from 'keycloak-connect'
import { Browser } from '../helpers/browser.ts'
import { compactVerify, createRemoteJWKSet } from 'jose'
import { ADMIN_PASSWORD, adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, REALM, realmUrl, realmWith, SERVICE_SECRET, tokenRequest } from '../helpers/oidc.ts'

/** keycloak-connect's token class (auth-utils/token.js), which its type declarations leave out. */
const Token = createRequire(import.meta.url)('keycloak-connect/middleware/auth-utils/token.js') as new (token: string, clientId?: string) => unknown

const CONFIDENTIAL_SECRET = 'connect-confidential-secret-0123'

type KauthRequest = { kauth?: { grant?: { access_token: { content: Record<string, unknown> } } } }
/** The claims of the access token keycloak-connect attached to the request. */
const accessClaims = (request: unknown) => (request as KauthRequest).kauth!.grant!.access_token.content

/** An Express app protected by keycloak-connect as its README sets it up: a session store, the middleware, protect(). */
function browserApp(keycloakConfig: Record<string, unknown>, first?: RequestHandler): { app: Express; keycloak: Keycloak.Keycloak } {
  const store = new session.MemoryStore()
  const keycloak = new Keycloak({ store }, keycloakConfig as never)
  const app = express()
  if (first) app.use(first)
  app.use(session({ secret: 'keycloak-connect-test', resave: false, saveUninitialized: true, store }))
  app.use(keycloak.middleware())
  app.get('/protected', keycloak.protect(), (request, response) => {
    response.json({ user: accessClaims(request).preferred_username })
  })
  app.get('/issued', keycloak.protect(), (request, response) => { response.json({ iat: accessClaims(request).iat }) })
  app.get('/check-sso', keycloak.checkSso(), (request, response) => { response.json({ user: (request as KauthRequest).kauth?.grant ? accessClaims(request).preferred_username : null }) })
  return { app, keycloak }
}

/** keycloak-connect 26 (npm) with Express 5, against the realm, in each of its modes. */
describe('keycloak-connect 26 against the realm', () => {
  let gw: TestGateway
  // One address for every app in turn, so that one wildcard redirect URI covers them.
  let current: Express = express()
  let server: Server
  let url: string
  let aliceId = 0
  /** The admin URL of an application that is not running: nothing listens there. */
  let goneAdminUrl = ''
  const serve = (app: Express) => {
    current = app
  }

  before(async () => {
    server = createServer((request, response) => current(request, response))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const appUrls = [`${url}/*`]
    const gone = createServer()
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve))
    goneAdminUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}/gone/`
    await new Promise((resolve) => gone.close(resolve))
    gw = await startGateway({
      config: {
        realms: realmWith([
            { client_id: 'connect-public', public_client: true, pkce: 'optional', direct_access_grants: true, redirect_uris: appUrls },
            { client_id: 'connect-strict', public_client: true, redirect_uris: appUrls },
            { client_id: 'connect-confidential', public_client: false, secret: CONFIDENTIAL_SECRET, direct_access_grants: true, redirect_uris: appUrls, post_logout_redirect_uris: ['+'], audiences: ['demo-app'] },
            // keycloak-connect's admin calls come to `<admin URL>/k_logout`, at the root by default (`admin: '/'`).
            { client_id: 'connect-admin', public_client: false, secret: CONFIDENTIAL_SECRET, redirect_uris: appUrls, admin_url: url },
            { client_id: 'connect-gone', public_client: false, secret: CONFIDENTIAL_SECRET, redirect_uris: appUrls, admin_url: `${goneAdminUrl}?key=receivers-own` },
            // The bearer-only API's own client: no flow of its own, only its roles.
            { client_id: 'connect-api', standard_flow: false, roles: { reader: [{ allow: { users: ['alice'] } }] } },
        ]),
      },
    })
    aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com' })).id
    await gw.app.accounts.create({ username: 'bob', password: 'bob-password-long' })
  })
  after(async () => {
    server?.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve))
    await gw?.close()
  })

  const base = () => ({ realm: REALM, 'auth-server-url': gw.url, 'ssl-required': 'none' })

  /** A browser asks for the protected page, is sent to the realm's login page, logs in and comes back. */
  async function browserLogin(): Promise<{ body: string; status: number; browser: Browser }> {
    const browser = new Browser()
    const login = await browser.navigate(`${url}/protected`)
    assert.equal(login.response.status, 200, login.body.slice(0, 300))
    assert.match(new URL(login.url).pathname, /\/login-actions\//)
    const back = await browser.submit(login, { username: 'alice', password: 'alice-password' })
    return { body: back.body, status: back.response.status, browser }
  }

  it('protects an API in bearer-only mode, checking tokens offline with the realm\'s keys', async () => {
    const keycloak = new Keycloak({}, { ...base(), resource: 'connect-api', 'bearer-only': true } as never)
    const app = express()
    app.use(keycloak.middleware())
    app.get('/api/hello', keycloak.protect(), (request, response) => {
      response.json({ user: accessClaims(request).preferred_username })
    })
    app.get('/api/admin', keycloak.protect('realm:admin'), (_request, response) => { response.json({ ok: true }) })
    serve(app)
    const alice = await passwordLogin(gw, 'alice', 'alice-password')
    const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })
    const hello = await fetch(`${url}/api/hello`, bearer(alice.access_token))
    assert.equal(hello.status, 200)
    assert.deepEqual(await hello.json(), { user: 'alice' })
    assert.equal((await fetch(`${url}/api/hello`)).status, 403)
    assert.equal((await fetch(`${url}/api/hello`, bearer(`${alice.access_token.slice(0, -4)}AAAA`))).status, 403)
    assert.equal((await fetch(`${url}/api/hello`, bearer(alice.refresh_token))).status, 403, 'a refresh token is not an access token')
    assert.equal((await fetch(`${url}/api/admin`, bearer(alice.access_token))).status, 403)
    const admin = await passwordLogin(gw, 'admin', ADMIN_PASSWORD)
    assert.equal((await fetch(`${url}/api/admin`, bearer(admin.access_token))).status, 200)
  })

  it('logs a browser in through a public client without PKCE, where the client allows it', async () => {
    serve(browserApp({ ...base(), resource: 'connect-public', 'public-client': true }).app)
    const { status, body, browser } = await browserLogin()
    assert.equal(status, 200, body)
    assert.deepEqual(JSON.parse(body), { user: 'alice' })
    const authorization = browser.hops.find((hop) => hop.url.includes('/protocol/openid-connect/auth?'))!
    assert.equal(new URL(authorization.url).searchParams.get('code_challenge'), null)
  })

  it('refuses a public client without PKCE when the client requires it (the default)', async () => {
    serve(browserApp({ ...base(), resource: 'connect-strict', 'public-client': true }).app)
    const browser = new Browser()
    const page = await browser.navigate(`${url}/protected`, { stopBefore: (next) => next.includes('auth_callback=1') })
    const back = new URL(page.stoppedAt!).searchParams
    assert.equal(back.get('error'), 'invalid_request')
    assert.equal(back.get('error_description'), 'Missing parameter: code_challenge_method', 'Keycloak\'s words for a PKCE-enforced client')
    assert.equal((await browser.navigate(page.stoppedAt!)).response.status, 403)
  })

  it('logs a browser in through a confidential client', async () => {
    serve(browserApp({ ...base(), resource: 'connect-confidential', credentials: { secret: CONFIDENTIAL_SECRET } }).app)
    const { status, body } = await browserLogin()
    assert.equal(status, 200, body)
    assert.deepEqual(JSON.parse(body), { user: 'alice' })
  })

  it('obtains tokens directly, refreshes them once expired, and validates them by introspection', async (t) => {
    const { keycloak } = browserApp({ ...base(), resource: 'connect-confidential', credentials: { secret: CONFIDENTIAL_SECRET } })
    const grant = await keycloak.grantManager.obtainDirectly('alice', 'alice-password')
    const access = grant.access_token as unknown as { token: string; content: Record<string, unknown> }
    assert.equal(access.content.preferred_username, 'alice')
    assert.equal((grant.id_token as unknown as { content: Record<string, unknown> }).content.typ, 'ID')
    assert.equal(await keycloak.grantManager.validateAccessToken(access.token), access.token)

    t.after(() => mock.timers.reset())
    mock.timers.enable({ apis: ['Date'], now: Date.now() + 400_000 })
    assert.equal(grant.isExpired(), true)
    const refreshed = await keycloak.grantManager.ensureFreshness(grant)
    const newAccess = refreshed.access_token as unknown as { token: string; content: Record<string, unknown> }
    assert.notEqual(newAccess.token, access.token)
    assert.equal(decodeJwtPart(newAccess.token, 1).sid, access.content.sid)
    assert.equal(await keycloak.grantManager.validateAccessToken(newAccess.token), newAccess.token)
    assert.equal(await keycloak.grantManager.validateAccessToken(access.token), false, 'the first access token has expired')
    const info = await keycloak.grantManager.userInfo(newAccess.token) as Record<string, unknown>
    assert.equal(info.preferred_username, 'alice')
  })

  it('reads realm roles from realm_access and client roles from resource_access, where Keycloak puts them: protect(\'<role>\') lets in who holds the role, and no one else', async () => {
    const keycloak = new Keycloak({}, { ...base(), resource: 'connect-api', 'bearer-only': true } as never)
    const app = express()
    app.use(keycloak.middleware())
    const ok = (_request: unknown, response: express.Response) => { response.json({ ok: true }) }
    app.get('/realm-role', keycloak.protect('realm:offline_access'), ok)
    app.get('/account-role', keycloak.protect('account:view-profile'), ok)
    app.get('/missing-account-role', keycloak.protect('account:manage-realm'), ok)
    // An unprefixed role is the resource's own client role: the `reader` role of the client `connect-api`.
    app.get('/own-role', keycloak.protect('reader'), ok)
    app.get('/named-role', keycloak.protect('connect-api:reader'), ok)
    app.get('/guard', keycloak.protect((token) => token.hasRole('account:manage-account') && token.hasRealmRole('uma_authorization')), ok)
    serve(app)
    const alice = await passwordLogin(gw, 'alice', 'alice-password')
    const bob = await passwordLogin(gw, 'bob', 'bob-password-long')
    const status = async (path: string, token = alice.access_token) => (await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } })).status
    assert.deepEqual(
      { realm: await status('/realm-role'), account: await status('/account-role'), missing: await status('/missing-account-role'), own: await status('/own-role'), named: await status('/named-role'), guard: await status('/guard') },
      { realm: 200, account: 200, missing: 403, own: 200, named: 200, guard: 200 },
    )
    assert.deepEqual({ own: await status('/own-role', bob.access_token), named: await status('/named-role', bob.access_token) }, { own: 403, named: 403 }, 'bob holds no role of connect-api')
  })

  it('takes, with verify-token-audience, the tokens of other clients that carry its roles, as Keycloak names their client in aud', async () => {
    const keycloak = new Keycloak({}, { ...base(), resource: 'connect-api', 'bearer-only': true, 'verify-token-audience': true } as never)
    const app = express()
    app.use(keycloak.middleware())
    app.get('/api/hello', keycloak.protect(), (request, response) => { response.json({ user: accessClaims(request).preferred_username }) })
    serve(app)
    const call = (token: string) => fetch(`${url}/api/hello`, { headers: { authorization: `Bearer ${token}` } })
    const alice = await call((await passwordLogin(gw, 'alice', 'alice-password')).access_token)
    assert.equal(alice.status, 200)
    assert.deepEqual(await alice.json(), { user: 'alice' })
    assert.equal((await call((await passwordLogin(gw, 'bob', 'bob-password-long')).access_token)).status, 403, 'a token without its roles does not name it')
  })

  it('validates tokens as its grant manager does: issuer, typ Bearer, signature from the JWKS', async () => {
    const { keycloak } = browserApp({ ...base(), resource: 'connect-confidential', credentials: { secret: CONFIDENTIAL_SECRET } })
    const grant = await keycloak.grantManager.obtainDirectly('alice', 'alice-password')
    const manager = keycloak.grantManager as unknown as { validateToken(token: unknown, type: string): Promise<unknown> }
    const failure = (token: unknown, type: string) => manager.validateToken(token, type).then(() => 'valid', (error: Error) => error.message)
    assert.equal(await failure(grant.access_token, 'Bearer'), 'valid')
    assert.equal(await failure(grant.id_token, 'ID'), 'valid')
    assert.equal(await failure(grant.id_token, 'Bearer'), 'invalid token (wrong type)')
    const access = grant.access_token as unknown as { token: string }
    const [header, , signature] = access.token.split('.')
    const forgedClaims = Buffer.from(JSON.stringify({ ...decodeJwtPart(access.token, 1), preferred_username: 'admin' })).toString('base64url')
    assert.equal(await failure(new Token(`${header}.${forgedClaims}.${signature}`, 'connect-confidential'), 'Bearer'), 'invalid token (public key signature)')
    const otherIssuer = Buffer.from(JSON.stringify({ ...decodeJwtPart(access.token, 1), iss: `${gw.url}/realms/other` })).toString('base64url')
    assert.equal(await failure(new Token(`${header}.${otherIssuer}.${signature}`, 'connect-confidential'), 'Bearer'), 'invalid token (wrong ISS)')
  })

  it('answers the policy enforcer\'s UMA grant with a clean refusal (no Authorization Services), which the adapter turns into 403', async () => {
    const keycloak = new Keycloak({}, { ...base(), resource: 'connect-confidential', credentials: { secret: CONFIDENTIAL_SECRET }, 'bearer-only': true } as never)
    const app = express()
    app.use(keycloak.middleware())
    app.get('/reports', keycloak.enforcer('reports:read'), (_request, response) => { response.json({ ok: true }) })
    app.get('/reports-token', keycloak.enforcer('reports:read', { response_mode: 'token' }), (_request, response) => { response.json({ ok: true }) })
    serve(app)
    const alice = await passwordLogin(gw, 'alice', 'alice-password')
    for (const path of ['/reports', '/reports-token']) {
      const answer = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${alice.access_token}` } })
      assert.equal(answer.status, 403, path)
      assert.equal(await answer.text(), 'Access denied')
    }
    // The request the enforcer sends (GrantManager.checkPermissions), as Keycloak answers it with the authorization feature off.
    const uma = await tokenRequest(gw, { grant_type: 'urn:ietf:params:oauth:grant-type:uma-ticket', audience: 'connect-confidential', response_mode: 'permissions', permission: 'reports#read', subject_token: alice.access_token, client_id: 'connect-confidential', client_secret: CONFIDENTIAL_SECRET })
    assert.deepEqual({ status: uma.status, body: uma.body }, { status: 400, body: { error: 'unsupported_grant_type', error_description: 'Unsupported grant_type' } })
  })

  it('check-sso: a browser without a realm session stays anonymous, with one it is signed in silently', async () => {
    serve(browserApp({ ...base(), resource: 'connect-confidential', credentials: { secret: CONFIDENTIAL_SECRET } }).app)
    const anonymous = new Browser()
    const page = await anonymous.navigate(`${url}/check-sso`)
    assert.deepEqual(JSON.parse(page.body), { user: null })
    const authorization = new URL(anonymous.hops.find((hop) => hop.url.includes('/protocol/openid-connect/auth?'))!.url).searchParams
    assert.equal(authorization.get('prompt'), 'none')
    assert.equal(authorization.get('response_mode'), 'query')

    const { browser } = await browserLogin()
    const signedIn = await browser.navigate(`${url}/check-sso`)
    assert.deepEqual(JSON.parse(signedIn.body), { user: 'alice' })
  })

  it('refreshes the grant kept in the session once its access token expires (getGrant), and logs out through /logout', async (t) => {
    serve(browserApp({ ...base(), resource: 'connect-confidential', credentials: { secret: CONFIDENTIAL_SECRET } }).app)
    const { browser } = await browserLogin()
    const first = JSON.parse((await browser.navigate(`${url}/issued`)).body) as { iat: number }

    t.after(() => mock.timers.reset())
    mock.timers.enable({ apis: ['Date'], now: Date.now() + 400_000 })
    const refreshed = JSON.parse((await browser.navigate(`${url}/issued`)).body) as { iat: number }
    assert.ok(refreshed.iat >= first.iat + 400, 'the stored grant was refreshed at the token endpoint')
    mock.timers.reset()

    // keycloak-connect's logout: to the realm's logout with id_token_hint and post_logout_redirect_uri (the app's root).
    const confirm = await browser.navigate(`${url}/logout`)
    const logout = new URL(browser.hops.find((hop) => hop.url.includes('/protocol/openid-connect/logout?'))!.url).searchParams
    assert.equal(logout.get('post_logout_redirect_uri'), `${url}/`)
    assert.ok(logout.get('id_token_hint'))
    const back = await browser.submit(confirm, { logout: 'yes' }, { stopBefore: (next) => next.startsWith(url) })
    assert.equal(back.stoppedAt, `${url}/`)
    // The realm session is over: the protected page asks for the password again.
    const again = await browser.navigate(`${url}/protected`)
    assert.match(new URL(again.url).pathname, /\/login-actions\//)
  })

  /** An admin call as the app got it, and what keycloak-connect answered. */
  interface AdminCall { path: string; contentType: string | undefined; body: string; status: number }

  /** The keycloak-connect app of the client with an admin URL, with every admin call it gets recorded once answered. */
  function adminUrlApp(): { calls: AdminCall[] } {
    const calls: AdminCall[] = []
    const record: RequestHandler = (request, response, next) => {
      if (request.url === '/k_logout' || request.url === '/k_push_not_before') {
        const chunks: Buffer[] = []
        request.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('finish', () => calls.push({ path: request.url, contentType: request.headers['content-type'], body: Buffer.concat(chunks).toString('utf8'), status: response.statusCode }))
      }
      next()
    }
    serve(browserApp({ ...base(), resource: 'connect-admin', credentials: { secret: CONFIDENTIAL_SECRET } }, record).app)
    return { calls }
  }

  /** The admin call after the first `seen`, once it has come (polled, with a deadline for a loaded machine). */
  async function adminCall(calls: AdminCall[], seen: number): Promise<AdminCall> {
    for (const until = Date.now() + 30_000; !calls[seen]; await sleep(50)) {
      if (Date.now() > until) throw new Error('no admin call came to the admin URL')
    }
    return calls[seen]!
  }

  /** The app's own session id (express-session's signed cookie), which keycloak-connect sends as `client_session_state`. */
  const appSessionId = (browser: Browser) => /^s:([^.]+)\./.exec(decodeURIComponent(browser.cookie(url, 'connect.sid')!))![1]!

  /** The app serves the protected page from its own session: true while it does, false once it sends the browser to log in. */
  async function appSignedIn(browser: Browser): Promise<boolean> {
    const page = await browser.navigate(`${url}/protected`)
    if (page.response.status === 200 && new URL(page.url).origin === url) return true
    assert.match(new URL(page.url).pathname, /\/login-actions\//, page.body.slice(0, 300))
    return false
  }

  /** The admin call's LOGOUT action, its signature verified with the realm's published keys. */
  async function verifiedAdminCall(call: AdminCall): Promise<Record<string, unknown>> {
    assert.equal(call.status, 200, 'keycloak-connect took it')
    assert.match(call.contentType ?? '', /^text\/plain/, 'as Keycloak posts it')
    const { payload, protectedHeader } = await compactVerify(call.body, createRemoteJWKSet(new URL(realmUrl(gw, '/protocol/openid-connect/certs'))), { algorithms: ['RS256'] })
    assert.equal(typeof protectedHeader.kid, 'string', 'keycloak-connect finds the key by its kid')
    return JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>
  }

  it('ends its own session when the browser logs out at the realm: the realm POSTs k_logout to the admin URL', async () => {
    const { calls } = adminUrlApp()
    const { status, body, browser } = await browserLogin()
    assert.equal(status, 200, body)
    assert.equal(await appSignedIn(browser), true)
    const sessionId = appSessionId(browser)

    const confirm = await browser.navigate(realmUrl(gw, '/protocol/openid-connect/logout'))
    const loggedOut = await browser.submit(confirm, { logout: 'yes' })
    assert.equal(loggedOut.response.status, 200)
    const action = await verifiedAdminCall(await adminCall(calls, 0))
    assert.deepEqual({ ...action, id: typeof action.id, expiration: typeof action.expiration, keycloakSessionIds: (action.keycloakSessionIds as unknown[]).length },
      { id: 'string', expiration: 'number', resource: 'connect-admin', action: 'LOGOUT', adapterSessionIds: [sessionId], notBefore: 0, keycloakSessionIds: 1 })
    assert.ok(Math.abs((action.expiration as number) - (Date.now() / 1000 + 30)) < 60, 'thirty seconds to live, as Keycloak\'s')
    assert.equal(await appSignedIn(browser), false, 'the app\'s session is gone: the browser is sent to log in')
  })

  it('ends its own session when an administrator disables the user', async () => {
    const { calls } = adminUrlApp()
    const { status, body, browser } = await browserLogin()
    assert.equal(status, 200, body)
    const sessionId = appSessionId(browser)
    const patch = (active: boolean) => gw.fetch(`/api/gateway/v1/users/${aliceId}/`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: active }) })
    assert.equal((await patch(false)).status, 200)
    try {
      const action = await verifiedAdminCall(await adminCall(calls, 0))
      assert.deepEqual(action.adapterSessionIds, [sessionId])
      assert.equal(await appSignedIn(browser), false)
    } finally {
      assert.equal((await patch(true)).status, 200)
    }
  })

  it('keeps only an adapter session id the client itself sent with the code, and only one that is one', async () => {
    const { calls } = adminUrlApp()
    const { status, body, browser } = await browserLogin()
    assert.equal(status, 200, body)
    const sessionId = appSessionId(browser)
    /** A code of the browser's realm session for connect-admin (no login: the session signs it in). */
    const code = async () => {
      const authorize = `${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({ client_id: 'connect-admin', redirect_uri: `${url}/elsewhere`, response_type: 'code', scope: 'openid' })}`
      const back = await browser.navigate(authorize, { stopBefore: (next) => next.startsWith(`${url}/elsewhere`) })
      return new URL(back.stoppedAt!).searchParams.get('code')!
    }
    const redeem = async (form: Record<string, string>) => tokenRequest(gw, { grant_type: 'authorization_code', code: await code(), redirect_uri: `${url}/elsewhere`, client_id: 'connect-admin', ...form })
    // Refused codes, and values no adapter sends, leave the id kept at the app's sign-in as it was.
    assert.equal((await redeem({ client_secret: 'not-the-secret-of-the-client', client_session_state: 'by-someone-else' })).status, 401)
    for (const state of ['x'.repeat(256), 'has space', '']) {
      assert.equal((await redeem({ client_secret: CONFIDENTIAL_SECRET, client_session_state: state })).status, 200)
    }
    const confirm = await browser.navigate(realmUrl(gw, '/protocol/openid-connect/logout'))
    await browser.submit(confirm, { logout: 'yes' })
    const action = await verifiedAdminCall(await adminCall(calls, 0))
    assert.deepEqual(action.adapterSessionIds, [sessionId])
    assert.equal(await appSignedIn(browser), false)
  })

  it('refuses an admin call whose signature is not the realm\'s, and keeps the session it names', async () => {
    const { calls } = adminUrlApp()
    const { status, body, browser } = await browserLogin()
    assert.equal(status, 200, body)
    // A token the realm signed, its payload replaced by a LOGOUT action naming the browser's app session.
    const [header, , signature] = (await passwordLogin(gw, 'alice', 'alice-password')).access_token.split('.')
    const forged = Buffer.from(JSON.stringify({ id: 'forged', expiration: Math.floor(Date.now() / 1000) + 30, resource: 'connect-admin', action: 'LOGOUT', adapterSessionIds: [appSessionId(browser)], notBefore: 0 })).toString('base64url')
    const answer = await fetch(`${url}/k_logout`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `${header}.${forged}.${signature}` })
    assert.equal(answer.status, 401)
    assert.equal(await answer.text(), 'admin request failed: invalid token (signature)')
    assert.equal(calls.length, 1)
    assert.equal(await appSignedIn(browser), true, 'the session it named goes on')
  })

  /** A password login's access token, once the clock has passed the second it was issued in (a not-before of a later call is after it). */
  async function olderAccessToken(): Promise<string> {
    const { access_token: token } = await passwordLogin(gw, 'alice', 'alice-password')
    const { iat } = decodeJwtPart(token, 1) as { iat: number }
    while (Math.floor(Date.now() / 1000) <= iat) await sleep(50)
    return token
  }

  /** What the app answers a request with this bearer token: 200, or 302 to the login page once keycloak-connect refuses it. */
  async function appAnswers(token: string): Promise<number> {
    const answer = await fetch(`${url}/issued`, { headers: { authorization: `Bearer ${token}` }, redirect: 'manual' })
    await answer.body?.cancel()
    return answer.status
  }

  const adminAction = (action: string) => gw.fetch(`/admin/realms/${REALM}/${action}`, { method: 'POST', headers: adminAuth })

  it('refuses every token issued before a logout-all of the realm: the realm sends k_logout with its not-before and no sessions', async () => {
    const { calls } = adminUrlApp()
    const { status, body, browser } = await browserLogin()
    assert.equal(status, 200, body)
    const older = await olderAccessToken()
    assert.equal(await appAnswers(older), 200)

    const answer = await adminAction('logout-all')
    assert.equal(answer.status, 200)
    assert.deepEqual(await answer.json(), { successRequests: [`${url}/`], failedRequests: [goneAdminUrl] }, 'Keycloak\'s GlobalRequestResult, answered once each call came to something')
    const call = await adminCall(calls, 0)
    assert.equal(call.path, '/k_logout')
    const action = await verifiedAdminCall(call)
    assert.deepEqual({ ...action, id: typeof action.id, expiration: typeof action.expiration, notBefore: typeof action.notBefore },
      { id: 'string', expiration: 'number', resource: 'connect-admin', action: 'LOGOUT', notBefore: 'number' })
    assert.ok(Math.abs((action.notBefore as number) - Date.now() / 1000) < 60)

    assert.equal(await appAnswers(older), 302, 'keycloak-connect refuses the token issued before, without asking the realm')
    assert.equal(await appSignedIn(browser), false, 'and the session\'s grant, and the realm session is over')
    assert.equal(await appAnswers((await passwordLogin(gw, 'alice', 'alice-password')).access_token), 200, 'a token issued since is taken')
  })

  it('tells an application started since the logout-all the realm\'s not-before again at push-revocation: k_push_not_before', async () => {
    adminUrlApp()
    const older = await olderAccessToken()
    assert.equal((await adminAction('logout-all')).status, 200)
    // A new process of the application knows no not-before, and checks bearer tokens offline.
    const { calls } = adminUrlApp()
    assert.equal(await appAnswers(older), 200)

    const answer = await adminAction('push-revocation')
    assert.equal(answer.status, 200)
    assert.deepEqual(await answer.json(), { successRequests: [`${url}/`], failedRequests: [goneAdminUrl] })
    const call = await adminCall(calls, 0)
    assert.equal(call.path, '/k_push_not_before')
    const action = await verifiedAdminCall(call)
    assert.deepEqual({ ...action, id: typeof action.id, expiration: typeof action.expiration, notBefore: typeof action.notBefore },
      { id: 'string', expiration: 'number', resource: 'connect-admin', action: 'PUSH_NOT_BEFORE', notBefore: 'number' })
    assert.equal(await appAnswers(older), 302)
  })

  it('answers an admin action on a realm that does not exist 404, and one by a user who is not a superuser 403', async () => {
    assert.equal((await gw.fetch('/admin/realms/no-such-realm/logout-all', { method: 'POST', headers: adminAuth })).status, 404)
    const bob = { authorization: `Basic ${Buffer.from('bob:bob-password-long').toString('base64')}` }
    const refused = await gw.fetch(`/admin/realms/${REALM}/push-revocation`, { method: 'POST', headers: bob })
    assert.equal(refused.status, 403)
    assert.equal(typeof ((await refused.json()) as { code?: unknown }).code, 'string')
  })

  it('names every adapter session of the client in one k_logout when sessions end together', async () => {
    const { calls } = adminUrlApp()
    const first = await browserLogin()
    const second = await browserLogin()
    assert.equal(first.status, 200, first.body)
    assert.equal(second.status, 200, second.body)
    const sessionIds = [appSessionId(first.browser), appSessionId(second.browser)]
    const patch = (active: boolean) => gw.fetch(`/api/gateway/v1/users/${aliceId}/`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: active }) })
    assert.equal((await patch(false)).status, 200)
    try {
      const action = await verifiedAdminCall(await adminCall(calls, 0))
      assert.deepEqual([...action.adapterSessionIds as string[]].sort(), [...sessionIds].sort())
      assert.equal((action.keycloakSessionIds as unknown[]).length, 2)
      await gw.app.oidc.backchannelLogouts.settled()
      assert.equal(calls.length, 1, 'one call for the client')
      assert.equal(await appSignedIn(first.browser), false)
      assert.equal(await appSignedIn(second.browser), false)
    } finally {
      assert.equal((await patch(true)).status, 200)
    }
  })

  it('obtains a service account\'s grant with client credentials: no refresh token (Keycloak\'s default), and the ID token Keycloak adds', async () => {
    const keycloak = new Keycloak({}, { ...base(), resource: 'reports', credentials: { secret: SERVICE_SECRET } } as never)
    // keycloak-connect asks for scope `openid`, and checks the ID token Keycloak adds for the service account user.
    const grant = await keycloak.grantManager.obtainFromClientCredentials()
    const content = (grant.access_token as unknown as { content: Record<string, unknown> }).content
    assert.deepEqual({ user: content.preferred_username, azp: content.azp, typ: content.typ }, { user: 'service-account-reports', azp: 'reports', typ: 'Bearer' })
    assert.equal(grant.refresh_token, undefined)
    const id = (grant.id_token as unknown as { content: Record<string, unknown> } | undefined)?.content
    assert.deepEqual({ user: id?.preferred_username, aud: id?.aud, sub: id?.sub, typ: id?.typ }, { user: 'service-account-reports', aud: 'reports', sub: content.sub, typ: 'ID' })
  })
})

describe('keycloak-connect 26 against a realm that signs ES256', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([], { default_signature_algorithm: 'ES256' }) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw?.close())

  it('cannot check its tokens offline (bearer-only verifies RSA signatures only, as with Keycloak), but introspection takes them', async () => {
    const config = { realm: REALM, 'auth-server-url': gw.url, 'ssl-required': 'none' }
    const offline = new Keycloak({}, { ...config, resource: 'connect-api', 'bearer-only': true } as never)
    const alice = await passwordLogin(gw, 'alice', 'alice-password')
    assert.equal(decodeJwtPart(alice.access_token, 0).alg, 'ES256')
    const grant = offline.grantManager.createGrant({ access_token: alice.access_token } as never)
    await assert.rejects(grant, /invalid token \(public key signature\)/)
    const introspecting = new Keycloak({}, { ...config, resource: 'reports', credentials: { secret: SERVICE_SECRET } } as never)
    assert.equal(await introspecting.grantManager.validateAccessToken(alice.access_token), alice.access_token)
  })
})
