import assert from 'node:assert/strict'
import { createPublicKey } from 'node:crypto'
import { after, before, describe, it, mock } from 'node:test'
import { jwtVerify } from 'jose'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { asAnEarlierVersion } from '../helpers/username-pairs.ts'
import { browse, CLIENT_REDIRECT, codeRedemption, CookieJar, decodeJwtPart, REALM, realmUrl, realmWith, SERVICE_SECRET, submitForm, testRealms, TOKEN_PATH, tokenRequest } from '../helpers/oidc.ts'

const NO_SERVICE_ACCOUNT_SECRET = 'no-service-account-secret-0123'

/** Keycloak's token endpoint, as curl and scripts see it: members, order, headers, and error wording. */
describe('the token endpoint speaks Keycloak', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([{ client_id: 'no-service-account', public_client: false, secret: NO_SERVICE_ACCOUNT_SECRET }]) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com', isSuperuser: true })
    await gw.app.accounts.create({ username: 'dora', password: 'dora-password', isActive: false })
  })
  after(() => gw.close())

  it('records the password grant\'s login and reads the account no more: the row the login wrote is the one kept in memory', async () => {
    const alice = (await gw.app.store.users.findByUsername('alice'))!
    const stats = gw.app.accounts.stats
    const missesBefore = stats.misses
    const began = Date.now()
    const { status } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password' })
    assert.equal(status, 200)
    assert.equal(stats.misses, missesBefore)
    const hitsBefore = stats.hits
    const remembered = await gw.app.accounts.get(alice.id)
    assert.equal(stats.hits, hitsBefore + 1)
    assert.ok(remembered!.lastLogin! >= began)
    assert.deepEqual(remembered, await gw.app.store.users.findById(alice.id))
  })

  it('answers the password grant with Keycloak\'s members, in Keycloak\'s order, not to be cached', async () => {
    const { status, headers, body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password' })
    assert.equal(status, 200)
    assert.equal(headers.get('cache-control'), 'no-store')
    assert.equal(headers.get('pragma'), 'no-cache')
    assert.match(headers.get('content-type') ?? '', /application\/json/)
    assert.deepEqual(Object.keys(body), ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type', 'not-before-policy', 'session_state', 'scope'])
    assert.equal(body.token_type, 'Bearer')
    assert.equal(body.expires_in, 300)
    assert.equal(body.refresh_expires_in, 1800)
    assert.equal(body['not-before-policy'], 0)
    assert.equal(body.scope, 'profile email')
  })

  it('puts Keycloak\'s claims in a JWT access token signed with the realm\'s current key', async () => {
    const { body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' })
    const header = decodeJwtPart(body.access_token, 0)
    const claims = decodeJwtPart(body.access_token, 1)
    const certs = await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`))
    assert.equal(header.alg, 'RS256')
    assert.equal(header.typ, 'JWT')
    assert.ok(certs.keys.some((k: { kid: string }) => k.kid === header.kid))
    assert.ok(certs.keys.every((k: Record<string, unknown>) => k.d === undefined))
    const user = await gw.store.users.findByUsername('alice')
    assert.equal(claims.iss, `${gw.url}/realms/${REALM}`)
    assert.equal(claims.sub, String(user!.id))
    assert.equal(claims.aud, 'account')
    assert.equal(claims.azp, 'end-users')
    assert.equal(claims.typ, 'Bearer')
    assert.equal(claims.exp - claims.iat, 300)
    assert.equal(typeof claims.jti, 'string')
    assert.equal(claims.sid, body.session_state)
    assert.equal(claims.scope, 'openid profile email')
    assert.equal(claims.preferred_username, 'alice')
    assert.equal(claims.email, 'alice@example.com')
    assert.equal(claims.email_verified, false)
    assert.deepEqual(claims.realm_access.roles, ['default-roles-platform', 'offline_access', 'uma_authorization', 'admin'])
    assert.equal(typeof body.id_token, 'string')
    assert.equal(decodeJwtPart(body.id_token, 1).aud, 'end-users')
  })

  it('refreshes with the same members, and a new refresh token each time', async () => {
    const login = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password' })
    const { status, body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.body.refresh_token })
    assert.equal(status, 200)
    assert.deepEqual(Object.keys(body), ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type', 'not-before-policy', 'session_state', 'scope'])
    assert.equal(body.session_state, login.body.session_state)
    assert.notEqual(body.refresh_token, login.body.refresh_token)
  })

  it('gives a confidential client a service account token without a refresh token', async () => {
    const { status, body } = await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'reports', client_secret: SERVICE_SECRET })
    assert.equal(status, 200)
    assert.equal(body.refresh_expires_in, 0)
    assert.equal(body.refresh_token, undefined)
    assert.equal(body.scope, 'profile email')
    assert.equal(decodeJwtPart(body.access_token, 1).client_id, 'reports')
  })

  it('gives a service account the default scopes with those it asks for, as Keycloak does', async () => {
    const { status, body } = await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'reports', client_secret: SERVICE_SECRET, scope: 'openid' })
    assert.equal(status, 200)
    assert.equal(body.scope, 'openid profile email')
    assert.equal(decodeJwtPart(body.access_token, 1).scope, 'openid profile email')
  })

  describe('bad requests get Keycloak\'s error and change nothing', () => {
    const cases: [string, () => Promise<{ status: number; headers: Headers; body: any }>, number, string, string][] = []
    const form = (fields: [string, string][]) => new URLSearchParams(fields)
    const basicReports = (secret: string) => ({ authorization: 'Basic ' + Buffer.from(`reports:${secret}`).toString('base64') })
    const add = (name: string, request: () => Promise<{ status: number; headers: Headers; body: any }>, status: number, error: string, description: string) => cases.push([name, request, status, error, description])
    const raw = async (body: string, headers: Record<string, string>) => {
      const response = await gw.fetch(TOKEN_PATH, { method: 'POST', headers, body })
      return { status: response.status, headers: response.headers, body: await json(response) }
    }

    add('no grant_type', () => tokenRequest(gw, { client_id: 'end-users', username: 'alice', password: 'alice-password' }), 400, 'invalid_request', 'Missing form parameter: grant_type')
    add('an empty form', () => tokenRequest(gw, {}), 400, 'invalid_request', 'Missing form parameter: grant_type')
    add('grant_type twice', () => tokenRequest(gw, form([['client_id', 'end-users'], ['grant_type', 'password'], ['grant_type', 'password'], ['username', 'alice'], ['password', 'alice-password']])), 400, 'invalid_request', 'duplicated parameter')
    add('username twice', () => tokenRequest(gw, form([['client_id', 'end-users'], ['grant_type', 'password'], ['username', 'alice'], ['username', 'bob'], ['password', 'alice-password']])), 400, 'invalid_request', 'duplicated parameter')
    add('an unknown grant', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'urn:example:magic' }), 400, 'unsupported_grant_type', 'Unsupported grant_type')
    add('an unknown grant from an unknown client', () => tokenRequest(gw, { client_id: 'nobody', grant_type: 'magic' }), 400, 'unsupported_grant_type', 'Unsupported grant_type')
    add('token exchange, which the realm does not offer', () => tokenRequest(gw, { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: 'x', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', audience: 'end-users' }, basicReports(SERVICE_SECRET)), 400, 'unsupported_grant_type', 'Unsupported grant_type')
    add('an unknown client', () => tokenRequest(gw, { client_id: 'nobody', grant_type: 'password', username: 'alice', password: 'alice-password' }), 401, 'invalid_client', 'Invalid client or Invalid client credentials')
    add('no client_id', () => tokenRequest(gw, { grant_type: 'password', username: 'alice', password: 'alice-password' }), 401, 'invalid_client', 'Missing client_id parameter')
    add('a wrong client secret', () => tokenRequest(gw, { grant_type: 'client_credentials' }, basicReports('wrong-secret-0123456789')), 401, 'invalid_client', 'Invalid client or Invalid client credentials')
    add('a confidential client without its secret', () => tokenRequest(gw, { client_id: 'reports', grant_type: 'client_credentials' }), 401, 'invalid_client', 'Invalid client or Invalid client credentials')
    add('a wrong password', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'nope' }), 400, 'invalid_grant', 'Invalid user credentials')
    add('an unknown user', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'nobody', password: 'nope' }), 400, 'invalid_grant', 'Invalid user credentials')
    add('no password', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice' }), 400, 'invalid_grant', 'Invalid user credentials')
    add('no username', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', password: 'x' }), 401, 'invalid_request', 'Missing parameter: username')
    add('different secrets in HTTP basic and the form', () => tokenRequest(gw, { grant_type: 'client_credentials', client_secret: 'wrong-secret-0123456789' }, basicReports(SERVICE_SECRET)), 401, 'invalid_client', 'Invalid client or Invalid client credentials')
    add('a form client_id that is not the basic one', () => tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'end-users', client_secret: SERVICE_SECRET }, basicReports(SERVICE_SECRET)), 401, 'invalid_client', 'Invalid client or Invalid client credentials')
    add('a disabled account', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'dora', password: 'dora-password' }), 400, 'invalid_grant', 'Account disabled')
    add('an unknown scope', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid admin:all' }), 400, 'invalid_scope', 'Invalid scopes: openid admin:all')
    add('an unknown scope for a service account', () => tokenRequest(gw, { grant_type: 'client_credentials', scope: 'openid admin:all' }, basicReports(SERVICE_SECRET)), 400, 'invalid_scope', 'Invalid scopes: openid admin:all')
    // Keycloak's ClientCredentialsGrantType answers these 401, unlike the other grants' unauthorized_client.
    add('client credentials for a public client', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'client_credentials' }), 401, 'unauthorized_client', 'Public client not allowed to retrieve service account')
    add('client credentials for a client without a service account', () => tokenRequest(gw, { client_id: 'no-service-account', client_secret: NO_SERVICE_ACCOUNT_SECRET, grant_type: 'client_credentials' }), 401, 'unauthorized_client', 'Client not enabled to retrieve service account')
    add('the password grant for a client without direct access', () => tokenRequest(gw, { client_id: 'browser-only', grant_type: 'password', username: 'alice', password: 'alice-password' }), 400, 'unauthorized_client', 'Client not allowed for direct access grants')
    add('an unknown refresh token', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: 'made-up' }), 400, 'invalid_grant', 'Invalid refresh token')
    add('no refresh token', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token' }), 400, 'invalid_request', 'Missing parameter: refresh_token')
    add('an unknown code', () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code: 'made-up', redirect_uri: 'http://127.0.0.1:9/callback', code_verifier: 'x'.repeat(43) }), 400, 'invalid_grant', 'Code not valid')
    add('a huge body', () => raw(`client_id=end-users&grant_type=password&username=alice&password=${'x'.repeat(100_000)}`, { 'content-type': 'application/x-www-form-urlencoded' }), 400, 'invalid_request', 'Request body too large')

    async function snapshot() {
      const count = async (table: 'oidc_records' | 'users' | 'events') => Number((await gw.store.database.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n)
      return { records: await count('oidc_records'), users: await count('users'), events: await count('events') }
    }

    it('answers each with {error, error_description} and the RFC 6749 status', async () => {
      await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'reports', client_secret: SERVICE_SECRET })
      const before = await snapshot()
      for (const [name, request, status, error, description] of cases) {
        const response = await request()
        assert.equal(response.status, status, name)
        assert.deepEqual(response.body, { error, error_description: description }, name)
        assert.equal(response.headers.get('cache-control'), 'no-store', name)
        assert.equal(response.headers.get('pragma'), 'no-cache', name)
      }
      assert.deepEqual(await snapshot(), before)
    })
  })

  it('logs in by e-mail address and without regard to the username\'s case, as Keycloak does by default', async () => {
    const alice = await gw.store.users.findByUsername('alice')
    for (const username of ['alice@example.com', 'ALICE', 'Alice@Example.com']) {
      const { status, body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username, password: 'alice-password' })
      assert.equal(status, 200, username)
      assert.equal(decodeJwtPart(body.access_token, 1).sub, String(alice!.id), username)
    }
    await gw.app.accounts.create({ username: 'bob', password: 'bob-password', email: 'shared@example.com' })
    await gw.app.accounts.create({ username: 'carol', password: 'bob-password', email: 'shared@example.com' })
    const ambiguous = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'shared@example.com', password: 'bob-password' })
    assert.equal(ambiguous.status, 400)
    assert.equal(ambiguous.body.error, 'invalid_grant')
  })

  it('keeps both accounts of a pair differing only in case, as an earlier version could make, to their exact names', async () => {
    // Such a pair can no longer be made; a login typing either exact name is that account's, another spelling neither.
    const { passwordHash } = (await gw.store.users.findByUsername('alice'))!
    const [lower, upper] = await asAnEarlierVersion(gw.store, async () => [
      await gw.store.users.create({ username: 'pair', passwordHash }),
      await gw.store.users.create({ username: 'PAIR', passwordHash }),
    ])
    const login = (username: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username, password: 'alice-password' })
    for (const [username, id] of [['pair', lower.id], ['PAIR', upper.id]] as const) {
      const { status, body } = await login(username)
      assert.equal(status, 200, username)
      assert.equal(decodeJwtPart(body.access_token, 1).sub, String(id), username)
    }
    const ambiguous = await login('Pair')
    assert.equal(ambiguous.status, 400)
    assert.equal(ambiguous.body.error, 'invalid_grant')
  })

  it('does not let an SSO account\'s address, whatever its provider sent, make a local user\'s login by address ambiguous', async () => {
    await gw.store.users.create({ username: 'from-provider', email: 'ALICE@example.com', source: 'sso' })
    const alice = await gw.store.users.findByUsername('alice')
    const { status, body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice@example.com', password: 'alice-password' })
    assert.equal(status, 200)
    assert.equal(decodeJwtPart(body.access_token, 1).sub, String(alice!.id))
  })

  it('reads a form\'s bytes that are not UTF-8 as ISO-8859-1, as basic credentials, never as U+FFFD', async () => {
    await gw.app.accounts.create({ username: 'ulla', password: 'replacement-\uFFFD-password' })
    await gw.app.accounts.create({ username: 'lotte', password: 'l\u00e4tin-one-password' })
    const grant = async (body: string | Buffer) => {
      const response = await gw.fetch(TOKEN_PATH, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body })
      return { status: response.status, body: await response.json() as any }
    }
    const form = 'client_id=end-users&grant_type=password&username='
    for (const body of [`${form}ulla&password=replacement-%FF-password`, Buffer.concat([Buffer.from(`${form}ulla&password=replacement-`), Buffer.from([0xff]), Buffer.from('-password')])]) {
      const refused = await grant(body)
      assert.equal(refused.status, 400, String(body))
      assert.equal(refused.body.error, 'invalid_grant')
    }
    assert.equal((await grant(`${form}ulla&password=replacement-%EF%BF%BD-password`)).status, 200)
    for (const body of [`${form}lotte&password=l%E4tin-one-password`, `${form}lotte&password=l%C3%A4tin-one-password`, Buffer.concat([Buffer.from(`${form}lotte&password=l`), Buffer.from([0xe4]), Buffer.from('tin-one-password')])]) {
      const { status, body: answer } = await grant(body)
      assert.equal(status, 200, `${String(body)}: ${JSON.stringify(answer)}`)
      assert.equal(decodeJwtPart(answer.access_token, 1).preferred_username, 'lotte')
    }
  })

  it('takes a confidential client\'s secret in HTTP basic and in the form at once when they agree', async () => {
    const basic = { authorization: 'Basic ' + Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64') }
    const { status, body } = await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'reports', client_secret: SERVICE_SECRET }, basic)
    assert.equal(status, 200)
    assert.equal(decodeJwtPart(body.access_token, 1).azp, 'reports')
  })

  it('answers an unknown path in the realm 404 and a known one with the wrong method 405', async () => {
    const unknown = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/nothing-here`)
    assert.equal(unknown.status, 404)
    assert.equal(typeof (await json(unknown)).error, 'string')
    const wrongMethod = await gw.fetch(TOKEN_PATH)
    assert.equal(wrongMethod.status, 405)
    assert.equal(wrongMethod.headers.get('allow'), 'POST, OPTIONS')
    assert.equal(typeof (await json(wrongMethod)).error, 'string')
    const certs = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`, { method: 'DELETE' })
    assert.equal(certs.status, 405)
    // The pages keycloak-js frames and the realm description are Keycloak's GET resources too.
    for (const path of ['/protocol/openid-connect/login-status-iframe.html', '/protocol/openid-connect/login-status-iframe.html/init', '/protocol/openid-connect/3p-cookies/step1.html', '']) {
      const posted = await gw.fetch(`/realms/${REALM}${path}`, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users' }) })
      assert.equal(posted.status, 405, path)
      assert.equal(posted.headers.get('allow'), 'GET, HEAD', path)
      assert.equal((await json(posted)).error, 'HTTP 405 Method Not Allowed', path)
    }
  })

  it('answers the platform\'s OAuth2 endpoints with the wrong method 405, as django-oauth-toolkit\'s views do', async () => {
    for (const [path, method, allowed] of [['/o/token/', 'GET', 'POST, OPTIONS'], ['/o/revoke_token/', 'GET', 'POST, OPTIONS'], ['/o/authorize/', 'DELETE', 'GET, HEAD, POST']]) {
      const response = await gw.fetch(path!, { method })
      assert.equal(response.status, 405, `${method} ${path}`)
      assert.equal(response.headers.get('allow'), allowed, `${method} ${path}`)
      assert.equal(typeof (await json(response)).error, 'string')
    }
  })

  it('describes the realm with its public key, as older Keycloak adapters expect', async () => {
    const info = await json(await gw.fetch(`/realms/${REALM}`))
    assert.equal(info.realm, REALM)
    assert.equal(info['token-service'], `${gw.url}/realms/${REALM}/protocol/openid-connect`)
    const { body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password' })
    const key = createPublicKey({ key: Buffer.from(info.public_key, 'base64'), format: 'der', type: 'spki' })
    await jwtVerify(body.access_token, key, { issuer: `${gw.url}/realms/${REALM}` })
  })

  it('answers an unknown realm as Keycloak does', async () => {
    const response = await gw.fetch('/realms/elsewhere/protocol/openid-connect/token', { method: 'POST', body: 'grant_type=password' })
    assert.equal(response.status, 404)
    assert.deepEqual(await json(response), { error: 'Realm does not exist' })
  })

  it('answers a browser navigating to an unknown realm, endpoint or method with an error page, as Keycloak\'s error handler does', async () => {
    const navigating = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'sec-fetch-mode': 'navigate' }
    for (const [method, path, status, message, json] of [
      ['GET', '/realms/elsewhere/protocol/openid-connect/auth', 404, 'Page not found', { error: 'Realm does not exist' }],
      ['GET', `/realms/${REALM}/nope`, 404, 'Page not found', { error: 'Unable to find matching target resource method', error_description: 'For more on this error consult the server log.' }],
      ['POST', `/realms/${REALM}/account`, 405, 'Method not allowed', { error: 'HTTP 405 Method Not Allowed' }],
      ['PUT', `/realms/${REALM}/protocol/openid-connect/certs`, 405, 'Method not allowed', { error: 'HTTP 405 Method Not Allowed', error_description: 'For more on this error consult the server log.' }],
    ] as const) {
      const page = await gw.fetch(path, { method, headers: navigating })
      assert.equal(page.status, status, `${method} ${path}`)
      assert.match(page.headers.get('content-type')!, /^text\/html/, `${method} ${path}`)
      assert.equal(page.headers.get('x-frame-options'), 'DENY')
      assert.match(await page.text(), new RegExp(`<p>${message}</p>`), `${method} ${path}`)
      const program = await gw.fetch(path, { method })
      assert.equal(program.status, status, `${method} ${path}`)
      assert.deepEqual(await program.json(), json, `${method} ${path}: a program still gets JSON`)
      if (status === 405) assert.equal(page.headers.get('allow'), program.headers.get('allow'))
    }
  })
})

describe('the provider on PostgreSQL', () => {
  let gw: TestGateway
  let drop: () => Promise<void>

  before(async () => {
    const database = await createTestDatabase()
    drop = database.drop
    gw = await startGateway({ databaseUrl: database.url, config: { realms: testRealms } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(async () => {
    await gw.close()
    await drop()
  })

  it('logs in, refreshes, serves the gateway and logs out', async () => {
    const login = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' })
    assert.equal(login.status, 200)
    const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.body.refresh_token })
    assert.equal(refreshed.status, 200)
    const bearer = { authorization: `Bearer ${refreshed.body.access_token}` }
    assert.equal((await json(await gw.fetch('/demo-app/x', { headers: bearer }))).identity.auth_method, 'oidc')
    const logout = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/logout`, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', refresh_token: refreshed.body.refresh_token }) })
    assert.equal(logout.status, 204)
    assert.equal((await gw.fetch('/demo-app/x', { headers: bearer })).status, 401)
  })
})

