import { createHash, randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createLocalJWKSet, type JWTVerifyGetKey } from 'jose'
import type Provider from 'oidc-provider'
import type { RealmClientConfig, RealmConfig } from '../config/realms.ts'
import type { Config } from '../config/schema.ts'
import type { Accounts } from '../directory/accounts.ts'
import type { Route } from '../gateway/routes.ts'
import type { EventBus } from '../store/event-bus.ts'
import type { Store } from '../store/store.ts'
import { REVOKE_TOPIC } from './adapter.ts'
import { ServiceAccounts } from './claims.ts'
import { RealmKeys, type RealmKeySet } from './keys.ts'
import { buildProvider, GATEWAY_CALLBACK, KEYCLOAK_ROUTES } from './provider.ts'

/** Published when a realm's signing keys changed, so every process reloads them. */
export const KEYS_TOPIC = 'oidc-keys'
/** Expired provider records are deleted this often. */
const PRUNE_INTERVAL_MS = 3600_000
/** How long after its expiry a rotated-out key is still published: clock skew between issuer and verifiers. */
const KEY_GRACE_SECONDS = 60

export interface RealmDependencies {
  store: Store
  bus: EventBus
  accounts: Accounts
  serviceAccounts: ServiceAccounts
  /** The public URL, read at use: a server listening on port 0 learns its own only after it started. */
  publicUrl(): string
  trustProxy: boolean
}

/** One realm: its configuration, its signing keys and, built on first use, its oidc-provider instance. */
export class Realm {
  readonly config: RealmConfig
  readonly #deps: RealmDependencies
  readonly #keys: RealmKeys
  readonly #clients: Map<string, RealmClientConfig>
  #keySet: RealmKeySet | undefined
  #verificationKey: JWTVerifyGetKey | undefined
  #reloadAt = 0
  #loading: Promise<RealmKeySet> | undefined
  #provider: { instance: Provider; handler: (req: IncomingMessage, res: ServerResponse) => void; issuer: string; keys: RealmKeySet } | undefined

  constructor(config: RealmConfig, deps: RealmDependencies) {
    this.config = config
    this.#deps = deps
    this.#keys = new RealmKeys(deps.store, config.name, config.signing_key_rotation_seconds, config.access_token_seconds + KEY_GRACE_SECONDS)
    this.#clients = new Map(config.clients.map((c) => [c.client_id, c]))
  }

  get name(): string {
    return this.config.name
  }

  get issuer(): string {
    return `${this.#deps.publicUrl()}/realms/${this.config.name}`
  }

  client(clientId: string): RealmClientConfig | undefined {
    return this.#clients.get(clientId)
  }

  /** The realm's keys; read again (rotating when due) once they may have changed. */
  async keySet(now = Date.now()): Promise<RealmKeySet> {
    if (this.#keySet && now < this.#reloadAt) return this.#keySet
    this.#loading ??= this.#loadKeys(now).finally(() => {
      this.#loading = undefined
    })
    return this.#loading
  }

  /** Another process changed the keys: read them again on next use. */
  keysChanged(): void {
    this.#reloadAt = 0
  }

  /** Verifies signatures with the realm's published keys, in process (no JWKS fetch). */
  async verificationKey(): Promise<JWTVerifyGetKey> {
    await this.keySet()
    return this.#verificationKey!
  }

  /** The oidc-provider instance and its Node request handler, rebuilt when the keys or the public URL change. */
  async provider(): Promise<{ instance: Provider; handler: (req: IncomingMessage, res: ServerResponse) => void }> {
    const keys = await this.keySet()
    const issuer = this.issuer
    if (!this.#provider || this.#provider.keys !== keys || this.#provider.issuer !== issuer) {
      const instance = buildProvider({
        realm: this.config,
        issuer,
        keys,
        records: this.#deps.store.oidc,
        accounts: this.#deps.accounts,
        serviceAccounts: this.#deps.serviceAccounts,
        trustProxy: this.#deps.trustProxy,
        revoke: (key, destroy) => this.#deps.bus.change(async (tx, announce) => {
          await destroy(tx.oidc)
          announce(REVOKE_TOPIC, key)
        }),
      })
      this.#provider = { instance, handler: instance.callback(), issuer, keys }
    }
    return this.#provider
  }

  async #loadKeys(now: number): Promise<RealmKeySet> {
    const { keys, changed } = await this.#keys.load(now)
    if (changed) await this.#deps.bus.publish(KEYS_TOPIC, this.config.name)
    this.#keySet = keys
    this.#verificationKey = createLocalJWKSet({ keys: [...keys.publicJwks] })
    this.#reloadAt = keys.reloadAt
    return keys
  }
}

