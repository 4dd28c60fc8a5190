/**
 * How long after it was issued a client's JWT assertion (client-secret-jwt, client-jwt) may authenticate it, and
 * how far ahead its expiry may lie without an `iat`: Keycloak's default for a client's "max expiration" of its
 * signed JWTs, with its clock skew (AbstractBaseJWTValidator `validateTokenActive`). An assertion is for one
 * request now, not a credential to keep: one with a year's `exp` would otherwise stay usable for a year, and its
 * `jti` remembered that long.
 */
export const CLIENT_ASSERTION_MAX_SECONDS = 60
export const CLIENT_ASSERTION_CLOCK_SKEW_SECONDS = 15

/** Why a client assertion's times refuse it (Keycloak's words), or undefined; `now` in epoch seconds. */
export function clientAssertionTimeProblem(claims: { exp?: unknown; iat?: unknown }, now: number): string | undefined {
  const exp = Number(claims.exp)
  if (claims.iat === undefined) {
    return exp - now > CLIENT_ASSERTION_MAX_SECONDS ? 'Token expiration is too far in the future and iat claim not present in token' : undefined
  }
  const iat = Number(claims.iat)
  if (!Number.isFinite(iat)) return 'Token iat claim is not a number'
  if (iat - CLIENT_ASSERTION_CLOCK_SKEW_SECONDS > now) return 'Token was issued in the future'
  if (now > iat + CLIENT_ASSERTION_MAX_SECONDS) return 'Token was issued too far in the past to be used now'
  return undefined
}