// Two gateways on one database, as two processes while a configuration change rolls out: the second no longer has
// the client. Keycloak ends the sessions of a client it removes; a token of a client that is gone is no credential.
describe('a client removed from the configuration', () => {
  let before_: TestGateway
  let after_: TestGateway

  before(async () => {
    before_ = await startGateway({ config: { realms: realmWith([{ client_id: 'retired', direct_access_grants: true, audiences: ['demo-app'] }]) } })
    after_ = await startGateway({ config: { realms: testRealms }, dataDir: before_.dataDir })
    // Both answer as one public URL, so the realm's tokens carry the same issuer everywhere.
    after_.app.publicUrl = before_.url
    await before_.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(async () => {
    await after_?.close()
    await before_?.close()
  })

  it('has its access tokens refused where it is gone, at the gateway, userinfo and introspection', async () => {
    const { body } = await tokenRequest(before_, { client_id: 'retired', grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'openid' })
    const bearer = { authorization: `Bearer ${body.access_token}` }
    assert.equal((await before_.fetch('/demo-app/x', { headers: bearer })).status, 200)
    const refused = await after_.fetch('/demo-app/x', { headers: bearer })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'invalid_token')
    assert.equal((await after_.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: bearer })).status, 401)
    const introspected = await after_.fetch(`/realms/${REALM}/protocol/openid-connect/token/introspect`, { method: 'POST', body: new URLSearchParams({ client_id: 'reports', client_secret: SERVICE_SECRET, token: body.access_token }) })
    assert.deepEqual(await json(introspected), { active: false })
    assert.equal((await tokenRequest(after_, { client_id: 'retired', grant_type: 'refresh_token', refresh_token: body.refresh_token })).status, 401)
  })
})

