import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Adapter, AdapterPayload, ClientMetadata } from 'oidc-provider'
import type Provider from 'oidc-provider'
import { RealmClientSchema, type RealmClientConfig } from '../config/realms.ts'
import type { Application, ApplicationRepository } from '../store/applications.ts'
import type { Announce } from '../store/event-bus.ts'
import type { Repositories } from '../store/store.ts'
import { REVOKE_TOPIC } from '../store/topics.ts'
import { PASSWORD_GRANT } from './password-grant.ts'
import { providerNow } from './provider-clock.ts'

/**
 * The platform's OAuth2 applications (`/api/gateway/v1/applications/`) served as clients of one realm: oidc-provider
 * looks up a client it was not configured with through the adapter's `Client` model, which reads the application
 * from the store, so an application created, changed or deleted at run time takes effect at its next request,
 * on every process. Its tokens are the realm's own (the same JWTs, revoked the same way), meant for the gateway
 * and the services that take the realm's tokens, with the platform's scopes `read` and `write`.
 */

export const APPLICATION_SCOPES = ['read', 'write'] as const

/** What the provider needs to serve applications: where they are, and which audiences their tokens name. */
export interface ApplicationClients {
  repository: ApplicationRepository
  /**
   * The audiences of the tokens minted from now on: replaced whole when a reload changes the services (SIGHUP). Each
   * token request reads them once, as it looks its application up, and the token carries that list for its life.
   */
  audiences: readonly string[]
}

/** An application's secret as the store keeps it: SHA-256 in hex, compared in constant time. */
export function hashClientSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex')
}

/** A confidential application's new secret: shown once, to whoever made it, and stored as `hashClientSecret` of it. */
export function newClientSecret(): string {
  return randomBytes(48).toString('base64url')
}

/**
 * Gives a confidential application the new secret `secret` (`newClientSecret`), as the API's `client_secret/` and
 * `gatehouse applications rotate-secret` do: the one it had goes on authenticating for `graceSeconds` by the
 * provider's clock (`now`), or stops at once. Undefined when there is no such confidential application.
 */
export async function rotateApplicationSecret(repository: ApplicationRepository, id: number, secret: string, graceSeconds: number, now: number): Promise<{ application: Application; previousUntil: number | null } | undefined> {
  const previousUntil = graceSeconds ? now + graceSeconds * 1000 : null
  const application = await repository.rotateSecret(id, hashClientSecret(secret), previousUntil)
  return application && { application, previousUntil }
}

/** Marks the stored hash given to oidc-provider as a client's secret, so no secret is ever held in memory. */
const HASHED = 'sha256:'

/**
 * A configured client's secret as oidc-provider is given it. It takes only printable ASCII in a secret (its
 * `noVSCHAR`); Keycloak takes any text. A secret with other characters is given as its hash, compared as an
 * application's is (`compareHashedSecrets`), so that it works as in Keycloak; so is one that starts as such a hash
 * does, which would otherwise be compared as the hash it looks like rather than as the text it is, and one with a
 * previous secret (`previous_secret`), which is given with it.
 */
export function providerClientSecret(secret: string, previous?: { secret: string; expires: string }): string {
  if (previous) return withPreviousSecret(HASHED + hashClientSecret(secret), { hash: hashClientSecret(previous.secret), until: Date.parse(previous.expires) })
  return /^[\x20-\x7E]*$/.test(secret) && !secret.startsWith(HASHED) ? secret : HASHED + hashClientSecret(secret)
}

/**
 * An application's secrets as oidc-provider is given them: the current one's hash, and after a rotation with a grace
 * period the previous one's with the time it ends (`<hash>@<epoch ms>`), which `compareHashedSecrets` reads.
 */
function hashedSecrets(application: Application): string {
  return withPreviousSecret(HASHED + application.clientSecretHash, application.previousSecret)
}

/** A hashed secret as oidc-provider is given it, followed by the previous one's hash and end while there is one. */
function withPreviousSecret(hashed: string, previous: { hash: string; until: number } | null): string {
  return hashed + (previous ? `,${previous.hash}@${previous.until}` : '')
}

