import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as client from 'openid-client'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, decodeJwtPart, realmUrl, SERVICE_SECRET, testRealms } from '../helpers/oidc.ts'

/** Counts the signatures WebCrypto makes in this process (the gateway runs in it; the client here signs nothing). */
function countSignatures(): { count: number; stop(): void } {
  const subtle = globalThis.crypto.subtle
  const sign = subtle.sign
  const counter = {
    count: 0,
    stop: () => {
      subtle.sign = sign
    },
  }
  subtle.sign = function (...args: Parameters<typeof sign>) {
    counter.count++
    return sign.apply(subtle, args)
  }
  return counter
}

/** An independent relying party library, certified by the OpenID Foundation, against the realm. */
describe('openid-client against the realm', () => {
  let gw: TestGateway
  let publicClient: client.Configuration
  let confidentialClient: client.Configuration
  let aliceId: number

  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
    aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com', firstName: 'Alice', lastName: 'Liddell' })).id
    const insecure = { execute: [client.allowInsecureRequests] }
    publicClient = await client.discovery(new URL(realmUrl(gw)), 'end-users', undefined, client.None(), insecure)
    confidentialClient = await client.discovery(new URL(realmUrl(gw)), 'reports', SERVICE_SECRET, undefined, insecure)
  })
  after(() => gw.close())

  it('discovers the realm at Keycloak\'s paths', () => {
    const metadata = publicClient.serverMetadata()
    assert.equal(metadata.issuer, realmUrl(gw))
    assert.equal(metadata.token_endpoint, realmUrl(gw, '/protocol/openid-connect/token'))
    assert.equal(metadata.authorization_endpoint, realmUrl(gw, '/protocol/openid-connect/auth'))
    assert.equal(metadata.jwks_uri, realmUrl(gw, '/protocol/openid-connect/certs'))
    assert.equal(metadata.userinfo_endpoint, realmUrl(gw, '/protocol/openid-connect/userinfo'))
    assert.equal(metadata.end_session_endpoint, realmUrl(gw, '/protocol/openid-connect/logout'))
    assert.equal(metadata.introspection_endpoint, realmUrl(gw, '/protocol/openid-connect/token/introspect'))
    assert.equal(metadata.revocation_endpoint, realmUrl(gw, '/protocol/openid-connect/revoke'))
    assert.ok(metadata.grant_types_supported?.includes('password'))
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256'])
  })

  it('gets tokens with the password grant, and an ID token it validates', async () => {
    const tokens = await client.genericGrantRequest(publicClient, 'password', { username: 'alice', password: 'alice-password', scope: 'openid' })
    assert.equal(tokens.token_type.toLowerCase(), 'bearer')
    assert.equal(tokens.expires_in, 300)
    assert.equal(tokens.refresh_expires_in, 1800)
    assert.equal(tokens.scope, 'openid profile email')
    const claims = tokens.claims()!
    assert.equal(claims.sub, String(aliceId))
    assert.equal(claims.preferred_username, 'alice')
    assert.equal(claims.iss, realmUrl(gw))
    const access = decodeJwtPart(tokens.access_token, 1)
    assert.equal(access.preferred_username, 'alice')
    assert.equal(access.azp, 'end-users')
    assert.equal(access.sid, tokens.session_state)
  })

  it('refreshes, and fetches userinfo with the new access token', async () => {
    const first = await client.genericGrantRequest(publicClient, 'password', { username: 'alice', password: 'alice-password', scope: 'openid' })
    const refreshed = await client.refreshTokenGrant(publicClient, first.refresh_token!)
    assert.notEqual(refreshed.access_token, first.access_token)
    assert.equal(refreshed.claims()!.sub, String(aliceId))
    const info = await client.fetchUserInfo(publicClient, refreshed.access_token, String(aliceId))
    assert.equal(info.preferred_username, 'alice')
    assert.equal(info.email, 'alice@example.com')
    assert.equal(info.name, 'Alice Liddell')
  })

  it('gets a service account token with client credentials', async () => {
    const tokens = await client.clientCredentialsGrant(confidentialClient)
    assert.equal(tokens.refresh_token, undefined)
    const access = decodeJwtPart(tokens.access_token, 1)
    assert.equal(access.azp, 'reports')
    assert.equal(access.preferred_username, 'service-account-reports')
    const user = await gw.store.users.findByUsername('service-account-reports')
    assert.equal(access.sub, String(user!.id))
    const seen = await json(await gw.fetch('/demo-app/reports', { headers: { authorization: `Bearer ${tokens.access_token}` } }))
    assert.equal(seen.identity.username, 'service-account-reports')
    assert.equal(seen.identity.auth_method, 'oidc')
  })

  it('introspects access and refresh tokens', async () => {
    const tokens = await client.genericGrantRequest(publicClient, 'password', { username: 'alice', password: 'alice-password' })
    const access = await client.tokenIntrospection(confidentialClient, tokens.access_token)
    assert.equal(access.active, true)
    assert.equal(access.sub, String(aliceId))
    assert.equal(access.client_id, 'end-users')
    assert.equal(access.username, 'alice')
    assert.equal(access.token_type, 'Bearer')
    const refresh = await client.tokenIntrospection(publicClient, tokens.refresh_token!)
    assert.equal(refresh.active, true)
    assert.equal((await client.tokenIntrospection(confidentialClient, 'not-a-token')).active, false)
  })

  it('revokes a refresh token, which ends its session at the gateway too', async () => {
    const tokens = await client.genericGrantRequest(publicClient, 'password', { username: 'alice', password: 'alice-password' })
    const bearer = { authorization: `Bearer ${tokens.access_token}` }
    assert.equal((await gw.fetch('/demo-app/x', { headers: bearer })).status, 200)
    await client.tokenRevocation(publicClient, tokens.refresh_token!)
    await assert.rejects(client.refreshTokenGrant(publicClient, tokens.refresh_token!), (error: any) => error.error === 'invalid_grant')
    assert.equal((await client.tokenIntrospection(confidentialClient, tokens.access_token)).active, false)
    const refused = await gw.fetch('/demo-app/x', { headers: bearer })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'invalid_token')
  })

  it('revokes an access token', async () => {
    const tokens = await client.genericGrantRequest(publicClient, 'password', { username: 'alice', password: 'alice-password' })
    await client.tokenRevocation(publicClient, tokens.access_token)
    assert.equal((await client.tokenIntrospection(confidentialClient, tokens.access_token)).active, false)
    assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${tokens.access_token}` } })).status, 401)
  })

  it('runs the authorization code flow with PKCE through the real login form', async () => {
    const verifier = client.randomPKCECodeVerifier()
    const state = client.randomState()
    const nonce = client.randomNonce()
    const authorizationUrl = client.buildAuthorizationUrl(publicClient, {
      redirect_uri: CLIENT_REDIRECT,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    })
    const jar = new CookieJar()
    const loginPage = await browse(gw, jar, authorizationUrl.href)
    assert.equal(loginPage.response.status, 200)
    const html = await loginPage.response.text()
    const action = /<form method="post" action="([^"]+)"/.exec(html)![1]!
    assert.match(action, /^\/realms\/platform\/login-actions\//)

    const wrong = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=wrong' })
    assert.equal(wrong.response.status, 200)
    assert.match(await wrong.response.text(), /Invalid username or password/)

    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=alice-password' })
    assert.ok(done.url.startsWith(CLIENT_REDIRECT), done.url)
    const signatures = countSignatures()
    const tokens = await client.authorizationCodeGrant(publicClient, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce })
    signatures.stop()
    // The access token and Keycloak's ID token: oidc-provider's own ID token, which Keycloak's replaces, is never signed.
    assert.equal(signatures.count, 2)
    assert.equal(tokens.claims()!.sub, String(aliceId))
    assert.equal(tokens.claims()!.email, 'alice@example.com')
    const access = decodeJwtPart(tokens.access_token, 1)
    assert.equal(access.preferred_username, 'alice')
    assert.equal(access.typ, 'Bearer')
    const seen = await json(await gw.fetch('/demo-app/pipelines/p/trials', { headers: { authorization: `Bearer ${tokens.access_token}` } }))
    assert.equal(seen.identity.username, 'alice')

    // The code is single-use.
    await assert.rejects(client.authorizationCodeGrant(publicClient, new URL(done.url), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }))

    // Logging out of the browser session ends the tokens it gave, at the gateway too.
    const logoutPage = await browse(gw, jar, client.buildEndSessionUrl(publicClient, { id_token_hint: tokens.id_token! }).href)
    const logoutHtml = await logoutPage.response.text()
    const logoutAction = /<form id="op.logoutForm" method="post" action="([^"]+)"/.exec(logoutHtml)![1]!
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(logoutHtml)![1]!
    const loggedOut = await browse(gw, jar, logoutAction, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ xsrf, logout: 'yes' }).toString() })
    assert.match(await loggedOut.response.text(), /You are logged out/)
    assert.equal((await gw.fetch('/demo-app/pipelines/p/trials', { headers: { authorization: `Bearer ${tokens.access_token}` } })).status, 401)
    await assert.rejects(client.refreshTokenGrant(publicClient, tokens.refresh_token!), (error: any) => error.error === 'invalid_grant')
  })

  it('refuses a code redeemed without the PKCE verifier', async () => {
    const verifier = client.randomPKCECodeVerifier()
    const jar = new CookieJar()
    const url = client.buildAuthorizationUrl(publicClient, { redirect_uri: CLIENT_REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })
    const page = await browse(gw, jar, url.href)
    const action = /action="([^"]+)"/.exec(await page.response.text())![1]!
    const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=alice-password' })
    await assert.rejects(
      client.authorizationCodeGrant(publicClient, new URL(done.url), { pkceCodeVerifier: client.randomPKCECodeVerifier() }),
      (error: any) => error.error === 'invalid_grant' && error.error_description === 'PKCE verification failed: Code mismatch',
    )
  })
})
