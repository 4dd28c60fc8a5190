import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, codeRedemption, decodeJwtPart, REALM, realmUrl, realmWith, SERVICE_SECRET, signedInBrowser, submitForm, tokenRequest } from '../helpers/oidc.ts'

const ALICE = { username: 'alice', password: 'alice-password' }
const ENDPOINTS = `/realms/${REALM}/protocol/openid-connect`
const SECRET = 'backend-secret-0123456789'

const clients = [
  // Web origins `+`: the origins of its redirect URIs, a prefix's included.
  { client_id: 'spa', public_client: true, direct_access_grants: true, device_authorization_grant: true, redirect_uris: [CLIENT_REDIRECT, 'https://app.example.com/*'] },
  { client_id: 'listed', public_client: false, secret: SECRET, service_accounts: true, direct_access_grants: true, web_origins: ['https://one.example', 'https://two.example:8443'] },
  { client_id: 'anywhere', public_client: true, direct_access_grants: true, web_origins: ['*'] },
  { client_id: 'backend', public_client: false, secret: SECRET, service_accounts: true, direct_access_grants: true, web_origins: [] },
  // `+` with no redirect URIs to take origins from.
  { client_id: 'unresolved', public_client: true, direct_access_grants: true },
]

const accessClaims = (body: { access_token: string }) => decodeJwtPart(body.access_token, 1)

/**
 * The claims Keycloak 25 and later put in every access token through the realm's default client scopes: `auth_time`
 * (`basic`), `allowed-origins` (`web-origins`), and a service account's `clientHost` and `clientAddress`
 * (`service_account`), each in the token's introspection too.
 */
