import type { GatewayRequest } from '../http/gateway-request.ts'
import type { IncomingHttpHeaders } from 'node:http'
import type { Route } from './routes.ts'

/**
 * What nginx's `proxy_redirect default` and `proxy_cookie_path` do, for the route's prefix: a service knows only
 * its own address and paths, so `Location`, `Content-Location` and the URL of a `Refresh` pointing at the upstream's
 * origin are turned into the address the client used, and paths under the upstream's base path (with `strip_prefix`,
 * any path) are turned into the public paths under the prefix; so is the `Path` of its cookies. Anything pointing
 * elsewhere is left as it is.
 */
export type ResponseRewrite = (headers: IncomingHttpHeaders, request: GatewayRequest) => IncomingHttpHeaders

/**
 * A path-absolute reference that starts with `//` read alone as a reference to another host (`/base//evil.example/`
 * mapped to `//evil.example/`); `/.` before it resolves to the same path on this host (RFC 3986 §5.2.4).
 */
function withoutNetworkPath(reference: string): string {
  return reference.startsWith('//') ? `/.${reference}` : reference
}

/** A Refresh's delay and `url=`, the URL's quote if any, and the URL (HTML's "shared declarative refresh steps"). */
const REFRESH = /^(\s*[\d.]+\s*[;,]\s*url\s*=\s*)(['"]?)(.*?)\2\s*$/i

export function responseRewrite(route: Route): ResponseRewrite {
  const upstreamOrigin = route.upstream.origin.toLowerCase()
  const basePath = route.upstream.pathname.replace(/\/$/, '')
  const publicBase = route.stripPrefix ? route.prefix.slice(0, -1) : ''
  const mapsPaths = basePath !== '' || route.stripPrefix

  /** The public path for a path of the upstream's, or undefined for one outside its base path. */
  function publicPath(path: string): string | undefined {
    if (basePath && path !== basePath && !path.startsWith(`${basePath}/`)) return undefined
    return publicBase + (path.slice(basePath.length) || '/')
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
      return mapped === undefined ? undefined : `${request.protocol}://${request.host}${mapped}`
    }
    if (mapsPaths && value.startsWith('/') && !value.startsWith('//')) {
      const mapped = mapReference(value)
      return mapped === undefined ? undefined : withoutNetworkPath(mapped)
    }
    return undefined
  }

  /** Every Path attribute: a browser takes the last one (RFC 6265 §5.3), so none may stay unmapped. */
  function cookie(value: string): string {
    return value.replace(/(;\s*path=)([^;]*)/gi, (whole, attribute: string, path: string) => {
      const mapped = publicPath(path.trim())
      return mapped === undefined ? whole : attribute + mapped
    })
  }

  /** `Refresh: 0; url=...` (the HTML pragma browsers also take as a header): its URL as a Location's. */
  function refresh(value: string, request: GatewayRequest): string | undefined {
    const parts = REFRESH.exec(value)
    if (!parts) return undefined
    const [, delay, quote, url] = parts
    const rewritten = location(url!, request)
    return rewritten === undefined ? undefined : `${delay}${quote}${rewritten}${quote}`
  }

  return (headers, request) => {
    for (const name of ['location', 'content-location'] as const) {
      const value = headers[name]
      if (typeof value !== 'string') continue
      const rewritten = location(value, request)
      if (rewritten !== undefined) headers[name] = rewritten
    }
    if (typeof headers.refresh === 'string') {
      const rewritten = refresh(headers.refresh, request)
      if (rewritten !== undefined) headers.refresh = rewritten
    }
    const cookies = headers['set-cookie']
    if (mapsPaths && cookies) headers['set-cookie'] = cookies.map(cookie)
    return headers
  }
}
