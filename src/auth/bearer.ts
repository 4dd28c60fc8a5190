import type { RequestContext } from '../context.ts'
import type { GatewayRequest } from '../http/gateway-request.ts'

/**
 * `Authorization: Bearer <b64token>` (RFC 6750 §2.1), read once per request for both authenticators that take bearer
 * values: personal tokens and OIDC access tokens. An access token's header is a kilobyte or more, and scanning it is
 * a noticeable part of a proxied request's cost, so one pass tells both apart: a JWT (RFC 7519: three base64url parts,
 * the first alternative) or any other b64token.
 */
const BEARER = /^bearer +(?:([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)|([A-Za-z0-9\-._~+/]+=*)) *$/i
/** Longer headers are not read at all: no token of any issuer here comes near it. */
const MAX_HEADER = 16 * 1024

export interface BearerValue {
  readonly value: string
  /** Shaped as a JWT: the OIDC access tokens' authenticator's, never a personal token. */
  readonly jwt: boolean
}

/**
 * The bearer value, or null when the header is no well-formed bearer header of at most MAX_HEADER characters. Kept in
 * the request's context, so the second authenticator to ask does not scan again.
 */
export function bearerValue(request: GatewayRequest, context: RequestContext): BearerValue | null {
  if (context.bearer === undefined) context.bearer = parseBearer(request.headers.authorization)
  return context.bearer
}

function parseBearer(header: string | undefined): BearerValue | null {
  const match = header && header.length <= MAX_HEADER ? BEARER.exec(header) : null
  if (!match) return null
  return match[1] !== undefined ? { value: match[1], jwt: true } : { value: match[2]!, jwt: false }
}
