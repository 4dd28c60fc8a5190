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
  /**
   * Private JWKs (for oidc-provider): the active key first, then the next key once it is published ahead of signing,
   * then retired keys whose tokens may still be alive.
   */
  readonly privateJwks: readonly JWK[]
  /** The same keys without their private parts: the realm's JWKS (`certs`); for a secret (HS512) key, only its id. */
  readonly publicJwks: readonly JWK[]
  /** When the set must be read again: the active key is due to be replaced, the next key to sign, or a retired key to be dropped. */
  readonly reloadAt: number
  /** When the active key's turn to sign ends: the next key takes over, or its rotation is due. */
  readonly signsUntil: number
}

/** What a set of rotating keys is: its name in the shared table, its algorithm and its times. */
export interface RotatingKeysOptions {
  /** The keys' purpose in the `signing_keys` table. */
  purpose: string
  alg: RealmKeyAlg
  /** How long a key signs before the next one takes over. */
  rotationSeconds: number
  /** How long a replaced key stays published: the longest a token it signed can live, with some clock skew. */
  graceSeconds: number
  /**
   * How long before it signs anything the next key is published: the longest a verifier may keep a JWKS it
   * fetched, and the longest another process may take to hear of the new key. 0: a new key signs at once.
   */
  publishAheadSeconds?: number
  /** Keycloak publishes a self-signed certificate with each key (x5c), with the realm's name as subject. */
  certificateSubject?: string
}

/**
 * Signing keys in the shared `signing_keys` table, so every gateway process signs with the same key and publishes
 * the same JWKS. A key is replaced after `rotationSeconds`; with `publishAheadSeconds`, its successor is published
 * that long before it signs (its `created` is the moment it takes over). The replaced key stays published for
 * `graceSeconds` (the longest a token it signed can live), then is deleted. Processes that create or rotate keys at
 * the same moment agree afterwards: the newest key wins and the others are retired, and `changed` tells the caller
 * to have every other process read the keys again.
 */
export class RotatingKeys {
  readonly #store: Store
  readonly #purpose: string
  readonly #alg: RealmKeyAlg
  readonly #rotationMs: number
  readonly #graceMs: number
  readonly #aheadMs: number
  readonly #certificateSubject: string | undefined

  constructor(store: Store, options: RotatingKeysOptions) {
    this.#store = store
    this.#purpose = options.purpose
    this.#alg = options.alg
    this.#rotationMs = options.rotationSeconds * 1000
    this.#graceMs = options.graceSeconds * 1000
    this.#aheadMs = (options.publishAheadSeconds ?? 0) * 1000
    this.#certificateSubject = options.certificateSubject
  }

  get purpose(): string {
    return this.#purpose
  }

