import assert from 'node:assert/strict'
import { hash, randomBytes } from 'node:crypto'
import { after, before, describe, it, mock } from 'node:test'
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { KeycloakTokens, verifyRefreshToken } from '../../src/oidc/keycloak-tokens.ts'
import type { RealmKeySet } from '../../src/oidc/keys.ts'
import { setProviderClock } from '../../src/oidc/provider-clock.ts'
import { decodeJwtPart, REALM, realmUrl, SERVICE_SECRET, testRealms, tokenRequest, without } from '../helpers/oidc.ts'

const login = (gw: TestGateway, extra: Record<string, string> = {}) =>
  tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password', ...extra })
const refresh = (gw: TestGateway, refreshToken: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })

/** Keycloak's token shapes, as keycloak-js and keycloak-connect decode them (TokenManager, RefreshToken, IDToken). */
describe('Keycloak\'s refresh and ID tokens', () => {
  let gw: TestGateway
  let aliceId: number

  before(async () => {
    gw = await startGateway({
      config: { realms: [{ ...testRealms[0], sso_session_idle_seconds: 60, sso_session_max_seconds: 120 }] },
    })
    aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com', firstName: 'Alice', lastName: 'Liddell' })).id
  })
  after(() => gw.close())

  it('issues refresh tokens as JWTs of typ Refresh, signed HS512 so that no JWKS verifies them', async () => {
    const { body } = await login(gw)
    const header = decodeJwtPart(body.refresh_token, 0)
    const claims = decodeJwtPart(body.refresh_token, 1)
    assert.equal(header.alg, 'HS512')
    assert.equal(typeof header.kid, 'string')
    assert.deepEqual(Object.keys(claims), ['exp', 'iat', 'jti', 'iss', 'aud', 'sub', 'typ', 'azp', 'sid', 'scope'])
    assert.equal(claims.typ, 'Refresh')
    assert.equal(claims.iss, realmUrl(gw))
    assert.equal(claims.aud, realmUrl(gw))
    assert.equal(claims.sub, String(aliceId))
    assert.equal(claims.azp, 'end-users')
    assert.equal(claims.sid, body.session_state)
    assert.equal(claims.scope, 'profile email')
    assert.equal(claims.exp - claims.iat, body.refresh_expires_in)
    const certs = await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`))
    assert.ok(certs.keys.every((k: { kid: string }) => k.kid !== header.kid))
    const asBearer = await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${body.refresh_token}` } })
    assert.equal(asBearer.status, 401)
    assert.equal((await json(asBearer)).code, 'invalid_token')
  })

  it('refreshes with the JWT, and refuses one whose claims were changed or that another key signed', async () => {
    const { body } = await login(gw)
    assert.equal((await refresh(gw, body.refresh_token)).status, 200)
    const [header, , signature] = body.refresh_token.split('.')
    const claims = decodeJwtPart(body.refresh_token, 1)
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: '1' })).toString('base64url')}.${signature}`
    const foreign = await new SignJWT(claims).setProtectedHeader({ alg: 'HS512', kid: decodeJwtPart(body.refresh_token, 0).kid }).sign(new Uint8Array(64))
    for (const token of [tampered, foreign, claims.jti]) {
      const refused = await refresh(gw, token)
      assert.equal(refused.status, 400)
      assert.deepEqual(refused.body, { error: 'invalid_grant', error_description: 'Invalid refresh token' })
    }
  })

  it('refuses another client\'s refresh token, at a refresh and at a logout, in Keycloak\'s words, and leaves it good for its own client', async () => {
    const { body } = await login(gw)
    const asReports = { client_id: 'reports', client_secret: SERVICE_SECRET }
    const mismatch = { error: 'invalid_grant', error_description: 'Invalid refresh token. Token client and authorized client don\'t match' }
    const refused = await tokenRequest(gw, { ...asReports, grant_type: 'refresh_token', refresh_token: body.refresh_token })
    assert.deepEqual([refused.status, refused.body], [400, mismatch])
    const logout = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/logout').slice(gw.url.length), { method: 'POST', body: new URLSearchParams({ ...asReports, refresh_token: body.refresh_token }) })
    assert.deepEqual([logout.status, await json(logout)], [400, mismatch])
    assert.equal((await refresh(gw, body.refresh_token)).status, 200)
  })

  it('issues ID tokens with typ ID, azp, at_hash, auth_time, acr, the session id and the default scopes\' claims', async () => {
    const before = Math.floor(Date.now() / 1000)
    const { body } = await login(gw, { scope: 'openid' })
    const certs = await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`))
    const { payload, protectedHeader } = await jwtVerify(body.id_token, createLocalJWKSet(certs), { issuer: realmUrl(gw), audience: 'end-users' })
    assert.equal(protectedHeader.typ, 'JWT')
    assert.deepEqual(Object.keys(payload).slice(0, 13), ['exp', 'iat', 'auth_time', 'jti', 'iss', 'aud', 'sub', 'typ', 'azp', 'sid', 'at_hash', 'acr', 'email_verified'])
    assert.equal(payload.typ, 'ID')
    assert.equal(payload.azp, 'end-users')
    assert.equal(payload.sid, body.session_state)
    assert.equal(payload.acr, '1')
    assert.ok(Number(payload.auth_time) >= before)
    const digest = hash('sha256', body.access_token, 'buffer')
    assert.equal(payload.at_hash, digest.subarray(0, 16).toString('base64url'))
    assert.equal(payload.preferred_username, 'alice')
    assert.equal(payload.email, 'alice@example.com')
    assert.equal(payload.name, 'Alice Liddell')
    const refreshed = await refresh(gw, body.refresh_token)
    const again = decodeJwtPart(refreshed.body.id_token, 1)
    assert.equal(again.typ, 'ID')
    assert.equal(again.sid, body.session_state)
    assert.equal(again.auth_time, payload.auth_time)
  })

  it('refreshes with a scope as Keycloak: the default scopes and openid come with those asked for, and a scope the token lacks is refused', async () => {
    const { body } = await login(gw, { scope: 'openid' })
    const asked = (scope: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: body.refresh_token, scope })
    for (const scope of ['openid', 'profile', 'email openid']) {
      const { status, body: refreshed } = await asked(scope)
      assert.equal(status, 200, JSON.stringify(refreshed))
      assert.equal(refreshed.scope, 'openid profile email', scope)
      assert.equal(decodeJwtPart(refreshed.access_token, 1).scope, 'openid profile email', scope)
      const id = decodeJwtPart(refreshed.id_token, 1)
      assert.deepEqual([id.preferred_username, id.email], ['alice', 'alice@example.com'], scope)
    }
    const beyond = await asked('openid phone')
    assert.deepEqual([beyond.status, beyond.body.error], [400, 'invalid_scope'])
    // Without openid in the token, none is added.
    const plain = (await login(gw)).body
    const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: plain.refresh_token, scope: 'email' })
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
    assert.deepEqual([refreshed.body.scope, refreshed.body.id_token], ['profile email', undefined])
  })

  it('gives offline_access an Offline refresh token by the offline limits, which outlives the SSO session', async (t) => {
    const online = await login(gw)
    const offline = await login(gw, { scope: 'offline_access' })
    assert.equal(decodeJwtPart(offline.body.refresh_token, 1).typ, 'Offline')
    assert.equal(offline.body.refresh_expires_in, 30 * 86400)
    assert.equal(offline.body.scope, 'profile email offline_access')
    t.after(() => mock.timers.reset())
    mock.timers.enable({ apis: ['Date'], now: Date.now() + 200_000 })
    const expired = await refresh(gw, online.body.refresh_token)
    assert.equal(expired.status, 400)
    // Keycloak's words for a refresh token past its `exp`, though its record went with its expiry.
    assert.deepEqual(expired.body, { error: 'invalid_grant', error_description: 'Token is not active' })
    const still = await refresh(gw, offline.body.refresh_token)
    assert.equal(still.status, 200)
    assert.equal(decodeJwtPart(still.body.refresh_token, 1).typ, 'Offline')
  })

  it('never lets an access or ID token outlive its session: refreshed near SSO Session Max, they end with it', async (t) => {
    const start = Date.now()
    // The realm's access tokens live 300 s, its sessions at most 120.
    const { body } = await login(gw, { scope: 'openid' })
    assert.ok(Math.abs(body.expires_in - 120) <= 1, `a login's tokens: expires_in ${body.expires_in}`)
    t.after(() => mock.timers.reset())
    mock.timers.enable({ apis: ['Date'], now: start + 50_000 })
    const early = await refresh(gw, body.refresh_token)
    assert.equal(early.status, 200, JSON.stringify(early.body))
    assert.ok(Math.abs(early.body.expires_in - 70) <= 1, `refreshed 50 s in: expires_in ${early.body.expires_in}`)
    mock.timers.setTime(start + 105_000)
    const late = await refresh(gw, early.body.refresh_token)
    assert.equal(late.status, 200, JSON.stringify(late.body))
    // 120 s after the login the session ends: 15 s are left of it (a second either way for the clock's turn).
    const left = Math.floor((start + 120_000 - Date.now()) / 1000)
    assert.ok(Math.abs(late.body.expires_in - left) <= 1, `expires_in ${late.body.expires_in}, the session has ${left} s left`)
    assert.ok(Math.abs(late.body.refresh_expires_in - left) <= 1, `refresh_expires_in ${late.body.refresh_expires_in}`)
    const sessionEnd = Math.floor(start / 1000) + 120
    for (const token of [late.body.access_token, late.body.id_token]) assert.ok(decodeJwtPart(token, 1).exp <= sessionEnd + 1, `exp ${decodeJwtPart(token, 1).exp} after the session's end ${sessionEnd}`)
  })

  it('introspects refresh tokens given as JWTs, and reports a disabled user\'s tokens inactive', async () => {
    const { body } = await login(gw)
    const introspect = (token: string) => gw.fetch(`/realms/${REALM}/protocol/openid-connect/token/introspect`, {
      method: 'POST',
      headers: { authorization: 'Basic ' + Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64') },
      body: new URLSearchParams({ token }),
    }).then(json)
    assert.equal((await introspect(body.refresh_token)).active, true)
    assert.equal((await introspect(body.access_token)).active, true)
    const dora = await gw.app.accounts.create({ username: 'dora', password: 'dora-password' })
    const doras = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'dora', password: 'dora-password' })
    await gw.app.accounts.update(dora.id, { isActive: false })
    assert.deepEqual(await introspect(doras.body.access_token), { active: false })
    assert.deepEqual(await introspect(doras.body.refresh_token), { active: false })
  })
})

