import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, realmUrl, realmWith, SERVICE_SECRET, tokenRequest } from '../helpers/oidc.ts'

const SIGNING_SECRET = 'signed-secret-client-0123456789abcdef'
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/** Keycloak's "Signed JWT" and "Signed JWT with client secret" client authenticators (RFC 7523 §2.2). */
describe('confidential clients that authenticate with a signed JWT', () => {
  let gw: TestGateway
  let clientKey: CryptoKey
  let strangerKey: CryptoKey

  before(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true })
    clientKey = pair.privateKey
    strangerKey = (await generateKeyPair('RS256')).privateKey
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'client-key-1', alg: 'RS256', use: 'sig' }
    gw = await startGateway({
      config: {
        realms: realmWith([
            { client_id: 'signed-secret', public_client: false, client_authenticator: 'client-secret-jwt', secret: SIGNING_SECRET, service_accounts: true, device_authorization_grant: true },
            { client_id: 'signed-key', public_client: false, client_authenticator: 'client-jwt', jwks: { keys: [publicJwk] }, service_accounts: true },
        ]),
      },
    })
  })
  after(() => gw.close())

  const assertion = (clientId: string, aud = realmUrl(gw, '/protocol/openid-connect/token'), jti = randomUUID()) => new SignJWT({ jti })
    .setIssuer(clientId).setSubject(clientId).setAudience(aud).setIssuedAt().setExpirationTime('60s')
  const withAssertion = (clientAssertion: string) => tokenRequest(gw, { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: clientAssertion })

  it('takes a JWT signed with the client\'s private key (private_key_jwt), for the token endpoint or the issuer', async () => {
    for (const aud of [realmUrl(gw, '/protocol/openid-connect/token'), realmUrl(gw)]) {
      const jwt = await assertion('signed-key', aud).setProtectedHeader({ alg: 'RS256', kid: 'client-key-1' }).sign(clientKey)
      const { status, body } = await withAssertion(jwt)
      assert.equal(status, 200, aud)
      assert.equal(decodeJwtPart(body.access_token, 1).azp, 'signed-key')
    }
  })

  it('takes a JWT signed with the client secret (client_secret_jwt)', async () => {
    const jwt = await assertion('signed-secret').setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SIGNING_SECRET))
    const { status, body } = await withAssertion(jwt)
    assert.equal(status, 200)
    assert.equal(decodeJwtPart(body.access_token, 1).azp, 'signed-secret')
  })

  it('refuses a JWT signed with another key, another secret, used twice, or the client\'s secret in place of a JWT', async () => {
    const stranger = await assertion('signed-key').setProtectedHeader({ alg: 'RS256', kid: 'client-key-1' }).sign(strangerKey)
    const wrongSecret = await assertion('signed-secret').setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('x'.repeat(40)))
    const replayed = await assertion('signed-key').setProtectedHeader({ alg: 'RS256', kid: 'client-key-1' }).sign(clientKey)
    assert.equal((await withAssertion(replayed)).status, 200)
    for (const response of [await withAssertion(stranger), await withAssertion(wrongSecret), await withAssertion(replayed),
      await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'signed-secret', client_secret: SIGNING_SECRET })]) {
      assert.equal(response.status, 401)
      assert.deepEqual(response.body, { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' })
    }
  })

  it('takes a JWT only within a minute of its iat, or with an exp at most a minute ahead without one, as Keycloak by default', async () => {
    const now = Math.floor(Date.now() / 1000)
    const signed = (claims: { iat?: number; exp: number }) => {
      const jwt = new SignJWT({ jti: randomUUID() }).setIssuer('signed-key').setSubject('signed-key').setAudience(realmUrl(gw, '/protocol/openid-connect/token')).setExpirationTime(claims.exp)
      if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat)
      return jwt.setProtectedHeader({ alg: 'RS256', kid: 'client-key-1' }).sign(clientKey)
    }
    const cases: [string, { iat?: number; exp: number }, number][] = [
      ['issued now, a year to run', { iat: now, exp: now + 365 * 86400 }, 200],
      ['no iat, 50 s to run', { exp: now + 50 }, 200],
      ['no iat, a year to run', { exp: now + 365 * 86400 }, 401],
      ['issued two minutes ago, a year to run', { iat: now - 120, exp: now + 365 * 86400 }, 401],
      ['issued a minute ahead', { iat: now + 60, exp: now + 120 }, 401],
    ]
    for (const [name, claims, status] of cases) assert.equal((await withAssertion(await signed(claims))).status, status, name)
  })

  it('counts a device code\'s polls by the client its JWT names, when the form names none (RFC 7523)', async () => {
    const signed = () => assertion('signed-secret').setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SIGNING_SECRET))
    const started = await fetch(realmUrl(gw, '/protocol/openid-connect/auth/device'), { method: 'POST', body: new URLSearchParams({ client_assertion_type: ASSERTION_TYPE, client_assertion: await signed() }) })
    assert.equal(started.status, 200)
    const { device_code: deviceCode } = await started.json() as { device_code: string }
    const poll = async () => (await tokenRequest(gw, { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode, client_assertion_type: ASSERTION_TYPE, client_assertion: await signed() })).body.error
    assert.equal(await poll(), 'authorization_pending')
    assert.equal(await poll(), 'slow_down')
  })

  it('takes one JWT once when requests bring it at the same moment', async () => {
    const jwt = await assertion('signed-key').setProtectedHeader({ alg: 'RS256', kid: 'client-key-1' }).sign(clientKey)
    const statuses = (await Promise.all(Array.from({ length: 8 }, () => withAssertion(jwt)))).map((response) => response.status)
    assert.deepEqual(statuses.filter((status) => status === 200).length, 1, String(statuses))
    assert.deepEqual(statuses.filter((status) => status === 401).length, 7, String(statuses))
  })
})

