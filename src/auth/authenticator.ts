import type { FastifyRequest } from 'fastify'
import type { AuthMethod } from '../config/schema.ts'
import type { RequestContext } from '../context.ts'
import type { Principal } from './principal.ts'

/** Returned by an authenticator when the request carries no credential of its kind, so the next one is tried. */
export const NOT_MINE: unique symbol = Symbol('not mine')
export type NotMine = typeof NOT_MINE

/**
 * One kind of credential. `authenticate` returns the principal, or NOT_MINE, or throws a GatehouseError
 * when the credential is its kind but wrong (expired, revoked, malformed): a wrong credential never falls
 * through to anonymous access.
 */
export interface Authenticator {
  readonly id: AuthMethod
  authenticate(request: FastifyRequest, context: RequestContext): Promise<Principal | NotMine>
}