/** The client metadata oidc-provider validates for an application. */
export function applicationMetadata(application: Application): ClientMetadata {
  const password = application.authorizationGrantType === 'password'
  return {
    client_id: application.clientId,
    // The login page names the application by it (interactions.ts).
    client_name: application.name,
    ...(application.clientType === 'public'
      ? { token_endpoint_auth_method: 'none' }
      : { token_endpoint_auth_method: 'client_secret_basic', client_secret: hashedSecrets(application) }),
    grant_types: password ? [PASSWORD_GRANT, 'refresh_token'] : ['authorization_code', 'refresh_token'],
    response_types: password ? [] : ['code'],
    redirect_uris: password ? [] : application.redirectUris,
  }
}

/**
 * The realm-client view of an application, for the Keycloak-shaped parts of the provider (audiences, PKCE, refresh
 * tokens): PKCE is required as its `pkce_required` says, as django-ansible-base's AuthorizationView checks it. Its refresh tokens are
 * single-use, as django-oauth-toolkit's are (`ROTATE_REFRESH_TOKEN`, on by default): each refresh answers a new one,
 * and an earlier one is refused; used again, it ends its sign-in's tokens (Gatehouse's reuse detection, stricter than
 * django-oauth-toolkit's default, which only refuses it).
 */
export function applicationClientConfig(application: Application, audiences: readonly string[]): RealmClientConfig {
  return RealmClientSchema.parse({
    client_id: application.clientId,
    public_client: application.clientType === 'public',
    ...(application.clientType === 'confidential' ? { secret: `${HASHED}${application.clientSecretHash}` } : {}),
    direct_access_grants: application.authorizationGrantType === 'password',
    standard_flow: application.authorizationGrantType === 'authorization-code',
    pkce: application.pkceRequired ? 'required' : 'optional',
    refresh_token_rotation: true,
    web_origins: [],
    audiences: [...audiences],
  })
}

/**
 * Ends the sessions and tokens of applications being deleted, in the transaction that deletes them, and tells every
 * process: their access tokens are refused at once, as Keycloak ends a removed client's sessions, instead of
 * serving until they expire for an application that no longer exists.
 */
export async function endApplicationTokens(tx: Repositories, announce: Announce, clientIds: readonly string[]): Promise<void> {
  for (const grantId of await tx.oidc.endClientGrants(clientIds)) announce(REVOKE_TOPIC, `grant:${grantId}`)
}

/** oidc-provider's `Client` model over the applications of one realm; read-only, as the API manages them. */
export class ApplicationClientAdapter implements Adapter {
  readonly #realm: string
  readonly #applications: ApplicationClients
  readonly #seen: Map<string, RealmClientConfig>

  constructor(realm: string, applications: ApplicationClients, seen: Map<string, RealmClientConfig>) {
    this.#realm = realm
    this.#applications = applications
    this.#seen = seen
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const application = await this.#applications.repository.findByClientId(this.#realm, id)
    if (!application) {
      this.#seen.delete(id)
      return undefined
    }
    this.#seen.set(id, applicationClientConfig(application, this.#applications.audiences))
    return applicationMetadata(application) as AdapterPayload
  }

  async upsert(): Promise<void> {}
  async findByUid(): Promise<undefined> {}
  async findByUserCode(): Promise<undefined> {}
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

/**
 * oidc-provider compares a client's secret with the one in its metadata; an application's is the stored hash (and
 * its previous one's while its grace lasts, by oidc-provider's clock), as is a configured one outside ASCII. Every
 * hash is compared in constant time, all of them whatever the first answers.
 */
export function compareHashedSecrets(provider: Provider): void {
  const prototype = provider.Client.prototype as unknown as { clientSecret?: string; compareClientSecret(actual: string): boolean | Promise<boolean> }
  const compare = prototype.compareClientSecret
  prototype.compareClientSecret = function (this: { clientSecret?: string }, actual: string) {
    const stored = this.clientSecret
    if (typeof stored !== 'string' || !stored.startsWith(HASHED)) return compare.call(this, actual)
    const given = Buffer.from(hashClientSecret(actual), 'hex')
    let matched = false
    for (const secret of stored.slice(HASHED.length).split(',')) {
      const [hash, until] = secret.split('@')
      const expected = Buffer.from(hash!, 'hex')
      const same = expected.length === given.length && timingSafeEqual(expected, given)
      matched = (same && (until === undefined || Number(until) > providerNow())) || matched
    }
    return matched
  }
}
