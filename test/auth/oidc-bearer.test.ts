import assert from 'node:assert/strict'
import { createHmac, createPublicKey } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { importJWK, SignJWT, type JWK } from 'jose'
import { loadConfigFile, demoConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { REVOKE_TOPIC } from '../../src/store/topics.ts'
import { browse, CookieJar, decodeJwtPart, passwordLogin, REALM, realmWith, SERVICE_SECRET, testRealms, tokenRequest } from '../helpers/oidc.ts'

const demo = loadConfigFile(demoConfigFile)
const demoApp = demo.services.find((s) => s.name === 'demo-app')!

/** Signs a payload with the realm's own private key, as only the realm (or a thief of its key) could. */
async function signWithRealmKey(gw: TestGateway, payload: Record<string, unknown>): Promise<string> {
  const [key] = await gw.store.signingKeys.list(`oidc:${REALM}`)
  const privateKey = await importJWK(key!.privateJwk as JWK, 'RS256')
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: key!.kid }).sign(privateKey)
}

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

describe('OIDC bearer tokens at the gateway', () => {
  let gw: TestGateway
  let aliceToken: any

  before(async () => {
    gw = await startGateway({
      config: {
        realms: [...testRealms, { name: 'partners', clients: [{ client_id: 'partner-scripts', direct_access_grants: true }] }],
        services: [
          ...demo.services,
          { ...demoApp, name: 'strict-app', prefix: '/strict-app/', unauthenticated: '401' },
          { ...demoApp, name: 'redirect-app', prefix: '/redirect-app/', unauthenticated: 'redirect' },
          { ...demoApp, name: 'reports-api', prefix: '/reports-api/', oidc: { realm: REALM, audiences: ['reports'] } },
          { ...demoApp, name: 'account', prefix: '/account/' },
        ],
      },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com' })
    aliceToken = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
  })
  after(() => gw.close())

  const call = (token: string, path = '/demo-app/pipelines/p/trials') => gw.fetch(path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })

  async function refused(token: string, path?: string): Promise<void> {
    const response = await call(token, path)
    assert.equal(response.status, 401)
    assert.equal((await json(response)).code, 'invalid_token')
    assert.match(response.headers.get('www-authenticate') ?? '', /Bearer realm="Gatehouse"/)
  }

  it('forwards the verified user and drops the token', async () => {
    const seen = await json(await call(aliceToken.access_token))
    assert.equal(seen.identity.username, 'alice')
    assert.equal(seen.identity.auth_method, 'oidc')
    assert.equal(seen.identity.verified, true)
    assert.equal(seen.headers.authorization, null)
  })

  it('accepts the realm\'s key re-signing an unchanged token (the forgeries below differ in one claim only)', async () => {
    const resigned = await signWithRealmKey(gw, decodeJwtPart(aliceToken.access_token, 1))
    assert.equal((await call(resigned)).status, 200)
  })

  it('refuses expired, not-yet-valid, wrong-issuer and wrong-audience tokens', async () => {
    const claims = decodeJwtPart(aliceToken.access_token, 1)
    const now = Math.floor(Date.now() / 1000)
    await refused(await signWithRealmKey(gw, { ...claims, exp: now - 60, iat: now - 360 }))
    await refused(await signWithRealmKey(gw, { ...claims, nbf: now + 600 }))
    await refused(await signWithRealmKey(gw, { ...claims, iat: now + 600, exp: now + 900 }))
    await refused(await signWithRealmKey(gw, { ...claims, iss: `${gw.url}/realms/elsewhere` }))
    await refused(await signWithRealmKey(gw, { ...claims, iss: 'https://keycloak.example.com/realms/platform' }))
    await refused(await signWithRealmKey(gw, { ...claims, aud: 'stranger', azp: 'stranger' }))
  })

  it('is refused at introspection and userinfo too when its own times do not hold, though its record lives', async () => {
    const claims = decodeJwtPart(aliceToken.access_token, 1)
    const now = Math.floor(Date.now() / 1000)
    const introspected = async (token: string) => (await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token/introspect`, {
      method: 'POST',
      headers: { authorization: 'Basic ' + Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64') },
      body: new URLSearchParams({ token }),
    }))).active
    const userinfo = async (token: string) => (await gw.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${token}` } })).status
    const unchanged = await signWithRealmKey(gw, claims)
    assert.deepEqual([await introspected(unchanged), await userinfo(unchanged)], [true, 200], 'the realm\'s key re-signing the same claims')
    const { exp: _exp, ...withoutExp } = claims
    const forged = {
      'expired (past the 5 s tolerance)': { ...claims, exp: now - 10 },
      'without exp': withoutExp,
      'not before a minute from now': { ...claims, nbf: now + 60 },
      'issued a minute from now': { ...claims, iat: now + 60 },
    }
    for (const [what, payload] of Object.entries(forged)) {
      const token = await signWithRealmKey(gw, payload)
      assert.deepEqual([await introspected(token), await userinfo(token)], [false, 401], what)
    }
  })

  it('says a token past its exp, within the signature check\'s tolerance, has expired, rather than that it was revoked', async () => {
    const realm = gw.app.oidc.get(REALM)!
    const { exp } = decodeJwtPart(aliceToken.access_token, 1)
    await assert.rejects(realm.verifyAccessToken(aliceToken.access_token, exp * 1000 + 2000), { message: 'The access token has expired.' })
    await assert.rejects(realm.verifyAccessToken(aliceToken.access_token, exp * 1000 + 60_000), { message: 'The access token has expired.' })
    assert.equal((await realm.verifyAccessToken(aliceToken.access_token, exp * 1000 - 2000)).userId, Number(decodeJwtPart(aliceToken.access_token, 1).sub))
  })

  it('refuses alg none, HS256 signed with the public key, and tampered tokens', async () => {
    const [header, payload, signature] = aliceToken.access_token.split('.')
    const claims = decodeJwtPart(aliceToken.access_token, 1)
    await refused(`${encode({ alg: 'none', typ: 'JWT' })}.${payload}.`)
    const [key] = await gw.store.signingKeys.list(`oidc:${REALM}`)
    const publicPem = createPublicKey({ key: key!.publicJwk as JWK, format: 'jwk' }).export({ type: 'spki', format: 'pem' })
    const hsHeader = encode({ alg: 'HS256', typ: 'JWT', kid: key!.kid })
    await refused(`${hsHeader}.${payload}.${createHmac('sha256', publicPem).update(`${hsHeader}.${payload}`).digest('base64url')}`)
    await refused(`${header}.${encode({ ...claims, preferred_username: 'admin', sub: '1' })}.${signature}`)
    await refused(`${header}.${payload}.${signature.slice(0, -6)}AAAAAA`)
  })

  it('refuses another payload under the signature of a token it remembers', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    assert.equal((await call(tokens.access_token)).status, 200)
    const [header, , signature] = tokens.access_token.split('.')
    const claims = decodeJwtPart(tokens.access_token, 1)
    await refused(`${header}.${encode({ ...claims, preferred_username: 'admin', sub: '1' })}.${signature}`)
    await refused(`${header}.${encode({ ...claims, exp: claims.exp + 3600 })}.${signature}`)
    assert.equal((await call(tokens.access_token)).status, 200)
  })

  it('refuses an ID token presented as an access token', async () => {
    await refused(aliceToken.id_token)
  })

  it('refuses a token of another realm where a service takes one realm', async () => {
    await gw.app.accounts.create({ username: 'paul', password: 'paul-password' })
    const { body: wrongRealm } = await tokenRequest(gw, { client_id: 'partner-scripts', grant_type: 'password', username: 'paul', password: 'paul-password' })
    assert.equal(wrongRealm.error, 'invalid_client', 'partner-scripts is a client of realm partners only')
    const partnerToken = (await json(await gw.fetch('/realms/partners/protocol/openid-connect/token', {
      method: 'POST', body: new URLSearchParams({ client_id: 'partner-scripts', grant_type: 'password', username: 'paul', password: 'paul-password' }),
    }))).access_token
    await refused(partnerToken)
  })

  it('checks a service\'s own audience', async () => {
    await refused(aliceToken.access_token, '/reports-api/x')
    const reports = await tokenRequest(gw, { grant_type: 'client_credentials' }, { authorization: 'Basic ' + Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64') })
    assert.equal((await call(reports.body.access_token, '/reports-api/x')).status, 200)
  })

  it('does not take a service named account for the audience every token names', async () => {
    // The reports client's token names Keycloak's account client in aud, as nearly every token of the realm does.
    const reports = await tokenRequest(gw, { grant_type: 'password', username: 'alice', password: 'alice-password' }, { authorization: 'Basic ' + Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64') })
    assert.ok([decodeJwtPart(reports.body.access_token, 1).aud].flat().includes('account'))
    await refused(reports.body.access_token, '/account/x')
    // The service's own client's tokens (end-users, the demo app's) pass.
    assert.equal((await call(aliceToken.access_token, '/account/x')).status, 200)
  })

  it('refuses at once the tokens of a user who was disabled', async () => {
    const bob = await gw.app.accounts.create({ username: 'bob', password: 'bob-password' })
    const tokens = await passwordLogin(gw, 'bob', 'bob-password')
    assert.equal((await call(tokens.access_token)).status, 200)
    await gw.fetch(`/api/gateway/v1/users/${bob.id}/`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: false }) })
    const response = await call(tokens.access_token)
    assert.equal(response.status, 401)
    assert.equal((await json(response)).code, 'account_disabled')
    const refresh = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
    assert.equal(refresh.status, 400)
    assert.equal(refresh.body.error, 'invalid_grant')
  })

  it('answers verified tokens from memory until they expire', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    assert.equal((await call(tokens.access_token)).status, 200)
    // Removing the record behind the gateway's back (no revocation event) does not reach the cached token...
    await gw.store.oidc.destroy('AccessToken', decodeJwtPart(tokens.access_token, 1).jti)
    assert.equal((await call(tokens.access_token)).status, 200)
    // ...while a token seen for the first time is checked against its record.
    const other = await passwordLogin(gw, 'alice', 'alice-password')
    await gw.store.oidc.destroy('AccessToken', decodeJwtPart(other.access_token, 1).jti)
    await refused(other.access_token)
  })

  it('refuses a token past its expiry although its verification was remembered', async (t) => {
    const claims = decodeJwtPart(aliceToken.access_token, 1)
    const now = Date.now()
    const shortLived = await signWithRealmKey(gw, { ...claims, exp: Math.floor(now / 1000) + 5 })
    assert.equal((await call(shortLived)).status, 200)
    // Past its expiry and the verification's five seconds of tolerance, within auth.max_stale_seconds (30 s), after
    // which anything remembered is checked again anyway.
    t.mock.timers.enable({ apis: ['Date'], now: now + 17_000 })
    await refused(shortLived)
    t.mock.timers.reset()
    assert.equal((await call(aliceToken.access_token)).status, 200)
  })

  it('keeps refusing a revoked token that was answered from memory, whatever flood of other revocations follows', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    assert.equal((await call(tokens.access_token)).status, 200)
    const revoke = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/revoke`, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', token: tokens.access_token }) })
    assert.equal(revoke.status, 200)
    // Before the token is used again (which would drop its cached verification), another user revokes more tokens
    // than the gateway remembers revocations of (its bound is 50,000).
    await gw.app.bus.change(async (_tx, announce) => {
      for (let i = 0; i < 50_001; i++) announce(REVOKE_TOPIC, `jti:flood-${i}`)
    })
    await refused(tokens.access_token)
    assert.equal((await call(aliceToken.access_token)).status, 200)
  })

  it('leaves bearer values that are not JWTs to other authenticators', async () => {
    const response = await call('gh0123456789abcdef')
    assert.equal(response.status, 401)
    assert.equal((await json(response)).code, 'credentials_not_accepted')
  })
})

describe('OIDC bearer tokens at the gateway\'s own API', () => {
  let gw: TestGateway
  const me = '/api/gateway/v1/me/'

  before(async () => {
    gw = await startGateway({
      config: {
        realms: [
          ...realmWith([{ client_id: 'gateway-cli', direct_access_grants: true, audiences: ['gateway'] }], { client_scopes: ['read', 'write'] }),
          { name: 'partners', clients: [{ client_id: 'partner-scripts', direct_access_grants: true, audiences: ['gateway'] }] },
        ],
        // An audience outside ASCII, which the refusal names and no header may carry.
        gateway: { ...demo.gateway, oidc: { realms: [REALM], audiences: ['gateway', 'passerelle-网关'] } },
      },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const login = async (clientId: string, scope?: string, realm = REALM) => (await json(await gw.fetch(`/realms/${realm}/protocol/openid-connect/token`, {
    method: 'POST', body: new URLSearchParams({ client_id: clientId, grant_type: 'password', username: 'alice', password: 'alice-password', ...(scope ? { scope } : {}) }),
  }))).access_token as string
  const patchMe = (token: string) => gw.fetch(me, { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ first_name: 'Alice' }) })

  it('refuses tokens meant for other clients and services, saying how a client\'s tokens are made for it', async () => {
    const response = await gw.fetch(me, { headers: { authorization: `Bearer ${await login('end-users')}` } })
    assert.equal(response.status, 401)
    const refusal = await json(response)
    assert.equal(refusal.code, 'invalid_token')
    assert.match(refusal.detail, /not meant for the gateway API: .*gateway\.oidc\.audiences \(gateway, passerelle-网关\); a realm client's tokens are meant for it once the client's audiences name one\.$/)
    // The challenge says it too, in the characters RFC 6750 §3 allows its error_description.
    const challenge = response.headers.get('www-authenticate') ?? ''
    assert.match(challenge, /^Bearer realm="Gatehouse", error="invalid_token", error_description="The access token is not meant for the gateway API: .*\(gateway, passerelle-\); a realm/)
    assert.match(challenge, /^[\x20-\x7e]+$/)
  })

  it('refuses tokens of realms it does not take, even meant for it', async () => {
    const response = await gw.fetch(me, { headers: { authorization: `Bearer ${await login('partner-scripts', undefined, 'partners')}` } })
    assert.equal(response.status, 401)
    assert.equal((await json(response)).code, 'invalid_token')
  })

  it('lets a token meant for it read, and change things only with scope write', async () => {
    const reader = await login('gateway-cli')
    const seen = await gw.fetch(me, { headers: { authorization: `Bearer ${reader}` } })
    assert.equal(seen.status, 200)
    assert.equal((await json(seen)).results[0].username, 'alice')
    const refused = await patchMe(reader)
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'insufficient_scope')
    assert.equal((await patchMe(await login('gateway-cli', 'read'))).status, 403)
    assert.equal((await patchMe(await login('gateway-cli', 'write'))).status, 200)
  })

  it('takes an access token of more than 4 KiB (many groups) where personal tokens are taken too', async () => {
    const claims = decodeJwtPart(await login('gateway-cli'), 1)
    const groups = Array.from({ length: 200 }, (_, i) => `/platform/organization-${i}/team-${i}`)
    const large = await signWithRealmKey(gw, { ...claims, groups })
    assert.ok(large.length > 4096 && large.length < 16 * 1024, `${large.length} characters`)
    const seen = await gw.fetch(me, { headers: { authorization: `Bearer ${large}` } })
    assert.equal(seen.status, 200)
    assert.equal((await json(seen)).results[0].username, 'alice')
  })

  it('lets a service take the tokens of its own client whatever their scope, and refuse other clients\' tokens', async () => {
    const post = (token: string) => gw.fetch('/demo-app/x', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })
    assert.equal((await post(await login('end-users'))).status, 200)
    const other = await post(await login('gateway-cli', 'write'))
    assert.equal(other.status, 401)
    assert.equal((await json(other)).code, 'invalid_token')
  })
})

describe('refresh tokens and logout', () => {
  let gw: TestGateway
  const reportsAuth = { authorization: 'Basic ' + Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64') }

  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const call = (token: string) => gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })

  it('revokes the session when a rotated refresh token is used again', async () => {
    const login = await tokenRequest(gw, { grant_type: 'password', username: 'alice', password: 'alice-password' }, reportsAuth)
    assert.equal(login.status, 200)
    const rotated = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token }, reportsAuth)
    assert.equal(rotated.status, 200)
    assert.notEqual(rotated.body.refresh_token, login.body.refresh_token)
    assert.equal((await call(rotated.body.access_token)).status, 200)

    const reuse = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: login.body.refresh_token }, reportsAuth)
    assert.equal(reuse.status, 400)
    assert.deepEqual(reuse.body, { error: 'invalid_grant', error_description: 'Maximum allowed refresh token reuse exceeded' })
    // The whole session ended: the newest refresh token and the access tokens too.
    const newest = await tokenRequest(gw, { grant_type: 'refresh_token', refresh_token: rotated.body.refresh_token }, reportsAuth)
    assert.equal(newest.status, 400)
    assert.equal(newest.body.error, 'invalid_grant')
    assert.equal((await call(rotated.body.access_token)).status, 401)
    assert.equal((await call(login.body.access_token)).status, 401)
  })

  it('keeps earlier refresh tokens valid for clients without rotation, as Keycloak does by default', async () => {
    const login = await passwordLogin(gw, 'alice', 'alice-password')
    const first = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token })
    const second = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token })
    assert.equal(first.status, 200)
    assert.equal(second.status, 200)
    assert.notEqual(first.body.refresh_token, login.refresh_token)
    assert.equal((await call(second.body.access_token)).status, 200)
  })

  it('logs out with the refresh token: the refresh token and the (cached) access token stop working', async () => {
    const login = await passwordLogin(gw, 'alice', 'alice-password')
    assert.equal((await call(login.access_token)).status, 200)
    const logout = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/logout`, {
      method: 'POST', body: new URLSearchParams({ client_id: 'end-users', refresh_token: login.refresh_token }),
    })
    assert.equal(logout.status, 204)
    const refresh = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token })
    assert.equal(refresh.status, 400)
    assert.equal(refresh.body.error, 'invalid_grant')
    const response = await call(login.access_token)
    assert.equal(response.status, 401)
    assert.equal((await json(response)).code, 'invalid_token')
  })

  it('does not let one client log out another client\'s session', async () => {
    const login = await passwordLogin(gw, 'alice', 'alice-password')
    await gw.fetch(`/realms/${REALM}/protocol/openid-connect/logout`, {
      method: 'POST', body: new URLSearchParams({ client_id: 'browser-only', refresh_token: login.refresh_token }),
    })
    assert.equal((await call(login.access_token)).status, 200)
  })
})