describe('access tokens carry Keycloak\'s auth_time, allowed-origins, clientHost and clientAddress', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith(clients) } })
    await gw.app.accounts.create(ALICE)
  })
  after(() => gw.close())

  const introspect = async (token: string) => json(await gw.fetch(`${ENDPOINTS}/token/introspect`, {
    method: 'POST', body: new URLSearchParams({ client_id: 'listed', client_secret: SECRET, token }),
  }))
  const refresh = async (clientId: string, refreshToken: string) => {
    const refreshed = await tokenRequest(gw, { client_id: clientId, grant_type: 'refresh_token', refresh_token: refreshToken })
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
    return refreshed.body
  }

  /** The access token's auth_time, which its ID token and its introspection say too. */
  async function authTime(body: { access_token: string; id_token?: string }): Promise<number> {
    const claims = accessClaims(body)
    assert.equal(typeof claims.auth_time, 'number')
    if (body.id_token) assert.equal(claims.auth_time, decodeJwtPart(body.id_token, 1).auth_time, 'as the ID token')
    assert.equal((await introspect(body.access_token)).auth_time, claims.auth_time, 'as its introspection')
    return claims.auth_time
  }

  it('says when the person signed in, for the password grant, and keeps it through refreshes', async () => {
    const { status, body } = await tokenRequest(gw, { client_id: 'spa', grant_type: 'password', ...ALICE, scope: 'openid' })
    assert.equal(status, 200)
    const signedIn = await authTime(body)
    const claims = accessClaims(body)
    assert.ok(Math.abs(signedIn - claims.iat) <= 1, `${signedIn} at ${claims.iat}`)
    await sleep(1100)
    const refreshed = await refresh('spa', body.refresh_token)
    assert.ok(accessClaims(refreshed).iat > signedIn, 'a later token')
    assert.equal(await authTime(refreshed), signedIn)
    // A client without refresh tokens for the grant gets it too.
    const alone = await tokenRequest(gw, { client_id: 'anywhere', grant_type: 'password', ...ALICE })
    assert.equal(alone.status, 200)
    assert.equal(typeof accessClaims(alone.body).auth_time, 'number')
  })

  it('says when the browser\'s session signed in, for the authorization code and the refresh, with the login form and without', async () => {
    const browser = await signedInBrowser(gw, ALICE.username, ALICE.password)
    const first = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code: browser.code, redirect_uri: CLIENT_REDIRECT, code_verifier: browser.verifier })
    assert.equal(first.status, 200)
    const signedIn = await authTime(first.body)
    await sleep(1100)
    // The realm session signs the browser in again without the form: the time of the sign-in it keeps.
    const again = await browse(gw, browser.jar, browser.authorize())
    const code = new URL(again.url).searchParams.get('code')
    assert.ok(code, again.url)
    const second = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: browser.verifier })
    assert.equal(second.status, 200)
    assert.ok(accessClaims(second.body).iat > signedIn)
    assert.equal(await authTime(second.body), signedIn)
    assert.equal(await authTime(await refresh('end-users', second.body.refresh_token)), signedIn)
    // A new login form: a new time.
    const redeemed = await tokenRequest(gw, await codeRedemption(gw, ALICE.username, ALICE.password))
    assert.ok(await authTime(redeemed.body) > signedIn)
  })

  it('says when the person approved a device in the browser', async () => {
    const started = await json(await gw.fetch(`${ENDPOINTS}/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'spa', scope: 'openid' }) }))
    const jar = new CookieJar()
    const confirm = await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: String(started.user_code) })
    await submitForm(gw, jar, await submitForm(gw, jar, confirm, {}), ALICE)
    const { status, body } = await tokenRequest(gw, { client_id: 'spa', grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: String(started.device_code) })
    assert.equal(status, 200, JSON.stringify(body))
    await authTime(body)
  })

  it('lists the client\'s web origins in allowed-origins, its redirect URIs\' origins for + (none for a client without), in access tokens and their introspection only', async () => {
    const expected: Record<string, string[] | undefined> = {
      spa: ['http://127.0.0.1:9', 'https://app.example.com'],
      listed: ['https://one.example', 'https://two.example:8443'],
      anywhere: ['*'],
      backend: undefined,
      unresolved: [],
    }
    for (const [clientId, origins] of Object.entries(expected)) {
      const secret: Record<string, string> = clientId === 'listed' || clientId === 'backend' ? { client_secret: SECRET } : {}
      const { status, body } = await tokenRequest(gw, { client_id: clientId, grant_type: 'password', ...ALICE, scope: 'openid', ...secret })
      assert.equal(status, 200, clientId)
      assert.deepEqual(accessClaims(body)['allowed-origins'], origins, clientId)
      assert.deepEqual((await introspect(body.access_token))['allowed-origins'], origins, `${clientId} introspected`)
      assert.equal(decodeJwtPart(body.id_token, 1)['allowed-origins'], undefined, `${clientId}: not in the ID token`)
      const info = await json(await gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${body.access_token}` } }))
      assert.equal(info['allowed-origins'], undefined, `${clientId}: not in userinfo`)
    }
  })

  it('names a service account\'s client address, its web origins, and no auth_time, by either path of the grant', async () => {
    for (const scope of [undefined, 'openid']) {
      const { status, body } = await tokenRequest(gw, { client_id: 'listed', client_secret: SECRET, grant_type: 'client_credentials', ...(scope ? { scope } : {}) }, { 'x-forwarded-for': '203.0.113.9' })
      assert.equal(status, 200, JSON.stringify(body))
      const claims = accessClaims(body)
      assert.equal(claims.auth_time, undefined)
      // An untrusted X-Forwarded-For is not the client's address.
      assert.equal(claims.clientHost, '127.0.0.1', `${scope}`)
      assert.equal(claims.clientAddress, '127.0.0.1', `${scope}`)
      assert.deepEqual(claims['allowed-origins'], ['https://one.example', 'https://two.example:8443'])
      // Keycloak's order: the host before the profile claims, the address after them, then the client's id.
      const names = Object.keys(claims)
      assert.ok(names.indexOf('clientHost') < names.indexOf('preferred_username'), names.join())
      assert.deepEqual(names.slice(names.indexOf('clientAddress'), names.indexOf('clientAddress') + 2), ['clientAddress', 'client_id'])
      const introspected = await introspect(body.access_token)
      assert.equal(introspected.clientAddress, '127.0.0.1')
      assert.equal(introspected.clientHost, '127.0.0.1')
      // The service account user, as the token's own `sub`, which its record does not keep.
      assert.equal(introspected.sub, claims.sub, `${scope}`)
      assert.equal(introspected.username, 'service-account-listed')
      if (scope) {
        const id = decodeJwtPart(body.id_token, 1)
        assert.deepEqual([id.clientHost, id.clientAddress, id.client_id, id['allowed-origins']], ['127.0.0.1', '127.0.0.1', 'listed', undefined])
      }
    }
    // A person's tokens name no client address.
    const person = await tokenRequest(gw, { client_id: 'listed', client_secret: SECRET, grant_type: 'password', ...ALICE })
    assert.equal(accessClaims(person.body).clientAddress, undefined)
    assert.equal(accessClaims(person.body).clientHost, undefined)
  })
})

