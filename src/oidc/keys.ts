import { randomUUID, type JsonWebKey } from 'node:crypto'
import { exportJWK, generateKeyPair, generateSecret, type JWK } from 'jose'
import type { RealmConfig } from '../config/realms.ts'
import type { SigningKey } from '../store/signing-keys.ts'
import type { Store } from '../store/store.ts'

/** Keycloak signs with RS256 by default; services built for it expect that. */
export const SIGNING_ALG = 'RS256'
/** What a realm may sign access and ID tokens with (`default_signature_algorithm`). */
export type SignatureAlg = RealmConfig['default_signature_algorithm']
/**
 * Keycloak signs its refresh tokens with the realm's HMAC key (HS512): only the realm can verify them, so no
 * service that checks access tokens against the JWKS can be handed a refresh token instead.
 */
export const REFRESH_SIGNING_ALG = 'HS512'
export type RealmKeyAlg = SignatureAlg | typeof REFRESH_SIGNING_ALG

export interface RealmKeySet {
  /** What every key of the set signs with. */
  readonly alg: RealmKeyAlg
  /** The key new tokens are signed with. */
  readonly activeKid: string
  /** Private JWKs for oidc-provider: the active key first, then retired keys whose tokens may still be alive. */
  readonly privateJwks: readonly JWK[]
  /** The same keys without their private parts: the realm's JWKS (`certs`); for a secret (HS512) key, only its id. */
  readonly publicJwks: readonly JWK[]
  /** When the set must be read again: the active key is due to be replaced, or a retired key to be dropped. */
  readonly reloadAt: number
}

/**
 * A realm's signing keys, in the shared `signing_keys` table (purpose `oidc:<realm>`), so every gateway process
 * signs with the same key and publishes the same JWKS. A key is replaced after `rotationSeconds`; the replaced
 * key stays published for `graceSeconds` (the longest a token it signed can live), then is deleted.
 * Processes that rotate at the same moment agree afterwards: the newest key wins and the others are retired.
 * The RS256 keys sign access and ID tokens (purpose `oidc:<realm>`), or the ES256 keys when the realm signs with
 * those (`oidc-es256:<realm>`); an HS512 secret signs refresh tokens (purpose `oidc-hs512:<realm>`) and is never
 * published.
 */
export class RealmKeys {
  readonly #store: Store
  readonly #realm: string
  readonly #purpose: string
  readonly #alg: RealmKeyAlg
  readonly #rotationMs: number
  readonly #graceMs: number

  constructor(store: Store, realm: string, rotationSeconds: number, graceSeconds: number, alg: RealmKeyAlg = SIGNING_ALG) {
    this.#store = store
    this.#realm = realm
    this.#alg = alg
    this.#purpose = alg === SIGNING_ALG ? `oidc:${realm}` : `oidc-${alg.toLowerCase()}:${realm}`
    this.#rotationMs = rotationSeconds * 1000
    this.#graceMs = graceSeconds * 1000
  }

  get purpose(): string {
    return this.#purpose
  }

  /** Reads the keys, creating or rotating the active one when due; `changed` says whether other processes must reload. */
  async load(now = Date.now()): Promise<{ keys: RealmKeySet; changed: boolean }> {
    let changed = false
    let keys = await this.#live(now)
    const newest = activeKeys(keys)[0]
    if (!newest || newest.created + this.#rotationMs <= now) {
      await this.#store.signingKeys.add(await newSigningKey(this.#purpose, this.#alg, this.#realm, now))
      changed = true
      keys = await this.#live(now)
    }
    const [active, ...superseded] = activeKeys(keys)
    for (const key of superseded) {
      await this.#store.signingKeys.retire(key.kid, now + this.#graceMs)
      key.retireAt = now + this.#graceMs
      changed = true
    }
    const ordered = [active!, ...keys.filter((k) => k.kid !== active!.kid)]
    return {
      changed,
      keys: Object.freeze({
        alg: this.#alg,
        activeKid: active!.kid,
        privateJwks: Object.freeze(ordered.map((k) => k.privateJwk as JWK)),
        publicJwks: Object.freeze(ordered.map((k) => k.publicJwk as JWK)),
        reloadAt: Math.min(active!.created + this.#rotationMs, ...keys.map((k) => k.retireAt ?? Infinity)),
      }),
    }
  }

  /** The keys still in use; retired keys whose tokens have all expired are deleted on the way. */
  async #live(now: number): Promise<SigningKey[]> {
    const keys = await this.#store.signingKeys.list(this.#purpose)
    const live = keys.filter((k) => k.retireAt === null || k.retireAt > now)
    if (live.length < keys.length) await this.#store.signingKeys.deleteRetiredBefore(this.#purpose, now + 1)
    return live
  }
}

function activeKeys(keys: SigningKey[]): SigningKey[] {
  return keys.filter((k) => k.retireAt === null).sort((a, b) => b.created - a.created || (a.kid < b.kid ? 1 : -1))
}

async function newSigningKey(purpose: string, alg: RealmKeyAlg, realm: string, now: number): Promise<SigningKey> {
  const kid = randomUUID()
  if (alg === REFRESH_SIGNING_ALG) {
    const secret = await generateSecret(alg, { extractable: true })
    const privateJwk = { ...(await exportJWK(secret)), kid, alg, use: 'sig' }
    return { kid, purpose, alg, privateJwk, publicJwk: { kty: 'oct', kid, alg, use: 'sig' }, created: now, retireAt: null }
  }
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) })
  const exported = await exportJWK(privateKey)
  // Keycloak publishes a self-signed certificate with each key (x5c); some clients read that instead. The ASN.1
  // library that writes it loads only when a key is made, not at every start.
  const { selfSignedCertificate } = await import('./certificates.ts')
  const privateJwk = { ...exported, kid, alg, use: 'sig', ...selfSignedCertificate(exported as JsonWebKey, realm, now) }
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = privateJwk
  return { kid, purpose, alg, privateJwk, publicJwk, created: now, retireAt: null }
}
