import { importJWK, SignJWT, type JWK, type CryptoKey } from 'jose'
import type { UserAccess } from '../access/model.ts'
import type { Principal } from '../auth/principal.ts'
import { LoadedKeys, RotatingKeys, type KeysKept, type RealmKeySet } from '../oidc/keys.ts'
import { BoundedCache } from '../store/cache.ts'
import type { EventBus } from '../store/event-bus.ts'
import type { Store } from '../store/store.ts'
import { IDENTITY_KEYS_TOPIC } from '../store/topics.ts'

const PURPOSE = 'identity'
const ALG = 'ES256'
/** How long after its last token expired a replaced key is still published: clock skew between gateway and services. */
const KEY_GRACE_SECONDS = 60

export interface IdentityKeyTimes {
  /** Lifetime of an identity token (`auth.identity_token_seconds`). */
  tokenSeconds: number
  /** How long a key signs before the next takes over (`auth.identity_key_rotation_seconds`). */
  rotationSeconds: number
  /** How long services may cache the JWKS (`auth.identity_jwks_max_age_seconds`). */
  jwksMaxAgeSeconds: number
  /** The longest another process may take to hear of a new key (`auth.max_stale_seconds`). */
  maxStaleSeconds: number
}

/**
 * Signs X-Gatehouse-Identity, the short-lived JWT a service verifies with the JWKS at /api/gateway/v1/jwks/.
 * Signing costs far more than the rest of the request path, so a token is reused for half its lifetime
 * for the same user, method and service, while the key that signed it is the one that signs.
 */