/** Refresh tokens are signed and checked with node:crypto (keycloak-tokens.ts); jose is the reference for both. */
describe('refresh token signatures', () => {
  const issuer = 'https://gatehouse.example/realms/platform'
  const secret = randomBytes(64)
  const jwk = { kty: 'oct', k: secret.toString('base64url'), kid: 'refresh-key' }
  const refreshKeys: RealmKeySet = { alg: 'HS512', activeKid: 'refresh-key', privateJwks: [jwk], publicJwks: [{ kid: 'refresh-key' }], reloadAt: Infinity, signsUntil: Infinity }
  const record = { jti: 'record-id', iat: 1_800_000_000, exp: 1_800_001_800, expiration: 1800, accountId: '7', clientId: 'end-users', scope: 'openid profile email', nonce: 'n-1', sid: 'session-1' }
  const claims = { exp: 1_800_001_800, iat: 1_800_000_000, jti: 'record-id', iss: issuer, aud: issuer, sub: '7', typ: 'Refresh', azp: 'end-users', nonce: 'n-1', sid: 'session-1', scope: 'openid profile email' }
  const joseSigned = (payload: Record<string, unknown>, header: Record<string, unknown> = { alg: 'HS512', typ: 'JWT', kid: 'refresh-key' }) =>
    new SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(secret)

  it('signs exactly the token jose signs', async () => {
    const tokens = new KeycloakTokens(issuer, refreshKeys, refreshKeys)
    assert.equal(await tokens.refreshToken(record), await joseSigned(claims))
  })

  it('takes the ID token\'s session id from the access token\'s claims when it has them, not from decoding the token', async () => {
    const tokens = new KeycloakTokens(issuer, refreshKeys, refreshKeys)
    const idClaims = { exp: 1_800_000_300, iat: 1_800_000_000, iss: issuer, aud: 'end-users', sub: '7', sid: 'oidc-provider-sid' }
    const accessToken = await joseSigned({ sid: 'session-1' })
    const decoded = decodeJwtPart(await tokens.idToken(idClaims, accessToken, undefined), 1)
    const given = decodeJwtPart(await tokens.idToken(idClaims, { value: accessToken, claims: { sid: 'session-1' } }, undefined), 1)
    assert.deepEqual(without(given, new Set(['jti'])), without(decoded, new Set(['jti'])))
    assert.equal(given.sid, 'session-1')
    // An access token without a session id leaves the ID token's own.
    assert.equal(decodeJwtPart(await tokens.idToken(idClaims, { value: 'opaque', claims: {} }, undefined), 1).sid, 'oidc-provider-sid')
  })

  it('signs exactly the ID token jose\'s SignJWT signs for its header and claims', async () => {
    const tokens = new KeycloakTokens(issuer, refreshKeys, refreshKeys)
    const idClaims = { exp: 1_800_000_300, iat: 1_800_000_000, iss: issuer, aud: 'end-users', sub: '7', nonce: 'n-1', email: 'e@example.com', address: { country: 'FR' }, name: 'É' }
    const idToken = await tokens.idToken(idClaims, { value: 'access', claims: { sid: 'session-1' } }, 1_799_999_000)
    assert.equal(idToken, await joseSigned(decodeJwtPart(idToken, 1), decodeJwtPart(idToken, 0)))
  })

  it('stamps logout tokens, admin calls and refresh tokens without a time of their own by oidc-provider\'s clock, the database\'s, not the machine\'s', async (t) => {
    const twoMinutesAhead = Date.now() + 120_000
    setProviderClock(() => twoMinutesAhead)
    t.after(() => setProviderClock(() => Date.now()))
    const tokens = new KeycloakTokens(issuer, refreshKeys, refreshKeys)
    const seconds = Math.floor(twoMinutesAhead / 1000)
    const logout = decodeJwtPart(await tokens.logoutToken('end-users', '7', 'session-1'), 1)
    assert.equal(logout.iat, seconds)
    assert.equal(logout.exp, seconds + 120)
    assert.equal(decodeJwtPart(await tokens.adminAction('end-users', { action: 'LOGOUT' }), 1).expiration, seconds + 30)
    const { iat: _iat, exp: _exp, ...untimed } = record
    const refresh = decodeJwtPart(await tokens.refreshToken(untimed), 1)
    assert.deepEqual([refresh.iat, refresh.exp], [seconds, seconds + 1800])
  })

  it('accepts what jose signs with a realm key, and nothing else', async () => {
    const good = await joseSigned(claims)
    assert.deepEqual(await verifyRefreshToken(good, issuer, refreshKeys), { jti: 'record-id', azp: 'end-users', exp: 1_800_001_800, sub: '7' })
    const [header, payload, signature] = good.split('.')
    const refused = [
      `${header}.${payload}.${signature}x`,
      `${header}.${payload}.${signature!.slice(0, -1)}`,
      `${header}.${payload}.${signature}=`,
      `${header}.${payload}`,
      `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: '1' })).toString('base64url')}.${signature}`,
      await joseSigned(claims, { alg: 'HS256', kid: 'refresh-key' }),
      await joseSigned(claims, { alg: 'HS512', kid: 'another-key' }),
      await joseSigned(claims, { alg: 'HS512', kid: 'refresh-key', crit: ['b64'], b64: true }),
      await new SignJWT(claims).setProtectedHeader({ alg: 'HS512', kid: 'refresh-key' }).sign(randomBytes(64)),
      await joseSigned({ ...claims, iss: 'https://elsewhere.example/realms/platform' }),
      await joseSigned({ ...claims, typ: 'Bearer' }),
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`,
      'not-a-jwt',
    ]
    for (const token of refused) assert.equal(await verifyRefreshToken(token, issuer, refreshKeys), undefined, token)
  })

  it('judges the header Gatehouse signs with and any other spelling of it alike, for every key of the set', async () => {
    const retired = { kty: 'oct', k: randomBytes(64).toString('base64url'), kid: 'retired-key' }
    const keys: RealmKeySet = { ...refreshKeys, privateJwks: [jwk, retired], publicJwks: [{ kid: 'refresh-key' }, { kid: 'retired-key' }] }
    const byRetired = (header: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(Buffer.from(retired.k, 'base64url'))
    const verdict = { jti: 'record-id', azp: 'end-users', exp: 1_800_001_800, sub: '7' }
    for (const token of [await joseSigned(claims), await byRetired({ alg: 'HS512', typ: 'JWT', kid: 'retired-key' }), await joseSigned(claims, { kid: 'refresh-key', typ: 'JWT', alg: 'HS512' }), await byRetired({ alg: 'HS512', kid: 'retired-key' })]) {
      assert.deepEqual(await verifyRefreshToken(token, issuer, keys), verdict, token)
    }
    // Gatehouse's own header for one key, signed with the other key or with none of the set's.
    const refused = [await byRetired({ alg: 'HS512', typ: 'JWT', kid: 'refresh-key' }), await joseSigned(claims, { alg: 'HS512', typ: 'JWT', kid: 'retired-key' }), await new SignJWT(claims).setProtectedHeader({ alg: 'HS512', typ: 'JWT', kid: 'refresh-key' }).sign(randomBytes(64))]
    for (const token of refused) assert.equal(await verifyRefreshToken(token, issuer, keys), undefined, token)
  })
})
