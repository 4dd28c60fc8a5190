import type { AuthMethod } from '../config/schema.ts'
import type { AccessTokenOrigin } from '../store/tokens.ts'
import type { User } from '../store/users.ts'

/** What an authenticator vouches for once a credential checked out: whose it is, before their account is looked at. */
export interface Credential {
  readonly userId: number
  readonly method: AuthMethod
  /** OAuth2 token scope; `read` limits the request to safe methods. */
  readonly scope?: 'read' | 'write'
  /** An OIDC access token's scopes, for access rules that name them (src/access/rules.ts). */
  readonly scopes?: ReadonlySet<string>
  /** The server-side session (its stored id) when the method is `session`. */
  readonly sessionId?: string
  /** The personal token's id when the method is `token`. */
  readonly tokenId?: number
  /** When the bearer credential (a personal token, an OIDC access token) expires, epoch ms. */
  readonly expiresAt?: number
  /**
   * When the credential was issued, epoch ms (an OIDC access token's `iat` as the last millisecond of its second):
   * one issued before the account's not-before is refused. Absent for basic credentials, checked as they come.
   */
  readonly issuedAt?: number
  /** For a session: whether the person proved who they are when it started (`ActiveSession.freshSignIn`). */
  readonly freshSignIn?: boolean
  /** The OIDC access token itself when the method is `oidc`: a personal token created with it ends with it. */
  readonly accessToken?: AccessTokenOrigin
}

/** Who a request is from: a credential that checked out, of an account that is active (src/auth/pipeline.ts). */
export interface Principal extends Credential {
  readonly user: User
  /**
   * The identity signer's cache stamp, taken before `user` was read (src/gateway/identity.ts `stamp`): a token signed
   * from an account that changed while it was read is used for this request and not kept for the next ones.
   */
  readonly identityStamp?: number
}
