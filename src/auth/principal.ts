import type { AuthMethod } from '../config/schema.ts'
import type { User } from '../store/users.ts'

/** Who a request is from, once a credential checked out. */
export interface Principal {
  readonly user: User
  readonly method: AuthMethod
  /** OAuth2 token scope; `read` limits the request to safe methods. */
  readonly scope?: 'read' | 'write'
  /** The server-side session (its stored id) when the method is `session`. */
  readonly sessionId?: string
  /** The personal token's id when the method is `token`. */
  readonly tokenId?: number
  /** When the bearer credential (a personal token, an OIDC access token) expires, epoch ms. */
  readonly expiresAt?: number
}
