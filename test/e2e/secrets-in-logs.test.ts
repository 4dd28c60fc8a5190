import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfigFile, demoConfigFile } from '../../src/config/load.ts'
import { prettyLogStream } from '../../src/logging/pretty.ts'
import { POSTGRES_ADMIN_URL } from '../helpers/postgres.ts'
import { ADMIN_PASSWORD, adminAuth, basic, runCli, spawnGateway, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, SERVICE_PASSWORD, startDirectory, type TestDirectory } from '../helpers/ldap.ts'
import { browse, CookieJar, CLIENT_REDIRECT, realmUrl, realmWith, REALM, SERVICE_SECRET, TOKEN_PATH } from '../helpers/oidc.ts'
import { csrfToken, LOGIN, login, setCookie, withCsrf } from '../helpers/session.ts'
import { Browser } from '../helpers/browser.ts'
import { openProviderLogin, signInUpstream } from '../helpers/sso.ts'
import { bearer } from '../helpers/tokens.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'

// One gateway at the most verbose log level, every credential flow run against it with secrets of its own, right
// and wrong, then every place the gateway writes to searched for each secret, as written, in base64 and
// URL-encoded: its log lines (JSON and pretty), what it writes to standard output and error, the audit trail and
// realm events, the metrics, the error bodies it answers, what the API shows an administrator about others, what a
// service behind it receives in headers, and the output of `serve` and the commands that take secrets.

const demo = loadConfigFile(demoConfigFile)
const OIDC_PATH = `/realms/${REALM}/protocol/openid-connect`
const LOCAL_PASSWORD = 'Local-Pw-4mK9qT7zX2'
const NEW_LOCAL_PASSWORD = 'Changed-Pw-8vR3nW5yJ1'
const WRONG_PASSWORD = 'Wrong-Pw-6hB2cL9pD4'
const WRONG_CLIENT_SECRET = 'Wrong-Client-Secret-3fG7kS1m'
const SSO_CLIENT_SECRET = 'Sso-Client-Secret-9tY4uE6w'
const SSO_USER_PASSWORD = 'Upstream-Pw-2xN8vQ5r'
const FORGED_PAT = 'gatehouse_pat_Forged0Token1Value2Here3abcdefgh'
const MALFORMED_BEARER = 'Malformed-Bearer-7dK3jH8s'
/** Sent as the whole Authorization header, without a scheme, as misconfigured clients send API keys. */
const BARE_KEY = 'BareKey-7hG2kL9pQ4w1'
/** Inside credentials that do not parse: a JWT whose payload is not JSON, basic credentials without a colon. */
const GARBLED_SECRET = 'Garbled-Secret-6yU3iO8p'
const FORGED_SESSION = 'forgedsessionid5Lq9Wc2Z'
const FORGED_CSRF = 'ForgedCsrf0Token1Of2Right3Length4abcdefghijklmnopq'
const QUERY_SECRET = 'Query-Secret-1aS5dF9g'
const CONFIG_BIND_PASSWORD = 'Config-Bind-Pw-5gH2jK8l'
const CONFIG_SSO_SECRET = 'Config-Sso-Secret-3zX7cV1b'
const CONFIG_DB_PASSWORD = 'Config-Db-Pw-6nM4qW9e'
const CLI_PASSWORD = 'Cli-Pw-7rT2yU5iO8'
const CLI_WEAK_PASSWORD = 'CliShort9'
const WRONG_SSO_CLIENT_SECRET = 'Wrong-Sso-Secret-4pL8mN2b'
const METRICS_TOKEN = 'Metrics-Token-8wE3rT6yU1iO'
const WRONG_METRICS_TOKEN = 'Wrong-Metrics-Token-2qA5sD7f'
const WRONG_BIND_PASSWORD = 'Wrong-Bind-Pw-7jH3kL9z'
const DATABASE_URL_PASSWORD = 'Url-Db-Pw-5tG1hJ4k'
const UPSTREAM_URL_PASSWORD = 'Upstream-Url-Pw-3eR8tY2u'

/** Every secret the flows used, by what it is. */
const secrets = new Map<string, string>()
function keep(what: string, value: string | undefined | null): string {
  assert.ok(value, `${what} was handed out`)
  secrets.set(what, value)
  return value
}

/** How a secret can be written down: as it is, in base64 (basic credentials, cookies) and URL-encoded. */
function spellings(value: string): string[] {
  return [...new Set([value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('base64url'), encodeURIComponent(value), new URLSearchParams({ v: value }).toString().slice(2)])]
}

