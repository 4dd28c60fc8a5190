import type { FastifyRequest } from 'fastify'
import type { AuthMethod } from '../config/schema.ts'
import { DatabaseUnavailable, GatehouseError, NotAuthenticated, withChallenges } from '../errors.ts'
import { challengesFor } from '../gateway/policy.ts'
import type { EventBus } from '../store/event-bus.ts'
import { NOT_MINE, type Authenticator } from './authenticator.ts'
import type { Principal } from './principal.ts'
import { TOKEN_PREFIX } from './token-format.ts'

/**
 * Runs the authenticators a route accepts, in a fixed order (explicit Authorization header first, the
 * ambient session cookie last), and stops at the first that claims the request. A place that accepts `oidc`
 * also takes the browser's gateway session: a browser cannot send a bearer token, and its sign-in at the realm
 * and at the gateway is one (src/oidc/interactions.ts), so the realm login such a place sends it to brings it
 * back with that session.
 * Returns undefined when the request carries no credential: the caller decides between anonymous access,
 * 401 and a redirect, in one place (src/gateway/policy.ts).
 * A credential is accepted only while this process can learn of revocations: once it has not been able to
 * read the event log for `auth.max_stale_seconds` (the database unreachable), it answers 503 instead of trusting
 * what it remembers. Requests without credentials are not affected: there is nothing to revoke.
 */
export class AuthPipeline {
  readonly #authenticators: Authenticator[] = []
  readonly #bus: EventBus
  /** Told every decision an authenticator made (metrics count them); `code` is the refusal's stable code. */
  onDecision: (method: AuthMethod, code: string | undefined) => void = () => {}

  constructor(bus: EventBus) {
    this.#bus = bus
  }

  /** Adds an authenticator; those that read the Authorization header go before the session cookie. */
  add(authenticator: Authenticator): void {
    this.#authenticators.push(authenticator)
    this.#authenticators.sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id))
  }

  async authenticate(request: FastifyRequest, accepts: readonly AuthMethod[]): Promise<Principal | undefined> {
    try {
      return await this.#run(request, accepts)
    } catch (error) {
      throw withChallenges(error, challengesFor(accepts))
    }
  }

  async #run(request: FastifyRequest, accepts: readonly AuthMethod[]): Promise<Principal | undefined> {
    // Revocations made by other processes must be seen before any cached credential is trusted.
    await this.#bus.freshen()
    for (const authenticator of this.#authenticators) {
      if (!accepts.includes(authenticator.id) && !(authenticator.id === 'session' && accepts.includes('oidc'))) continue
      let principal: Principal | typeof NOT_MINE
      try {
        principal = await authenticator.authenticate(request, request.gatehouse)
      } catch (error) {
        this.onDecision(authenticator.id, error instanceof GatehouseError ? error.code : 'internal_error')
        throw error
      }
      if (principal === NOT_MINE) continue
      if (!this.#bus.fresh()) {
        this.onDecision(authenticator.id, 'database_unavailable')
        throw new DatabaseUnavailable('The database has not answered for too long to know whether these credentials were revoked; try again shortly.')
      }
      this.onDecision(authenticator.id, undefined)
      return principal
    }
    const header = request.headers.authorization
    if (header) {
      const scheme = header.split(' ', 1)[0]!.slice(0, 20)
      if (scheme.toLowerCase() === 'bearer' && accepts.includes('token')) {
        throw new NotAuthenticated(`This bearer token is not one this service accepts (Gatehouse tokens start with "${TOKEN_PREFIX}").`, 'invalid_token')
      }
      throw new NotAuthenticated(`This service does not accept "${scheme}" credentials; it accepts: ${accepts.join(', ')}.`, 'credentials_not_accepted')
    }
    return undefined
  }
}

const order: AuthMethod[] = ['basic', 'token', 'oidc', 'session']
