import type { RequestContext } from '../context.ts'
import type { GatewayRequest } from '../http/gateway-request.ts'
import { InvalidToken, MalformedToken, TokenChecksumMismatch, TokenExpired, type Unauthenticated } from '../errors.ts'
import { NOT_MINE, type Authenticator, type NotMine } from './authenticator.ts'
import { bearerValue } from './bearer.ts'
import type { PersonalTokens } from './personal-tokens.ts'
import type { Credential } from './principal.ts'
import { TOKEN_PREFIX, tokenShapeProblem } from './token-format.ts'

/**
 * Personal OAuth 2 tokens sent as `Authorization: Bearer gatehouse_pat_...`. Bearer values without the
 * Gatehouse prefix are not this authenticator's: OpenID Connect access tokens have their own.
 * Checks, in order: the header's syntax, the token's shape and checksum (no lookup for a mistyped token),
 * that it exists (memory, then the store) and its expiry; that its owner is active is the pipeline's check. It
 * does not check the
 * scope against the method: src/gateway/policy.ts does, for the gateway API and services alike.
 */
export class TokenAuthenticator implements Authenticator {
  readonly id = 'token' as const
  readonly reads = 'authorization' as const
  readonly #tokens: PersonalTokens

  constructor(tokens: PersonalTokens) {
    this.#tokens = tokens
  }

  async authenticate(request: GatewayRequest, context: RequestContext): Promise<Credential | NotMine> {
    const header = request.headers.authorization
    if (!header || !/^bearer(\s|$)/i.test(header)) return NOT_MINE
    // No shorter limit of its own than bearerValue's: an OIDC access token carrying many groups is longer than any
    // personal token, and must reach its own authenticator rather than be refused as a malformed personal token.
    const bearer = bearerValue(request, context)
    if (!bearer) throw withBearerError(new MalformedToken('Invalid bearer header: expected "Authorization: Bearer <token>".'))
    const { value } = bearer
    if (!value.startsWith(TOKEN_PREFIX)) return NOT_MINE
    const problem = tokenShapeProblem(value)
    if (problem === 'malformed') throw withBearerError(new MalformedToken('Malformed token: it is truncated or contains characters a Gatehouse token never has.'))
    if (problem === 'checksum') throw withBearerError(new TokenChecksumMismatch())

    const now = Date.now()
    const token = await this.#tokens.find(value)
    if (!token) throw withBearerError(new InvalidToken())
    if (token.expires <= now) throw withBearerError(new TokenExpired())
    this.#tokens.recordUse(token, now)
    return { userId: token.userId, method: 'token', scope: token.scope, tokenId: token.id, expiresAt: token.expires, issuedAt: token.created }
  }

  async issuedBeforeAccount(): Promise<Unauthenticated> {
    return withBearerError(new InvalidToken('Invalid token: it was issued before its account was disabled or its tokens revoked.'))
  }
}

/**
 * Adds the RFC 6750 §3 challenge, so OAuth clients see `error="invalid_token"`. Its error_description holds only the
 * printable ASCII §3 allows, without `"` and `\`: a message naming configured values (the gateway API's audiences) may
 * hold others, and one beyond Latin-1 made Node refuse the header, the refusal then Fastify's own 401 without its code.
 * The JSON body keeps the message whole.
 */
export function withBearerError(error: Unauthenticated): Unauthenticated {
  error.headers['www-authenticate'] = [`Bearer realm="Gatehouse", error="invalid_token", error_description="${error.message.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '')}"`]
  return error
}