/**
 * A client secret outside ASCII in HTTP basic, as Keycloak reads it (BasicAuthHelper.RFC6749: the decoded header is
 * UTF-8, each part form-urlencoded). Bytes that are not UTF-8 are refused rather than read with U+FFFD in their place.
 */
describe('client secrets outside ASCII in HTTP basic', () => {
  const SECRET = 'schlüssel-für-café-☕-0123'
  /** A secret whose every character ISO-8859-1 has, so that its bytes in that encoding would read back as it. */
  const LATIN_SECRET = 'schlüssel-für-café-0123'
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({
      config: { realms: realmWith([
        { client_id: 'umlaut', public_client: false, secret: SECRET, service_accounts: true, direct_access_grants: true },
        { client_id: 'latin', public_client: false, secret: LATIN_SECRET, service_accounts: true, direct_access_grants: true },
      ]) },
    })
  })
  after(() => gw.close())

  const basicOf = (bytes: Buffer) => ({ authorization: `Basic ${bytes.toString('base64')}` })
  const grant = (headers: Record<string, string>, form: Record<string, string> = {}) => tokenRequest(gw, { grant_type: 'client_credentials', ...form }, headers)
  const invalidClient = { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' }

  it('takes the secret form-urlencoded (RFC 6749 §2.3.1) or as plain UTF-8, and in the form', async () => {
    const encoded = `umlaut:${encodeURIComponent(SECRET)}`
    for (const [name, headers, form] of [
      ['form-urlencoded', basicOf(Buffer.from(encoded)), {}],
      ['plain UTF-8', basicOf(Buffer.from(`umlaut:${SECRET}`)), {}],
      ['the form', {}, { client_id: 'umlaut', client_secret: SECRET }],
      ['both, the same', basicOf(Buffer.from(encoded)), { client_secret: SECRET }],
    ] as const) {
      const { status, body } = await grant(headers, form)
      assert.equal(status, 200, `${name}: ${JSON.stringify(body)}`)
      assert.equal(decodeJwtPart(body.access_token, 1).azp, 'umlaut', name)
    }
  })

  it('takes it at the introspection and logout endpoints too', async () => {
    await gw.app.accounts.create({ username: 'ulla', password: 'ulla-password-1' })
    const headers = basicOf(Buffer.from(`umlaut:${encodeURIComponent(SECRET)}`))
    const login = await tokenRequest(gw, { grant_type: 'password', username: 'ulla', password: 'ulla-password-1' }, headers)
    assert.equal(login.status, 200, JSON.stringify(login.body))
    const introspected = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/token/introspect').slice(gw.url.length), { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: login.body.access_token }) })
    assert.equal(introspected.status, 200)
    assert.equal(((await introspected.json()) as { active: boolean }).active, true)
    const logout = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/logout').slice(gw.url.length), { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ refresh_token: login.body.refresh_token }) })
    assert.equal(logout.status, 204, await logout.text())
    const refreshed = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token }, headers)
    assert.equal(refreshed.status, 400, 'the session ended')
  })

  it('refuses a form\'s client_secret whose bytes are not UTF-8 as basic credentials are refused, at every endpoint that takes one', async () => {
    await gw.app.accounts.create({ username: 'lena', password: 'lena-password-1' })
    const utf8Form = { client_id: 'latin', client_secret: LATIN_SECRET }
    const login = await tokenRequest(gw, { grant_type: 'password', username: 'lena', password: 'lena-password-1', ...utf8Form })
    assert.equal(login.status, 200, JSON.stringify(login.body))
    const latin1Escaped = [...Buffer.from(LATIN_SECRET, 'latin1')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')
    const post = (path: string, fields: string, secret: string | Buffer) => gw.fetch(realmUrl(gw, `/protocol/openid-connect${path}`).slice(gw.url.length), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: Buffer.concat([Buffer.from(`${fields}&client_id=latin&client_secret=`), typeof secret === 'string' ? Buffer.from(secret) : secret]),
    })
    const endpoints = [
      ['token (client credentials)', '/token', 'grant_type=client_credentials'],
      ['token (password)', '/token', 'grant_type=password&username=lena&password=lena-password-1'],
      ['token (refresh)', '/token', `grant_type=refresh_token&refresh_token=${login.body.refresh_token}`],
      ['introspection', '/token/introspect', `token=${login.body.access_token}`],
      ['revocation', '/revoke', `token=${login.body.refresh_token}`],
      ['logout', '/logout', `refresh_token=${login.body.refresh_token}`],
    ] as const
    for (const [name, path, fields] of endpoints) {
      for (const [spelling, secret] of [['percent-encoded', latin1Escaped], ['raw bytes', Buffer.from(LATIN_SECRET, 'latin1')]] as const) {
        const response = await post(path, fields, secret)
        assert.equal(response.status, 401, `${name}, ${spelling}`)
        assert.deepEqual(await response.json(), invalidClient, `${name}, ${spelling}`)
      }
    }
    // Nothing was revoked or logged out along the way: the same secret in UTF-8 still refreshes.
    const refreshed = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token, ...utf8Form })
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
  })

  it('refuses an empty secret in HTTP basic as a wrong one, 401 invalid_client, at every endpoint that authenticates the client', async () => {
    await gw.app.accounts.create({ username: 'emil', password: 'emil-password-1' })
    const login = await grant({}, { grant_type: 'password', username: 'emil', password: 'emil-password-1', client_id: 'umlaut', client_secret: SECRET })
    assert.equal(login.status, 200, JSON.stringify(login.body))
    const endpoints = [
      ['token (client credentials)', '/token', 'grant_type=client_credentials'],
      ['token (refresh)', '/token', `grant_type=refresh_token&refresh_token=${login.body.refresh_token}`],
      ['introspection', '/token/introspect', `token=${login.body.access_token}`],
      ['revocation', '/revoke', `token=${login.body.refresh_token}`],
      ['logout', '/logout', `refresh_token=${login.body.refresh_token}`],
      ['pushed authorization', '/ext/par/request', 'response_type=code&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb'],
      ['device authorization', '/auth/device', 'scope=openid'],
    ] as const
    for (const [name, path, fields] of endpoints) {
      const response = await gw.fetch(realmUrl(gw, `/protocol/openid-connect${path}`).slice(gw.url.length), { method: 'POST', headers: { ...basicOf(Buffer.from('umlaut:')), 'content-type': 'application/x-www-form-urlencoded' }, body: fields })
      assert.equal(response.status, 401, name)
      assert.deepEqual(await response.json(), invalidClient, name)
    }
    const refreshed = await grant({}, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token, client_id: 'umlaut', client_secret: SECRET })
    assert.equal(refreshed.status, 200, `nothing was revoked or logged out: ${JSON.stringify(refreshed.body)}`)
  })

  it('refuses a secret whose bytes are not UTF-8 as a wrong one, even where U+FFFD would stand for them', async () => {
    const latin1 = Buffer.from(`umlaut:${SECRET.replace('☕', '')}`, 'latin1')
    const percentLatin1 = Buffer.from(`umlaut:${[...Buffer.from(SECRET.replace('☕', ''), 'latin1')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')}`)
    const replaced = Buffer.concat([Buffer.from('umlaut:'), Buffer.from([0xff, 0xfe]), Buffer.from('-0123456789abcdef')])
    for (const [name, headers, form] of [
      ['ISO-8859-1 bytes', basicOf(latin1), {}],
      ['percent-encoded ISO-8859-1', basicOf(percentLatin1), {}],
      ['invalid bytes with the form holding U+FFFD', basicOf(replaced), { client_secret: '\uFFFD\uFFFD-0123456789abcdef' }],
      ['a wrong secret', basicOf(Buffer.from('umlaut:schlussel-fur-cafe-0123')), {}],
    ] as const) {
      const { status, body } = await grant(headers, form)
      assert.equal(status, 401, name)
      assert.deepEqual(body, invalidClient, name)
    }
  })
})

