import { randomUUID } from 'node:crypto'
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type CryptoKey } from 'jose'
import type { UserAccess } from '../access/model.ts'
import type { Principal } from '../auth/principal.ts'
import { BoundedCache } from '../store/cache.ts'
import type { Store } from '../store/store.ts'

const PURPOSE = 'identity'
const ALG = 'ES256'

/**
 * Signs X-Gatehouse-Identity, the short-lived JWT a service verifies with the JWKS at /api/gateway/v1/jwks/.
 * Signing costs far more than the rest of the request path, so a token is reused for half its lifetime
 * for the same user, method and service.
 */
export class IdentitySigner {
  readonly #store: Store
  readonly #lifetimeSeconds: number
  /** Signed tokens by user, method, scope and audience, until half their lifetime has passed. */
  readonly #cache = new BoundedCache<string, { jwt: string; renewAt: number; userId: number }>({
    maxEntries: 10_000,
    maxAgeMs: Infinity,
    expiresAt: (signed) => signed.renewAt,
    userOf: (signed) => signed.userId,
  })
  #issuer: string
  #signingKey: { kid: string; key: CryptoKey } | undefined
  #publicKeys: JWK[] = []

  constructor(store: Store, issuer: string, lifetimeSeconds: number) {
    this.#store = store
    this.#issuer = issuer
    this.#lifetimeSeconds = lifetimeSeconds
  }

  get issuer(): string {
    return this.#issuer
  }

  set issuer(value: string) {
    this.#issuer = value
    this.#cache.clear()
  }

  /** Loads the shared key, creating it on first start. */
  async load(): Promise<void> {
    let keys = await this.#store.signingKeys.list(PURPOSE)
    if (!keys.some((k) => k.retireAt === null)) {
      const { privateKey } = await generateKeyPair(ALG, { extractable: true })
      const kid = randomUUID()
      const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: ALG, use: 'sig' }
      const { d: _secret, ...publicJwk } = privateJwk
      await this.#store.signingKeys.add({ kid, purpose: PURPOSE, alg: ALG, privateJwk, publicJwk, created: Date.now(), retireAt: null })
      keys = await this.#store.signingKeys.list(PURPOSE)
    }
    const active = keys.find((k) => k.retireAt === null)!
    this.#signingKey = { kid: active.kid, key: (await importJWK(active.privateJwk as JWK, ALG)) as CryptoKey }
    this.#publicKeys = keys.map((k) => k.publicJwk as JWK)
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.#publicKeys }
  }

  /**
   * The token signed earlier for this user, method, scope and audience while it may still be reused; undefined when
   * one must be signed (`tokenFor`). Synchronous, so the request path pays for no promise when it is there.
   */
  reusableToken(principal: Pick<Principal, 'user' | 'method' | 'scope'>, audience: string, now = Date.now()): string | undefined {
    return this.#cache.get(cacheKeyOf(principal, audience), now)?.jwt
  }

  /** `access`: the user's teams, organizations and roles (src/access/model.ts), carried as claims of those names. */
  async tokenFor(principal: Pick<Principal, 'user' | 'method' | 'scope'>, audience: string, access?: UserAccess, now = Date.now()): Promise<string> {
    const cacheKey = cacheKeyOf(principal, audience)
    const cached = this.#cache.get(cacheKey, now)
    if (cached) return cached.jwt
    // Signed from the account as it is now: if it changes while signing, this token is used once and not kept.
    const stamp = this.#cache.stamp()
    if (!this.#signingKey) throw new Error('identity signing key not loaded')
    const user = principal.user
    const issuedAt = Math.floor(now / 1000)
    const jwt = await new SignJWT({
      preferred_username: user.username,
      email: user.email || undefined,
      name: [user.firstName, user.lastName].filter(Boolean).join(' ') || undefined,
      is_superuser: user.isSuperuser,
      source: user.source,
      is_system_auditor: user.isSystemAuditor || undefined,
      groups: user.groups.length ? user.groups : undefined,
      teams: access?.teams.length ? access.teams.map((t) => ({ id: t.id, name: t.name, organization: t.organizationId })) : undefined,
      organizations: access?.organizations.length ? access.organizations.map((o) => ({ id: o.id, name: o.name })) : undefined,
      roles: access?.roles.length ? access.roles : undefined,
      auth_method: principal.method,
      scope: principal.scope,
    })
      .setProtectedHeader({ alg: ALG, kid: this.#signingKey.kid, typ: 'JWT' })
      .setIssuer(this.#issuer)
      .setSubject(String(user.id))
      .setAudience(audience)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + this.#lifetimeSeconds)
      .sign(this.#signingKey.key)
    this.#cache.set(cacheKey, { jwt, renewAt: now + (this.#lifetimeSeconds * 1000) / 2, userId: user.id }, now, stamp)
    return jwt
  }

  /** Memberships changed somewhere: every token carries them, so none is reused. */
  forgetAll(): void {
    this.#cache.clear()
  }

  forgetUser(userId: number): void {
    this.#cache.forgetUser(userId)
  }
}

/** A token is reused only for the same user, method, scope and audience: one service never receives another's. */
function cacheKeyOf(principal: Pick<Principal, 'user' | 'method' | 'scope'>, audience: string): string {
  return `${principal.user.id}\0${principal.method}\0${principal.scope ?? ''}\0${audience}`
}