export class IdentitySigner {
  readonly #keys: LoadedKeys
  readonly #rotating: RotatingKeys
  readonly #bus: EventBus
  readonly #lifetimeSeconds: number
  /**
   * Signed tokens by user, method, scope and audience, until half their lifetime has passed: by the clock they are
   * stamped with (`renewAt`), and by the monotonic clock, lest a step back of the machine's clock keep a token in use
   * past its `exp`.
   */
  readonly #cache = new BoundedCache<string, { jwt: string; kid: string; renewAt: number; userId: number }>({
    maxEntries: 10_000,
    maxAgeMs: () => (this.#lifetimeSeconds * 1000) / 2,
    expiresAt: (signed) => signed.renewAt,
    userOf: (signed) => signed.userId,
  })
  #issuer: string
  /** The private key of the key set last read, imported once. */
  #signingKey: { set: RealmKeySet; key: CryptoKey } | undefined

  /**
   * The next key is published before it signs: long enough for every service to refetch a JWKS it cached
   * (`jwksMaxAgeSeconds`) after every process has heard of the key (`maxStaleSeconds`). A replaced key stays
   * published until the last token it signed has expired. Times are the database's, the same for every process
   * whatever its machine's clock says, as the realms' tokens are stamped: a process running ahead would otherwise
   * delete a replaced key early, or sign with the next before the others have published it long enough.
   */
  constructor(store: Store, bus: EventBus, issuer: string, times: IdentityKeyTimes) {
    this.#bus = bus
    this.#issuer = issuer
    this.#lifetimeSeconds = times.tokenSeconds
    this.#rotating = new RotatingKeys(store, {
      purpose: PURPOSE,
      alg: ALG,
      rotationSeconds: times.rotationSeconds,
      graceSeconds: times.tokenSeconds + KEY_GRACE_SECONDS,
      publishAheadSeconds: times.jwksMaxAgeSeconds + times.maxStaleSeconds,
    })
    this.#keys = new LoadedKeys(this.#rotating, () => bus.publish(IDENTITY_KEYS_TOPIC, PURPOSE))
    bus.on(IDENTITY_KEYS_TOPIC, () => this.#keys.reload())
    bus.onMissed(() => {
      this.#keys.reload()
      this.forgetAll()
    })
  }

  get issuer(): string {
    return this.#issuer
  }

  set issuer(value: string) {
    this.#issuer = value
    this.#cache.clear()
  }

  /** Reads the shared keys, creating the first on first start and rotating when due. */
  async load(now = this.#bus.clock.now()): Promise<void> {
    await this.#keys.get(now)
  }

  /** Reads the keys again now: another process may have changed them before this one heard of changes. */
  async reload(now = this.#bus.clock.now()): Promise<void> {
    this.#keys.reload()
    await this.#keys.get(now)
  }

  /**
   * The published keys: the signing key, the next one once published, and replaced ones whose tokens may live. While
   * the keys cannot be read again, those in memory: services go on verifying the tokens they signed.
   */
  async jwks(now = this.#bus.clock.now()): Promise<{ keys: JWK[] }> {
    return { keys: [...(await this.#keys.known(now)).publicJwks] }
  }

  /** Told when the keys could not be read again and those in memory go on signing (see LoadedKeys). */
  onKeysKept(listener: (kept: KeysKept) => void): void {
    this.#keys.onKept(listener)
  }

  /** Publishes the next key now, signing once every service can have seen it; every process hears of it. */
  async rotate(now = this.#bus.clock.now()): Promise<{ kid: string; signsFrom: number }> {
    const next = await this.#rotating.rotate(now)
    this.#keys.reload()
    await this.#bus.publish(IDENTITY_KEYS_TOPIC, PURPOSE)
    return next
  }

  /**
   * The token signed earlier for this user, method, scope and audience while it may still be reused; undefined when
   * one must be signed (`tokenFor`). Synchronous, so the request path pays for no promise when it is there.
   */
  reusableToken(principal: Pick<Principal, 'user' | 'method' | 'scope'>, audience: string, now = this.#bus.clock.now()): string | undefined {
    const signed = this.#cache.get(cacheKeyOf(principal, audience), now)
    return signed && signed.kid === this.#keys.fresh(now)?.activeKid ? signed.jwt : undefined
  }

  /**
   * Taken before the account a token will be signed from is read (src/auth/pipeline.ts): a change to it committed
   * after this moves the stamp, and the token signed from the row before is then not kept.
   */
  stamp(): number {
    return this.#cache.stamp()
  }

  /**
   * `access`: the user's teams, organizations and roles (src/access/model.ts), carried as claims of those names.
   * `principal.identityStamp`: the `stamp` taken before its account was read; without one, the stamp now.
   */
  async tokenFor(principal: Pick<Principal, 'user' | 'method' | 'scope' | 'identityStamp'>, audience: string, access?: UserAccess, now = this.#bus.clock.now()): Promise<string> {
    const cacheKey = cacheKeyOf(principal, audience)
    // Signed from the account as the request read it: if it changed since that read began, or changes while the keys
    // are read or the token signed, this token is used once and not kept.
    const stamp = principal.identityStamp ?? this.#cache.stamp()
    const signingKey = await this.#signingKeyAt(now)
    // Once the next key signs, every process signs with it: a token of the key before is not reused.
    const cached = this.#cache.get(cacheKey, now)
    if (cached?.kid === signingKey.kid) return cached.jwt
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
      .setProtectedHeader({ alg: ALG, kid: signingKey.kid, typ: 'JWT' })
      .setIssuer(this.#issuer)
      .setSubject(String(user.id))
      .setAudience(audience)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + this.#lifetimeSeconds)
      .sign(signingKey.key)
    this.#cache.set(cacheKey, { jwt, kid: signingKey.kid, renewAt: now + (this.#lifetimeSeconds * 1000) / 2, userId: user.id }, stamp)
    return jwt
  }

  /** The key that signs at `now` (the database's time), read again (rotating when due) once the keys may have changed. */
  async #signingKeyAt(now: number): Promise<{ kid: string; key: CryptoKey }> {
    const set = this.#keys.fresh(now) ?? await this.#keys.get(now)
    if (this.#signingKey?.set !== set) {
      const jwk = set.privateJwks.find((k) => k.kid === set.activeKid)!
      this.#signingKey = { set, key: (await importJWK(jwk, ALG)) as CryptoKey }
    }
    return { kid: set.activeKid, key: this.#signingKey.key }
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
