import { isWildcardOrigin } from '../config/urls.ts'
import type { GatewayRequest } from '../http/gateway-request.ts'
import type { IncomingHttpHeaders } from 'node:http'
import type { App } from '../app.ts'
import { publishedPath } from './policy.ts'
import type { Route } from './routes.ts'

/**
 * What nginx's `proxy_redirect default` and `proxy_cookie_path` do, for the route's prefix: a service knows only
 * its own address and paths, so `Location`, `Content-Location` and the URL of a `Refresh` pointing at the upstream's
 * origin are turned into the gateway's public address (`publicBase`), and paths under the upstream's base path (with
 * `strip_prefix`, any path) are turned into the public paths under the prefix; so is the `Path` of its cookies.
 * Anything pointing elsewhere is left as it is.
 */
export type ResponseRewrite = (headers: IncomingHttpHeaders, request: GatewayRequest) => IncomingHttpHeaders

/**
 * Where the gateway is published: the scheme and host a rewritten URL starts with ('' for a path-absolute
 * reference), and the path of `server.public_url` ('' without one, or at its root), which every public path the
 * rewrite writes starts with: behind a proxy that publishes the gateway under `/edge/`, the client's paths are
 * `/edge/app/...`, and a redirect to `/app/...` or a cookie for `/app/` would miss them.
 */
export interface PublicBase {
  origin(request: GatewayRequest): string
  readonly path: string
}

/**
 * The configured `server.public_url`, whatever Host the client sent; without one, the scheme and host the client
 * used only when they are the gateway's own (its listening address or one of `server.trusted_origins` without a `*`), and
 * otherwise nothing. A URL built from any Host would let a shared cache that does not key on Host store a redirect
 * to a forged host for everyone; a path-absolute reference is resolved by the client against the URL it asked for
 * (RFC 9110 §10.2.2), so it is always right.
 */
export function publicBase(app: Pick<App, 'config' | 'publicUrl'>): PublicBase {
  const configured = app.config.server.public_url === undefined ? undefined : new URL(app.config.server.public_url)
  if (configured !== undefined) return { origin: () => configured.origin, path: publishedPath(app.config) }
  // Names the gateway has, not `https://*.example.com`: that one trusts pages of any name under the domain for the CSRF
  // check, and would let a request naming any of them (one a tenant or an attacker holds) be sent there.
  const trusted = new Set(app.config.server.trusted_origins.filter((origin) => !isWildcardOrigin(origin)).map((origin) => new URL(origin).origin))
  return {
    origin: (request) => {
      const used = URL.parse(`${request.protocol}://${request.host}`)?.origin
      if (used === undefined) return ''
      // The listening address is read each time: `serve` learns it (port 0) only once it listens.
      return trusted.has(used) || used === URL.parse(app.publicUrl)?.origin ? used : ''
    },
    path: '',
  }
}

/**
 * A path-absolute reference that starts with `//` read alone as a reference to another host (`/base//evil.example/`
 * mapped to `//evil.example/`); `/.` before it resolves to the same path on this host (RFC 3986 §5.2.4). Browsers
 * (the WHATWG URL parser) also read a backslash as a slash and drop tabs, so `/\evil.example/` and `/<tab>/evil.example/`
 * are such references too.
 */
const NETWORK_PATH = /^[/\\][\t\n\r]*[/\\]/

function withoutNetworkPath(reference: string): string {
  return NETWORK_PATH.test(reference) ? `/.${reference}` : reference
}

/**
 * A Refresh's delay and `url=`, then the rest: the URL, in quotes or not (HTML's "shared declarative refresh steps").
 * The quotes are taken off separately: one pattern for both, a lazy URL before an optional closing quote, backtracked
 * over the whole value at every character, a second of CPU for 16,000 spaces inside a service's URL.
 */
const REFRESH = /^(\s*[\d.]+\s*[;,]\s*url\s*=\s*)(.*)$/i

