import assert from 'node:assert/strict'
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { ieeeP1363FromDer } from '../../src/oidc/ecdsa-signature.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, realmUrl, realmWith, tokenRequest } from '../helpers/oidc.ts'

/**
 * A refresh on a realm signing ES256 signs its access token (and with `openid` its ID token) on the event loop, in
 * JWS's form of an ECDSA signature (RFC 7518 §3.4: r and s, 32 bytes each), turned from the DER form node:crypto
 * makes. About one signature in 128 has an r or an s shorter than 32 bytes, and half have one whose DER integer
 * begins with a zero byte: every one must verify.
 */
describe('refreshes on a realm signing ES256', () => {
  let gw: TestGateway
  let jwks: ReturnType<typeof createRemoteJWKSet>

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([], { default_signature_algorithm: 'ES256' }) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    jwks = createRemoteJWKSet(new URL(realmUrl(gw, '/protocol/openid-connect/certs')))
  })
  after(() => gw.close())

  it('answer access and ID tokens whose signatures verify with the realm\'s JWKS, refresh after refresh', async () => {
    let refreshToken = (await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })).refresh_token
    for (let i = 0; i < 60; i++) {
      const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
      for (const token of [refreshed.body.access_token, refreshed.body.id_token]) {
        assert.equal(decodeJwtPart(token, 0).alg, 'ES256')
        assert.equal(Buffer.from(token.split('.')[2], 'base64url').length, 64)
        await jwtVerify(token, jwks, { issuer: realmUrl(gw), algorithms: ['ES256'] })
      }
      refreshToken = refreshed.body.refresh_token
    }
  })
})

describe('an ECDSA P-256 signature in JWS\'s form, from DER', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })

  it('verifies as IEEE P1363 for every signature, the short and the zero-led integers among them', () => {
    const shortOnes = { r: 0, s: 0 }
    for (let i = 0; i < 3000; i++) {
      const data = Buffer.from(`signing input ${i}`)
      const der = sign('sha256', data, privateKey)
      const jose = ieeeP1363FromDer(der, 32)
      assert.equal(jose.length, 64)
      assert.ok(verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jose), `signature ${i}`)
      if (der[3]! < 32) shortOnes.r++
      if (der[3 + der[3]! + 2]! < 32) shortOnes.s++
    }
    // 3,000 signatures hold a short r or s with a probability above 0.99999.
    assert.ok(shortOnes.r + shortOnes.s > 0)
  })

  it('keeps an integer\'s value whatever its DER length: a zero byte before a high bit, fewer bytes than 32', () => {
    const r = Buffer.alloc(32, 0xff)
    const s = Buffer.concat([Buffer.alloc(2), Buffer.alloc(30, 0x01)])
    const der = Buffer.from([0x30, 2 + 33 + 2 + 30, 0x02, 33, 0x00, ...r, 0x02, 30, ...s.subarray(2)])
    assert.deepEqual(ieeeP1363FromDer(der, 32), Buffer.concat([r, s]))
  })

  it('refuses what is not a DER sequence of two integers that fit', () => {
    for (const bad of [Buffer.alloc(0), Buffer.from([0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]), Buffer.from([0x30, 0x06, 0x04, 0x01, 0x01, 0x02, 0x01, 0x01]), Buffer.from([0x30, 0x27, 0x02, 0x22, ...Buffer.alloc(34, 1), 0x02, 0x01, 0x01])]) {
      assert.throws(() => ieeeP1363FromDer(bad, 32), /DER/)
    }
  })
})