describe('userinfo for a service account\'s token', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith(clients) } })
    await gw.app.accounts.create(ALICE)
  })
  after(() => gw.close())

  const userinfo = (token: string) => gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { authorization: `Bearer ${token}`, origin: 'https://one.example' } })
  const serviceToken = async (scope?: string) => {
    const { status, body } = await tokenRequest(gw, { client_id: 'listed', client_secret: SECRET, grant_type: 'client_credentials', ...(scope ? { scope } : {}) })
    assert.equal(status, 200, JSON.stringify(body))
    return body.access_token as string
  }

  it('answers with the service account user\'s claims for a token with openid, as Keycloak\'s transient session, and as for a person', async () => {
    const token = await serviceToken('openid')
    const answer = await userinfo(token)
    assert.equal(answer.status, 200)
    const body = await json(answer)
    assert.deepEqual(body, { sub: accessClaims({ access_token: token }).sub, preferred_username: 'service-account-listed', email_verified: false })
    // A person's token of the same client: the same headers, the claims in the same order.
    const person = await tokenRequest(gw, { client_id: 'listed', client_secret: SECRET, grant_type: 'password', ...ALICE, scope: 'openid' })
    assert.equal(person.status, 200, JSON.stringify(person.body))
    const personal = await userinfo(person.body.access_token)
    assert.equal(personal.status, 200)
    for (const name of ['content-type', 'cache-control', 'vary', 'access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers', 'www-authenticate']) {
      assert.equal(answer.headers.get(name), personal.headers.get(name), name)
    }
    assert.deepEqual(Object.keys(body), Object.keys(await json(personal)).filter((name) => name in body))
    // From an origin the client does not allow: refused as a person's token is.
    const elsewhere = { authorization: '', origin: 'https://elsewhere.example' }
    const [refused, personRefused] = await Promise.all([token, person.body.access_token].map((value) => gw.fetch(`${ENDPOINTS}/userinfo`, { headers: { ...elsewhere, authorization: `Bearer ${value}` } })))
    assert.deepEqual([refused!.status, await json(refused!)], [400, { error: 'invalid_request', error_description: 'origin https://elsewhere.example not allowed for client: listed' }])
    assert.equal(personRefused!.status, 400)
    for (const name of ['content-type', 'access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers', 'www-authenticate']) {
      assert.equal(refused!.headers.get(name), personRefused!.headers.get(name), `refused: ${name}`)
    }
  })

  it('answers a token without openid 403 insufficient_scope, and one no longer valid 401, as for a person\'s', async () => {
    for (const scope of [undefined, 'profile']) {
      const answer = await userinfo(await serviceToken(scope))
      assert.equal(answer.status, 403, `${scope}`)
      assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="platform", error="insufficient_scope", error_description="Missing openid scope"')
    }
    const revoked = await serviceToken('openid')
    const revocation = await gw.fetch(`${ENDPOINTS}/revoke`, { method: 'POST', body: new URLSearchParams({ client_id: 'listed', client_secret: SECRET, token: revoked }) })
    assert.equal(revocation.status, 200)
    const gone = await userinfo(revoked)
    assert.equal(gone.status, 401)
    assert.equal(gone.headers.get('www-authenticate'), 'Bearer realm="platform", error="invalid_token", error_description="Token verification failed"')
  })
})

describe('a service account\'s client address behind a trusted proxy', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] }, realms: realmWith(clients) } })
  })
  after(() => gw.close())

  it('is the address the proxy forwarded, by either path of the grant', async () => {
    for (const scope of [undefined, 'profile']) {
      const { status, body } = await tokenRequest(gw, { client_id: 'backend', client_secret: SECRET, grant_type: 'client_credentials', ...(scope ? { scope } : {}) }, { 'x-forwarded-for': '203.0.113.9' })
      assert.equal(status, 200, JSON.stringify(body))
      const claims = accessClaims(body)
      assert.deepEqual([claims.clientHost, claims.clientAddress], ['203.0.113.9', '203.0.113.9'], `${scope}`)
      assert.equal(claims['allowed-origins'], undefined, 'a client without web origins')
    }
  })
})
