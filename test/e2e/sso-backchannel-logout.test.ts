import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeJwt, generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import { Browser } from '../helpers/browser.ts'
import { honestIdToken, startForgingIdp, type ForgingIdp } from '../helpers/forging-idp.ts'
import { json, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { freePort } from '../helpers/free-port.ts'
import { SSO } from '../helpers/sso.ts'

// A provider signs a person out and posts a logout token (OpenID Connect Back-Channel Logout 1.0) to one of two
// `gatehouse serve` processes sharing a database: the sessions it names end on both, and every token that fails a
// check is refused and ends nothing.

const CLIENT_ID = 'gatehouse'
const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
const nowSeconds = () => Math.floor(Date.now() / 1000)

describe('back-channel logout from the upstream provider, across gateway processes', () => {
  const dir = tempDir()
  let idp: ForgingIdp
  let one: GatewayProcess
  let two: GatewayProcess

  before(async () => {
    idp = await startForgingIdp({ sub: 'sub-alice', username: 'alice' })
    const publicUrl = `http://127.0.0.1:${await freePort()}`
    const configFile = join(dir, 'gatehouse.yaml')
    writeFileSync(configFile, JSON.stringify({ server: { public_url: publicUrl }, sso: [idp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: CLIENT_ID })] }))
    one = await spawnGateway(['--config', configFile, '--data-dir', dir, '--port', new URL(publicUrl).port])
    two = await spawnGateway(['--config', configFile, '--data-dir', dir])
  })
  after(async () => {
    await Promise.all([one?.stop(), two?.stop()])
    await idp?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Signs in on the first process, the provider's ID token carrying `sid` (none when undefined); returns the session cookie. */
  async function signIn(sid: string | undefined): Promise<string> {
    idp.idToken = (signIn) => signIn.sign({ ...signIn.claims, ...(sid === undefined ? {} : { sid }) })
    try {
      const browser = new Browser()
      await browser.navigate(`${one.url}${SSO}corp/`)
      const session = browser.cookie(one.url, 'gateway_sessionid')
      assert.ok(session, 'the sign-in starts a session')
      assert.deepEqual(await signedIn(session), [true, true], 'the session works on both processes (and each keeps it in memory)')
      return session
    } finally {
      idp.idToken = honestIdToken
    }
  }

  /** Whether the session works on each process. */
  async function signedIn(session: string): Promise<boolean[]> {
    return Promise.all([one, two].map(async (gw) => (await fetch(`${gw.url}/api/gateway/v1/me/`, { headers: { cookie: `gateway_sessionid=${session}` } })).status === 200))
  }

  /** An honest logout token's claims, with `changes` applied (an undefined value removes the claim). */
  function logoutClaims(changes: Record<string, unknown> = {}): JWTPayload {
    const claims: Record<string, unknown> = { iss: idp.issuer, aud: CLIENT_ID, iat: nowSeconds(), exp: nowSeconds() + 120, jti: randomUUID(), sub: 'sub-alice', events: { [LOGOUT_EVENT]: {} }, ...changes }
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name]
    return claims
  }

  async function postLogout(body: string | Record<string, string>, gw = one): Promise<Response> {
    const form = typeof body === 'string' ? { logout_token: body } : body
    return fetch(`${gw.url}${SSO}corp/backchannel-logout/`, { method: 'POST', body: new URLSearchParams(form) })
  }

  async function assertRefused(token: string | Record<string, string>, session: string, detail: RegExp): Promise<void> {
    const answer = await postLogout(token)
    const body = await json(answer)
    assert.equal(answer.status, 400, JSON.stringify(body))
    assert.equal(body.code, 'invalid_request')
    assert.match(body.detail, detail)
    assert.equal(answer.headers.get('cache-control'), 'no-store')
    assert.deepEqual(await signedIn(session), [true, true], 'nothing is ended')
  }

  it('ends the session the token\'s sid names on every process, answering 200 no-store, and the same token again 200 ending nothing more', async () => {
    const named = await signIn('sid-1')
    const other = await signIn('sid-2')
    const token = await idp.signJwt(logoutClaims({ sid: 'sid-1' }), { typ: 'logout+jwt' })
    const answer = await postLogout(token)
    assert.equal(answer.status, 200, await answer.text())
    assert.equal(answer.headers.get('cache-control'), 'no-store')
    assert.deepEqual(await signedIn(named), [false, false], 'ended on the process that took the token and on the other')
    assert.deepEqual(await signedIn(other), [true, true], 'another session of the same person (another sid) goes on')

    const again = await signIn('sid-1')
    const resent = await postLogout(token, two)
    assert.equal(resent.status, 200, 'the other process, which fetches the keys itself, verifies the token and answers its resend as the first time')
    assert.equal(resent.headers.get('cache-control'), 'no-store')
    assert.deepEqual(await signedIn(again), [true, true], 'the token sent again, on the other process too, ends nothing more')

    const reusedJti = await postLogout(await idp.signJwt({ ...decodeJwt(token), iat: decodeJwt(token).iat! - 1 }, { typ: 'logout+jwt' }))
    assert.equal(reusedJti.status, 400, 'another token with a jti taken already is refused')
    assert.equal((await json(reusedJti)).code, 'invalid_request')
    assert.deepEqual(await signedIn(again), [true, true], 'and ends nothing')
  })

  it('ends every session of the subject for a token with a sub and no sid, and a sid-less sign-in\'s for a token naming its sub', async () => {
    const first = await signIn('sid-3')
    const second = await signIn(undefined)
    const withOtherSid = await postLogout(await idp.signJwt(logoutClaims({ sid: 'sid-unknown' })))
    assert.equal(withOtherSid.status, 200)
    assert.deepEqual(await signedIn(first), [true, true], 'a sid the sign-in did not have ends nothing of it')
    assert.deepEqual(await signedIn(second), [false, false], 'a sign-in without sid is known by its subject')

    const third = await signIn(undefined)
    const otherSubject = await postLogout(await idp.signJwt(logoutClaims({ sub: 'sub-bob', sid: 'sid-3' })))
    assert.equal(otherSubject.status, 200)
    assert.deepEqual([await signedIn(first), await signedIn(third)], [[true, true], [true, true]], 'a token for another subject ends none of alice\'s')

    const bySubject = await postLogout(await idp.signJwt(logoutClaims({ sid: undefined })))
    assert.equal(bySubject.status, 200)
    assert.deepEqual([await signedIn(first), await signedIn(third)], [[false, false], [false, false]])
  })

  it('refuses a token that fails any check, and ends nothing', async () => {
    const session = await signIn('sid-4')
    const sign = (changes: Record<string, unknown>, header?: { alg?: string; kid?: string; typ?: string }) => idp.signJwt(logoutClaims({ sid: 'sid-4', ...changes }), header)
    const { privateKey: foreignKey } = await generateKeyPair('RS256')
    const foreign = await new SignJWT(logoutClaims({ sid: 'sid-4' })).setProtectedHeader({ alg: 'RS256', kid: 'forging-idp' }).sign(foreignKey)
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(logoutClaims({ sid: 'sid-4' }))).toString('base64url')}.`
    const hmac = await new SignJWT(logoutClaims({ sid: 'sid-4' })).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from('forging-secret'))

    await assertRefused(await sign({ iss: 'https://elsewhere.example' }), session, /iss/)
    await assertRefused(await sign({ aud: 'another-client' }), session, /aud/)
    await assertRefused(foreign, session, /signature/)
    await assertRefused(unsigned, session, /asymmetric|signed/)
    await assertRefused(hmac, session, /asymmetric/)
    await assertRefused(await sign({}, { kid: 'unknown-kid' }), session, /key/)
    await assertRefused(await sign({ events: undefined }), session, /events/)
    await assertRefused(await sign({ events: { [LOGOUT_EVENT]: 'yes' } }), session, /events/)
    await assertRefused(await sign({ events: { 'http://schemas.openid.net/event/other': {} } }), session, /events/)
    await assertRefused(await sign({ nonce: 'n-1' }), session, /nonce/)
    await assertRefused(await sign({}, { typ: 'JWT' }), session, /typ/)
    await assertRefused(await sign({ jti: undefined }), session, /jti/)
    await assertRefused(await sign({ sid: undefined, sub: undefined }), session, /neither/)
    await assertRefused(await sign({ iat: nowSeconds() - 3600, exp: undefined }), session, /iat/)
    await assertRefused(await sign({ iat: nowSeconds() + 3600 }), session, /iat/)
    await assertRefused(await sign({ exp: nowSeconds() - 3600 }), session, /exp/)
    await assertRefused({ token: await sign({}) }, session, /logout_token/)
    await assertRefused('not-a-jwt', session, /JWT/)

    // Without exp, as Keycloak up to 23.0.3, Authentik before 2025.8.2 and Ory Hydra send it: iat bounds it.
    const answer = await postLogout(await sign({ exp: undefined }))
    assert.equal(answer.status, 200, 'the same claims, honestly signed (without exp, as several providers send them), end the session')
    assert.deepEqual(await signedIn(session), [false, false])
  })

  it('answers 404 for a provider that is not configured', async () => {
    const answer = await fetch(`${one.url}${SSO}nobody/backchannel-logout/`, { method: 'POST', body: new URLSearchParams({ logout_token: 'x' }) })
    assert.equal(answer.status, 404)
    assert.equal((await json(answer)).code, 'sso_provider_unknown')
  })
})
