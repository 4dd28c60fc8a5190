import type Provider from 'oidc-provider'
import type { RealmClientConfig } from '../config/realms.ts'

/**
 * Keycloak's rules for where a client's browser may be sent and which pages may call the realm, which
 * oidc-provider does not have: redirect URIs ending in `*` (RedirectUtils: a prefix match), `+` among the post
 * logout redirect URIs (the redirect URIs themselves), and "Web origins" (`+`, `*` or origins, WebOriginsUtils).
 */

/** The client's redirect URIs as oidc-provider registers them: `+` expanded; wildcard patterns kept as written. */
export function clientRedirectUris(client: RealmClientConfig): { redirectUris: string[]; postLogoutRedirectUris: string[] } {
  const postLogout = client.post_logout_redirect_uris.flatMap((uri) => uri === '+' ? client.redirect_uris : [uri])
  return { redirectUris: [...client.redirect_uris], postLogoutRedirectUris: [...new Set(postLogout)] }
}

/**
 * Whether `candidate` is allowed by one of `patterns`: equal to one, or under one that ends in `*`; or, for a native
 * application's loopback redirect (`http://localhost` or `http://127.0.0.1`), so once its port is left out, as
 * Keycloak's RedirectUtils allows it (RFC 8252 §7.3: the application listens on a port the system gives it).
 */
export function redirectMatches(candidate: string, patterns: readonly string[]): boolean {
  if (matchesPatterns(candidate, patterns)) return true
  const portless = loopbackWithoutPort(candidate)
  return portless !== undefined && matchesPatterns(portless, patterns)
}

/** Keycloak's loopback hosts for native applications (`Constants.INSTALLED_APP_URL`, `INSTALLED_APP_LOOPBACK`). */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1'])

/**
 * A loopback redirect URI with its port left out, read as a browser reads it (Keycloak compares the text, so that
 * `http://localhost:1234@evil.example/` would pass as `http://localhost/`); undefined for any other URI. The default
 * port written out (`http://127.0.0.1:80/cb`) is left out too: URL drops it as it parses, and Keycloak strips any port.
 */
function loopbackWithoutPort(candidate: string): string | undefined {
  const url = URL.parse(candidate)
  if (!url || url.protocol !== 'http:' || !LOOPBACK_HOSTS.has(url.hostname) || url.username || url.password || url.hash) return undefined
  url.port = ''
  return url.href
}

function matchesPatterns(candidate: string, patterns: readonly string[]): boolean {
  if (patterns.includes(candidate)) return true
  const wildcards = patterns.filter(isWildcard)
  if (!wildcards.length) return false
  // Compared in the form a browser will follow: host lower-cased, dot segments resolved, so `..` cannot climb
  // out of a pattern's path. Credentials never match. The query and fragment are left out, as Keycloak's
  // RedirectUtils matches a wildcard on the URI without them: keycloak-js sends the page's own address,
  // `https://app/app?tab=2` or `https://app/#/route` in an application routing by fragment, and neither can take
  // the browser to another host or path.
  const url = URL.parse(candidate)
  if (!url || url.username || url.password || !/^https?:$/.test(url.protocol)) return false
  url.hash = ''
  url.search = ''
  // And in the form a server that decodes the path before resolving it serves (`/app/..%2fadmin` is its /admin).
  const decoded = decodedForm(url)
  if (decoded === undefined) return false
  return wildcards.some((pattern) => {
    const prefix = pattern.slice(0, -1)
    const prefixUrl = URL.parse(prefix)
    const decodedPrefix = prefixUrl ? decodedForm(prefixUrl) : undefined
    return isUnder(url.href, prefix) && decodedPrefix !== undefined && isUnder(decoded, decodedPrefix)
  })
}

/**
 * A pattern ending in `*` without a query: Keycloak's RedirectUtils compares one with a `?` as written (the
 * configuration refuses those, src/config/realms.ts).
 */
function isWildcard(pattern: string): boolean {
  return pattern.endsWith('*') && !pattern.includes('?')
}

/** `url` at or under the prefix of a wildcard pattern; Keycloak also takes `https://app/*` to allow `https://app` itself. */
function isUnder(url: string, prefix: string): boolean {
  return url.startsWith(prefix) || url === prefix.replace(/\/$/, '') || `${url}/` === prefix
}

/** Keycloak's RedirectUtils decodes a path at most this many times; one still encoded after that is refused. */
const MAX_PATH_DECODINGS = 5

/**
 * The URL with its path percent-decoded until nothing is left to decode, then resolved again (dot segments,
 * `\`), as Keycloak's RedirectUtils decodes and normalizes a redirect URI before matching it. The query is kept as
 * it is. Undefined for a path that is not valid percent-encoding or still encoded after five decodings.
 */
function decodedForm(url: URL): string | undefined {
  let path = url.pathname
  for (let decodings = 0; decodings < MAX_PATH_DECODINGS; decodings++) {
    let decoded: string
    try {
      decoded = decodeURIComponent(path)
    } catch {
      return undefined
    }
    if (decoded === path) return URL.parse(url.origin + path.replace(/[?#]/g, encodeURIComponent) + url.search)?.href
    path = decoded
  }
  return undefined
}

/**
 * oidc-provider compares redirect URIs exactly, by design. Its documented way to widen that ("redirect_uri
 * wildcards" recipe) is to replace the two checks on this provider's Client class; this does so with Keycloak's
 * trailing-`*` rule only, for the clients of the configuration (`hasWildcards`). The platform's OAuth2 applications
 * keep exact comparison, as django-oauth-toolkit compares their redirect URIs.
 */
export function allowWildcardRedirects(provider: Provider, hasWildcards: (clientId: string) => boolean): void {
  const prototype = provider.Client.prototype as unknown as {
    clientId: string
    redirectUris: string[]
    postLogoutRedirectUris: string[]
    redirectUriAllowed(uri: string): boolean
    postLogoutRedirectUriAllowed(uri: string): boolean
  }
  const allowed = (clientId: string, uri: string, patterns: readonly string[]) => hasWildcards(clientId) ? redirectMatches(uri, patterns) : patterns.includes(uri)
  prototype.redirectUriAllowed = function redirectUriAllowed(uri: string): boolean {
    return allowed(this.clientId, uri, this.redirectUris)
  }
  prototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(uri: string): boolean {
    return allowed(this.clientId, uri, this.postLogoutRedirectUris ?? [])
  }
}

/** The origins a client's "Web origins" allow: `+` stands for the origins of its redirect URIs. */
export function webOrigins(client: RealmClientConfig): Set<string> {
  const origins = new Set<string>()
  for (const entry of client.web_origins) {
    if (entry !== '+') {
      origins.add(entry)
      continue
    }
    for (const uri of client.redirect_uris) {
      const origin = URL.parse(uri.endsWith('*') ? uri.slice(0, -1) : uri)?.origin
      if (origin && origin !== 'null') origins.add(origin)
    }
  }
  return origins
}

export function webOriginAllowed(client: RealmClientConfig | undefined, origin: string | undefined): boolean {
  if (!client || !origin) return false
  const origins = webOrigins(client)
  return origins.has('*') || origins.has(origin)
}
