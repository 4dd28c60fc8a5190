import type { GatewayRequest } from '../http/gateway-request.ts'
import type { AuthMethod } from '../config/schema.ts'
import type { RequestContext } from '../context.ts'
import type { AccountDisabled, Unauthenticated } from '../errors.ts'
import type { NotMine } from '../directory/password-source.ts'
import type { Credential } from './principal.ts'

/** Returned by an authenticator when the request carries no credential of its kind, so the next one is tried. */
export { NOT_MINE } from '../directory/password-source.ts'
export type { NotMine }

/**
 * One kind of credential. `authenticate` returns whose credential it is, or NOT_MINE, or throws a GatehouseError
 * when the credential is its kind but wrong (expired, revoked, malformed): a wrong credential never falls
 * through to anonymous access. Whether the account behind it is active is the pipeline's check, not theirs.
 */
export interface Authenticator {
  readonly id: AuthMethod
  /** Where its credential travels: a request without an Authorization header is not offered to those that read one. */
  readonly reads: 'authorization' | 'cookie'
  authenticate(request: GatewayRequest, context: RequestContext): Promise<Credential | NotMine>
  /**
   * The account behind a credential it vouched for is disabled or gone: forget or end what it remembers of it, and
   * add to the refusal what the client must be told (a cookie to delete).
   */
  accountRefused?(credential: Credential, refusal: AccountDisabled): Promise<void>
  /**
   * A credential it vouched for was issued before its account's not-before (src/store/users.ts `issuedBefore`):
   * end what remains of it, and answer the refusal the client is told, the one for a revoked credential of its kind.
   */
  issuedBeforeAccount?(credential: Credential): Promise<Unauthenticated>
}