describe('an authorization code at another realm\'s token endpoint', () => {
  let gw: TestGateway
  before(async () => {
    // Two realms with the same client: only the realm that issued a code may redeem it.
    gw = await startGateway({ config: { realms: [testRealms[0], { ...testRealms[0], name: 'elsewhere' }] } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  it('is refused as a code that realm does not know, and still redeems at the realm that issued it', async () => {
    const form = await codeRedemption(gw, 'alice', 'alice-password')
    const elsewhere = await gw.fetch('/realms/elsewhere/protocol/openid-connect/token', { method: 'POST', body: form })
    assert.equal(elsewhere.status, 400)
    assert.deepEqual(await json(elsewhere), { error: 'invalid_grant', error_description: 'Code not valid' })
    const redeemed = await tokenRequest(gw, form)
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body))
    assert.equal(decodeJwtPart(redeemed.body.access_token, 1).iss, realmUrl(gw))
  })

  it('does not take the realm browser session of another realm, whose cookie is copied to it', async () => {
    const jar = new CookieJar()
    const authorize = (realm: string, extra: Record<string, string> = {}) => `/realms/${realm}/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...extra })}`
    const page = await browse(gw, jar, gw.url + authorize(REALM))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=alice-password' })
    // The realm session's cookie alone, without the gateway's: only that session could sign the browser in silently.
    const realmSession = jar.header().split('; ').filter((pair) => pair.startsWith('gatehouse_oidc_session')).join('; ')
    assert.match(realmSession, /^gatehouse_oidc_session=/)
    const silently = (realm: string) => gw.fetch(authorize(realm, { prompt: 'none' }), { redirect: 'manual', headers: { cookie: realmSession } })
    const own = new URL((await silently(REALM)).headers.get('location')!)
    assert.ok(own.searchParams.get('code'), own.href)
    const elsewhere = new URL((await silently('elsewhere')).headers.get('location')!)
    assert.equal(elsewhere.searchParams.get('code'), null)
    assert.equal(elsewhere.searchParams.get('error'), 'login_required')
  })
})

describe('a device code at another realm\'s token endpoint', () => {
  let gw: TestGateway
  const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
  before(async () => {
    // Two realms with the same device client: only the realm that issued a device code may be polled with it.
    const [realm] = realmWith([
      { client_id: 'tv', public_client: true, device_authorization_grant: true }, { client_id: 'radio', public_client: true, device_authorization_grant: true },
      { client_id: 'kiosk', public_client: false, secret: 'kiosk-secret-0123456789', device_authorization_grant: true },
    ])
    gw = await startGateway({ config: { realms: [{ ...realm, device_code_seconds: 120 }, { ...realm, name: 'elsewhere' }] } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const submit = (jar: CookieJar, page: { response: Response; url: string }, fields: Record<string, string>) => submitForm(gw, jar, page, fields)

  it('is refused as a device code that realm does not know, and still redeems at the realm that issued it', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })
    assert.equal(started.status, 200)
    const { device_code: deviceCode, user_code: userCode } = await started.json() as { device_code: string; user_code: string }
    const poll = (realm: string) => gw.fetch(`/realms/${realm}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', grant_type: DEVICE_GRANT, device_code: deviceCode }) })

    // Before and after the user approves it, the other realm does not know the code.
    const early = await poll('elsewhere')
    assert.equal(early.status, 400)
    assert.deepEqual(await json(early), { error: 'invalid_grant', error_description: 'Device code not valid' })
    const jar = new CookieJar()
    const confirm = await submit(jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
    const login = await submit(jar, confirm, {})
    const action = /<form method="post" action="([^"]+)"/.exec(await login.response.text())![1]!
    await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=alice-password' })
    const elsewhere = await poll('elsewhere')
    assert.equal(elsewhere.status, 400)
    assert.deepEqual(await json(elsewhere), { error: 'invalid_grant', error_description: 'Device code not valid' })

    const redeemed = await poll(REALM)
    const body = await json(redeemed)
    assert.equal(redeemed.status, 200, JSON.stringify(body))
    assert.equal(decodeJwtPart(body.access_token, 1).iss, realmUrl(gw))
  })

  it('polled again after it gave its tokens is a code no longer valid, and the tokens it gave stay valid, as Keycloak removes it', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', scope: 'openid' }) })
    const { device_code: deviceCode, user_code: userCode } = await started.json() as { device_code: string; user_code: string }
    const poll = () => gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', grant_type: DEVICE_GRANT, device_code: deviceCode }) })
    const jar = new CookieJar()
    const confirm = await submit(jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
    const login = await submit(jar, confirm, {})
    const action = /<form method="post" action="([^"]+)"/.exec(await login.response.text())![1]!
    await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=alice-password' })
    const redeemed = await poll()
    const tokens = await json(redeemed)
    assert.equal(redeemed.status, 200, JSON.stringify(tokens))
    // The device did not get the answer, say, and asks again.
    const again = await poll()
    assert.equal(again.status, 400)
    assert.deepEqual(await json(again), { error: 'invalid_grant', error_description: 'Device code not valid' })
    const userinfo = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } })
    assert.equal(userinfo.status, 200, 'the access token it gave still works')
    const refreshed = await tokenRequest(gw, { client_id: 'tv', grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
  })

  it('is not counted as polled by another client, which neither gets slow_down nor slows the code\'s own client', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })
    const { device_code: deviceCode } = await started.json() as { device_code: string }
    const poll = (clientId: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: clientId, grant_type: DEVICE_GRANT, device_code: deviceCode }) })
    for (let i = 0; i < 2; i++) {
      const other = await poll('radio')
      assert.equal(other.status, 400)
      assert.notEqual((await json(other)).error, 'slow_down')
    }
    const own = await poll('tv')
    assert.deepEqual([own.status, (await json(own)).error], [400, 'authorization_pending'])
    const again = await poll('tv')
    assert.deepEqual([again.status, (await json(again)).error], [400, 'slow_down'])
  })

  it('is not counted as polled by a request that fails to authenticate as its client, which neither gets slow_down nor slows the client', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'kiosk', client_secret: 'kiosk-secret-0123456789' }) })
    const { device_code: deviceCode } = await started.json() as { device_code: string }
    const poll = (secret: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'kiosk', client_secret: secret, grant_type: DEVICE_GRANT, device_code: deviceCode }) })
    for (let i = 0; i < 2; i++) {
      const forged = await poll('not-the-kiosk-secret')
      assert.deepEqual([forged.status, (await json(forged)).error], [401, 'invalid_client'])
    }
    const own = await poll('kiosk-secret-0123456789')
    assert.deepEqual([own.status, (await json(own)).error], [400, 'authorization_pending'])
    const again = await poll('kiosk-secret-0123456789')
    assert.deepEqual([again.status, (await json(again)).error], [400, 'slow_down'])
  })

  it('times the interval between polls by the monotonic clock: after a step back of the wall clock a poll on time is not slow_down', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })
    const { device_code: deviceCode } = await started.json() as { device_code: string }
    const errorOf = async () => {
      const response = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', grant_type: DEVICE_GRANT, device_code: deviceCode }) })
      return `${response.status} ${(await json(response)).error}`
    }
    assert.equal(await errorOf(), '400 authorization_pending')
    // An NTP correction or a virtual machine resumed: the wall clock goes back an hour.
    const machineNow = Date.now
    mock.method(Date, 'now', () => machineNow() - 3600_000)
    try {
      await new Promise((resolve) => setTimeout(resolve, 5200))
      assert.equal(await errorOf(), '400 authorization_pending')
    } finally {
      mock.restoreAll()
    }
  })

  it('answers polls as Keycloak does: a slow_down does not start the interval again, and a denied code is access_denied every time', async () => {
    const start = async () => (await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })).json() as Promise<{ device_code: string; user_code: string }>
    const errorOf = async (deviceCode: string) => {
      const response = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', grant_type: DEVICE_GRANT, device_code: deviceCode }) })
      const body = await json(response)
      return `${response.status} ${body.error}`
    }
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
    // A device polling every 3 s: answered slow_down, then again 5 s after the poll that was answered.
    const eager = async () => {
      const { device_code: deviceCode } = await start()
      const answers = [await errorOf(deviceCode)]
      await sleep(3000)
      answers.push(await errorOf(deviceCode))
      await sleep(2200)
      answers.push(await errorOf(deviceCode))
      assert.deepEqual(answers, ['400 authorization_pending', '400 slow_down', '400 authorization_pending'])
    }
    // Denied at the device page: every poll is told so until the code expires (an answer lost, say), as Keycloak's.
    const denied = async () => {
      const { device_code: deviceCode, user_code: userCode } = await start()
      const jar = new CookieJar()
      const confirm = await submit(jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
      await submit(jar, confirm, { abort: 'yes' })
      assert.equal(await errorOf(deviceCode), '400 access_denied')
      await sleep(5200)
      assert.equal(await errorOf(deviceCode), '400 access_denied')
    }
    await Promise.all([eager(), denied()])
  })

  it('lives the realm\'s device_code_seconds, then is answered expired_token, as RFC 8628 and Keycloak\'s device grant say', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })
    const { device_code: deviceCode, expires_in: expiresIn } = await started.json() as { device_code: string; expires_in: number }
    assert.equal(expiresIn, 120, 'the realm\'s device_code_seconds')
    const poll = () => gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', grant_type: DEVICE_GRANT, device_code: deviceCode }) })
    assert.equal((await json(await poll())).error, 'authorization_pending')
    // oidc-provider's clock reads the process's view of the database's clock (provider-clock.ts).
    const clock = gw.app.bus.clock
    const databaseNow = clock.now
    clock.now = () => databaseNow.call(clock) + (expiresIn + 10) * 1000
    try {
      const expired = await poll()
      assert.equal(expired.status, 400)
      assert.deepEqual(await json(expired), { error: 'expired_token', error_description: 'Device code is expired' })
    } finally {
      clock.now = databaseNow
    }
  })

  it('is not found by its user code at another realm\'s device page', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv' }) })
    const { user_code: userCode } = await started.json() as { user_code: string }
    const jar = new CookieJar()
    const entered = await submit(jar, await browse(gw, jar, `${gw.url}/realms/elsewhere/device`), { user_code: userCode })
    assert.match(await entered.response.clone().text(), /That code is not valid or has expired/)
  })
})

describe('the realm description after a logout-all', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  it('names the realm\'s not-before in tokens-not-before, as Keycloak\'s PublicRealmResource does', async () => {
    assert.equal((await json(await gw.fetch(`/realms/${REALM}`)))['tokens-not-before'], 0)
    assert.equal((await gw.fetch(`/admin/realms/${REALM}/logout-all`, { method: 'POST', headers: adminAuth })).status, 200)
    const notBefore = await gw.app.oidc.get(REALM)!.notBefore()
    assert.ok(notBefore > 0)
    assert.equal((await json(await gw.fetch(`/realms/${REALM}`)))['tokens-not-before'], notBefore)
  })
})
