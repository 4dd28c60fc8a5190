import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { MethodNotAllowed, NotFound } from '../errors.ts'
import type { Access } from '../gateway/places.ts'
import type { GatewayApi } from './gateway-api.ts'
import { PathTable } from './path-table.ts'

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
  /** What the router constraint (below) reads: the table of the answers and the roots it holds paths under. */
  readonly tabled: { table: PathTable<Answer>; roots: readonly string[] }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the routes of this module: they answer for the API, they are not part of it. */
    answersForApi?: true
    /** The paths a wildcard route of this module answers for, for whoever must know which paths Fastify's router takes. */
    answersFor?: readonly string[]
  }
}

/** Whether a route is one of those that answer for the API's paths (not part of the API itself). */
export function answersForApi(config: unknown): boolean {
  return (config as { answersForApi?: true } | undefined)?.answersForApi === true
}

/**
 * Collects each path of the API, with who may learn its methods, as routes are added to `api` or its child scopes;
 * every answer to OPTIONS (the lists' metadata too) carries the path's `Allow`. Called before the API's routes are
 * added: it adds the router constraint of the answers (filled by answerOtherMethods) now, since find-my-way inserts
 * every route it already holds again when a constraint strategy is added. A strategy no route uses costs a request
 * nothing (the router derives only those in use).
 */
export function collectPaths(api: GatewayApi): ApiPaths {
  const paths: ApiPaths = { access: new Map(), allow: new Map(), methods: new Map(), tabled: { table: new PathTable(), roots: [] } }
  api.addConstraintStrategy(answersConstraint(paths.tabled))
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
    const allow = request.method === 'OPTIONS' && (request.raw[ANSWER]?.allowed?.join(', ') ?? paths.allow.get(request.routeOptions.url ?? ''))
    if (allow && reply.statusCode === 200) reply.header('allow', allow)
  })
  return paths
}

/** What a path of the API answers for the methods it does not have (or, without its slash, for every method). */
interface Answer {
  readonly access: Access
  /** The methods answered here: HEAD too when GET is one (Fastify adds a HEAD route for every GET route). */
  readonly methods: ReadonlySet<string>
  /** The path's own methods, for 405's and OPTIONS' `Allow`; undefined for a spelling without the trailing slash. */
  readonly allowed: readonly string[] | undefined
}

type ConstraintStrategy = Parameters<GatewayApi['addConstraintStrategy']>[0]
type AnswerHandler = NonNullable<ReturnType<ReturnType<ConstraintStrategy['storage']>['get']>>

/** The key of the router constraint (below) that a request gets when a path of the API answers its method. */
const ANSWERS = 'answersForApi'
/** Where the request's answer is kept, from the router's lookup to the handler and the hooks. */
const ANSWER = Symbol('answer for the API')

declare module 'node:http' {
  interface IncomingMessage {
    [ANSWER]?: Answer
  }
}

/** The answer a request reached, when it reached one; the access its path declares is checked before it. */
export function answerAccess(request: FastifyRequest): Access | undefined {
  return request.raw[ANSWER]?.access
}

/**
 * Adds, once every route of the API is known, the answers to its paths' other methods and spellings. The methods a
 * path has are asked of the router, which knows the paths as they finally are (the root of a prefixed scope gets its
 * trailing slash after the onRoute hooks ran).
 *
 * A route for each path's other methods made some 850 entries of Fastify's router for some 200 of the API itself, the
 * costliest part of a start after loading the modules. Instead, one wildcard route at each root of the API (`/api`,
 * `/admin/realms`) takes every method, under a router constraint that the router derives for each request from a
 * table of the paths (src/api/path-table.ts): it holds when the path the router would have found lacks the request's
 * method. Every route the router holds is more specific than these roots, so it is found first, as the answers'
 * own routes were found after the routes of the same path. Where that order would differ (the router prefers this
 * path to another that has the method and matches the same requests; a service's prefix lies between a root and the
 * path), the path keeps routes of its own, as before. One answer did change: an id of more than 100 characters (the
 * router's limit for a parameter) with a method its path lacks is 404, as for any path the API does not have, where
 * Fastify answered 400 for the parameter's length, as it still does where a route of that method has a parameter.
 */
export function answerOtherMethods(api: GatewayApi, paths: ApiPaths, publishedPath: string, servicePrefixes: readonly string[]): void {
  const answers = new Map<string, Answer>()
  for (const [url, access] of paths.access) {
    const has = paths.methods.get(url) ?? new Set()
    const others = ANSWERED_METHODS.filter((method) => !has.has(method))
    const allowed = ALLOW_ORDER.filter((method) => has.has(method) || (method === 'OPTIONS' && others.includes('OPTIONS')))
    paths.allow.set(url, allowed.join(', '))
    answers.set(url, { access, methods: withHead(others), allowed })
    const unslashed = url.slice(0, -1)
    if (url.endsWith('/') && unslashed && !paths.methods.has(unslashed) && !ANSWERED_METHODS.some((method) => api.hasRoute({ method, url: unslashed }))) {
      answers.set(unslashed, { access: 'open', methods: withHead(ANSWERED_METHODS), allowed: undefined })
    }
  }
  const { table } = paths.tabled
  const roots = new Set<string>()
  // By segment count: the router can prefer another path only over one of as many segments (PathTable.prefers).
  const declared = new Map<number, Declared[]>()
  for (const [url, methods] of paths.methods) {
    const segments = url.split('/')
    const alike = declared.get(segments.length)
    if (alike) alike.push({ url, segments, methods })
    else declared.set(segments.length, [{ url, segments, methods }])
  }
  for (const [url, answer] of answers) {
    const root = rootOf(url)
    const kept = keptAsRoutes(url, answer, root, declared, servicePrefixes)
    const tabled = new Set([...answer.methods].filter((method) => !kept.has(method)))
    const inTable = tabled.size > 0 && table.add(url, { ...answer, methods: tabled })
    const routed = inTable ? kept : answer.methods
    if (routed.size) answerWithRoute(api, url, { ...answer, methods: routed }, publishedPath)
    if (inTable) roots.add(root)
  }
  paths.tabled.roots = [...roots]
  for (const root of roots) {
    api.route({
      method: [...ANSWERED_METHODS],
      url: `${root}*`,
      constraints: { [ANSWERS]: true },
      config: { access: 'open', answersForApi: true, answersFor: [...answers.keys()].filter((url) => rootOf(url) === root) },
      schema: { hide: true },
      handler: async (request: FastifyRequest, reply: FastifyReply) => respond(request, reply, request.raw[ANSWER]!, publishedPath),
    })
  }
}