/** Which tokens a place accepts: from which realms, and for which audiences (`aud` or `azp`). */
export interface BearerPolicy {
  realms: ReadonlySet<string>
  /** Empty: any client of the realm. */
  audiences: ReadonlySet<string>
}

/** Every configured realm, and what each service expects of the tokens it accepts. */
export class OidcRealms {
  readonly #realms = new Map<string, Realm>()
  readonly #policies = new Map<string, BearerPolicy>()
  readonly #loginUrls = new Map<string, (next: string) => string>()
  readonly #anyRealm: BearerPolicy
  readonly #store: Store
  #pruneAt = 0

  constructor(config: Config, deps: Omit<RealmDependencies, 'serviceAccounts'>) {
    const serviceAccounts = new ServiceAccounts(deps.store, deps.accounts)
    for (const realm of config.realms) this.#realms.set(realm.name, new Realm(realm, { ...deps, serviceAccounts }))
    this.#store = deps.store
    this.#anyRealm = { realms: new Set(this.#realms.keys()), audiences: new Set() }
    deps.bus.on(KEYS_TOPIC, (name) => this.#realms.get(name)?.keysChanged())
    for (const service of config.services) {
      if (!service.accepts.includes('oidc')) continue
      const realm = this.#realms.get(service.oidc?.realm ?? config.realms[0]?.name ?? '')
      if (!realm) continue
      this.#policies.set(service.name, { realms: new Set([realm.name]), audiences: new Set(service.oidc?.audiences ?? []) })
      const client = service.oidc?.client_id ?? realm.config.clients.find((c) => c.standard_flow)?.client_id
      if (client && !service.accepts.includes('session')) this.#loginUrls.set(service.name, (next) => authorizationUrl(realm, client, next))
    }
  }

  get configured(): boolean {
    return this.#realms.size > 0
  }

  get(name: string): Realm | undefined {
    return this.#realms.get(name)
  }

  all(): Realm[] {
    return [...this.#realms.values()]
  }

  byIssuer(issuer: string): Realm | undefined {
    for (const realm of this.#realms.values()) if (realm.issuer === issuer) return realm
    return undefined
  }

  /** The tokens a service (or the gateway's own API) accepts. */
  policyFor(service: string | undefined): BearerPolicy {
    return (service && this.#policies.get(service)) || this.#anyRealm
  }

  /** For services that take OIDC but not the gateway session: where an unauthenticated browser goes to log in. */
  loginUrlFor(route: Route): ((next: string) => string) | undefined {
    return this.#loginUrls.get(route.name)
  }

  /** Deletes expired provider records, at most once an hour, off the request path. */
  maintain(now = Date.now()): void {
    if (now < this.#pruneAt) return
    this.#pruneAt = now + PRUNE_INTERVAL_MS
    this.#store.oidc.pruneExpired(now).catch(() => {
      this.#pruneAt = 0
    })
  }
}

/**
 * The realm's authorization endpoint, for a browser to log in and come back to the gateway's callback, which
 * names the page it came from. The code is not redeemed (a service taking only bearer tokens has no browser
 * session to give), so the PKCE verifier that public clients must use is not kept.
 */
function authorizationUrl(realm: Realm, clientId: string, next: string): string {
  const verifier = randomBytes(32).toString('base64url')
  const url = new URL(realm.issuer + KEYCLOAK_ROUTES.authorization)
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: realm.issuer + GATEWAY_CALLBACK,
    response_type: 'code',
    scope: 'openid',
    state: Buffer.from(next).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString()
  return url.href
}
