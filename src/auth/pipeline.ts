import type { GatewayRequest } from '../http/gateway-request.ts'
import type { AuthMethod } from '../config/schema.ts'
import type { Accounts } from '../directory/accounts.ts'
import { AccountDisabled, CredentialsNotAccepted, DatabaseUnavailable, GatehouseError, InvalidToken, MalformedCredentials, withChallenges } from '../errors.ts'
import type { EventBus } from '../store/event-bus.ts'
import { issuedBefore } from '../store/users.ts'
import { NOT_MINE, type Authenticator, type NotMine } from './authenticator.ts'
import type { Credential, Principal } from './principal.ts'
import { SESSION_COOKIE } from './session.ts'
import { TOKEN_PREFIX } from './token-format.ts'
import { withBearerError } from './token.ts'
import { challengesFor } from '../http/challenges.ts'

/**
 * Runs the authenticators a route accepts, in a fixed order (explicit Authorization header first, the
 * ambient session cookie last), and stops at the first that claims the request. A place that accepts `oidc`
 * also takes the browser's gateway session: a browser cannot send a bearer token, and its sign-in at the realm
 * and at the gateway is one (src/oidc/interactions.ts), so the realm login such a place sends it to brings it
 * back with that session. A place that accepts `token` also asks the OIDC authenticator, which takes there only the
 * tokens of the platform's OAuth2 applications (its policy's `applicationsOnly`), as the platform takes them with
 * personal tokens.
 * Returns undefined when the request carries no credential: the caller decides between anonymous access,
 * 401 and a redirect, in one place (src/gateway/authorize.ts).
 * A credential is accepted only while this process can learn of revocations: once it has not been able to
 * read the event log for `auth.max_stale_seconds` (the database unreachable), it answers 503 instead of trusting
 * what it remembers. Requests without credentials are not affected: there is nothing to revoke.
 */
export class AuthPipeline {
  readonly #authenticators: Authenticator[] = []
  readonly #bus: EventBus
  readonly #accounts: Accounts
  readonly #identityStamp: (() => number) | undefined
  readonly #cookiesSecure: (request: GatewayRequest) => boolean

  /**
   * `cookiesSecure`: whether the login set its cookies Secure for this request (CsrfPolicy `isSecure`), so a clearing
   * cookie is too. `identityStamp`: taken before each account read and carried on the principal (Principal `identityStamp`).
   */
  constructor(bus: EventBus, accounts: Accounts, cookiesSecure: (request: GatewayRequest) => boolean, identityStamp?: () => number) {
    this.#bus = bus
    this.#accounts = accounts
    this.#cookiesSecure = cookiesSecure
    this.#identityStamp = identityStamp
  }

  /** Adds an authenticator; those that read the Authorization header go before the session cookie. */
  add(authenticator: Authenticator): void {
    this.#authenticators.push(authenticator)
    this.#authenticators.sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id))
  }

  async authenticate(request: GatewayRequest, accepts: readonly AuthMethod[]): Promise<Principal | undefined> {
    try {
      return await this.#run(request, accepts)
    } catch (error) {
      throw withChallenges(this.#cookiesSecure(request) ? clearedSecure(error) : error, challengesFor(accepts))
    }
  }

  async #run(request: GatewayRequest, accepts: readonly AuthMethod[]): Promise<Principal | undefined> {
    // Revocations made by other processes must be seen before any cached credential is trusted.
    await this.#bus.freshen()
    const header = request.headers.authorization
    if (header && repeatsAuthorization(request.raw.rawHeaders)) {
      throw new MalformedCredentials('The request has more than one Authorization header.')
    }
    for (const authenticator of this.#authenticators) {
      if (!accepts.includes(authenticator.id) && !(authenticator.id === 'session' && accepts.includes('oidc')) && !(authenticator.id === 'oidc' && accepts.includes('token'))) continue
      // It would say NOT_MINE, but only after an await: a session cookie's request would pay one per header reader.
      if (authenticator.reads === 'authorization' && !header) continue
      // Awaited here, not in a helper of its own: a request passes several authenticators, and each await costs.
      let credential: Credential | NotMine
      try {
        credential = await authenticator.authenticate(request, request.gatehouse)
      } catch (error) {
        // The authenticator that claimed the credential is noted for the log, whether it checked out or not.
        request.gatehouse.authenticator = authenticator.id
        throw error
      }
      if (credential === NOT_MINE) continue
      request.gatehouse.authenticator = authenticator.id
      if (!this.#bus.fresh()) throw new DatabaseUnavailable('The database has not answered for too long to know whether these credentials were revoked; try again shortly.')
      return this.#activeAccount(authenticator, credential)
    }
    if (header) {
      const scheme = header.split(' ', 1)[0]!.slice(0, 20)
      if (scheme.toLowerCase() === 'bearer' && accepts.includes('token')) {
        throw withBearerError(new InvalidToken(`This bearer token is not one this service accepts (Gatehouse tokens start with "${TOKEN_PREFIX}").`))
      }
      // A header of one word is a credential without a scheme (an API key, a password): it is not repeated back.
      const kind = header.includes(' ') ? `"${scheme}" credentials` : 'credentials without a scheme'
      throw new CredentialsNotAccepted(`This service does not accept ${kind}; it accepts: ${accepts.join(', ')}.`)
    }
    return undefined
  }

  /**
   * The one check, for every kind of credential, that the account behind it still exists and is active, and that the
   * credential was not issued before the account's not-before.
   */
  async #activeAccount(authenticator: Authenticator, credential: Credential): Promise<Principal> {
    const identityStamp = this.#identityStamp?.()
    const user = await this.#accounts.get(credential.userId)
    if (user?.isActive) {
      if (credential.issuedAt !== undefined && issuedBefore(user, credential.issuedAt, credential.method === 'token' ? 'tokens' : 'sessions')) {
        throw await authenticator.issuedBeforeAccount?.(credential) ?? new InvalidToken('The credential was issued before its account\'s not-before.')
      }
      return { ...credential, user, identityStamp }
    }
    const refusal = new AccountDisabled()
    await authenticator.accountRefused?.(credential, refusal)
    throw refusal
  }
}

/**
 * A refused session cookie is deleted from the browser (src/auth/session.ts) by a cookie with the attributes of the
 * one login set, which is Secure on HTTPS as the client sees it (TLS here, a trusted proxy saying https, or an https
 * public URL): the deleting one is too.
 */
function clearedSecure(error: unknown): unknown {
  if (!(error instanceof GatehouseError)) return error
  const clearing = error.headers['set-cookie']
  if (typeof clearing === 'string' && clearing.startsWith(`${SESSION_COOKIE}=;`) && !SECURE.test(clearing)) error.headers['set-cookie'] = `${clearing}; Secure`
  return error
}

const SECURE = /;\s*Secure\s*(;|$)/i

/**
 * Node keeps the first of several Authorization fields and drops the others, while a proxy in front may act on
 * another: which credential the request carries would then depend on who reads it. Authorization is a singleton
 * (RFC 9110 §11.6.2), so a request with more than one is refused rather than judged by either.
 */
function repeatsAuthorization(raw: readonly string[]): boolean {
  let seen = 0
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 13 && raw[i]!.toLowerCase() === 'authorization' && ++seen > 1) return true
  }
  return false
}

const order: AuthMethod[] = ['basic', 'token', 'oidc', 'session']