/** Each secret found in `text`, by name and spelling, with what surrounds it. */
function leaks(text: string): string[] {
  const found: string[] = []
  for (const [what, value] of secrets) {
    for (const spelling of spellings(value)) {
      const at = text.indexOf(spelling)
      if (at >= 0) found.push(`${what} (${spelling === value ? 'as is' : spelling}) in …${text.slice(Math.max(0, at - 150), at + spelling.length + 50)}…`)
    }
  }
  return found
}

/** An upstream that takes requests and never answers them: the gateway's response timeout gives 504. */
async function silentUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(() => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }) }
}

describe('no secret reaches a log, the audit trail, the metrics or an error body', () => {
  const logLines: Record<string, unknown>[] = []
  let written = ''
  const errorBodies: string[] = []
  const restoreOutput: (() => void)[] = []
  let directory: TestDirectory
  let idp: UpstreamIdp
  let silent: Awaited<ReturnType<typeof silentUpstream>>
  let recorder: RecordingUpstream
  let gw: TestGateway
  let metricsTokenFile: string
  const scratch: string[] = []
  /** A directory for files the test writes, removed after it. */
  const scratchDir = () => {
    const dir = tempDir()
    scratch.push(dir)
    return dir
  }

  /** A request whose error body, if any, is kept for the search. */
  async function call(path: string, init: RequestInit = {}): Promise<Response> {
    const response = await gw.fetch(path, init)
    if (response.status >= 400) errorBodies.push(await response.clone().text())
    return response
  }
  const form = (fields: Record<string, string>, headers: Record<string, string> = {}): RequestInit =>
    ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(fields).toString() })
  const jsonBody = (body: unknown, headers: Record<string, string>, method = 'POST'): RequestInit =>
    ({ method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

  before(async () => {
    // What the gateway writes to standard output and error in this process (the audit trail's lines among it).
    for (const stream of [process.stdout, process.stderr]) {
      const write = stream.write.bind(stream)
      stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
        written += String(chunk)
        return (write as (...args: unknown[]) => boolean)(chunk, ...rest)
      }) as typeof stream.write
      restoreOutput.push(() => (stream.write = write))
    }
    directory = await startDirectory()
    idp = await startUpstreamIdp({ sam: { sub: 'sub-sam', password: keep('upstream user password', SSO_USER_PASSWORD), claims: { preferred_username: 'sam', email: 'sam@corp.example' } } })
    silent = await silentUpstream()
    recorder = await startRecordingUpstream()
    keep('LDAP bind password', SERVICE_PASSWORD)
    keep('LDAP user password', PASSWORDS.alice!)
    keep('SSO client secret', SSO_CLIENT_SECRET)
    keep('realm client secret', SERVICE_SECRET)
    keep('admin password', ADMIN_PASSWORD)
    const everyCredential = ['basic', 'session', 'token', 'oidc']
    keep('metrics bearer token', METRICS_TOKEN)
    keep('wrong metrics bearer token', WRONG_METRICS_TOKEN)
    keep('wrong SSO client secret', WRONG_SSO_CLIENT_SECRET)
    metricsTokenFile = join(scratchDir(), 'metrics-token')
    writeFileSync(metricsTokenFile, METRICS_TOKEN + '\n')
    gw = await startGateway({
      logLines,
      logLevel: 'trace',
      config: {
        services: [
          ...demo.services,
          { name: 'broken', prefix: '/broken/', upstream: 'http://127.0.0.1:1', accepts: everyCredential, oidc: { realm: REALM, client_id: 'end-users' } },
          { name: 'recorder', prefix: '/recorder/', upstream: recorder.url, accepts: everyCredential, oidc: { realm: REALM, client_id: 'end-users' } },
          { name: 'silent', prefix: '/silent/', upstream: silent.url, accepts: everyCredential, oidc: { realm: REALM, client_id: 'end-users' }, timeouts: { response_seconds: 1 } },
        ],
        realms: realmWith([{ client_id: 'tv', public_client: true, device_authorization_grant: true, redirect_uris: [CLIENT_REDIRECT] }]),
        ldap: directory.config(),
        sso: [
          idp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: SSO_CLIENT_SECRET }),
          idp.ssoConfig({ name: 'misconfigured', label: 'Misconfigured', client_id: 'gatehouse-2', client_secret: WRONG_SSO_CLIENT_SECRET }),
        ],
        metrics: { enabled: true, bearer_token_file: metricsTokenFile },
        audit: { output: 'stdout', flush_ms: 50 },
      },
    })
    idp.addClient({ client_id: 'gatehouse', client_secret: SSO_CLIENT_SECRET, redirect_uris: [`${gw.url}/api/gateway/v1/login/sso/corp/callback/`] })
    idp.addClient({ client_id: 'gatehouse-2', client_secret: SSO_CLIENT_SECRET, redirect_uris: [`${gw.url}/api/gateway/v1/login/sso/misconfigured/callback/`] })
  })
  after(async () => {
    for (const restore of restoreOutput) restore()
    await gw?.close()
    await idp?.close()
    await silent?.close()
    await recorder?.close()
    await directory?.close()
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true })
  })

  it('runs every credential flow, right and wrong', async () => {
    // A local account, created with a password and then changing it.
    keep('local password', LOCAL_PASSWORD)
    keep('new local password', NEW_LOCAL_PASSWORD)
    keep('wrong password', WRONG_PASSWORD)
    assert.equal((await call('/api/gateway/v1/users/', jsonBody({ username: 'lena', password: LOCAL_PASSWORD, is_superuser: true }, adminAuth))).status, 201)
    keep('basic credentials', basic('lena', LOCAL_PASSWORD).slice(6))
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { authorization: basic('lena', LOCAL_PASSWORD) } })).status, 200)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { authorization: basic('lena', WRONG_PASSWORD) } })).status, 401)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { authorization: basic('nobody-here', WRONG_PASSWORD) } })).status, 401)

    // Session login with CSRF, a refused one, a forged cookie and token, the password change and logout.
    keep('forged session id', FORGED_SESSION)
    keep('forged CSRF token', FORGED_CSRF)
    const anonymousCsrf = keep('login CSRF token', await csrfToken(gw))
    const refused = await call(LOGIN, form({ username: 'lena', password: WRONG_PASSWORD }, { 'x-csrftoken': anonymousCsrf, cookie: `csrftoken=${anonymousCsrf}`, referer: gw.url + LOGIN }))
    assert.equal(refused.status, 401)
    // The login form shown again to a browser carries its owner's CSRF token, as forms do, and never the password.
    const refusedInBrowser = await gw.fetch(LOGIN, form({ username: 'lena', password: WRONG_PASSWORD }, { accept: 'text/html', 'x-csrftoken': anonymousCsrf, cookie: `csrftoken=${anonymousCsrf}`, referer: gw.url + LOGIN }))
    assert.equal(refusedInBrowser.status, 401)
    const formAgain = await refusedInBrowser.text()
    assert.ok(spellings(WRONG_PASSWORD).every((spelling) => !formAgain.includes(spelling)), formAgain)
    assert.equal((await call(LOGIN, form({ username: 'lena', password: LOCAL_PASSWORD }, { 'x-csrftoken': FORGED_CSRF, cookie: `csrftoken=${anonymousCsrf}`, referer: gw.url + LOGIN }))).status, 403)
    const session = await login(gw, 'lena', LOCAL_PASSWORD)
    keep('session id', session.sessionId)
    keep('session CSRF token', session.csrf)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { cookie: session.cookie } })).status, 200)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { cookie: `gateway_sessionid=${FORGED_SESSION}` } })).status, 401)
    assert.equal((await call('/api/gateway/v1/me/password/', jsonBody({ current_password: WRONG_PASSWORD, new_password: NEW_LOCAL_PASSWORD }, withCsrf(session)))).status, 400)
    const changed = await call('/api/gateway/v1/me/password/', jsonBody({ current_password: LOCAL_PASSWORD, new_password: NEW_LOCAL_PASSWORD }, withCsrf(session)))
    assert.ok(changed.status < 300, `password changed: ${changed.status}`)
    const kept = setCookie(changed, 'gateway_sessionid')?.value
    if (kept) keep('session id after the password change', kept)
    const second = await login(gw, 'lena', NEW_LOCAL_PASSWORD)
    keep('second session id', second.sessionId)
    keep('second session CSRF token', second.csrf)
    assert.equal((await call('/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(second, { referer: gw.url + LOGIN }) })).status < 400, true)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { cookie: second.cookie } })).status, 401)

    // Personal tokens: created, used, revoked, used again; forged and malformed ones.
    keep('forged personal token', FORGED_PAT)
    keep('malformed bearer token', MALFORMED_BEARER)
    const created = await (await call('/api/gateway/v1/tokens/', jsonBody({ scope: 'write' }, adminAuth))).json() as { id: number; token: string }
    const pat = keep('personal token', created.token)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: bearer(pat) })).status, 200)
    assert.equal((await call(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: bearer(pat) })).status, 401)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: bearer(FORGED_PAT) })).status, 401)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: bearer(MALFORMED_BEARER) })).status, 401)
    keep('credential without a scheme', BARE_KEY)
    keep('secret inside a malformed credential', GARBLED_SECRET)
    const notJson = Buffer.from(`{"iss":"${GARBLED_SECRET}`).toString('base64url')
    for (const authorization of [`Basic ${Buffer.from(GARBLED_SECRET).toString('base64')}`, `Basic ${GARBLED_SECRET}!`, `Bearer eyJhbGciOiJSUzI1NiJ9.${notJson}.c2ln`, `Bearer ${GARBLED_SECRET} ${GARBLED_SECRET}`]) {
      for (const path of ['/api/controller/v2/hosts/', '/broken/x', '/api/gateway/v1/me/', `${OIDC_PATH}/userinfo`]) {
        assert.ok([400, 401].includes((await call(path, { headers: { authorization } })).status), `${path} ${authorization}`)
      }
    }
    await call(`${OIDC_PATH}/logout?id_token_hint=eyJhbGciOiJSUzI1NiJ9.${notJson}.c2ln`)
    await call(`${OIDC_PATH}/token/introspect`, form({ token: `eyJhbGciOiJSUzI1NiJ9.${notJson}.c2ln` }, { authorization: basic('reports', SERVICE_SECRET) }))
    await call('/api/controller/v2/hosts/', { headers: { cookie: `gateway_sessionid=${GARBLED_SECRET}%ZZ; csrftoken=${GARBLED_SECRET}` } })
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { authorization: BARE_KEY } })).status, 401)
    const live = await (await call('/api/gateway/v1/tokens/', jsonBody({ scope: 'read' }, adminAuth))).json() as { token: string }
    const livePat = keep('second personal token', live.token)
    const expiring = await runCli(['tokens', 'create', '--user', 'admin', '--expires-in', '1', '--data-dir', gw.dataDir])
    const expired = keep('expired personal token', expiring.stdout.trim())
    await new Promise((resolve) => setTimeout(resolve, 1100))
    assert.equal((await call('/api/controller/v2/hosts/', { headers: bearer(expired) })).status, 401)

    // An OAuth2 application's secret, shown once; a password an administrator sets.
    const application = await (await call('/api/gateway/v1/applications/', jsonBody({ name: 'Reports app', client_type: 'confidential', authorization_grant_type: 'password' }, adminAuth))).json() as { id: number; client_secret: string }
    keep('application client secret', application.client_secret)
    const lena = (await (await call('/api/gateway/v1/users/?username=lena', { headers: adminAuth })).json() as { results: { id: number }[] }).results[0]!.id
    assert.equal((await call(`/api/gateway/v1/users/${lena}/`, jsonBody({ password: LOCAL_PASSWORD + '-reset' }, adminAuth, 'PATCH'))).status, 200)
    keep('password an administrator set', LOCAL_PASSWORD + '-reset')
    assert.equal((await call(`/api/gateway/v1/users/${lena}/`, jsonBody({ password: NEW_LOCAL_PASSWORD }, adminAuth, 'PATCH'))).status, 200)
    assert.equal((await call(`/api/gateway/v1/users/${lena}/`, jsonBody({ password: CLI_WEAK_PASSWORD }, adminAuth, 'PATCH'))).status, 400)

    // The realm: password, refresh, client credentials, code and device grants with a confidential client;
    // introspection, revocation, logout; and the same with a wrong secret, a wrong password, a forged token.
    keep('wrong client secret', WRONG_CLIENT_SECRET)
    const confidential = { authorization: basic('reports', SERVICE_SECRET) }
    keep('client basic credentials', confidential.authorization.slice(6))
    const grant = async (fields: Record<string, string>, headers: Record<string, string> = {}) => {
      const response = await call(TOKEN_PATH, form(fields, headers))
      const body = await response.json() as Record<string, string>
      for (const name of ['access_token', 'refresh_token', 'id_token']) if (body[name]) keep(`${fields.grant_type} ${name}`, body[name])
      return { status: response.status, body }
    }
    const password = await grant({ grant_type: 'password', client_id: 'reports', client_secret: SERVICE_SECRET, username: 'lena', password: NEW_LOCAL_PASSWORD, scope: 'openid' })
    assert.equal(password.status, 200)
    assert.equal((await grant({ grant_type: 'password', client_id: 'reports', client_secret: SERVICE_SECRET, username: 'lena', password: WRONG_PASSWORD })).status, 400)
    assert.equal((await grant({ grant_type: 'password', client_id: 'reports', client_secret: WRONG_CLIENT_SECRET, username: 'lena', password: NEW_LOCAL_PASSWORD })).status, 401)
    const refreshed = await grant({ grant_type: 'refresh_token', refresh_token: password.body.refresh_token! }, confidential)
    assert.equal(refreshed.status, 200)
    assert.equal((await grant({ grant_type: 'refresh_token', refresh_token: password.body.refresh_token! }, confidential)).status, 400, 'a used refresh token is refused')
    assert.equal((await grant({ grant_type: 'refresh_token', refresh_token: MALFORMED_BEARER }, confidential)).status, 400)
    assert.equal((await grant({ grant_type: 'client_credentials' }, confidential)).status, 200)
    assert.equal((await grant({ grant_type: 'client_credentials' }, { authorization: basic('reports', WRONG_CLIENT_SECRET) })).status, 401)
    // Some clients put their secrets in the query string.
    assert.equal((await grant({ grant_type: 'client_credentials' }, {})).status, 401)
    keep('secret in a query string', QUERY_SECRET)
    await call(`${TOKEN_PATH}?client_id=reports&client_secret=${QUERY_SECRET}&password=${QUERY_SECRET}`, form({ grant_type: 'client_credentials' }))
    const endUsers = await grant({ grant_type: 'password', client_id: 'end-users', username: 'lena', password: NEW_LOCAL_PASSWORD, scope: 'openid' })
    assert.equal(endUsers.status, 200)
    const access = endUsers.body.access_token!

    const jar = new CookieJar()
    const start = `${realmUrl(gw)}${OIDC_PATH.slice(`/realms/${REALM}`.length)}/auth?` + new URLSearchParams({ client_id: 'reports', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'st4te' })
    const loginPage = await browse(gw, jar, start)
    const action = /<form method="post" action="([^"]+)"/.exec(await loginPage.response.text())![1]!
    const refusedPage = await (await browse(gw, jar, gw.url + action, form({ username: 'lena', password: WRONG_PASSWORD }))).response.text()
    assert.ok(spellings(WRONG_PASSWORD).every((spelling) => !refusedPage.includes(spelling)), refusedPage)
    const again = await browse(gw, jar, start)
    const retry = /<form method="post" action="([^"]+)"/.exec(await again.response.text())![1]!
    const done = await browse(gw, jar, gw.url + retry, form({ username: 'lena', password: NEW_LOCAL_PASSWORD }))
    const code = keep('authorization code', new URL(done.url).searchParams.get('code'))
    for (const cookie of jar.header().split('; ')) keep(`realm cookie ${cookie.split('=')[0]}`, cookie.slice(cookie.indexOf('=') + 1))
    assert.equal((await grant({ grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT }, confidential)).status, 200)
    assert.equal((await grant({ grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT }, confidential)).status, 400, 'a used code is refused')

    const device = await (await call(`${OIDC_PATH}/auth/device`, form({ client_id: 'tv' }))).json() as { device_code: string; user_code: string }
    keep('device code', device.device_code)
    assert.equal((await grant({ client_id: 'tv', grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: device.device_code })).status, 400)

    const introspected = await call(`${OIDC_PATH}/token/introspect`, form({ token: access }, confidential))
    assert.equal(introspected.status, 200)
    assert.equal((await call(`${OIDC_PATH}/token/introspect`, form({ token: access }, { authorization: basic('reports', WRONG_CLIENT_SECRET) }))).status, 401)
    assert.equal((await call(`${OIDC_PATH}/userinfo`, { headers: bearer(access) })).status, 200)
    assert.equal((await call(`${OIDC_PATH}/userinfo`, { headers: bearer(access.slice(0, -4) + 'AAAA') })).status, 401)
    assert.equal((await call(`${OIDC_PATH}/revoke`, form({ token: refreshed.body.refresh_token!, token_type_hint: 'refresh_token' }, confidential))).status, 200)
    assert.ok((await call(`${OIDC_PATH}/logout`, form({ refresh_token: password.body.refresh_token! }, confidential))).status < 500)

    // A directory account, right and wrong.
    const alice = await login(gw, 'alice', PASSWORDS.alice!)
    keep('directory session id', alice.sessionId)
    keep('directory session CSRF token', alice.csrf)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { authorization: basic('alice', PASSWORDS.alice!) } })).status, 200)
    assert.equal((await call('/api/controller/v2/hosts/', { headers: { authorization: basic('alice', WRONG_PASSWORD) } })).status, 401)

    // Single sign-on at an upstream provider.
    const upstream = new Browser()
    const back = await signInUpstream(gw, upstream, await openProviderLogin(gw, upstream, 'Corp ID'), 'sam', SSO_USER_PASSWORD)
    keep('authorization code of the upstream provider, used', new URL(back).searchParams.get('code'))
    const signedIn = await upstream.navigate(back)
    assert.equal(signedIn.response.status, 200)
    const misconfigured = new Browser()
    const callback = await signInUpstream(gw, misconfigured, await openProviderLogin(gw, misconfigured, 'Misconfigured'), 'sam', SSO_USER_PASSWORD)
    keep('authorization code of the upstream provider', new URL(callback).searchParams.get('code'))
    assert.equal((await misconfigured.navigate(callback)).response.status, 502)
    assert.equal((await call('/api/gateway/v1/login/sso/corp/callback/?code=' + QUERY_SECRET + '&state=forged')).status >= 400, true)

    // Each credential on its way to a service that is down (502) and one that does not answer (504), with
    // secrets in the query string as some clients send them.
    const query = `?code=${QUERY_SECRET}&access_token=${QUERY_SECRET}&refresh_token=${QUERY_SECRET}&client_secret=${QUERY_SECRET}&password=${QUERY_SECRET}`
    const credentials: Record<string, string>[] = [
      { authorization: basic('lena', NEW_LOCAL_PASSWORD) }, { cookie: alice.cookie }, bearer(livePat), bearer(access),
      { authorization: basic('lena', WRONG_PASSWORD) }, bearer(FORGED_PAT), { cookie: `gateway_sessionid=${FORGED_SESSION}` },
    ]
    for (const prefix of ['/broken/', '/silent/']) {
      for (const headers of credentials) {
        const response = await call(`${prefix}anything/${query}`, { headers })
        assert.ok([401, 502, 504].includes(response.status), `${prefix}: ${response.status}`)
      }
      // A body with secrets that a POST carries to the service.
      await call(`${prefix}login${query}`, form({ password: QUERY_SECRET, client_secret: QUERY_SECRET }, { authorization: basic('lena', NEW_LOCAL_PASSWORD) }))
    }
    // The gateway's credentials, consumed by it, never reach the service behind it.
    for (const headers of credentials.slice(0, 4)) assert.equal((await call('/recorder/anything/', { headers })).status, 200)
    assert.equal((await call('/recorder/anything/', { method: 'POST', headers: withCsrf(alice, { referer: gw.url + '/recorder/' }) })).status, 200)
    assert.equal(recorder.seen.length, 5)
    assert.deepEqual(leaks(JSON.stringify(recorder.seen.map((request) => request.rawHeaders))), [], 'what the service behind the gateway received')
    assert.equal((await call('/metrics', { headers: bearer(WRONG_METRICS_TOKEN) })).status, 401)
    assert.equal((await call(`/api/controller/v2/hosts/${query}`, { headers: bearer(livePat) })).status, 200)
    assert.equal((await call(`/api/gateway/v1/me/${query}`, { headers: bearer(MALFORMED_BEARER) })).status, 401)
  })

  it('runs the commands that take secrets, and a configuration with secrets that fails validation', async () => {
    const cli = async (args: string[], input?: string) => {
      const result = await runCli([...args, '--data-dir', gw.dataDir], { input, env: { GATEHOUSE_LOG_LEVEL: 'trace' } })
      return { ...result, output: result.stdout + result.stderr }
    }
    keep('password given to a command', CLI_PASSWORD)
    keep('weak password given to a command', CLI_WEAK_PASSWORD)
    const outputs: string[] = []
    const created = await cli(['users', 'create', 'cleo', '--password-stdin'], CLI_PASSWORD + '\n')
    assert.equal(created.code, 0, created.output)
    outputs.push(created.output)
    const weak = await cli(['users', 'set-password', 'cleo', '--password-stdin'], CLI_WEAK_PASSWORD + '\n')
    assert.notEqual(weak.code, 0)
    outputs.push(weak.output)
    outputs.push((await cli(['users', 'set-password', 'cleo', '--password-stdin'], CLI_PASSWORD + '-again\n')).output)
    outputs.push((await cli(['tokens', 'list'])).output)
    keep('wrong bind password', WRONG_BIND_PASSWORD)
    const ldapDir = scratchDir()
    const ldapFile = join(ldapDir, 'ldap.yaml')
    for (const [bindPassword, userPassword] of [[SERVICE_PASSWORD, PASSWORDS.alice!], [SERVICE_PASSWORD, WRONG_PASSWORD], [WRONG_BIND_PASSWORD, PASSWORDS.alice!]]) {
      writeFileSync(ldapFile, JSON.stringify({ ...demo, ldap: directory.config({ bind_password: bindPassword }) }))
      const tested = await runCli(['ldap', 'test', '--user', 'alice', '--password-stdin', '--config', ldapFile], { input: userPassword })
      outputs.push(tested.stdout + tested.stderr)
    }
    keep('database password in a URL query', DATABASE_URL_PASSWORD)
    const databaseUrl = new URL(POSTGRES_ADMIN_URL)
    databaseUrl.searchParams.set('password', DATABASE_URL_PASSWORD)
    const status = await runCli(['migrate', '--status', '--database', databaseUrl.href])
    assert.equal(status.code, 0, status.stderr)
    outputs.push(status.stdout + status.stderr)
    outputs.push((await cli(['users', 'list'])).output)

    const file = join(scratchDir(), 'gatehouse.yaml')
    keep('bind password in a configuration file', CONFIG_BIND_PASSWORD)
    keep('SSO secret in a configuration file', CONFIG_SSO_SECRET)
    keep('database password in a configuration file', CONFIG_DB_PASSWORD)
    writeFileSync(file, [
      'storage:',
      `  database: mysql://gatehouse:${CONFIG_DB_PASSWORD}@db.example.test/gatehouse`,
      'ldap:',
      '  url: ldap://127.0.0.1:1',
      `  bind_password: ${CONFIG_BIND_PASSWORD}`,
      `  bind_password_env: ALSO_SET`,
      'sso:',
      `  - { name: corp, label: Corp, issuer: not-a-url, client_id: 7, client_secret: ${CONFIG_SSO_SECRET}, client_secret_env: ALSO }`,
      'realms:',
      `  - { name: platform, clients: [{ client_id: reports, public_client: true, secret: ${CONFIG_SSO_SECRET} }] }`,
    ].join('\n'))
    const check = await runCli(['config', 'check', file])
    assert.notEqual(check.code, 0)
    outputs.push(check.stdout + check.stderr)
    const serve = await runCli(['serve', '--config', file, '--port', '0', '--log-level', 'trace'])
    assert.notEqual(serve.code, 0)
    outputs.push(serve.stdout + serve.stderr)
    // The same secrets taken from the environment (${NAME}) into a file refused for other reasons.
    const substituted = join(scratchDir(), 'substituted.yaml')
    writeFileSync(substituted, [
      'storage:', '  database: ${CONFIG_DATABASE_URL}',
      'ldap:', '  url: ldap://127.0.0.1:1', '  bind_password: ${CONFIG_BIND_PASSWORD}', '  bind_password_env: ALSO_SET',
      'sso:', '  - { name: corp, label: Corp, issuer: not-a-url, client_id: "7", client_secret: "${CONFIG_SSO_SECRET}" }',
      'realms:', '  - { name: platform, clients: [{ client_id: reports, public_client: true, secret: "${CONFIG_SSO_SECRET}" }] }',
    ].join('\n'))
    const substitutedEnv = { CONFIG_DATABASE_URL: `mysql://gatehouse:${CONFIG_DB_PASSWORD}@db.example.test/gatehouse`, CONFIG_BIND_PASSWORD, CONFIG_SSO_SECRET }
    for (const args of [['config', 'check', substituted], ['serve', '--config', substituted, '--port', '0', '--log-level', 'trace']]) {
      const refused = await runCli(args, { env: substitutedEnv })
      assert.equal(refused.code, 2, refused.stderr)
      assert.match(refused.stderr, /storage\.database/)
      outputs.push(refused.stdout + refused.stderr)
    }
    // `serve` itself, in both formats: its start summary, its log, and a request carrying basic credentials and
    // query secrets to a service that is down, whose upstream URL holds a password.
    keep('password in an upstream URL', UPSTREAM_URL_PASSWORD)
    const served = join(scratchDir(), 'served.yaml')
    writeFileSync(served, JSON.stringify({ services: [{ name: 'down', prefix: '/down/', upstream: `http://svc-user:${UPSTREAM_URL_PASSWORD}@127.0.0.1:1`, accepts: ['basic'] }] }))
    for (const format of ['json', 'pretty']) {
      const gateway = await spawnGateway(['--config', served, '--data-dir', scratchDir(), '--log-format', format], { GATEHOUSE_LOG_LEVEL: 'trace' })
      try {
        const response = await fetch(`${gateway.url}/down/x?password=${QUERY_SECRET}&code=${QUERY_SECRET}`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } })
        assert.equal(response.status, 502)
        errorBodies.push(await response.text())
      } finally {
        await gateway.stop()
      }
      outputs.push(gateway.output())
    }
    // YAML that does not parse, with the secret on the lines the parser stops at.
    const unparsable = join(scratchDir(), 'unparsable.yaml')
    writeFileSync(unparsable, `ldap:\n  bind_password: ${CONFIG_BIND_PASSWORD}: [\n  bind_password: ${CONFIG_BIND_PASSWORD}\n   url: x\n`)
    for (const args of [['config', 'check', unparsable], ['serve', '--config', unparsable, '--port', '0']]) {
      const refused = await runCli(args)
      assert.notEqual(refused.code, 0)
      outputs.push(refused.stdout + refused.stderr)
    }
    // A first superuser's password the policy refuses.
    const weakAdmin = await runCli(['serve', '--demo', '--port', '0', '--data-dir', scratchDir()], { env: { GATEHOUSE_ADMIN_PASSWORD: CLI_WEAK_PASSWORD } })
    assert.notEqual(weakAdmin.code, 0)
    outputs.push(weakAdmin.stdout + weakAdmin.stderr)
    const database = await runCli(['migrate', '--database', `mysql://gatehouse:${CONFIG_DB_PASSWORD}@db.example.test/gatehouse`])
    outputs.push(database.stdout + database.stderr)
    assert.deepEqual(leaks(outputs.join('\n')), [], outputs.join('\n'))
  })

  it('redacts secrets by their field names in any object a log line carries, as a later log call might', () => {
    const fields = ['password', 'token', 'secret', 'client_secret', 'access_token', 'refresh_token', 'id_token', 'device_code', 'bind_password', 'current_password', 'new_password', 'authorization', 'cookie']
    const valueOf = (field: string, depth: string) => keep(`a field ${field} logged ${depth}`, `Logged-${field}-${depth}-4rT8`)
    gw.server.log.warn(Object.fromEntries(fields.map((field) => [field, valueOf(field, 'at the top')])), 'an object with secrets')
    gw.server.log.warn({ nested: Object.fromEntries(fields.map((field) => [field, valueOf(field, 'one level down')])) }, 'an object with secrets inside')
  })

  it('finds none of them in the log, in either format, or in standard output and error', async () => {
    // Wait for the audit trail's batch and any log line still on its way.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const json = logLines.map((line) => JSON.stringify(line)).join('\n')
    assert.equal(gw.server.log.level, 'trace', 'the most verbose level')
    assert.ok(json.includes('"msg":"request"'), 'request lines were logged')
    assert.deepEqual(leaks(json), [], 'JSON log')
    let pretty = ''
    const stream = prettyLogStream({ write: (text: string) => { pretty += text; return true } } as unknown as NodeJS.WritableStream, false)
    for (const line of logLines) stream.write(JSON.stringify(line) + '\n')
    assert.ok(pretty.length > 0)
    assert.deepEqual(leaks(pretty), [], 'pretty log')
    assert.deepEqual(leaks(written), [], 'standard output and error')
  })

  it('finds none of them in the audit trail or the realm events', async () => {
    const entries: unknown[] = []
    for (let next: string | null = '/api/gateway/v1/activitystream/?page_size=200'; next;) {
      const page = await (await gw.fetch(next.replace(gw.url, ''), { headers: adminAuth })).json() as { results: unknown[]; next: string | null }
      entries.push(...page.results)
      next = page.next
    }
    assert.ok(entries.length > 5, 'the activity stream has entries')
    const events = await (await gw.fetch(`/admin/realms/${REALM}/events?max=1000`, { headers: adminAuth })).text()
    assert.deepEqual(leaks(JSON.stringify(entries)), [], 'activity stream')
    assert.deepEqual(leaks(events), [], 'realm events')
  })

  it('finds none of them in what an administrator or auditor reads about others: accounts, tokens, sessions, applications', async () => {
    const lists = ['users/', 'tokens/', 'sessions/', 'applications/', 'settings/all/', 'me/sessions/', 'role_user_assignments/']
    const read: string[] = []
    for (const list of lists) {
      const response = await gw.fetch(`/api/gateway/v1/${list}?page_size=200`, { headers: adminAuth })
      assert.equal(response.status, 200, list)
      read.push(await response.text())
    }
    const lena = (JSON.parse(read[0]!) as { results: { id: number; username: string }[] }).results.find((user) => user.username === 'lena')!
    for (const path of [`users/${lena.id}/`, `users/${lena.id}/sessions/`, `users/${lena.id}/tokens/`]) read.push(await (await gw.fetch(`/api/gateway/v1/${path}`, { headers: adminAuth })).text())
    assert.deepEqual(leaks(read.join('\n')), [], 'the gateway API')
  })

  it('finds none of them in the metrics or in any error body', async () => {
    const metrics = await (await gw.fetch('/metrics', { headers: bearer(METRICS_TOKEN) })).text()
    assert.match(metrics, /gatehouse_/)
    assert.deepEqual(leaks(metrics), [], 'metrics')
    assert.ok(errorBodies.length > 10)
    assert.deepEqual(leaks(errorBodies.join('\n')), [], 'error bodies')
  })
})
