import assert from 'node:assert/strict'
import { createPublicKey, X509Certificate } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, realmUrl, realmWith, SERVICE_SECRET, tokenRequest } from '../helpers/oidc.ts'

const demo = loadConfigFile(demoConfigFile)

/** `default_signature_algorithm: ES256`: the realm signs access and ID tokens with an ECDSA P-256 key. */
describe('a realm that signs with ES256', () => {
  let gw: TestGateway
  let jwks: ReturnType<typeof createRemoteJWKSet>
  const verify = (jwt: string) => jwtVerify(jwt, jwks, { issuer: realmUrl(gw), algorithms: ['ES256'] })

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([], { default_signature_algorithm: 'ES256' }), services: demo.services } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    jwks = createRemoteJWKSet(new URL(realmUrl(gw, '/protocol/openid-connect/certs')))
  })
  after(() => gw.close())

  it('publishes an EC P-256 key with its self-signed certificate, and no private part', async () => {
    const { keys } = await json(await gw.fetch(realmUrl(gw, '/protocol/openid-connect/certs').slice(gw.url.length)))
    assert.equal(keys.length, 1)
    const [key] = keys
    assert.deepEqual([key.kty, key.crv, key.alg, key.use, key.d], ['EC', 'P-256', 'ES256', 'sig', undefined])
    const certificate = new X509Certificate(Buffer.from(key.x5c[0], 'base64'))
    const publicKey = createPublicKey({ key, format: 'jwk' })
    assert.ok(certificate.publicKey.equals(publicKey))
    assert.ok(certificate.verify(publicKey))
  })

  it('signs the password grant\'s access and ID tokens with ES256, verifiable with the realm\'s JWKS', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    assert.equal(decodeJwtPart(tokens.access_token, 0).alg, 'ES256')
    assert.equal(decodeJwtPart(tokens.id_token, 0).alg, 'ES256')
    assert.equal((await verify(tokens.access_token)).payload.typ, 'Bearer')
    assert.equal((await verify(tokens.id_token)).payload.typ, 'ID')
    // Refresh tokens stay Keycloak's HS512, whatever the realm signs its other tokens with.
    assert.equal(decodeJwtPart(tokens.refresh_token, 0).alg, 'HS512')
  })

  it('signs client credentials and refreshed access tokens with ES256', async () => {
    const service = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })
    assert.equal(service.status, 200)
    assert.equal((await verify(service.body.access_token)).protectedHeader.alg, 'ES256')
    const login = await passwordLogin(gw, 'alice', 'alice-password')
    const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token })
    assert.equal(refreshed.status, 200)
    assert.equal((await verify(refreshed.body.access_token)).protectedHeader.alg, 'ES256')
  })

  it('takes its ES256 access tokens at the gateway, at userinfo and at introspection', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })
    const forwarded = await gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(forwarded.status, 200)
    assert.equal((await json(forwarded)).identity.username, 'alice')
    const userinfo = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/userinfo').slice(gw.url.length), { headers: { authorization: `Bearer ${tokens.access_token}` } })
    assert.equal(userinfo.status, 200)
    assert.equal((await json(userinfo)).preferred_username, 'alice')
    const introspection = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/token/introspect').slice(gw.url.length), {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'reports', client_secret: SERVICE_SECRET, token: tokens.access_token }),
    })
    assert.equal((await json(introspection)).active, true)
  })

  it('refuses at the gateway an access token signed with another algorithm', async () => {
    const tokens = await passwordLogin(gw, 'alice', 'alice-password')
    const [, payload] = tokens.access_token.split('.')
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`
    const refused = await gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { authorization: `Bearer ${unsigned}`, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'invalid_token')
  })
})
