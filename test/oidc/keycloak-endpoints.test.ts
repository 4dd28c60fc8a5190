import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login } from '../helpers/session.ts'
import { browse, CLIENT_REDIRECT, CookieJar, decodeJwtPart, passwordLogin, REALM, realmUrl, realmWith, SERVICE_SECRET, submitForm, tokenRequest } from '../helpers/oidc.ts'

const ENDPOINTS = `/realms/${REALM}/protocol/openid-connect`
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/** The realm's endpoints besides the token endpoint, as Keycloak's clients and scripts call them. */
describe('the realm\'s endpoints answer as Keycloak\'s', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([{ client_id: 'spa', redirect_uris: [CLIENT_REDIRECT], post_logout_redirect_uris: ['+'] }]) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com' })
  })
  after(() => gw.close())

  /**
   * The authorization code flow through the login page; the jar then holds the realm's browser session. `response`
   * is what the client's redirect URI received, in the `responseMode` asked for.
   */
  async function browserLogin(jar: CookieJar, responseMode = 'query'): Promise<{ access_token: string; refresh_token: string; id_token: string; session_state: string; response: URLSearchParams }> {
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', response_mode: responseMode, scope: 'openid', state: 'st-2', redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: FORM, body: 'username=alice&password=alice-password' })
    const response = authorizationResponse(done.url, responseMode === 'form_post' ? await done.response.text() : '')
    const code = response.get('code')!
    const { status, body } = await tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    assert.equal(status, 200)
    return { ...body, response }
  }

  /** The parameters of an authorization response: in the redirect's query or fragment, or the form_post page's inputs. */
  function authorizationResponse(url: string, formPostPage: string): URLSearchParams {
    if (formPostPage) return new URLSearchParams([...formPostPage.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)].map((m): [string, string] => [m[1]!, m[2]!]))
    const { search, hash } = new URL(url)
    return new URLSearchParams(hash ? hash.slice(1) : search)
  }

  it('logs out with a form POST, as keycloak-js does with logoutMethod POST, and sends the browser back with its state', async () => {
    const jar = new CookieJar()
    const tokens = await browserLogin(jar)
    const logout = await browse(gw, jar, realmUrl(gw, '/protocol/openid-connect/logout'), {
      method: 'POST', headers: FORM, body: new URLSearchParams({ id_token_hint: tokens.id_token, client_id: 'spa', post_logout_redirect_uri: CLIENT_REDIRECT, state: 'st-1' }).toString(),
    })
    const page = await logout.response.text()
    assert.equal(logout.response.status, 200, page)
    // The confirmation submits itself when the request names the session (id_token_hint); a browser without scripts clicks.
    const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(page)![1]!
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page)![1]!
    const back = await browse(gw, jar, action, { method: 'POST', headers: FORM, body: new URLSearchParams({ xsrf, logout: 'yes' }).toString() })
    const returned = new URL(back.url)
    assert.equal(`${returned.origin}${returned.pathname}`, CLIENT_REDIRECT)
    assert.equal(returned.searchParams.get('state'), 'st-1')
    const refresh = await tokenRequest(gw, { client_id: 'spa', grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
    assert.equal(refresh.body.error, 'invalid_grant')
  })

  it('starts a login from a form POST to the authorization endpoint', async () => {
    const jar = new CookieJar()
    const { response } = await browse(gw, jar, realmUrl(gw, '/protocol/openid-connect/auth'), {
      method: 'POST', headers: FORM, body: new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }).toString(),
    })
    assert.equal(response.status, 200)
    assert.match(await response.text(), /name="password"/)
  })

  it('answers a POST to the logout or authorization endpoint that is no form 415, as Keycloak\'s form-only POST methods, and an empty form as one without parameters', async () => {
    for (const endpoint of ['/logout', '/auth']) {
      const answer = await gw.fetch(`${ENDPOINTS}${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"client_id":"spa"}' })
      assert.equal(answer.status, 415, endpoint)
      assert.deepEqual(await json(answer), { error: 'HTTP 415 Unsupported Media Type' }, endpoint)
    }
    const emptyLogout = await gw.fetch(`${ENDPOINTS}/logout`, { method: 'POST', headers: FORM })
    assert.equal(emptyLogout.status, 303)
    assert.equal(emptyLogout.headers.get('location'), realmUrl(gw, '/protocol/openid-connect/logout'))
  })

  it('answers a POST to the token or revocation endpoint with a body that is no form 415, and one without Content-Type as an empty form', async () => {
    const form = { grant_type: 'client_credentials', client_id: 'reports', client_secret: SERVICE_SECRET, token: 'x' }
    const bodies: [string, string | FormData][] = [
      ['application/json', JSON.stringify(form)],
      ['text/plain', new URLSearchParams(form).toString()],
      ['multipart/form-data; boundary=gatehouse', `--gatehouse\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n--gatehouse--\r\n`],
      // Another media type that only starts as a form's does.
      ['application/x-www-form-urlencoded-other', new URLSearchParams(form).toString()],
    ]
    for (const endpoint of ['/token', '/revoke']) {
      for (const [type, body] of bodies) {
        const answer = await gw.fetch(`${ENDPOINTS}${endpoint}`, { method: 'POST', headers: { 'content-type': type }, body })
        assert.equal(answer.status, 415, `${endpoint} ${type}`)
        assert.deepEqual(await json(answer), { error: 'HTTP 415 Unsupported Media Type' }, `${endpoint} ${type}`)
      }
    }
    const untyped = await gw.fetch(`${ENDPOINTS}/token`, { method: 'POST' })
    assert.equal(untyped.status, 400)
    assert.deepEqual(await json(untyped), { error: 'invalid_request', error_description: 'Missing form parameter: grant_type' })
    const untypedRevocation = await gw.fetch(`${ENDPOINTS}/revoke`, { method: 'POST' })
    assert.equal(untypedRevocation.status, 401)
    assert.deepEqual(await json(untypedRevocation), { error: 'invalid_client', error_description: 'Missing client_id parameter' })
  })

  it('reads a body that is no form at the introspection endpoint as an empty form, as Keycloak, whose introspection consumes any type', async () => {
    const basic = `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}`
    const token = (await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'reports', client_secret: SERVICE_SECRET })).body.access_token as string
    for (const [type, body] of [['application/json', JSON.stringify({ token, client_id: 'reports', client_secret: SERVICE_SECRET })], ['text/plain', new URLSearchParams({ token }).toString()]]) {
      // The client in the body is not read: no client authenticated.
      const unauthenticated = await gw.fetch(`${ENDPOINTS}/token/introspect`, { method: 'POST', headers: { 'content-type': type! }, body })
      assert.equal(unauthenticated.status, 401, type)
      assert.deepEqual(await json(unauthenticated), { error: 'invalid_request', error_description: 'Authentication failed.' }, type)
      // Nor is the token: the client named by HTTP basic is told it is missing.
      const withBasic = await gw.fetch(`${ENDPOINTS}/token/introspect`, { method: 'POST', headers: { 'content-type': type!, authorization: basic }, body })
      assert.equal(withBasic.status, 400, type)
      assert.deepEqual(await json(withBasic), { error: 'invalid_request', error_description: 'Token not provided.' }, type)
    }
    const asForm = await gw.fetch(`${ENDPOINTS}/token/introspect`, { method: 'POST', headers: { ...FORM, authorization: basic }, body: new URLSearchParams({ token }).toString() })
    assert.equal(asForm.status, 200)
    assert.equal((await json(asForm)).active, true)
  })

  it('never puts a client secret sent to the logout or authorization endpoint into a URL', async () => {
    for (const endpoint of ['/logout', '/auth']) {
      const answer = await gw.fetch(`${ENDPOINTS}${endpoint}`, { method: 'POST', headers: FORM, body: new URLSearchParams({ client_id: 'reports', client_secret: 'reports-secret-0123456789', state: 's' }).toString() })
      assert.equal(answer.status, 303, endpoint)
      const location = answer.headers.get('location')!
      assert.doesNotMatch(location, /secret/, endpoint)
      assert.match(location, /state=s/, endpoint)
    }
  })

  it('answers logout\'s legacy redirect_uri, and a post_logout_redirect_uri of no named client, with an error page, as Keycloak since 18', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ redirect_uri: CLIENT_REDIRECT }, /Invalid parameter: redirect_uri/],
      [{ post_logout_redirect_uri: CLIENT_REDIRECT, state: 's' }, /Missing parameter: id_token_hint/],
    ]
    for (const [params, message] of cases) {
      for (const request of [
        () => gw.fetch(`${ENDPOINTS}/logout?${new URLSearchParams(params)}`, { headers: { accept: 'text/html' } }),
        () => gw.fetch(`${ENDPOINTS}/logout`, { method: 'POST', headers: { ...FORM, accept: 'text/html' }, body: new URLSearchParams(params).toString() }),
      ]) {
        const answer = await request()
        assert.equal(answer.status, 400)
        assert.match(answer.headers.get('content-type')!, /^text\/html/)
        assert.equal(answer.headers.get('x-frame-options'), 'DENY')
        assert.match(await answer.text(), message)
        assert.equal(answer.headers.getSetCookie().length, 0)
      }
    }
  })

  it('answers a logout request with a bad id_token_hint or post_logout_redirect_uri, or a stale confirmation, with Keycloak\'s logout error page', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const [header, payload] = tokens.id_token.split('.')
    const cases: [string, RequestInit, string][] = [
      [`/logout?${new URLSearchParams({ id_token_hint: 'not-a-token' })}`, {}, 'Invalid parameter: id_token_hint'],
      [`/logout?${new URLSearchParams({ id_token_hint: `${header}.${payload}.${'A'.repeat(342)}` })}`, {}, 'Invalid parameter: id_token_hint'],
      [`/logout?${new URLSearchParams({ id_token_hint: tokens.id_token, client_id: 'spa' })}`, {}, 'Invalid parameter: id_token_hint'],
      [`/logout?${new URLSearchParams({ client_id: 'spa', post_logout_redirect_uri: 'https://evil.example/' })}`, {}, 'Invalid redirect uri'],
      ['/logout/confirm', { method: 'POST', headers: FORM, body: 'xsrf=forged&logout=yes' }, 'Logout failed'],
    ]
    // The page whatever the client accepts (curl's */*, a script's JSON), as Keycloak's ErrorPage.
    for (const accept of ['text/html', '*/*', 'application/json']) {
      for (const [path, init, message] of cases) {
        const answer = await gw.fetch(`${ENDPOINTS}${path}`, { ...init, headers: { ...init.headers as Record<string, string>, accept } })
        const page = await answer.text()
        assert.equal(answer.status, 400, path)
        assert.match(answer.headers.get('content-type')!, /^text\/html/, `${path} ${accept}`)
        assert.equal(answer.headers.get('x-frame-options'), 'DENY')
        assert.match(page, /<title>Logout failed · Gatehouse<\/title>/, path)
        assert.match(page, new RegExp(`<p>${message}</p>`), path)
      }
    }
  })

  const post = (endpoint: string, form: Record<string, string>) => gw.fetch(`${ENDPOINTS}${endpoint}`, { method: 'POST', headers: FORM, body: new URLSearchParams(form).toString() })
  const introspect = async (token: string) => json(await post('/token/introspect', { client_id: 'reports', client_secret: SERVICE_SECRET, token }))
  const callDemoApp = (token: string) => gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })

  it('answers keycloak-js register() (the registrations endpoint) with Keycloak\'s "Registration not allowed" page, since accounts are not self-made', async () => {
    const query = new URLSearchParams({ client_id: 'spa', redirect_uri: CLIENT_REDIRECT, state: 's', response_mode: 'fragment', response_type: 'code', scope: 'openid' })
    const page = await gw.fetch(`${ENDPOINTS}/registrations?${query}`, { headers: { accept: 'text/html' } })
    assert.equal(page.status, 400)
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
    assert.equal(page.headers.get('x-frame-options'), 'DENY')
    assert.match(await page.text(), /<p>Registration not allowed<\/p>/)
    assert.equal((await gw.fetch(`${ENDPOINTS}/registrations`, { method: 'HEAD' })).status, 400)
    const post = await gw.fetch(`${ENDPOINTS}/registrations`, { method: 'POST', headers: FORM, body: query })
    assert.equal(post.status, 405, 'Keycloak serves the endpoint to GET only')
    assert.equal(post.headers.get('allow'), 'GET, HEAD')
  })

  it('answers an implicit or hybrid authorization request with Keycloak\'s unauthorized_client, sent back to the client', async () => {
    for (const responseType of ['token', 'id_token token', 'code id_token', 'code id_token token']) {
      const query = new URLSearchParams({ client_id: 'spa', redirect_uri: CLIENT_REDIRECT, state: 's', response_mode: 'fragment', response_type: responseType, scope: 'openid', nonce: 'n' })
      const answer = await gw.fetch(`${ENDPOINTS}/auth?${query}`)
      assert.equal(answer.status, 302)
      const back = new URLSearchParams(new URL(answer.headers.get('location')!).hash.slice(1))
      assert.equal(back.get('error'), 'unauthorized_client', responseType)
      assert.equal(back.get('error_description'), 'Client is not allowed to initiate browser login with given response_type. Implicit flow is disabled for the client.')
      assert.equal(back.get('state'), 's')
    }
    const unknown = await gw.fetch(`${ENDPOINTS}/auth?${new URLSearchParams({ client_id: 'spa', redirect_uri: CLIENT_REDIRECT, state: 's', response_type: 'tokenn', scope: 'openid' })}`)
    const refused = new URL(unknown.headers.get('location')!)
    assert.equal(new URLSearchParams(refused.hash.slice(1) || refused.search).get('error'), 'unsupported_response_type', 'not a response type Keycloak knows either')
  })

  it('answers a response_mode it does not know as Keycloak does, with invalid_request sent back to the client', async () => {
    const query = new URLSearchParams({ client_id: 'spa', redirect_uri: CLIENT_REDIRECT, state: 's', response_type: 'code', response_mode: 'bogus', scope: 'openid' })
    const answer = await gw.fetch(`${ENDPOINTS}/auth?${query}`)
    assert.equal(answer.status, 302)
    const back = new URL(answer.headers.get('location')!).searchParams
    assert.deepEqual([back.get('error'), back.get('error_description'), back.get('state')], ['invalid_request', 'Invalid parameter: response_mode', 's'])
  })

  it('takes at userinfo and introspection no access token another issuer names (signed under another public URL), as the services refuse it', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const userinfo = () => gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } })
    assert.equal((await userinfo()).status, 200)
    const publicUrl = gw.app.publicUrl
    // The same database and keys served under another public URL: a moved gateway, or a second process set up apart.
    gw.app.publicUrl = 'http://gateway.example'
    try {
      assert.equal((await callDemoApp(tokens.access_token)).status, 401)
      assert.equal((await userinfo()).status, 401)
      assert.equal((await introspect(tokens.access_token)).active, false)
    } finally {
      gw.app.publicUrl = publicUrl
    }
    assert.equal((await userinfo()).status, 200)
    assert.equal((await introspect(tokens.access_token)).active, true)
  })

  it('revokes an access token alone: the session and its refresh token go on, as Keycloak\'s revokeAccessToken', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    const revoked = await post('/revoke', { client_id: 'end-users', token: tokens.access_token })
    assert.equal(revoked.status, 200)
    assert.equal((await introspect(tokens.access_token)).active, false)
    assert.equal((await callDemoApp(tokens.access_token)).status, 401)
    assert.equal((await introspect(tokens.refresh_token)).active, true)
    const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
    assert.equal(refreshed.status, 200)
    assert.equal(refreshed.body.session_state, tokens.session_state)
    assert.equal((await callDemoApp(refreshed.body.access_token)).status, 200)
  })

  it('refuses to revoke another client\'s token with Keycloak\'s "Unmatching clients", and leaves it alone', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    for (const token of [tokens.access_token, tokens.refresh_token]) {
      const refused = await post('/revoke', { client_id: 'reports', client_secret: SERVICE_SECRET, token })
      assert.equal(refused.status, 400)
      assert.deepEqual(await json(refused), { error: 'invalid_request', error_description: 'Unmatching clients' })
      assert.equal((await introspect(token)).active, true)
    }
  })

  it('answers a revocation, and a logout with a refresh token, that name no client as Keycloak\'s token endpoint does, and ends nothing', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    for (const [endpoint, form] of [['/revoke', { token: tokens.refresh_token }], ['/revoke', { token: tokens.access_token }], ['/logout', { refresh_token: tokens.refresh_token }]] as const) {
      const refused = await post(endpoint, form)
      assert.equal(refused.status, 401, endpoint)
      assert.deepEqual(await json(refused), { error: 'invalid_client', error_description: 'Missing client_id parameter' }, endpoint)
    }
    assert.equal((await introspect(tokens.refresh_token)).active, true)
    assert.equal((await introspect(tokens.access_token)).active, true)
  })

  it('authenticates the client before it reads a logout\'s refresh token, as Keycloak\'s LogoutEndpoint: without the secret, nothing is said of the token', async () => {
    const ofReports = await passwordLogin(gw, 'alice', 'alice-password', { client_id: 'reports', client_secret: SERVICE_SECRET })
    const ofAnother = await passwordLogin(gw, 'alice', 'alice-password')
    const refusals = [
      ['not a token', 'x', 'Invalid refresh token'],
      ['a signature that does not verify', `${ofReports.refresh_token.slice(0, -6)}AAAAAA`, 'Invalid refresh token'],
      ['another client\'s token', ofAnother.refresh_token, 'Invalid refresh token. Token client and authorized client don\'t match'],
    ] as const
    for (const [name, token, description] of refusals) {
      for (const [secret, spelling] of [['wrong-secret', 'a wrong secret'], ['', 'an empty secret']]) {
        const unauthenticated = await post('/logout', { client_id: 'reports', client_secret: secret, refresh_token: token })
        assert.equal(unauthenticated.status, 401, `${name}, ${spelling}`)
        assert.deepEqual(await json(unauthenticated), { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' }, `${name}, ${spelling}`)
      }
      const authenticated = await post('/logout', { client_id: 'reports', client_secret: SERVICE_SECRET, refresh_token: token })
      assert.equal(authenticated.status, 400, name)
      assert.deepEqual(await json(authenticated), { error: 'invalid_grant', error_description: description }, name)
    }
    assert.equal((await introspect(ofReports.refresh_token)).active, true, 'nothing was ended')
    assert.equal((await introspect(ofAnother.refresh_token)).active, true, 'nothing was ended')
    const loggedOut = await post('/logout', { client_id: 'reports', client_secret: SERVICE_SECRET, refresh_token: ofReports.refresh_token })
    assert.equal(loggedOut.status, 204)
    assert.equal((await introspect(ofReports.refresh_token)).active, false)
  })

  it('answers a missing or repeated token at introspection and revocation in Keycloak\'s words', async () => {
    const client = { client_id: 'reports', client_secret: SERVICE_SECRET }
    const cases: [string, URLSearchParams, string][] = [
      ['/token/introspect', new URLSearchParams(client), 'Token not provided.'],
      ['/revoke', new URLSearchParams(client), 'Token not provided'],
      ['/token/introspect', new URLSearchParams([...Object.entries(client), ['token', 'a'], ['token', 'b']]), 'duplicated parameter'],
    ]
    for (const [endpoint, form, description] of cases) {
      const answer = await gw.fetch(`${ENDPOINTS}${endpoint}`, { method: 'POST', headers: FORM, body: form.toString() })
      assert.equal(answer.status, 400, endpoint)
      assert.deepEqual(await json(answer), { error: 'invalid_request', error_description: description }, endpoint)
    }
  })

  /**
   * A userinfo refusal as Keycloak's UserInfoEndpoint answers every one (OAuth2Error `json(false)`): the status, the
   * error only in a challenge naming the realm by its name, and an empty text body.
   */
  async function assertUserinfoRefused(answer: Response, status: number, error?: string, description?: string, label?: string): Promise<void> {
    const challenge = error === undefined ? `Bearer realm="${REALM}"` : `Bearer realm="${REALM}", error="${error}", error_description="${description}"`
    assert.deepEqual([answer.status, answer.headers.get('www-authenticate'), await answer.text()], [status, challenge, ''], label)
    assert.match(answer.headers.get('content-type') ?? '', /^text\/plain/, label)
  }
  const UNVERIFIED = ['invalid_token', 'Token verification failed'] as const

  /** A GET of userinfo with these raw header lines (`fetch` would join a repeated Authorization into one). */
  function rawUserinfo(headers: string[]): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      request(`${gw.url}${ENDPOINTS}/userinfo`, { headers: ['host', new URL(gw.url).host, ...headers] }, (answer) => {
        let body = ''
        answer.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve({ status: answer.statusCode!, headers: answer.headers, body }))
      }).on('error', reject).end()
    })
  }

  it('answers userinfo without a token 401 with a bare challenge, and with a bad one 401 with Keycloak\'s WWW-Authenticate', async () => {
    await assertUserinfoRefused(await gw.fetch(`${ENDPOINTS}/userinfo`), 401)
    const bearer = (value: string) => ({ headers: { authorization: value } })
    // Another scheme, an empty or a two-part token, a tab for the space: no token to Keycloak (AppAuthManager).
    for (const header of [`Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer ', 'Bearer    ', 'Bearer a b', 'Bearer\tabc.def.ghi', 'Bearerabc']) {
      await assertUserinfoRefused(await gw.fetch(`${ENDPOINTS}/userinfo`, bearer(header)), 401, undefined, undefined, header)
    }
    // A token in the query is no token either, and the query's other parameters are not read.
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    await assertUserinfoRefused(await gw.fetch(`${ENDPOINTS}/userinfo?access_token=${tokens.access_token}`), 401)
    assert.equal((await gw.fetch(`${ENDPOINTS}/userinfo?scope=openid%20phone`, bearer(`bEaReR ${tokens.access_token}`))).status, 200)
    await post('/revoke', { client_id: 'end-users', token: tokens.access_token })
    for (const token of ['abc.def.ghi', 'opaque', tokens.access_token]) {
      await assertUserinfoRefused(await gw.fetch(`${ENDPOINTS}/userinfo`, bearer(`Bearer ${token}`)), 401, ...UNVERIFIED, token)
    }
  })

  it('answers userinfo as Keycloak when the token comes twice, or in a body that is no form', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const form = (body: string, headers: Record<string, string> = {}) => gw.fetch(`${ENDPOINTS}/userinfo`, { method: 'POST', headers: { ...FORM, ...headers }, body })
    const header = { authorization: `Bearer ${tokens.access_token}` }
    const twice = new URLSearchParams([['access_token', tokens.access_token], ['access_token', tokens.access_token]]).toString()
    await assertUserinfoRefused(await form(twice), 400, 'invalid_request', 'Duplicate parameter')
    await assertUserinfoRefused(await form(twice, header), 400, 'invalid_request', 'Duplicate parameter', 'checked before the header is counted')
    await assertUserinfoRefused(await form(new URLSearchParams({ access_token: tokens.access_token }).toString(), header), 400, 'invalid_request', 'More than one method used for including an access token')
    await assertUserinfoRefused(await form('access_token=', header), 400, 'invalid_request', 'More than one method used for including an access token', 'an empty one counts')
    // An empty form token is a token that fails; a form with an empty bearer header is the form's token.
    await assertUserinfoRefused(await form('access_token='), 401, ...UNVERIFIED)
    assert.equal((await form(new URLSearchParams({ access_token: tokens.access_token }).toString(), { authorization: 'Bearer ' })).status, 200)
    // Keycloak reads only a form's parameters: a JSON body, or one without a type, carries no token.
    for (const headers of [{ 'content-type': 'application/json' }, {}]) {
      const answer = await gw.fetch(`${ENDPOINTS}/userinfo`, { method: 'POST', headers, body: JSON.stringify({ access_token: tokens.access_token }) })
      await assertUserinfoRefused(answer, 401, undefined, undefined, JSON.stringify(headers))
    }
    const withJsonBody = await gw.fetch(`${ENDPOINTS}/userinfo`, { method: 'POST', headers: { 'content-type': 'application/json', ...header }, body: '{"scope":"phone"}' })
    assert.deepEqual([withJsonBody.status, (await json(withJsonBody)).preferred_username], [200, 'alice'])
    // Two Authorization headers: JAX-RS's bare 401 (AppAuthManager throws NotAuthorizedException), before anything else.
    const two = await rawUserinfo(['authorization', header.authorization, 'authorization', header.authorization])
    assert.deepEqual([two.status, two.headers['www-authenticate'], JSON.parse(two.body)], [401, undefined, { error: 'HTTP 401 Unauthorized' }])
  })

  it('answers userinfo refusals with Keycloak\'s CORS: any origin but for a repeated access_token, with credentials, exposing the challenge', async () => {
    const origin = 'https://elsewhere.example'
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const cors = (answer: Response) => ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers'].map((name) => answer.headers.get(name))
    const allowed = [origin, 'true', 'WWW-Authenticate']
    const none = await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { origin } })
    assert.deepEqual(cors(none), allowed)
    await assertUserinfoRefused(none, 401)
    const bad = await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { origin, authorization: 'Bearer abc.def.ghi' } })
    assert.deepEqual(cors(bad), allowed)
    await assertUserinfoRefused(bad, 401, ...UNVERIFIED)
    const both = await gw.fetch(`${ENDPOINTS}/userinfo`, { method: 'POST', headers: { ...FORM, origin, authorization: `Bearer ${tokens.access_token}` }, body: new URLSearchParams({ access_token: tokens.access_token }).toString() })
    assert.deepEqual(cors(both), allowed)
    await assertUserinfoRefused(both, 400, 'invalid_request', 'More than one method used for including an access token')
    const twice = await gw.fetch(`${ENDPOINTS}/userinfo`, { method: 'POST', headers: { ...FORM, origin }, body: 'access_token=a&access_token=b' })
    assert.deepEqual(cors(twice), [null, null, null])
    await assertUserinfoRefused(twice, 400, 'invalid_request', 'Duplicate parameter')
    // Without an Origin, no CORS fields at all.
    assert.deepEqual(cors(await gw.fetch(`${ENDPOINTS}/userinfo`)), [null, null, null])
  })

  it('takes a token\'s jti for no token: userinfo, introspection and revocation refuse it as Keycloak refuses a value that is no JWT', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const accessId = decodeJwtPart(tokens.access_token, 1).jti as string
    const refreshId = decodeJwtPart(tokens.refresh_token, 1).jti as string
    await assertUserinfoRefused(await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${accessId}` } }), 401, ...UNVERIFIED)
    await assertUserinfoRefused(await post('/userinfo', { access_token: accessId }), 401, ...UNVERIFIED)
    for (const id of [accessId, refreshId]) {
      assert.deepEqual(await json(await post('/token/introspect', { client_id: 'end-users', token: id })), { active: false })
      assert.deepEqual(await introspect(id), { active: false })
      assert.equal((await post('/revoke', { client_id: 'end-users', token: id })).status, 200)
    }
    // Nothing was revoked: the session and its tokens go on.
    assert.equal((await introspect(tokens.refresh_token)).active, true)
    assert.equal((await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status, 200)
  })

  it('introspects refresh and offline tokens with the claims of Keycloak\'s, and access tokens with their jti', async () => {
    for (const scope of ['openid', 'openid offline_access']) {
      const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope })
      const refresh = decodeJwtPart(tokens.refresh_token, 1)
      const answer = await introspect(tokens.refresh_token)
      assert.equal(answer.active, true)
      for (const claim of ['jti', 'iss', 'aud', 'sub', 'typ', 'azp', 'sid', 'scope', 'exp', 'iat']) assert.deepEqual(answer[claim], refresh[claim], `${scope}: ${claim}`)
      assert.equal(answer.typ, scope.includes('offline_access') ? 'Offline' : 'Refresh')
      assert.equal(answer.token_type, answer.typ)
      assert.equal(answer.client_id, 'end-users')
      assert.equal(answer.username, 'alice')
      const access = await introspect(tokens.access_token)
      assert.equal(access.jti, decodeJwtPart(tokens.access_token, 1).jti)
      assert.equal(access.token_type, 'Bearer')
    }
  })

  it('publishes the discovery fields Keycloak always publishes, with values the realm keeps to', async () => {
    const discovery = await json(await gw.fetch(`/realms/${REALM}/.well-known/openid-configuration`))
    for (const endpoint of ['introspection', 'revocation']) {
      assert.deepEqual(discovery[`${endpoint}_endpoint_auth_methods_supported`], discovery.token_endpoint_auth_methods_supported, endpoint)
      assert.deepEqual(discovery[`${endpoint}_endpoint_auth_signing_alg_values_supported`], discovery.token_endpoint_auth_signing_alg_values_supported, endpoint)
    }
    assert.deepEqual(discovery.prompt_values_supported, ['none', 'login', 'consent'])
    assert.deepEqual(discovery.acr_values_supported, ['0', '1'])
    assert.deepEqual(discovery.userinfo_signing_alg_values_supported, ['none'])
    assert.equal(discovery.require_pushed_authorization_requests, false)
    // The secret methods and a public client's id alone authenticate at both endpoints, as at the token endpoint.
    const basic = { authorization: `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}` }
    const own = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const introspections = [
      await gw.fetch(`${ENDPOINTS}/token/introspect`, { method: 'POST', headers: { ...FORM, ...basic }, body: new URLSearchParams({ token: own.access_token }).toString() }),
      await post('/token/introspect', { client_id: 'reports', client_secret: SERVICE_SECRET, token: own.access_token }),
      await post('/token/introspect', { client_id: 'end-users', token: own.access_token }),
    ]
    for (const [index, answer] of introspections.entries()) assert.equal((await json(answer)).active, true, `introspection ${index}`)
    const revoked = await post('/revoke', { client_id: 'end-users', token: own.refresh_token })
    assert.equal(revoked.status, 200)
    assert.equal((await introspect(own.refresh_token)).active, false)
    const serviceToken = (await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'reports', client_secret: SERVICE_SECRET })).body
    const basicRevoked = await gw.fetch(`${ENDPOINTS}/revoke`, { method: 'POST', headers: { ...FORM, ...basic }, body: new URLSearchParams({ token: serviceToken.access_token }).toString() })
    assert.equal(basicRevoked.status, 200)
    assert.equal((await introspect(serviceToken.access_token)).active, false)
    // The acr of a login form and of a sign-in from the realm session are among those published.
    const jar = new CookieJar()
    const typed = await browserLogin(jar)
    const verifier = randomBytes(32).toString('base64url')
    const again = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })}`))
    const fromSession = await tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code', code: new URL(again.url).searchParams.get('code') ?? '', redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    assert.equal(fromSession.status, 200)
    const acrs = [own.access_token, typed.access_token, fromSession.body.access_token].map((token) => decodeJwtPart(token, 1).acr)
    assert.deepEqual(acrs, ['1', '1', '0'])
    for (const acr of acrs) assert.ok((discovery.acr_values_supported as string[]).includes(acr), acr)
  })

  it('fills in the login page\'s username from login_hint, as keycloak-js login({ loginHint }) expects', async () => {
    for (const hint of ['alice@example.com', '"><script>alert(1)</script>']) {
      const jar = new CookieJar()
      const { response } = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', login_hint: hint })}`))
      const page = await response.text()
      const field = /<input id="username"[^>]*>/.exec(page)![0]
      const value = /value="([^"]*)"/.exec(field)![1]!
      assert.equal(value.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#39;/g, "'").replace(/&amp;/g, '&'), hint)
      assert.doesNotMatch(page, /<script>alert/)
    }
  })

  it('answers a login form longer than any login form 413, its password unchecked, and takes the form sent again', async () => {
    const jar = new CookieJar()
    const { response } = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await response.text())![1]!
    const huge = await gw.fetch(action, { method: 'POST', headers: { ...FORM, accept: 'text/html', cookie: jar.header() }, body: `username=alice&password=alice-password&filler=${'a'.repeat(20_000)}` })
    assert.equal(huge.status, 413)
    assert.match(huge.headers.get('content-type')!, /^text\/html/)
    assert.match(await huge.text(), /payload_too_large/)
    assert.equal(huge.headers.getSetCookie().some((line) => line.startsWith('gateway_sessionid=')), false, 'not signed in')
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: FORM, body: 'username=alice&password=alice-password' })
    assert.ok(new URL(done.url).searchParams.get('code'), 'the login goes on')
  })

  it('takes the login form of any authorization request its endpoint takes, long or pushed, posted whole as a browser posts it', async () => {
    const challenge = { code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }
    const request = { client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, ...challenge }
    const unescaped = (value: string) => value.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&')
    /** The login page's form with its hidden fields as a browser posts them, the password filled in. */
    async function loginForm(page: { response: Response }): Promise<{ action: string; body: string }> {
      const html = await page.response.text()
      const action = unescaped(/<form method="post" action="([^"]+)"/.exec(html)![1]!)
      const fields = new URLSearchParams([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m): [string, string] => [m[1]!, unescaped(m[2]!)]))
      fields.set('username', 'alice')
      fields.set('password', 'alice-password')
      return { action, body: fields.toString() }
    }
    const pushed = async (state: string) => {
      const answer = await post('/ext/par/request', { ...request, state })
      assert.equal(answer.status, 201)
      return realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', request_uri: String((await json(answer)).request_uri) })}`)
    }
    const starts: [string, (state: string) => Promise<string>][] = [
      ['in the URL', async (state) => realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ ...request, state })}`)],
      ['pushed', pushed],
    ]
    for (const [how, start] of starts) {
      for (const state of ['short-state', '/'.repeat(3500), 'a/'.repeat(3000), 'é'.repeat(1500)]) {
        const jar = new CookieJar()
        const page = await browse(gw, jar, await start(state))
        assert.equal(page.response.status, 200, `${how} ${state.length}`)
        const form = await loginForm(page)
        const done = await browse(gw, jar, gw.url + form.action, { method: 'POST', headers: FORM, body: form.body })
        const back = new URL(done.url)
        assert.equal(`${back.origin}${back.pathname}`, CLIENT_REDIRECT, `${how} ${state.length}: ${done.response.status}`)
        assert.ok(back.searchParams.get('code'), `${how} ${state.length}`)
        assert.equal(back.searchParams.get('state'), state)
        // The page used again: a short request starts again; a long one, whose page carries no restart, says so.
        const stale = await browse(gw, new CookieJar(), gw.url + form.action, { method: 'POST', headers: FORM, body: form.body })
        const stalePage = await stale.response.text()
        if (state === 'short-state') assert.deepEqual([stale.response.status, /Login will start from the beginning/.test(stalePage)], [200, true], how)
        else assert.deepEqual([stale.response.status, /Login expired/.test(stalePage)], [400, true], `${how} ${state.length}`)
      }
    }
  })

  it('answers a login form that is not UTF-8 400, its password unchecked, and takes the form sent again', async () => {
    const jar = new CookieJar()
    const { response } = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await response.text())![1]!
    for (const body of [Buffer.from('username=alice&password=alice-password&x=%ff'), Buffer.concat([Buffer.from('username=alice&password=alice-password&x='), Buffer.from([0xc3])]), Buffer.from('username=alice&password=alice-password&x=%zz')]) {
      const refused = await gw.fetch(action, { method: 'POST', headers: { ...FORM, accept: 'text/html', cookie: jar.header() }, body })
      assert.equal(refused.status, 400, body.toString('latin1'))
      assert.match(refused.headers.get('content-type')!, /^text\/html/)
      assert.match(await refused.text(), /The form is not UTF-8/)
      assert.equal(refused.headers.getSetCookie().some((line) => line.startsWith('gateway_sessionid=')), false, 'not signed in')
    }
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: FORM, body: 'username=alice&password=alice-password' })
    assert.ok(new URL(done.url).searchParams.get('code'), 'the login goes on')
  })

  it('publishes the JWKS as application/json, and as application/jwk-set+json to a client that asks for it, as Keycloak', async () => {
    for (const [accept, type] of [[undefined, 'application/json'], ['application/json', 'application/json'], ['application/jwk-set+json', 'application/jwk-set+json']] as const) {
      const certs = await gw.fetch(`${ENDPOINTS}/certs`, { headers: accept ? { accept } : {} })
      assert.equal(certs.status, 200)
      assert.equal(certs.headers.get('content-type')!.split(';')[0], type, String(accept))
      const { keys } = await json(certs)
      assert.ok(keys.length > 0)
      for (const key of keys) {
        assert.equal(key.use, 'sig')
        assert.equal(key.alg, 'RS256')
        assert.ok(key.x5c?.length && key.x5t && key['x5t#S256'])
      }
    }
  })

  it('answers userinfo for a token without the openid scope 403, in Keycloak\'s words (Keycloak 20 and later)', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    const refused = await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } })
    await assertUserinfoRefused(refused, 403, 'insufficient_scope', 'Missing openid scope')
    const withOpenid = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const answered = await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${withOpenid.access_token}` } })
    assert.equal(answered.status, 200)
    assert.equal((await json(answered)).preferred_username, 'alice')
  })

  it('refuses to start the device grant for a client without it in Keycloak\'s words', async () => {
    const refused = await post('/auth/device', { client_id: 'end-users' })
    assert.equal(refused.status, 400)
    assert.deepEqual(await json(refused), { error: 'unauthorized_client', error_description: 'Client is not allowed to initiate OAuth 2.0 Device Authorization Grant. The flow is disabled for the client.' })
  })

  it('answers introspection by a client that fails to authenticate as Keycloak: 401 "Authentication failed."', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    const clients: Record<string, string>[] = [{}, { client_id: 'reports', client_secret: 'wrong-secret-0123456789' }, { client_id: 'nobody', client_secret: 'x' }]
    for (const client of clients) {
      const refused = await post('/token/introspect', { ...client, token: tokens.access_token })
      assert.equal(refused.status, 401, JSON.stringify(client))
      assert.deepEqual(await json(refused), { error: 'invalid_request', error_description: 'Authentication failed.' }, JSON.stringify(client))
    }
  })

  it('answers a browser application\'s userinfo and token requests with CORS for credentials, preflight included, as Keycloak\'s Cors.auth()', async () => {
    const origin = new URL(CLIENT_REDIRECT).origin
    const tokens = await browserLogin(new CookieJar())
    const userinfo = await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}`, origin } })
    assert.equal(userinfo.status, 200)
    assert.equal(userinfo.headers.get('access-control-allow-origin'), origin)
    assert.equal(userinfo.headers.get('access-control-allow-credentials'), 'true')
    for (const endpoint of ['/userinfo', '/token', '/revoke', '/token/introspect']) {
      const preflight = await gw.fetch(`${ENDPOINTS}${endpoint}`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } })
      // Keycloak's `preflight()` methods: `Response.ok()` with DefaultCors's fields.
      assert.equal(preflight.status, 200, endpoint)
      assert.equal(await preflight.text(), '', endpoint)
      assert.equal(preflight.headers.get('access-control-allow-origin'), origin, endpoint)
      assert.equal(preflight.headers.get('access-control-allow-credentials'), 'true', endpoint)
      assert.equal(preflight.headers.get('access-control-allow-headers'), 'Origin, Accept, X-Requested-With, Content-Type, Access-Control-Request-Method, Access-Control-Request-Headers, DPoP, Authorization', endpoint)
      assert.equal(preflight.headers.get('access-control-max-age'), '3600', endpoint)
      if (endpoint !== '/userinfo') assert.equal(preflight.headers.get('access-control-allow-methods'), 'POST, OPTIONS', endpoint)
    }
  })

  it('sends no CORS fields to a request without an Origin, as Keycloak\'s DefaultCors', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const answers = [
      await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } }),
      await post('/token', { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
      await post('/token', { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'wrong' }),
      await gw.fetch(`${ENDPOINTS}/certs`),
      await gw.fetch(`/realms/${REALM}/.well-known/openid-configuration`),
    ]
    for (const answer of answers) {
      assert.ok(answer.status < 500, answer.url)
      const fields = [...answer.headers.keys()].filter((name) => name.startsWith('access-control-'))
      assert.deepEqual(fields, [], `${answer.url} ${answer.status}`)
    }
    const withOrigin = await gw.fetch(`${ENDPOINTS}/certs`, { headers: { origin: 'https://any.example' } })
    assert.equal(withOrigin.headers.get('access-control-allow-origin'), 'https://any.example', 'the public endpoints still allow any origin that asks')
  })

  it('answers the revocation of a value that is no token of the realm 200 with invalid_token, and of a token it signed 200 empty, as Keycloak\'s checkToken', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const forged = `${tokens.access_token.split('.').slice(0, 2).join('.')}.${Buffer.from('not the signature').toString('base64url')}`
    for (const token of ['opaque', 'abc.def.ghi', forged, 'gatehouse_pat_a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1']) {
      const answer = await post('/revoke', { client_id: 'end-users', token })
      assert.equal(answer.status, 200, token)
      assert.deepEqual(await json(answer), { error: 'invalid_token', error_description: 'Invalid token' }, token)
    }
    assert.equal((await introspect(tokens.refresh_token)).active, true, 'nothing was revoked')
    // A client that does not authenticate learns nothing of the value.
    const unknownClient = await post('/revoke', { client_id: 'no-such-client', token: 'opaque' })
    assert.equal(unknownClient.status, 401)
    // The ID token is the realm's: no error, nothing revoked (docs/oidc.md).
    const idToken = await post('/revoke', { client_id: 'end-users', token: tokens.id_token })
    assert.deepEqual([idToken.status, await idToken.text()], [200, ''])
    const revoked = await post('/revoke', { client_id: 'end-users', token: tokens.refresh_token })
    assert.deepEqual([revoked.status, await revoked.text()], [200, ''])
    assert.equal((await introspect(tokens.refresh_token)).active, false)
  })

  it('answers a code exchange without a code "Missing parameter: code", and a live code without its redirect_uri "Incorrect redirect_uri", as Keycloak\'s AuthorizationCodeGrantType', async () => {
    const none = await tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code' })
    assert.deepEqual([none.status, none.body], [400, { error: 'invalid_request', error_description: 'Missing parameter: code' }])
    const bogus = await tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code', code: 'bogus' })
    assert.deepEqual([bogus.status, bogus.body], [400, { error: 'invalid_grant', error_description: 'Code not valid' }])
    const jar = new CookieJar()
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', state: 's', redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: FORM, body: 'username=alice&password=alice-password' })
    const code = new URL(done.url).searchParams.get('code')!
    const withoutUri = await tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code', code, code_verifier: verifier })
    assert.deepEqual([withoutUri.status, withoutUri.body], [400, { error: 'invalid_grant', error_description: 'Incorrect redirect_uri' }])
    // As Keycloak's OAuth2CodeParser, the refused exchange used the code up.
    const again = await tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    assert.deepEqual([again.status, again.body], [400, { error: 'invalid_grant', error_description: 'Code not valid' }])
    const withoutAgain = await tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code', code, code_verifier: verifier })
    assert.deepEqual([withoutAgain.status, withoutAgain.body], [400, { error: 'invalid_grant', error_description: 'Code not valid' }])
  })

  it('names the browser session in the authorization response (session_state), in every response mode, as Keycloak', async () => {
    for (const mode of ['query', 'fragment', 'form_post']) {
      const tokens = await browserLogin(new CookieJar(), mode)
      assert.equal(tokens.response.get('state'), 'st-2', mode)
      assert.equal(tokens.response.get('session_state'), tokens.session_state, mode)
      assert.equal(tokens.response.get('session_state'), decodeJwtPart(tokens.access_token, 1).sid, mode)
    }
  })

  it('sends an error back to the client in form_post with the page a success gets, 200, as Keycloak\'s form_post builder', async () => {
    const params = { client_id: 'spa', response_type: 'code', response_mode: 'form_post', scope: 'openid', state: 'st-5', redirect_uri: CLIENT_REDIRECT, prompt: 'none', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }
    const { response } = await browse(gw, new CookieJar(), realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams(params)}`))
    const page = await response.text()
    assert.equal(response.status, 200, page)
    const posted = authorizationResponse(CLIENT_REDIRECT, page)
    assert.equal(posted.get('error'), 'login_required')
    assert.equal(posted.get('state'), 'st-5')
    assert.match(page, new RegExp(`<form method="post" action="${CLIENT_REDIRECT}">`))
  })

  it('gives the self-submitting pages (form_post, a logout without a session) a language, a main landmark and a heading for the button', async () => {
    const jar = new CookieJar()
    await browserLogin(jar)
    const formPost = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', response_mode: 'form_post', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`))
    const logout = await browse(gw, new CookieJar(), realmUrl(gw, `/protocol/openid-connect/logout?${new URLSearchParams({ client_id: 'spa', post_logout_redirect_uri: CLIENT_REDIRECT })}`))
    for (const [what, { response }, field] of [['form_post', formPost, 'code'], ['logout', logout, 'xsrf']] as const) {
      const page = await response.text()
      assert.equal(response.status, 200, what)
      assert.match(page, new RegExp(`<input type="hidden" name="${field}"`), what)
      assert.match(page, /<html lang="en">/, what)
      assert.match(page, /<body>\s*<main>\s*<form[\s\S]*<\/form>\s*<\/main>\s*<\/body>/, what)
      assert.match(page, /<noscript>\s*<h1>Continue<\/h1>[\s\S]*<button autofocus type="submit">Continue<\/button>/, what)
    }
  })

  it('answers the form_post page with a policy that runs its own script alone, loads nothing, and leaves it frameable', async () => {
    const jar = new CookieJar()
    await browserLogin(jar)
    const params = { client_id: 'spa', response_type: 'code', response_mode: 'form_post', scope: 'openid', state: 'st-6', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }
    // A page with an error (no realm session, prompt=none), and one with a code (signed in at the realm).
    for (const [what, browser, extra] of [['an error', new CookieJar(), { prompt: 'none' }], ['a code', jar, {}]] as const) {
      const { response } = await browse(gw, browser, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ ...params, ...extra })}`))
      const page = await response.text()
      const posted = authorizationResponse(CLIENT_REDIRECT, page)
      assert.ok(what === 'a code' ? posted.get('code') : posted.get('error'), page)
      const directives = new Map((response.headers.get('content-security-policy') ?? '').split(';').map((directive) => {
        const [name, ...sources] = directive.trim().split(/\s+/)
        return [name!, sources] as const
      }))
      const scripts = [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`)
      assert.equal(scripts.length, 1, page)
      assert.deepEqual(directives.get('default-src'), ["'none'"], what)
      assert.deepEqual(directives.get('script-src'), scripts, `${what}: the page's own script and nothing else`)
      assert.deepEqual(directives.get('base-uri'), ["'none'"], what)
      // A silent renewal loads it in a hidden frame; a redirect URI may send the browser on to another origin.
      assert.equal(directives.has('frame-ancestors'), false, what)
      assert.equal(response.headers.get('x-frame-options'), null, what)
      assert.equal(directives.has('form-action'), false, what)
    }
  })

  it('answers prompt=consent (keycloak-js login({ prompt: \'consent\' })) with a code and no consent page, as Keycloak for a client without "Consent required"', async () => {
    const verifier = randomBytes(32).toString('base64url')
    const consent = realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid offline_access', state: 'st-7', prompt: 'consent', redirect_uri: CLIENT_REDIRECT, code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })}`)
    const redeem = async (url: string) => {
      const back = new URL(url)
      assert.equal(`${back.origin}${back.pathname}`, CLIENT_REDIRECT, url)
      assert.equal(back.searchParams.get('state'), 'st-7')
      return tokenRequest(gw, { client_id: 'spa', grant_type: 'authorization_code', code: back.searchParams.get('code') ?? '', redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    }
    // Signed in at the realm already: straight back with a code.
    const jar = new CookieJar()
    await browserLogin(jar)
    const again = await redeem((await browse(gw, jar, consent)).url)
    assert.equal(again.status, 200)
    // What oidc-provider grants only with prompt=consent, as Keycloak grants it in the browser flow.
    assert.equal(decodeJwtPart(again.body.refresh_token, 1).typ, 'Offline')
    // Not signed in: the login page, then back with a code of that login.
    const fresh = new CookieJar()
    const page = await browse(gw, fresh, consent)
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const done = await browse(gw, fresh, gw.url + action, { method: 'POST', headers: FORM, body: 'username=alice&password=alice-password' })
    const tokens = await redeem(done.url)
    assert.equal(tokens.status, 200)
    assert.equal(decodeJwtPart(tokens.body.access_token, 1).acr, '1', 'the password typed for this authorization')
  })

  it('asks before logging out unless the request names the browser\'s own session, or it has none, as Keycloak', async () => {
    const submitsItself = (page: string) => /\.submit\(\)/.test(page)
    const logoutPage = async (jar: CookieJar, params: Record<string, string>) => {
      const { response } = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/logout?${new URLSearchParams(params)}`))
      assert.equal(response.status, 200)
      return response.text()
    }
    // No browser session: nothing to confirm; the browser goes on to the client's post-logout page.
    assert.ok(submitsItself(await logoutPage(new CookieJar(), { client_id: 'spa', post_logout_redirect_uri: CLIENT_REDIRECT })))
    // A browser session, and a request that does not say it comes from it: the person is asked.
    const jar = new CookieJar()
    const tokens = await browserLogin(jar)
    assert.equal(submitsItself(await logoutPage(jar, { client_id: 'spa', post_logout_redirect_uri: CLIENT_REDIRECT })), false)
    assert.ok(submitsItself(await logoutPage(jar, { id_token_hint: tokens.id_token, post_logout_redirect_uri: CLIENT_REDIRECT })))
    // An ID token of another session (anyone's, in a link from another site) does not log this browser out unasked.
    const elsewhere = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const otherBrowser = await browserLogin(new CookieJar())
    for (const hint of [elsewhere.id_token, otherBrowser.id_token]) {
      assert.equal(submitsItself(await logoutPage(jar, { id_token_hint: hint })), false)
    }
  })

  it('ends the session the id_token_hint names once the person confirms, not the browser\'s own, as Keycloak\'s doBrowserLogout', async () => {
    const jar = new CookieJar()
    const own = await browserLogin(jar)
    const otherJar = new CookieJar()
    const other = await browserLogin(otherJar)
    const asked = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/logout?${new URLSearchParams({ id_token_hint: other.id_token, post_logout_redirect_uri: CLIENT_REDIRECT, state: 'st-6' })}`))
    const page = await asked.response.text()
    assert.doesNotMatch(page, /\.submit\(\)/, 'another session\'s hint is confirmed by the person')
    const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(page)![1]!
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page)![1]!
    const back = await browse(gw, jar, action, { method: 'POST', headers: FORM, body: new URLSearchParams({ xsrf, logout: 'yes' }).toString() })
    assert.equal(new URL(back.url).searchParams.get('state'), 'st-6')
    const refresh = (refreshToken: string) => tokenRequest(gw, { client_id: 'spa', grant_type: 'refresh_token', refresh_token: refreshToken })
    assert.equal((await refresh(other.refresh_token)).body.error, 'invalid_grant', 'the hinted session ended')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: otherJar.header() } })).status, 401, 'with its browser\'s gateway session')
    assert.equal((await refresh(own.refresh_token)).status, 200, 'the browser\'s own session goes on')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: jar.header() } })).status, 200, 'and its gateway session')
    // The browser is still signed in at the realm: a new sign-in needs no password.
    const again = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'spa', response_type: 'code', scope: 'openid', state: 's', prompt: 'none', redirect_uri: CLIENT_REDIRECT, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`))
    assert.ok(new URL(again.url).searchParams.get('code'), again.url)
  })

  it('asks a browser signed in at the gateway alone before a logout ends its session, so that a link from another site cannot', async () => {
    const gateway = await login(gw, 'alice', 'alice-password')
    const signedIn = async (cookie: string) => (await gw.fetch('/api/gateway/v1/me/', { headers: { cookie } })).status === 200
    for (const request of [
      () => gw.fetch(`${ENDPOINTS}/logout`, { headers: { accept: 'text/html', cookie: gateway.cookie } }),
      () => gw.fetch(`${ENDPOINTS}/logout?${new URLSearchParams({ client_id: 'spa', post_logout_redirect_uri: CLIENT_REDIRECT })}`, { headers: { accept: 'text/html', cookie: gateway.cookie } }),
    ]) {
      const answer = await request()
      const page = await answer.text()
      assert.equal(answer.status, 200)
      assert.match(page, /Do you want to log out\?/)
      assert.doesNotMatch(page, /<script/, 'the page does not submit itself')
      assert.ok(await signedIn(gateway.cookie))
    }
    // The person clicks Log out: the gateway session ends.
    const jar = new CookieJar()
    const cookie = () => [gateway.cookie, jar.header()].filter(Boolean).join('; ')
    const asked = await gw.fetch(`${ENDPOINTS}/logout`, { headers: { accept: 'text/html', cookie: cookie() } })
    jar.store(asked)
    const page = await asked.text()
    const action = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(page)![1]!
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(page)![1]!
    const done = await fetch(action, { method: 'POST', redirect: 'manual', headers: { ...FORM, accept: 'text/html', cookie: cookie() }, body: new URLSearchParams({ xsrf, logout: 'yes' }).toString() })
    assert.equal(done.status, 303)
    assert.equal(await signedIn(gateway.cookie), false)
  })

  it('ends the session an id_token_hint names when the browser bringing it has none, as Keycloak logs out a session by its ID token', async () => {
    const jar = new CookieJar()
    const tokens = await browserLogin(jar)
    // Another browser, without cookies (or this one, its cookies cleared), brings the application's ID token.
    const elsewhere = new CookieJar()
    const page = await browse(gw, elsewhere, realmUrl(gw, `/protocol/openid-connect/logout?${new URLSearchParams({ id_token_hint: tokens.id_token, post_logout_redirect_uri: CLIENT_REDIRECT, state: 'st-3' })}`))
    const back = await submitForm(gw, elsewhere, page, {})
    assert.equal(new URL(back.url).searchParams.get('state'), 'st-3')
    const refresh = await tokenRequest(gw, { client_id: 'spa', grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
    assert.equal(refresh.body.error, 'invalid_grant')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: jar.header() } })).status, 401, 'the gateway session of the browser signed out too')
  })

  it('takes userinfo\'s access token from a POSTed form, and from the header of a POST with a form, as Keycloak', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const answered = await post('/userinfo', { access_token: tokens.access_token })
    assert.equal(answered.status, 200)
    assert.equal((await json(answered)).preferred_username, 'alice')
    const withHeader = await gw.fetch(`${ENDPOINTS}/userinfo`, { method: 'POST', headers: { ...FORM, authorization: `Bearer ${tokens.access_token}` }, body: 'claims_locales=en' })
    assert.equal(withHeader.status, 200)
    await assertUserinfoRefused(await post('/userinfo', { access_token: `${tokens.access_token.slice(0, -4)}AAAA` }), 401, ...UNVERIFIED)
    // Keycloak's issueUserInfoPost: a header of another scheme is no token, and the form's is read.
    const basicAndForm = await gw.fetch(`${ENDPOINTS}/userinfo`, { method: 'POST', headers: { ...FORM, authorization: `Basic ${Buffer.from('end-users:x').toString('base64')}` }, body: new URLSearchParams({ access_token: tokens.access_token }).toString() })
    assert.deepEqual([basicAndForm.status, (await json(basicAndForm)).preferred_username], [200, 'alice'])
    // A bearer header and the form's token both: refused, whatever the form holds (not the header's winning).
    const bearerAndForm = await gw.fetch(`${ENDPOINTS}/userinfo`, { method: 'POST', headers: { ...FORM, authorization: `Bearer ${tokens.access_token}` }, body: new URLSearchParams({ access_token: 'not-a-token' }).toString() })
    await assertUserinfoRefused(bearerAndForm, 400, 'invalid_request', 'More than one method used for including an access token')
  })
})
