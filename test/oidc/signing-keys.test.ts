import assert from 'node:assert/strict'
import { createPublicKey, generateKeyPairSync, verify, type JsonWebKey } from 'node:crypto'
import { describe, it } from 'node:test'
import { ExternalSigningKey } from 'oidc-provider'
import { providerSigningKeys } from '../../src/oidc/signing-keys.ts'

function privateJwk(alg: 'RS256' | 'ES256', kid: string): JsonWebKey {
  const { privateKey } = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig', x5c: [`certificate-of-${kid}`] }
}

/** The JWK oidc-provider publishes for a key (lib/helpers/initialize_keystore.js reads these members). */
function published(key: ExternalSigningKey): JsonWebKey {
  return { kty: key.kty, crv: key.crv, x: key.x, y: key.y, n: key.n, e: key.e }
}

describe('the realm keys oidc-provider signs with', () => {
  const data = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9')

  it('sign ES256 at once, in the JWS form, verifiable with the key they publish', () => {
    const jwk = privateJwk('ES256', 'ec-key')
    const [key] = providerSigningKeys(ExternalSigningKey, [jwk as never])
    const signature = key!.sign(data)
    assert.ok(Buffer.isBuffer(signature), 'an ES256 signature is made on the spot, not handed to the thread pool')
    assert.equal(signature.length, 64)
    assert.ok(verify('sha256', data, { key: createPublicKey({ key: published(key!), format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, signature))
    assert.deepEqual([key!.kid, key!.alg, key!.use, key!.kty, key!.crv, key!.x5c], ['ec-key', 'ES256', 'sig', 'EC', 'P-256', ['certificate-of-ec-key']])
    assert.equal((published(key!) as { d?: string }).d, undefined)
  })

  it('sign RS256 on the thread pool, verifiable with the key they publish', async () => {
    const jwk = privateJwk('RS256', 'rsa-key')
    const [key] = providerSigningKeys(ExternalSigningKey, [jwk as never])
    const pending = key!.sign(data)
    assert.ok(pending instanceof Promise, 'an RS256 signature is made off the event loop')
    const signature = await pending
    assert.ok(verify('sha256', data, createPublicKey({ key: published(key!), format: 'jwk' }), signature))
    assert.deepEqual([key!.kid, key!.alg, key!.kty, key!.n, key!.e], ['rsa-key', 'RS256', 'RSA', jwk.n, jwk.e])
    assert.equal((await key!.keyObject()).type, 'public')
  })

  it('refuse a key of an algorithm realms do not sign with', () => {
    const jwk = { ...privateJwk('RS256', 'other'), alg: 'PS256' }
    assert.throws(() => providerSigningKeys(ExternalSigningKey, [jwk as never]), /PS256/)
  })
})
