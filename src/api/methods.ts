import type { FastifyReply, FastifyRequest } from 'fastify'
import { MethodNotAllowed, NotFound } from '../errors.ts'
import type { Access } from '../gateway/places.ts'
import type { GatewayApi } from './gateway-api.ts'

/**
 * What the platform's views answer for a path they have with a method or spelling they do not, in Django's and
 * Django REST framework's ways:
 * - another method: 405 with `Allow` naming the methods the path has, after the access check (DRF authenticates
 *   and checks permissions before it looks for the method's handler);
 * - `OPTIONS` where no metadata is described (src/api/metadata.ts describes the lists): 200 with `Allow`, what the
 *   path renders and parses;
 * - the path without its trailing slash: a `GET` or `HEAD` is redirected (301) to the path with it, as Django's
 *   APPEND_SLASH does; any other method is 404 naming the right path, since a redirect would lose its body.
 * These answering routes are not part of the API: they are hidden from its description and its route table.
 */

/** The methods a path of the API is answered for (TRACE never allowed); others (QUERY) stay 404 as on every other path. */
const ANSWERED_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'] as const
const ALLOW_ORDER = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']

interface ApiPaths {
  /** Who may learn which methods a path has: the access of its GET route, or of its first. */
  readonly access: Map<string, Access>
  /** The `Allow` of each path, once every route is known. */
  readonly allow: Map<string, string>
  /** The methods each path has, as the router holds them. */
  readonly methods: Map<string, Set<string>>
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the routes of this module: they answer for the API, they are not part of it. */
    answersForApi?: true
  }
}

/** Whether a route is one of those that answer for the API's paths (not part of the API itself). */
export function answersForApi(config: unknown): boolean {
  return (config as { answersForApi?: true } | undefined)?.answersForApi === true
}

/**
 * Collects each path of the API, with who may learn its methods, as routes are added to `api` or its child scopes;
 * every answer to OPTIONS (the lists' metadata too) carries the path's `Allow`.
 */
export function collectPaths(api: GatewayApi): ApiPaths {
  const paths: ApiPaths = { access: new Map(), allow: new Map(), methods: new Map() }
  api.addHook('onRoute', (route) => {
    if (answersForApi(route.config)) return
    const access = (route.config as { access?: Access } | undefined)?.access ?? 'user'
    const methods = [route.method].flat()
    if (!paths.access.has(route.url) || methods.includes('GET')) paths.access.set(route.url, access)
    for (const url of routerPaths(route)) {
      const known = paths.methods.get(url) ?? paths.methods.set(url, new Set()).get(url)!
      for (const method of methods) known.add(method)
    }
  })
  api.addHook('onSend', async (request, reply) => {
    const allow = request.method === 'OPTIONS' && paths.allow.get(request.routeOptions.url ?? '')
    if (allow && reply.statusCode === 200) reply.header('allow', allow)
  })
  return paths
}

/**
 * Adds, once every route of the API is known, the routes that answer its paths' other methods and spellings. The
 * methods a path has are asked of the router, which knows the paths as they finally are (the root of a prefixed
 * scope gets its trailing slash after the onRoute hooks ran).
 */
export function answerOtherMethods(api: GatewayApi, paths: ApiPaths, publishedPath: string): void {
  for (const [url, access] of paths.access) {
    const has = paths.methods.get(url) ?? new Set()
    const others = ANSWERED_METHODS.filter((method) => !has.has(method))
    const allowed = ALLOW_ORDER.filter((method) => has.has(method) || (method === 'OPTIONS' && others.includes('OPTIONS')))
    const allow = allowed.join(', ')
    paths.allow.set(url, allow)
    // One route for all of a path's other methods: Fastify keeps a route's context (its hooks, handler and options)
    // once per route, not per method, and a route per method made 250-odd of them.
    api.route({
      method: others,
      url,
      config: { access, answersForApi: true },
      schema: { hide: true },
      handler: async (request: FastifyRequest) => {
        if (request.method !== 'OPTIONS') throw new MethodNotAllowed(request.method, allowed)
        return { renders: ['application/json'], parses: ['application/json', 'application/x-www-form-urlencoded'] }
      },
    })
    const unslashed = url.slice(0, -1)
    if (url.endsWith('/') && unslashed && !paths.methods.has(unslashed) && !ANSWERED_METHODS.some((method) => api.hasRoute({ method, url: unslashed }))) {
      api.route({ method: [...ANSWERED_METHODS], url: unslashed, config: { access: 'open', answersForApi: true }, schema: { hide: true }, handler: appendSlash(publishedPath) })
    }
  }
}

/**
 * The paths the router holds a route under, as its onRoute hooks see it: the root of a prefixed scope (`/` under
 * `/api/gateway/v1`), seen as the prefix alone, is also held with the slash (Fastify's `prefixTrailingSlash: 'both'`,
 * its default, which the API keeps), without the hooks being run again.
 */
function routerPaths(route: { url: string; routePath?: string; prefix?: string; method: string | string[]; prefixTrailingSlash?: string }): string[] {
  const prefixRoot = route.routePath === '' && !!route.prefix && route.method !== 'HEAD' && (route.prefixTrailingSlash ?? 'both') === 'both'
  return prefixRoot ? [route.url, `${route.url}/`] : [route.url]
}

/** The path with its slash, under the path the gateway is published at. */
function appendSlash(publishedPath: string) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const [path, query] = splitOnce(request.url, '?')
    const target = `${publishedPath}${path}/${query === undefined ? '' : `?${query}`}`
    if (request.method === 'GET' || request.method === 'HEAD') return reply.redirect(target, 301)
    throw new NotFound(`This URL ends with a slash: ${publishedPath}${path}/ (a ${request.method} is not redirected, which would lose its body).`)
  }
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator)
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)]
}
