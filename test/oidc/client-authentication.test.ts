import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, realmUrl, realmWith, tokenRequest } from '../helpers/oidc.ts'

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
            { client_id: 'signed-secret', public_client: false, client_authenticator: 'client-secret-jwt', secret: SIGNING_SECRET, service_accounts: true },
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
})
