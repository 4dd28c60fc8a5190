import { createPrivateKey, createPublicKey, hash, randomBytes, sign, type JsonWebKey } from 'node:crypto'
import { AsnConvert } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier, AttributeTypeAndValue, AttributeValue, Certificate, Name, RelativeDistinguishedName, SubjectPublicKeyInfo, TBSCertificate, Validity, Version } from '@peculiar/asn1-x509'

/**
 * A self-signed X.509 certificate for a realm's RS256 or ES256 key, as Keycloak makes one for each key it generates
 * (subject `CN=<realm>`), so that clients which read `x5c` from the JWKS instead of `n` and `e` (or pin its
 * `x5t#S256`) find it. The ASN.1 is built with @peculiar/asn1-x509 and signed with node:crypto.
 */

const SHA256_WITH_RSA = '1.2.840.113549.1.1.11'
/** RFC 5758 §3.2: ecdsa-with-SHA256, whose parameters are absent. */
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2'
const COMMON_NAME = '2.5.4.3'
/** Keycloak's generated certificates are valid for ten years; the key is rotated far sooner. */
const VALIDITY_MS = 10 * 365 * 86400_000

/** The JWK members that carry a certificate (RFC 7517 §4.7-4.9). */
export interface CertificateMembers {
  x5c: string[]
  x5t: string
  'x5t#S256': string
}

export function selfSignedCertificate(privateJwk: JsonWebKey, commonName: string, now = Date.now()): CertificateMembers {
  const privateKey = createPrivateKey({ key: privateJwk, format: 'jwk' })
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' })
  const algorithm = privateKey.asymmetricKeyType === 'ec'
    ? new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 })
    : new AlgorithmIdentifier({ algorithm: SHA256_WITH_RSA, parameters: null })
  const name = new Name([new RelativeDistinguishedName([new AttributeTypeAndValue({ type: COMMON_NAME, value: new AttributeValue({ utf8String: commonName }) })])])
  // A positive serial number of 16 random bytes (RFC 5280 §4.1.2.2) whose first byte is neither 0 nor above 0x7f:
  // DER wants an INTEGER's shortest form, and OpenSSL refuses a certificate whose serial starts with a needless 0.
  const serial = randomBytes(16)
  serial[0] = (serial[0]! & 0x7f) | 0x40
  const tbsCertificate = new TBSCertificate({
    version: Version.v3,
    serialNumber: toArrayBuffer(serial),
    signature: algorithm,
    issuer: name,
    validity: new Validity({ notBefore: new Date(now - 60_000), notAfter: new Date(now + VALIDITY_MS) }),
    subject: name,
    subjectPublicKeyInfo: AsnConvert.parse(spki, SubjectPublicKeyInfo),
  })
  const signature = sign('sha256', Buffer.from(AsnConvert.serialize(tbsCertificate)), privateKey)
  const der = Buffer.from(AsnConvert.serialize(new Certificate({ tbsCertificate, signatureAlgorithm: algorithm, signatureValue: toArrayBuffer(signature) })))
  return { x5c: [der.toString('base64')], x5t: hash('sha1', der, 'base64url'), 'x5t#S256': hash('sha256', der, 'base64url') }
}

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
}
