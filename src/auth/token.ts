import type { FastifyRequest } from 'fastify'
import type { Accounts } from '../directory/accounts.ts'
import { InvalidCredentials, NotAuthenticated } from '../errors.ts'
import { NOT_MINE, type Authenticator, type NotMine } from './authenticator.ts'
import type { PersonalTokens } from './personal-tokens.ts'
import type { Principal } from './principal.ts'
import { TOKEN_PREFIX, tokenShapeProblem } from './token-format.ts'

/** `Authorization: Bearer <b64token>` (RFC 6750 §2.1). */
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i
const MAX_HEADER = 4096

/**
 * Personal OAuth 2 tokens sent as `Authorization: Bearer gatehouse_pat_...`. Bearer values without the
 * Gatehouse prefix are not this authenticator's: OpenID Connect access tokens have their own.
 * Checks, in order: the header's syntax, the token's shape and checksum (no lookup for a mistyped token),
 * that it exists (memory, then the store), its expiry, and that its owner is active. It does not check the
 * scope against the method: src/gateway/policy.ts does, for the gateway API and services alike.
 */
export class TokenAuthenticator implements Authenticator {
  readonly id = 'token' as const
  readonly #tokens: PersonalTokens
  readonly #accounts: Accounts

  constructor(tokens: PersonalTokens, accounts: Accounts) {
    this.#tokens = tokens
    this.#accounts = accounts
  }

  async authenticate(request: FastifyRequest): Promise<Principal | NotMine> {
    const header = request.headers.authorization
    if (!header || !/^bearer(\s|$)/i.test(header)) return NOT_MINE
    const match = header.length <= MAX_HEADER ? BEARER.exec(header) : null
    if (!match) throw invalidToken('Invalid bearer header: expected "Authorization: Bearer <token>".', 'malformed_token')
    const value = match[1]!
    if (!value.startsWith(TOKEN_PREFIX)) return NOT_MINE
    const problem = tokenShapeProblem(value)
    if (problem === 'malformed') throw invalidToken('Malformed token: it is truncated or contains characters a Gatehouse token never has.', 'malformed_token')
    if (problem === 'checksum') throw invalidToken('Malformed token: its checksum does not match (mistyped or damaged).', 'token_checksum_mismatch')

    const now = Date.now()
    const token = await this.#tokens.find(value)
    if (!token) throw invalidToken('Invalid token: it does not exist or was revoked.', 'invalid_token')
    if (token.expires <= now) throw invalidToken('Token has expired.', 'token_expired')
    const user = await this.#accounts.get(token.userId)
    if (!user || !user.isActive) throw new InvalidCredentials('User inactive or deleted.', 'account_disabled')
    this.#tokens.recordUse(token, now)
    return { user, method: 'token', scope: token.scope, tokenId: token.id, expiresAt: token.expires }
  }
}

/** 401 with the RFC 6750 §3 challenge, so OAuth clients see `error="invalid_token"`. */
function invalidToken(message: string, code: string): NotAuthenticated {
  return new NotAuthenticated(message, code, [`Bearer realm="Gatehouse", error="invalid_token", error_description="${message.replace(/["\\]/g, '')}"`])
}
