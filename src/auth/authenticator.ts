import type { GatewayRequest } from '../http/gateway-request.ts'
import type { AuthMethod } from '../config/schema.ts'
import type { RequestContext } from '../context.ts'
import type { AccountDisabled } from '../errors.ts'
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
  authenticate(request: GatewayRequest, context: RequestContext): Promise<Credential | NotMine>
  /**
   * The account behind a credential it vouched for is disabled or gone: forget or end what it remembers of it, and
   * add to the refusal what the client must be told (a cookie to delete).
   */
  accountRefused?(credential: Credential, refusal: AccountDisabled): Promise<void>
}
