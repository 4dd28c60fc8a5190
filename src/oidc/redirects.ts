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

/** Whether `candidate` is allowed by one of `patterns`: equal to one, or under one that ends in `*`. */
export function redirectMatches(candidate: string, patterns: readonly string[]): boolean {
  if (patterns.includes(candidate)) return true
  const wildcards = patterns.filter((p) => p.endsWith('*'))
  if (!wildcards.length) return false
  // Compared in the form a browser will follow: host lower-cased, dot segments resolved, so `..` cannot climb
  // out of a pattern's path. Credentials and fragments never match.
  const url = URL.parse(candidate)
  if (!url || url.username || url.password || url.hash || !/^https?:$/.test(url.protocol)) return false
  const normalized = url.href
  return wildcards.some((pattern) => {
    const prefix = pattern.slice(0, -1)
    // Keycloak also takes `https://app/*` to allow `https://app` itself.
    return normalized.startsWith(prefix) || normalized === prefix.replace(/\/$/, '') || `${normalized}/` === prefix
  })
}

/**
 * oidc-provider compares redirect URIs exactly, by design. Its documented way to widen that ("redirect_uri
 * wildcards" recipe) is to replace the two checks on this provider's Client class; this does so with Keycloak's
 * trailing-`*` rule only.
 */
export function allowWildcardRedirects(provider: Provider): void {
  const prototype = provider.Client.prototype as unknown as {
    redirectUris: string[]
    postLogoutRedirectUris: string[]
    redirectUriAllowed(uri: string): boolean
    postLogoutRedirectUriAllowed(uri: string): boolean
  }
  prototype.redirectUriAllowed = function redirectUriAllowed(uri: string): boolean {
    return redirectMatches(uri, this.redirectUris)
  }
  prototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(uri: string): boolean {
    return redirectMatches(uri, this.postLogoutRedirectUris ?? [])
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
