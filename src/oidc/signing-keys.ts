import { createHmac, createPrivateKey, createPublicKey, createSecretKey, sign, type KeyObject, type webcrypto } from 'node:crypto'
import type { JWK } from 'jose'
import type { ExternalSigningKey } from 'oidc-provider'
import { ieeeP1363FromDer } from './ecdsa-signature.ts'

/** Signs a JWS's signing input; a promise when the signature is made on libuv's thread pool. */
export type JwsSignature = (data: Uint8Array) => Buffer | Promise<Buffer>

/**
 * The JWS signature (RFC 7518 §3) of a realm's key, on a key imported once, without jose's steps around it. An
 * ES256 signature (about 55 µs) costs less than WebCrypto's hand-over to libuv's thread pool, so node:crypto makes
 * it at once on the event loop; an RS256 one, five times dearer, still goes to the pool through WebCrypto, as jose
 * sends it (node:crypto's `sign` with a callback measured no cheaper). HS512 is node:crypto's HMAC.
 * docs/performance.md has the measurements.
 */
export function jwsSignature(jwk: JWK, alg = jwk.alg): JwsSignature {
  if (alg === 'HS512') {
    const secret = createSecretKey(Buffer.from(jwk.k!, 'base64url'))
    return (data) => createHmac('sha512', secret).update(data).digest()
  }
  if (alg === 'ES256') {
    // The KeyObject alone, not `{ key, dsaEncoding }`: ecdsa-signature.ts says why.
    const signingKey = createPrivateKey({ key: jwk as never, format: 'jwk' })
    return (data) => ieeeP1363FromDer(sign('sha256', data, signingKey), P256_BYTES)
  }
  if (alg === 'RS256') {
    const imported = crypto.subtle.importKey('jwk', jwk as webcrypto.JsonWebKey, RSASSA, false, ['sign'])
    // Its failure is the first signature's; until then it is nobody's unhandled rejection.
    imported.catch(() => {})
    return async (data) => Buffer.from(await crypto.subtle.sign(RSASSA, await imported, data as Uint8Array<ArrayBuffer>))
  }
  throw new Error(`no signature for a key of ${alg}`)
}

/** The size of a P-256 signature's r and of its s. */
const P256_BYTES = 32

const RSASSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }

/** The signing input of a compact JWS: the header and payload serialized in the order given, as jose's CompactSign does. */
export function jwsInput(header: Record<string, unknown>, payload: unknown): string {
  return `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
}

/** The compact JWS of the header and payload, as jose's CompactSign makes it. */
export async function signedJws(header: Record<string, unknown>, payload: unknown, signature: JwsSignature): Promise<string> {
  const input = jwsInput(header, payload)
  return `${input}.${Buffer.from(await signature(Buffer.from(input))).toString('base64url')}`
}

/**
 * The realm's private keys as oidc-provider signs with them: its `ExternalSigningKey`, whose JWS oidc-provider
 * assembles and whose signature is `jwsSignature`'s, where its own path for a private JWK goes through jose.
 */
export function providerSigningKeys(base: typeof ExternalSigningKey, jwks: readonly JWK[]): ExternalSigningKey[] {
  const RealmSigningKey = realmSigningKeyClass(base)
  return jwks.map((jwk) => new RealmSigningKey(jwk))
}

type RealmSigningKeyClass = new (jwk: JWK) => ExternalSigningKey
const classes = new WeakMap<typeof ExternalSigningKey, RealmSigningKeyClass>()

function realmSigningKeyClass(base: typeof ExternalSigningKey): RealmSigningKeyClass {
  let made = classes.get(base)
  if (made) return made
  made = class RealmSigningKey extends base {
    readonly #publicKey: KeyObject
    readonly #x5c: string[] | undefined
    readonly #sign: JwsSignature

    constructor(jwk: JWK) {
      super()
      // The base class's own setters: its type declares only the getters.
      Object.assign(this, { kid: jwk.kid, alg: jwk.alg })
      this.#sign = jwsSignature(jwk)
      this.#publicKey = createPublicKey({ key: jwk as never, format: 'jwk' })
      this.#x5c = jwk.x5c
    }

    /** Keycloak publishes each key's self-signed certificate. */
    override get x5c(): string[] | undefined {
      return this.#x5c
    }

    override keyObject(): KeyObject {
      return this.#publicKey
    }

    override sign(data: Uint8Array): Buffer | Promise<Buffer> {
      return this.#sign(data)
    }
  }
  classes.set(base, made)
  return made
}