describe('requests without credentials to services that take OIDC', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({
      config: {
        services: [
          ...demo.services,
          { ...demoApp, name: 'strict-app', prefix: '/strict-app/', unauthenticated: '401' },
          { ...demoApp, name: 'redirect-app', prefix: '/redirect-app/', unauthenticated: 'redirect' },
        ],
      },
    })
  })
  after(() => gw.close())

  function checkLoginRedirect(response: Response, next: string): void {
    assert.equal(response.status, 302)
    const location = new URL(response.headers.get('location')!)
    assert.equal(location.origin + location.pathname, `${gw.url}/realms/${REALM}/protocol/openid-connect/auth`)
    assert.equal(location.searchParams.get('client_id'), 'end-users')
    assert.equal(location.searchParams.get('response_type'), 'code')
    assert.equal(location.searchParams.get('redirect_uri'), `${gw.url}/realms/${REALM}/gatehouse/callback`)
    assert.equal(Buffer.from(location.searchParams.get('state')!, 'base64url').toString(), next)
  }

  it('sends browsers to the realm\'s login page and API clients a 401 (auto)', async () => {
    checkLoginRedirect(await gw.fetch('/demo-app/pipelines/p/trials?x=1', { headers: { accept: 'text/html,application/xhtml+xml' } }), '/demo-app/pipelines/p/trials?x=1')
    const api = await gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    assert.equal(api.status, 401)
    assert.equal((await json(api)).code, 'not_authenticated')
    assert.match(api.headers.get('www-authenticate') ?? '', /Bearer/)
  })

  it('redirects every request, POST included, with `redirect`', async () => {
    checkLoginRedirect(await gw.fetch('/redirect-app/pipelines/p/trials', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), '/redirect-app/pipelines/p/trials')
  })

  it('never redirects with `401`', async () => {
    const response = await gw.fetch('/strict-app/x', { headers: { accept: 'text/html' } })
    assert.equal(response.status, 401)
  })

  it('lands on the login page, and after login back on the page it asked for, signed in', async () => {
    const jar = new CookieJar()
    const redirect = await gw.fetch('/demo-app/files/box/a.csv', { headers: { accept: 'text/html' } })
    const page = await browse(gw, jar, redirect.headers.get('location')!)
    assert.equal(page.response.status, 200)
    const action = /action="([^"]+)"/.exec(await page.response.text())![1]!
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `username=admin&password=${encodeURIComponent(ADMIN_PASSWORD)}` })
    assert.equal(done.response.status, 200)
    assert.equal(done.url, `${gw.url}/demo-app/files/box/a.csv`)
    const seen = await json(done.response)
    assert.equal(seen.identity.username, 'admin')
    assert.equal(seen.identity.auth_method, 'session')
    // The SSO session cookie stays on the realm's paths: the services behind the gateway never receive it.
    const session = jar.setCookies().find((line) => line.startsWith('gatehouse_oidc_session='))
    assert.match(session ?? '', /; path=\/realms\/platform\/;/i)
  })
})