/** Keycloak's ClientIdAndSecretAuthenticator checks no secret of a public client: one sent along is ignored. */
describe('a public client that sends a client secret anyway', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([]) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const basic = (clientId: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` })
  const login = { grant_type: 'password', username: 'alice', password: 'alice-password' }

  it('is served as without it, the secret in the form or in HTTP basic, at the token endpoint and at logout', async () => {
    const inForm = await tokenRequest(gw, { ...login, client_id: 'end-users', client_secret: 'anything' })
    assert.equal(inForm.status, 200, JSON.stringify(inForm.body))
    assert.equal(decodeJwtPart(inForm.body.access_token, 1).azp, 'end-users')
    const inBasic = await tokenRequest(gw, login, basic('end-users', 'anything'))
    assert.equal(inBasic.status, 200, JSON.stringify(inBasic.body))
    assert.equal(decodeJwtPart(inBasic.body.access_token, 1).azp, 'end-users')
    const refreshed = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: inBasic.body.refresh_token }, basic('end-users', 'other'))
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
    const logout = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/logout').slice(gw.url.length), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: 'end-users', client_secret: 'anything', refresh_token: refreshed.body.refresh_token }) })
    assert.equal(logout.status, 204)
    const after = await tokenRequest(gw, { grant_type: 'refresh_token', client_id: 'end-users', refresh_token: refreshed.body.refresh_token })
    assert.equal(after.status, 400)
  })

  it('still names one client: a form client_id other than HTTP basic\'s is refused', async () => {
    const { status } = await tokenRequest(gw, { ...login, client_id: 'reports' }, basic('end-users', 'anything'))
    assert.equal(status >= 400 && status < 500, true)
  })
})

/** A configured secret is the text it is written as, whatever it looks like. */
describe('a client secret written like a stored hash', () => {
  const SECRET = `sha256:${'0123456789abcdef'.repeat(4)}`
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([{ client_id: 'hash-like', public_client: false, secret: SECRET, service_accounts: true }]) } })
  })
  after(() => gw.close())

  it('authenticates the client with that text, in HTTP basic and in the form, and with nothing else', async () => {
    const basic = { authorization: `Basic ${Buffer.from(`hash-like:${encodeURIComponent(SECRET)}`).toString('base64')}` }
    assert.equal((await tokenRequest(gw, { grant_type: 'client_credentials' }, basic)).status, 200)
    assert.equal((await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'hash-like', client_secret: SECRET })).status, 200)
    const wrong = await tokenRequest(gw, { grant_type: 'client_credentials', client_id: 'hash-like', client_secret: `${SECRET}0` })
    assert.equal(wrong.status, 401)
  })
})

/**
 * Keycloak's ClientIdAndSecretAuthenticator ignores an Authorization header its BasicAuthHelper cannot read when the
 * form names the client (browsers send `Negotiate` on their own; HTTP clients may carry a default `Bearer`). Without
 * one in the form, its challenge names no client, which its ClientAuthenticationFlow never sends: the request is
 * answered as one without the header.
 */
describe('an Authorization header that holds no client credentials', () => {
  const FOREIGN_HEADERS = ['Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHg', 'Bearer xyz'] as const
  let gw: TestGateway
  let clientKey: CryptoKey

  before(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true })
    clientKey = pair.privateKey
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'client-key-1', alg: 'RS256', use: 'sig' }
    gw = await startGateway({ config: { realms: realmWith([{ client_id: 'signed-key', public_client: false, client_authenticator: 'client-jwt', jwks: { keys: [publicJwk] }, service_accounts: true }]) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const confidential = { client_id: 'reports', client_secret: SERVICE_SECRET }
  const login = { grant_type: 'password', username: 'alice', password: 'alice-password' }
  const post = (path: string, authorization: string, form: Record<string, string>) => gw.fetch(realmUrl(gw, `/protocol/openid-connect${path}`).slice(gw.url.length), {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  })

  it('is ignored at the token endpoint when the form names the client, public or confidential, for every grant', async () => {
    for (const authorization of FOREIGN_HEADERS) {
      const publicLogin = await tokenRequest(gw, { ...login, client_id: 'end-users' }, { authorization })
      assert.equal(publicLogin.status, 200, `${authorization}: ${JSON.stringify(publicLogin.body)}`)
      assert.equal(decodeJwtPart(publicLogin.body.access_token, 1).azp, 'end-users')
      const confidentialLogin = await tokenRequest(gw, { ...login, ...confidential }, { authorization })
      assert.equal(confidentialLogin.status, 200, `${authorization}: ${JSON.stringify(confidentialLogin.body)}`)
      const refreshed = await tokenRequest(gw, { grant_type: 'refresh_token', client_id: 'end-users', refresh_token: publicLogin.body.refresh_token }, { authorization })
      assert.equal(refreshed.status, 200, `${authorization}: ${JSON.stringify(refreshed.body)}`)
      const refreshedConfidential = await tokenRequest(gw, { grant_type: 'refresh_token', ...confidential, refresh_token: confidentialLogin.body.refresh_token }, { authorization })
      assert.equal(refreshedConfidential.status, 200, `${authorization}: ${JSON.stringify(refreshedConfidential.body)}`)
      const serviceAccount = await tokenRequest(gw, { grant_type: 'client_credentials', ...confidential }, { authorization })
      assert.equal(serviceAccount.status, 200, `${authorization}: ${JSON.stringify(serviceAccount.body)}`)
      assert.equal(decodeJwtPart(serviceAccount.body.access_token, 1).azp, 'reports')
    }
  })

  it('is ignored beside a JWT client assertion that names the client', async () => {
    for (const authorization of FOREIGN_HEADERS) {
      const jwt = await new SignJWT({ jti: randomUUID() }).setIssuer('signed-key').setSubject('signed-key').setAudience(realmUrl(gw, '/protocol/openid-connect/token'))
        .setIssuedAt().setExpirationTime('60s').setProtectedHeader({ alg: 'RS256', kid: 'client-key-1' }).sign(clientKey)
      const { status, body } = await tokenRequest(gw, { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: jwt }, { authorization })
      assert.equal(status, 200, `${authorization}: ${JSON.stringify(body)}`)
      assert.equal(decodeJwtPart(body.access_token, 1).azp, 'signed-key')
    }
  })

  it('is ignored at the introspection, revocation and logout endpoints when the form names the client', async () => {
    for (const authorization of FOREIGN_HEADERS) {
      const confidentialLogin = await tokenRequest(gw, { ...login, ...confidential })
      const introspected = await post('/token/introspect', authorization, { ...confidential, token: confidentialLogin.body.access_token })
      assert.equal(introspected.status, 200, authorization)
      assert.equal(((await introspected.json()) as { active: boolean }).active, true, authorization)
      const revoked = await post('/revoke', authorization, { ...confidential, token: confidentialLogin.body.refresh_token })
      assert.equal(revoked.status, 200, `${authorization}: ${await revoked.text()}`)
      assert.equal((await tokenRequest(gw, { grant_type: 'refresh_token', ...confidential, refresh_token: confidentialLogin.body.refresh_token })).status, 400, 'revoked')
      const publicLogin = await tokenRequest(gw, { ...login, client_id: 'end-users' })
      const logout = await post('/logout', authorization, { client_id: 'end-users', refresh_token: publicLogin.body.refresh_token })
      assert.equal(logout.status, 204, `${authorization}: ${await logout.text()}`)
      assert.equal((await tokenRequest(gw, { grant_type: 'refresh_token', client_id: 'end-users', refresh_token: publicLogin.body.refresh_token })).status, 400, 'logged out')
    }
  })

  it('leaves a form naming no client answered as without the header', async () => {
    for (const authorization of FOREIGN_HEADERS) {
      const { status, headers, body } = await tokenRequest(gw, login, { authorization })
      assert.equal(status, 401, authorization)
      assert.deepEqual(body, { error: 'invalid_client', error_description: 'Missing client_id parameter' }, authorization)
      assert.equal(headers.get('www-authenticate'), null, authorization)
    }
  })
})
