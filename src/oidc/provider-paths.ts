/**
 * The names a realm's paths, cookies and grants go by, for the code that routes and reads them at every request
 * (src/oidc/routes.ts, src/oidc/token-lane.ts, src/gateway/gateway-cookies.ts) without loading what builds a realm's
 * oidc-provider instance (src/oidc/provider.ts), which waits for a realm's first request.
 */

/** Keycloak's endpoint paths, relative to the issuer `<public URL>/realms/<realm>`. */
export const KEYCLOAK_ROUTES = {
  authorization: '/protocol/openid-connect/auth',
  token: '/protocol/openid-connect/token',
  jwks: '/protocol/openid-connect/certs',
  userinfo: '/protocol/openid-connect/userinfo',
  end_session: '/protocol/openid-connect/logout',
  introspection: '/protocol/openid-connect/token/introspect',
  revocation: '/protocol/openid-connect/revoke',
  pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
  device_authorization: '/protocol/openid-connect/auth/device',
  code_verification: '/device',
} as const

/**
 * The methods each fixed endpoint path answers (oidc-provider's routes, plus CORS preflight where it answers
 * one): any other method gets 405 with `Allow`, as Keycloak answers, instead of oidc-provider's 404.
 */
export const ENDPOINT_METHODS: ReadonlyMap<string, readonly string[]> = new Map([
  ['/.well-known/openid-configuration', ['GET', 'HEAD', 'OPTIONS']],
  ['/.well-known/oauth-authorization-server', ['GET', 'HEAD', 'OPTIONS']],
  [KEYCLOAK_ROUTES.authorization, ['GET', 'HEAD', 'POST']],
  [KEYCLOAK_ROUTES.token, ['POST', 'OPTIONS']],
  [KEYCLOAK_ROUTES.jwks, ['GET', 'HEAD', 'OPTIONS']],
  [KEYCLOAK_ROUTES.userinfo, ['GET', 'HEAD', 'POST', 'OPTIONS']],
  [KEYCLOAK_ROUTES.end_session, ['GET', 'HEAD', 'POST']],
  [KEYCLOAK_ROUTES.introspection, ['POST', 'OPTIONS']],
  [KEYCLOAK_ROUTES.revocation, ['POST', 'OPTIONS']],
  [KEYCLOAK_ROUTES.pushed_authorization_request, ['POST', 'OPTIONS']],
  [KEYCLOAK_ROUTES.device_authorization, ['POST', 'OPTIONS']],
  [KEYCLOAK_ROUTES.code_verification, ['GET', 'HEAD', 'POST']],
])

const ENDPOINT_PATHS = [...ENDPOINT_METHODS.keys()]

/**
 * The spelling of a realm path (below `/realms/<realm>`) that the gateway judges and oidc-provider serves, or
 * undefined for none. oidc-provider's router takes its paths in any case and with a trailing slash
 * (lib/helpers/router.js), where the gateway's checks (throttles, allowed methods, tokens swapped for their ids) are
 * made on the exact spelling: another one would reach oidc-provider unchecked. So an endpoint's path with a trailing
 * slash is that path, and one in another case (`/protocol/openid-connect/TOKEN`, `.../AUTH/<uid>`) is no path, as
 * Keycloak's own paths are matched in their case only.
 */
export function canonicalRealmPath(rest: string): string | undefined {
  const path = rest.length > 1 && rest.endsWith('/') && ENDPOINT_METHODS.has(rest.slice(0, -1)) ? rest.slice(0, -1) : rest
  const lower = path.toLowerCase()
  if (lower === path) return path
  for (const endpoint of ENDPOINT_PATHS) {
    if ((lower === endpoint || lower.startsWith(`${endpoint}/`)) && path !== endpoint && !path.startsWith(`${endpoint}/`)) return undefined
  }
  return path
}

/** Where the login step of the authorization code flow happens (src/oidc/interactions.ts). */
export const LOGIN_ACTIONS = '/login-actions/'
/** The realm's browser session (oidc-provider's Session), only ever sent to the realm's own paths. */
export const REALM_SESSION_COOKIE = 'gatehouse_oidc_session'
/** oidc-provider's short-lived cookies of a login under way. */
export const REALM_INTERACTION_COOKIE = 'gatehouse_oidc_interaction'
export const REALM_RESUME_COOKIE = 'gatehouse_oidc_resume'
/**
 * Says, for a minute, that the next login page at the realm is a restarted login (Keycloak's `loginTimeout` message,
 * src/oidc/interactions.ts).
 */
export const LOGIN_RESTARTED_COOKIE = 'gatehouse_login_restarted'
/** Where a browser the gateway sent to log in comes back to (src/oidc/routes.ts). */
export const GATEWAY_CALLBACK = '/gatehouse/callback'

/** RFC 8628 §3.4. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'

/** The realm's resource indicator: its access tokens' resource server, named in the grants of its sign-ins. */
export function realmResource(realmName: string): string {
  return `urn:gatehouse:realm:${realmName}`
}