export function responseRewrite(route: Route, base: PublicBase): ResponseRewrite {
  const upstreamOrigin = route.upstream.origin.toLowerCase()
  const basePath = route.upstream.pathname.replace(/\/$/, '')
  const publicPrefix = base.path + (route.stripPrefix ? route.prefix.slice(0, -1) : '')
  const mapsPaths = publicPrefix !== '' || basePath !== ''

  /** The public path for a path of the upstream's, or undefined for one outside its base path. */
  function publicPath(path: string): string | undefined {
    if (basePath && path !== basePath && !path.startsWith(`${basePath}/`)) return undefined
    return publicPrefix + (path.slice(basePath.length) || '/')
  }

  /** A path-absolute reference with its query and fragment, mapped; undefined when it is left alone. */
  function mapReference(reference: string): string | undefined {
    const end = reference.search(/[?#]/)
    const path = end === -1 ? reference : reference.slice(0, end)
    const mapped = publicPath(path)
    return mapped === undefined ? undefined : mapped + (end === -1 ? '' : reference.slice(end))
  }

  function location(value: string, request: GatewayRequest): string | undefined {
    if (value.slice(0, upstreamOrigin.length).toLowerCase() === upstreamOrigin && /^(?:[/?#]|$)/.test(value.slice(upstreamOrigin.length))) {
      const mapped = mapReference(value.slice(upstreamOrigin.length) || '/')
      return mapped === undefined ? undefined : withoutNetworkPath(base.origin(request) + mapped)
    }
    if (mapsPaths && value.startsWith('/') && !value.startsWith('//')) {
      const mapped = mapReference(value)
      return mapped === undefined ? undefined : withoutNetworkPath(mapped)
    }
    return undefined
  }

  /**
   * Every Path attribute: a browser takes the last one (RFC 6265 §5.3), so none may stay unmapped, also one written
   * with spaces around its `=`, which a browser trims (§5.2). One that is empty or does not start with `/` is left
   * as it is: a browser reads it as the default path, the directory of the public URL it asked for, which is already
   * the public path; mapped, `Path=` became the public prefix alone (a cookie for every service under `public_url`'s
   * path) and `Path=x` a path (`/appx`) the browser never sends it to.
   */
  function cookie(value: string): string {
    return value.replace(/(;\s*path\s*=)([^;]*)/gi, (whole, attribute: string, path: string) => {
      const trimmed = path.trim()
      const mapped = trimmed.startsWith('/') ? publicPath(trimmed) : undefined
      return mapped === undefined ? whole : attribute + mapped
    })
  }

  /** `Refresh: 0; url=...` (the HTML pragma browsers also take as a header): its URL as a Location's. */
  function refresh(value: string, request: GatewayRequest): string | undefined {
    const parts = REFRESH.exec(value)
    if (!parts) return undefined
    const [, delay, rest] = parts
    const quoted = rest!.trimEnd()
    const quote = (quoted[0] === '"' || quoted[0] === "'") && quoted.length > 1 && quoted.endsWith(quoted[0]) ? quoted[0] : ''
    const url = quote ? quoted.slice(1, -1) : quoted
    const rewritten = location(url, request)
    return rewritten === undefined ? undefined : `${delay}${quote}${rewritten}${quote}`
  }

  return (headers, request) => {
    for (const name of ['location', 'content-location', 'refresh'] as const) {
      const value = singleValue(headers, name)
      if (value === undefined) continue
      const rewritten = name === 'refresh' ? refresh(value, request) : location(value, request)
      if (rewritten !== undefined) headers[name] = rewritten
    }
    const cookies = headers['set-cookie']
    if (mapsPaths && cookies) headers['set-cookie'] = cookies.map(cookie)
    return headers
  }
}

/**
 * The one value of a header that takes one (RFC 9110 §10.2.2, §8.7; Refresh as HTML reads it): of a service's
 * duplicates the first, the others dropped, as nginx keeps the first `Location` or `Refresh` line of an upstream and
 * ignores the rest. Every one of them would otherwise pass unrewritten, with the service's own address.
 */
function singleValue(headers: IncomingHttpHeaders, name: 'location' | 'content-location' | 'refresh'): string | undefined {
  const value: string | string[] | undefined = headers[name]
  if (!Array.isArray(value)) return value
  if (value.length === 0) {
    delete headers[name]
    return undefined
  }
  return (headers[name] = value[0]!)
}
