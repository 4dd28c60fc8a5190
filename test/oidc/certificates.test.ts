import assert from 'node:assert/strict'
import { generateKeyPairSync, X509Certificate } from 'node:crypto'
import { describe, it } from 'node:test'
import { selfSignedCertificate } from '../../src/oidc/certificates.ts'

describe('self-signed realm key certificates', () => {
  it('are valid DER for OpenSSL whatever the random serial number, so x5c always parses', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const jwk = privateKey.export({ format: 'jwk' })
    // One serial in 256 used to start with a needless zero byte, which OpenSSL refuses: 1,000 tries find that.
    for (let i = 0; i < 1000; i++) {
      const { x5c } = selfSignedCertificate(jwk, 'platform')
      const certificate = new X509Certificate(Buffer.from(x5c[0]!, 'base64'))
      assert.equal(certificate.subject, 'CN=platform')
      assert.match(certificate.serialNumber, /^[4-7][0-9A-F]{31}$/)
    }
  })

  it('are signed by the key they certify, RSA or EC', () => {
    for (const pair of [generateKeyPairSync('rsa', { modulusLength: 2048 }), generateKeyPairSync('ec', { namedCurve: 'P-256' })]) {
      const { x5c } = selfSignedCertificate(pair.privateKey.export({ format: 'jwk' }), 'platform')
      const certificate = new X509Certificate(Buffer.from(x5c[0]!, 'base64'))
      assert.ok(certificate.publicKey.equals(pair.publicKey))
      assert.ok(certificate.verify(pair.publicKey), pair.publicKey.asymmetricKeyType)
    }
  })
})
