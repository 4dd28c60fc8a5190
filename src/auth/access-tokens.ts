/**
 * What the OIDC bearer authenticator (src/auth/oidc-bearer.ts) needs from whoever issues access tokens, declared
 * here so that authentication does not depend on the OpenID Connect provider: src/oidc/realm.ts implements it.
 */

/** An access token an issuer checked: signature, issuer, expiry, and that its record still exists. */
export interface VerifiedAccessToken {
  userId: number
  realm: string
  jti: string
  grantId: string | null
  /** `aud` and `azp` together: what audience checks compare with. */
  audiences: readonly string[]
  clientId: string
  /**
   * Issued to one of the platform's OAuth2 applications (`/api/gateway/v1/applications/`), not to a configured client:
   * the platform's own kind of token, which it takes wherever it takes personal tokens.
   */
  application: boolean
  scopes: ReadonlySet<string>
  expiresAt: number
  /** Its `iat` (whole seconds), for the account's not-before. */
  issuedAt: number
}

/** Why an access token was refused, in words for the person who sent it. */
export class AccessTokenRefused extends Error {
  /** The user of a token whose signature and claims held but whose record is gone: disabling an account ends its records. */
  readonly userId: number | undefined

  constructor(message: string, userId?: number) {
    super(message)
    this.userId = userId
  }
}

/** Which tokens a place accepts: from which realms, and for which audiences (`aud` or `azp`). */
export interface BearerPolicy {
  realms: ReadonlySet<string>
  audiences: ReadonlySet<string>
  /** The token's scope limits it to reading unless it has `write` (the gateway's own API, as personal tokens). */
  scoped: boolean
  /**
   * What the refusal of a token that names none of `audiences` says, where it can say more than a service's (the
   * gateway's own API: the setting, and what makes a realm client's tokens meant for it).
   */
  audienceRefusal?: string
  /**
   * Only the tokens of the platform's OAuth2 applications: a service that takes personal tokens (`token`) but not
   * `oidc` takes these too, as the platform has one kind of token for both (django-ansible-base's OAuth2 tokens).
   * Says, from the token as sent (before it is verified), whether it claims to be one: the applications realm's, issued
   * to a client the realm is not configured with. Any other bearer there is not the OIDC authenticator's to judge.
   */
  applicationsOnly?: (token: string) => boolean
}

export interface AccessTokenVerifier {
  /** The token's claims once it checks out; AccessTokenRefused when it does not. */
  verifyAccessToken(token: string, now: number): Promise<VerifiedAccessToken>
}

export interface AccessTokenIssuers {
  /** The issuer whose `iss` this is, able to verify its tokens. */
  byIssuer(issuer: string): AccessTokenVerifier | undefined
  /** What the places of this service expect of the tokens they accept (nothing passes where they take none). */
  policyFor(service: string | undefined): BearerPolicy
  /** The longest an access token of any issuer lives: how long a revocation must be remembered. */
  longestAccessTokenSeconds(): number
}