/**
 * The router constraint that the roots' wildcard routes (above) are added under: it holds when the path the router
 * would have found lacks the request's method. Derived for every request Fastify routes once such a route exists.
 */
function answersConstraint(tabled: ApiPaths['tabled']): ConstraintStrategy {
  return {
    name: ANSWERS,
    storage() {
      let handler: AnswerHandler | null = null
      return { get: (value: unknown) => (value === true ? handler : null), set: (_value: unknown, store: AnswerHandler) => { handler = store } }
    },
    // Most requests are rid of at the first comparison.
    deriveConstraint(request: IncomingMessage) {
      const url = request.url!
      // The router decodes escapes before it matches (`/%61pi/` is `/api/`): such a target is looked up in full.
      if (!tabled.roots.some((root) => url.startsWith(root)) && !url.includes('%')) return undefined
      const answer = tabled.table.find(url)
      if (!answer?.methods.has(request.method!)) return undefined
      request[ANSWER] = answer
      return true
    },
  }
}

function withHead(methods: readonly string[]): ReadonlySet<string> {
  return new Set(methods.includes('GET') ? [...methods, 'HEAD'] : methods)
}

/** The first segment of a path, or the first two under `/admin/`: where the API's paths begin (`/api`, `/admin/realms`). */
function rootOf(url: string): string {
  const segments = url.split('/')
  return segments.slice(0, segments[1] === 'admin' ? 3 : 2).join('/')
}

/** A path the API declares, split at `/`, with the methods it has. */
interface Declared {
  readonly url: string
  readonly segments: readonly string[]
  readonly methods: ReadonlySet<string>
}

/**
 * The methods of a path that keep a route of their own: those another path of the API has that may match the same
 * requests where the router prefers this path (it would find that path's route before a wildcard), and every method
 * when a service's prefix lies between the root and the path (its wildcard route would come before the root's).
 */
function keptAsRoutes(url: string, answer: Answer, root: string, declared: ReadonlyMap<number, readonly Declared[]>, servicePrefixes: readonly string[]): Set<string> {
  const staticPart = url.split(':', 1)[0]!
  const param = staticPart !== url
  if (servicePrefixes.some((prefix) => prefix.length > root.length && prefix.startsWith(root) && (param ? staticPart.startsWith(prefix) || prefix.startsWith(staticPart) : url.startsWith(prefix)))) {
    return new Set(answer.methods)
  }
  const kept = new Set<string>()
  const segments = url.split('/')
  for (const other of declared.get(segments.length) ?? []) {
    if (other.url === url || !PathTable.prefers(segments, other.segments)) continue
    for (const method of other.methods) if (answer.methods.has(method)) kept.add(method)
  }
  return kept
}

/** A route of its own for a path's answers, as every path had before the table. */
function answerWithRoute(api: GatewayApi, url: string, answer: Answer, publishedPath: string): void {
  api.route({
    method: [...answer.methods].filter((method) => method !== 'HEAD' || !answer.methods.has('GET')),
    url,
    config: { access: answer.access, answersForApi: true },
    schema: { hide: true },
    handler: async (request: FastifyRequest, reply: FastifyReply) => respond(request, reply, answer, publishedPath),
  })
}

/** 405, or OPTIONS' description, for another method; for a spelling without the slash, the redirect or 404. */
async function respond(request: FastifyRequest, reply: FastifyReply, answer: Answer, publishedPath: string) {
  if (!answer.allowed) return appendSlash(request, reply, publishedPath)
  if (request.method !== 'OPTIONS') throw new MethodNotAllowed(request.method, answer.allowed)
  return { renders: ['application/json'], parses: ['application/json', 'application/x-www-form-urlencoded'] }
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
async function appendSlash(request: FastifyRequest, reply: FastifyReply, publishedPath: string) {
  const [path, query] = splitOnce(request.url, '?')
  const target = `${publishedPath}${path}/${query === undefined ? '' : `?${query}`}`
  if (request.method === 'GET' || request.method === 'HEAD') return reply.redirect(target, 301)
  throw new NotFound(`This URL ends with a slash: ${publishedPath}${path}/ (only a GET or HEAD is redirected there: send other requests to that URL itself).`)
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator)
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)]
}