  /** Reads the keys, creating or rotating the active one when due; `changed` says whether other processes must reload. */
  async load(now = Date.now()): Promise<{ keys: RealmKeySet; changed: boolean }> {
    let changed = false
    let keys = await this.#live(now)
    let { signing, next } = this.#byRole(keys, now)
    // The first key signs at once: no verifier can have cached a JWKS without it. A rotation publishes ahead.
    // With no key signing but one published to sign later, that one signs (below): no key is added for it.
    const rotationDue = signing[0] !== undefined && !next[0] && this.#signsFrom(signing[0]) + this.#rotationMs <= now
    if (rotationDue || (!signing[0] && !next[0])) {
      if (rotationDue) await this.#add(now)
      else await this.#store.signingKeys.addFirst(await this.#newKey(now))
      changed = true
      keys = await this.#live(now)
      ;({ signing, next } = this.#byRole(keys, now))
    }
    // Another process made the first key with its clock ahead of ours: the key is still "next" on our clock, but it
    // is already published and already signs there, so it signs here too.
    // The oldest of them: one a process with a shorter time ahead may sign with already, never one published after it.
    if (!signing[0] && next[0]) signing = [next.pop()!]
    const [active, ...superseded] = signing
    for (const key of superseded) {
      await this.#store.signingKeys.retire(key.kid, now + this.#graceMs)
      key.retireAt = now + this.#graceMs
      changed = true
    }
    // Two processes published a next key at once: the newest wins. The other stays published as long as a replaced key,
    // as a process whose time ahead is shorter may have signed with it.
    const [upcoming, ...outrun] = next
    for (const key of outrun) {
      await this.#store.signingKeys.retire(key.kid, now + this.#graceMs)
      key.retireAt = now + this.#graceMs
      changed = true
    }
    // Outrun keys too: the process that retires them publishes them as the others, which read them retired, do.
    const published = keys
    const ordered = [active!, ...(upcoming ? [upcoming] : []), ...published.filter((k) => k !== active && k !== upcoming)]
    return {
      changed,
      keys: Object.freeze({
        alg: this.#alg,
        activeKid: active!.kid,
        privateJwks: Object.freeze(ordered.map((k) => k.privateJwk as JWK)),
        publicJwks: Object.freeze(ordered.map((k) => k.publicJwk as JWK)),
        reloadAt: Math.min(upcoming ? this.#signsFrom(upcoming) : this.#signsFrom(active!) + this.#rotationMs, ...published.map((k) => k.retireAt ?? Infinity)),
        signsUntil: upcoming ? this.#signsFrom(upcoming) : this.#signsFrom(active!) + this.#rotationMs,
      }),
    }
  }

  /**
   * Publishes the next key now, to sign from `publishAheadSeconds` later (at once without): a rotation before it is
   * due. Answers the new key's id and when it signs by these options; the caller tells the other processes, each of
   * which counts that time from the publication by its own options.
   */
  async rotate(now = Date.now()): Promise<{ kid: string; signsFrom: number }> {
    const key = await this.#add(now)
    return { kid: key.kid, signsFrom: this.#signsFrom(key) }
  }

  /**
   * Publishes a key that signs now and retires every other key of the set at once, published or not: for a key that
   * may have leaked, whose tokens must not verify a moment longer. Only for keys that sign as soon as they are
   * published (no `publishAheadSeconds`): with it, nothing would sign until the new key may. Answers the new key's id
   * and those retired; the caller tells the other processes.
   */
  async replace(now = Date.now()): Promise<{ kid: string; retired: string[] }> {
    if (this.#aheadMs > 0) throw new Error(`keys of ${this.#purpose} are published ahead of signing: rotate them instead`)
    const key = await this.#add(now)
    const others = (await this.#store.signingKeys.list(this.#purpose)).filter((k) => k.kid !== key.kid && (k.retireAt === null || k.retireAt > now))
    for (const other of others) await this.#store.signingKeys.retire(other.kid, now)
    return { kid: key.kid, retired: others.map((k) => k.kid) }
  }

  /** Publishes a key now; it signs `publishAheadSeconds` later (its `created`, for versions that read only that). */
  async #add(published: number): Promise<SigningKey> {
    const key = { ...await this.#newKey(published + this.#aheadMs), published }
    await this.#store.signingKeys.add(key)
    return key
  }

  /**
   * When a key signs by this process's options: a key published ahead, `publishAheadSeconds` after it was published,
   * however long the process that published it waited (a `keys rotate` run with another configuration than the
   * servers', say), since how long services keep a JWKS is this process's to know (it sends its max-age); a first
   * key, at once.
   */
  #signsFrom(key: SigningKey): number {
    return key.published == null ? key.created : key.published + this.#aheadMs
  }

  /** The keys in use, newest first: those signing by now, and those published to sign later. */
  #byRole(keys: SigningKey[], now: number): { signing: SigningKey[]; next: SigningKey[] } {
    const candidates = keys.filter((k) => k.retireAt === null).sort((a, b) => this.#signsFrom(b) - this.#signsFrom(a) || (a.kid < b.kid ? 1 : -1))
    return { signing: candidates.filter((k) => this.#signsFrom(k) <= now), next: candidates.filter((k) => this.#signsFrom(k) > now) }
  }

  #newKey(created: number): Promise<SigningKey> {
    return newSigningKey(this.#purpose, this.#alg, this.#certificateSubject, created)
  }

  /** The keys still in use; retired keys whose tokens have all expired are deleted on the way. */
  async #live(now: number): Promise<SigningKey[]> {
    const keys = await this.#store.signingKeys.list(this.#purpose)
    const live = keys.filter((k) => k.retireAt === null || k.retireAt > now)
    if (live.length < keys.length) await this.#store.signingKeys.deleteRetiredBefore(this.#purpose, now + 1)
    return live
  }
}

/**
 * A realm's signing keys (purpose `oidc:<realm>`). The RS256 keys sign access and ID tokens (purpose
 * `oidc:<realm>`), or the ES256 keys when the realm signs with those (`oidc-es256:<realm>`); an HS512 secret signs
 * refresh tokens (purpose `oidc-hs512:<realm>`) and is never published. A new key signs at once: Keycloak's
 * adapters fetch the realm's JWKS again when a token names a key they do not know.
 */
export class RealmKeys extends RotatingKeys {
  constructor(store: Store, realm: string, rotationSeconds: number, graceSeconds: number, alg: RealmKeyAlg = SIGNING_ALG) {
    super(store, {
      purpose: alg === SIGNING_ALG ? `oidc:${realm}` : `oidc-${alg.toLowerCase()}:${realm}`,
      alg,
      rotationSeconds,
      graceSeconds,
      certificateSubject: realm,
    })
  }
}

/** What a process is told when the keys could not be read again and it goes on with those in memory. */
export interface KeysKept {
  readonly purpose: string
  readonly error: unknown
  /** Until when the key in memory signs; after that, signing fails until the keys are read. */
  readonly signsUntil: number
}

/** The first wait before reading keys again that could not be read; each failure doubles it, up to the last. */
const RETRY_FIRST_MS = 1000
const RETRY_MAX_MS = 30_000

/**
 * Rotating keys of one kind, read from the store when they may have changed, with other processes told of changes.
 *
 * A read that fails (the database does not answer) does not fail what the keys in memory can still do: they sign
 * until the active key's turn is over (`signsUntil`: past it, another key signs, which this process could not
 * confirm, so signing fails closed), and they verify and are published for as long as the database stays away, as
 * the tokens they signed are no less genuine for it. Meanwhile the keys are read again in the background, after 1 s,
 * then twice as long each time up to 30 s; requests do not wait for it.
 */
export class LoadedKeys {
  readonly #keys: RotatingKeys
  readonly #changed: () => Promise<void>
  readonly #keptListeners: ((kept: KeysKept) => void)[] = []
  #set: RealmKeySet | undefined
  #reloadAt = 0
  #loading: Promise<RealmKeySet> | undefined
  /** Counts the news of changes: news that came while the keys were being read may not be in what was read. */
  #news = 0
  /** The wait before the next read after a failed one; RETRY_FIRST_MS when the last read succeeded. */
  #retryMs = RETRY_FIRST_MS

  constructor(keys: RotatingKeys, changed: () => Promise<void>) {
    this.#keys = keys
    this.#changed = changed
  }

  /** Told when a read fails and the keys in memory go on (once until a read succeeds again). */
  onKept(listener: (kept: KeysKept) => void): void {
    this.#keptListeners.push(listener)
  }

  /** The keys to sign with: read again when they may have changed; those in memory while a read fails and they still sign. */
  async get(now: number): Promise<RealmKeySet> {
    if (this.#set && now < this.#reloadAt) return this.#set
    const loading = this.#loading ??= this.#load(now).finally(() => {
      this.#loading = undefined
    })
    // Once a read has failed, the keys in memory answer at once while the next read goes on behind them.
    if (this.#set && this.#retryMs > RETRY_FIRST_MS && now < this.#set.signsUntil) {
      loading.catch(() => {})
      return this.#set
    }
    return loading
  }

  /** The keys to verify with and to publish: as `get`, but those in memory whenever a read fails. */
  async known(now: number): Promise<RealmKeySet> {
    try {
      return await this.get(now)
    } catch (error) {
      if (this.#set) return this.#set
      throw error
    }
  }

  /** Whether keys were read once: those that `known` answers with while the database does not. */
  get inMemory(): boolean {
    return this.#set !== undefined
  }

  /** The keys when they need no reading: what `get` would answer at once. */
  fresh(now: number): RealmKeySet | undefined {
    return now < this.#reloadAt ? this.#set : undefined
  }

  reload(): void {
    this.#news++
    this.#reloadAt = 0
  }

  async #load(now: number): Promise<RealmKeySet> {
    const news = this.#news
    let loaded: { keys: RealmKeySet; changed: boolean }
    try {
      loaded = await this.#keys.load(now)
    } catch (error) {
      return this.#keep(error, now)
    }
    const { keys, changed } = loaded
    this.#retryMs = RETRY_FIRST_MS
    if (changed) await this.#changed()
    // Counted after telling the others, as their news may come while this process's is sent. Telling them delivers this
    // process's own news here too, once, before it resolves (EventBus.change dispatches what it announced): that one is
    // in what was read, any other may not be, and missing it would keep a retired key signing here until the next read.
    const missed = this.#news - news > (changed ? 1 : 0)
    this.#set = keys
    this.#reloadAt = missed ? 0 : keys.reloadAt
    return keys
  }

  /** The keys in memory after a failed read, while they sign; the error once they no longer do (or there are none). */
  #keep(error: unknown, now: number): RealmKeySet {
    const set = this.#set
    if (!set || now >= set.signsUntil) throw error
    const first = this.#retryMs === RETRY_FIRST_MS
    this.#reloadAt = Math.min(now + this.#retryMs, set.signsUntil)
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS)
    if (first) for (const listener of this.#keptListeners) listener({ purpose: this.#keys.purpose, error, signsUntil: set.signsUntil })
    return set
  }
}

async function newSigningKey(purpose: string, alg: RealmKeyAlg, certificateSubject: string | undefined, now: number): Promise<SigningKey> {
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
  const certificate = certificateSubject === undefined ? {} : (await import('./certificates.ts')).selfSignedCertificate(exported as JsonWebKey, certificateSubject, now)
  const privateJwk = { ...exported, kid, alg, use: 'sig', ...certificate }
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = privateJwk
  return { kid, purpose, alg, privateJwk, publicJwk, created: now, retireAt: null }
}
