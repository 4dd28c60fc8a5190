import { CSRF_COOKIE } from '../auth/csrf.ts'
import { SESSION_COOKIE } from '../auth/session.ts'
import { FLOW_COOKIE, LOGOUT_FLOW_COOKIE, SECURE_FLOW_COOKIE, SECURE_LOGOUT_FLOW_COOKIE } from '../directory/sso.ts'
import { SESSION_STATE_COOKIE } from '../oidc/keycloak-format.ts'
import { LOGIN_RESTARTED_COOKIE, REALM_INTERACTION_COOKIE, REALM_RESUME_COOKIE, REALM_SESSION_COOKIE } from '../oidc/provider-paths.ts'

/**
 * The cookies that are the gateway's own: its session and CSRF token, the SSO sign-in under way, the realms'
 * browser sessions and logins under way. They are credentials for the gateway, so no service ever receives them, and
 * no service may set them: a service that could would plant a session of its choosing in the browser (session
 * fixation), overwrite the CSRF token, or have the realm's login page say a login timed out that did not.
 * oidc-provider signs its cookies with a companion `<name>.sig`, which is covered too.
 */
export const GATEWAY_COOKIE_NAMES = [
  SESSION_COOKIE, CSRF_COOKIE, FLOW_COOKIE, SECURE_FLOW_COOKIE, LOGOUT_FLOW_COOKIE, SECURE_LOGOUT_FLOW_COOKIE, SESSION_STATE_COOKIE, REALM_SESSION_COOKIE, REALM_INTERACTION_COOKIE, REALM_RESUME_COOKIE,
  LOGIN_RESTARTED_COOKIE,
] as const
const GATEWAY_COOKIES: ReadonlySet<string> = new Set(GATEWAY_COOKIE_NAMES.flatMap((name) => [name, `${name}.sig`, `${name}.legacy`, `${name}.legacy.sig`]))

/**
 * A Cookie header without the gateway's cookies, nor the empty pairs stray separators leave; undefined when nothing
 * else is left.
 */
export function withoutGatewayCookies(header: string): string | undefined {
  const kept = header.split(/;\s*/).filter((pair) => pair.trim() !== '' && !GATEWAY_COOKIES.has(cookieName(pair)))
  return kept.length ? kept.join('; ') : undefined
}

/** An upstream's Set-Cookie values without those that would set one of the gateway's cookies; undefined when none is left. */
export function withoutGatewaySetCookies(values: string | string[]): string[] | undefined {
  const kept = (Array.isArray(values) ? values : [values]).filter((value) => !GATEWAY_COOKIES.has(setCookieName(value.split(';', 1)[0]!)))
  return kept.length ? kept : undefined
}

/**
 * The name a Set-Cookie's pair arrives under in later Cookie headers. A browser keeps `=csrftoken=x` as a cookie
 * without a name, and sends it as its value alone, `csrftoken=x`: that is the name it sets.
 */
function setCookieName(pair: string): string {
  const name = cookieName(pair)
  return name === '' && pair.includes('=') ? cookieName(pair.slice(pair.indexOf('=') + 1)) : name
}

/** The name as a browser reads it (RFC 6265 §5.2): up to the first `=`, without surrounding whitespace. */
function cookieName(pair: string): string {
  const equals = pair.indexOf('=')
  return (equals < 0 ? pair : pair.slice(0, equals)).trim()
}
