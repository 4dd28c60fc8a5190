import { millisecondsOf } from '../config/durations.ts'
import { NotFound, noServiceAt } from '../errors.ts'
import type { BearerPolicy } from '../auth/access-tokens.ts'
import type { Config, ServiceConfig } from '../config/schema.ts'
import type { EntryRule, Place } from './places.ts'
import { compileCors, type CorsPolicy } from './cors.ts'
import { gatewayLoginUrl, publishedPath } from './policy.ts'
import { BodyBudget, RequestBuffer } from './request-buffer.ts'
import { removedFields, type RemovedFields } from './upstream-headers.ts'
import { TunnelLimits, UpstreamPool } from './upstream-pool.ts'
import { UpstreamTlsFiles } from './upstream-tls.ts'

/** The methods a service's prefix is routed for; others get the gateway's 404. */
export const PROXIED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/** A service as the request path needs it: a place (who may enter) with where to forward. Compiled once at start, looked up per request. */
export interface Route extends Place {
  readonly prefix: string
  readonly upstream: URL
  readonly stripPrefix: boolean
  readonly timeouts: { readonly connectMs: number; readonly responseMs: number; readonly websocketIdleMs: number }
  /** Present when the service lets pages of other origins call it. */
  readonly cors: CorsPolicy | undefined
  /** Admission to the service's upstream connections, shared fairly among clients. */
  readonly pool: UpstreamPool
  /** Admission of the service's WebSockets, bounded apart from the pool. */
  readonly tunnels: TunnelLimits
  /** Reads request bodies (up to the service's bound) before they take one of those connections. */
  readonly requestBuffer: RequestBuffer
  /** The client's request fields the service never receives: other proxies' identity headers, and those configured. */
  readonly removedFields: RemovedFields
  /** How its TLS connections are made (`services[].tls`), read again on SIGHUP. */
  readonly upstreamTls: UpstreamTlsFiles
  /** The service's configuration as written: a reload keeps the route (its pool, its connections) while this is unchanged. */
  readonly configured: string
}

/**
 * What a path under no service is answered. A service's prefix without its trailing slash (`/wiki` for `/wiki/`), as a
 * person types it in the address bar, is a GET's or HEAD's 301 to the prefix (under `published`, the path the gateway
 * is published at), its query kept, as nginx redirects a prefix location asked for without its slash and the gateway
 * API a path without its own; another method is 404 naming the prefix, since a redirect would lose its body. Any other
 * path is 404 naming it. The built-in proxy and forward authentication answer alike.
 */
export function unroutedAnswer(routes: readonly Route[], method: string, path: string, query: string, published = ''): { redirectTo: string } | { error: NotFound } {
  const prefix = `${path}/`
  if (!routes.some((route) => route.prefix === prefix)) return { error: noServiceAt(path) }
  if (method === 'GET' || method === 'HEAD') return { redirectTo: `${published}${prefix}${query}` }
  return { error: new NotFound(`No service or API at ${path}: the service is at ${published}${prefix} (only a GET or HEAD is redirected there: send other requests to the prefix itself).`) }
}

/** Exact paths in a Set, `prefix*` paths as a short list: one hash lookup and a few startsWith per request. */
export function publicPathMatcher(paths: readonly string[]): (path: string) => boolean {
  const exact = new Set(paths.filter((p) => !p.endsWith('*')))
  const prefixes = paths.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1))
  return (path) => exact.has(path) || prefixes.some((prefix) => path.startsWith(prefix))
}

/**
 * What the realms say of each service, read as its route is compiled: where an unauthenticated browser is sent to log
 * in (the gateway's login page unless said otherwise), and which OpenID Connect tokens it takes.
 */
export interface ServiceTokens {
  loginUrlFor(service: string): ((next: string) => string) | undefined
  policyFor(service: string): BearerPolicy
}

/** A service's own entry rules beyond signing in, by service name: its access rules (src/access/). */
export type ServiceEntryRules = (service: string) => readonly EntryRule[]

export function compileRoute(service: ServiceConfig, upstream: URL, bodyBudget: BodyBudget, loginUrl: (next: string) => string, bearerPolicy: BearerPolicy | undefined, entryRules: ServiceEntryRules = () => [], removedEverywhere: readonly string[] = [], tlsSetting = 'services.tls'): Route {
  return Object.freeze({
    name: service.name,
    service: service.name,
    prefix: service.prefix,
    upstream,
    accepts: Object.freeze([...service.accepts]),
    unauthenticated: service.unauthenticated,
    loginUrl,
    who: 'signed_in',
    entry: Object.freeze([...entryRules(service.name)]),
    ...(bearerPolicy ? { bearerPolicy } : {}),
    stripPrefix: service.strip_prefix,
    timeouts: Object.freeze({ connectMs: millisecondsOf(service.timeouts.connect_seconds), responseMs: millisecondsOf(service.timeouts.response_seconds), websocketIdleMs: millisecondsOf(service.timeouts.websocket_idle_seconds) }),
    cors: compileCors(service.cors),
    pool: new UpstreamPool({ connections: service.pool.connections, perClient: service.pool.per_client, waitMs: millisecondsOf(service.pool.wait_seconds) }),
    tunnels: new TunnelLimits({ total: service.pool.websockets, perClient: service.pool.websockets_per_client, perUser: service.pool.websockets_per_user }),
    requestBuffer: new RequestBuffer(service.pool.body_buffer_kb * 1024, bodyBudget),
    removedFields: removedFields([...removedEverywhere, ...service.remove_request_headers]),
    isPublic: publicPathMatcher(service.public_paths),
    upstreamTls: new UpstreamTlsFiles(tlsSetting, upstream, service.tls),
    configured: JSON.stringify(service),
  })
}

/** What a reload compiles the services with besides the configuration: the running routes and their body budget. */
export interface RunningRoutes {
  readonly routes: readonly Route[]
  readonly bodyBudget: BodyBudget
}

/**
 * Compiles every configured service. `upstreams` resolves `builtin:demo` to the demo upstream's address;
 * other upstreams are taken as written. Given the running routes, a service configured exactly as before keeps its
 * route, and with it its upstream connections and the pool's shares in use.
 */
export function compileRoutes(config: Config, upstreams: ReadonlyMap<string, URL> = new Map(), tokens?: ServiceTokens, entryRules?: ServiceEntryRules, running?: RunningRoutes): Route[] {
  // One budget for the bodies held by all services at once.
  const bodyBudget = running?.bodyBudget ?? new BodyBudget(config.server.body_buffers_mb * 1024 * 1024)
  const kept = new Map(running?.routes.map((route) => [route.configured, route]))
  const gatewayLogin = gatewayLoginUrl(publishedPath(config))
  return config.services
    .map((service, i) => kept.get(JSON.stringify(service)) ?? compileRoute(service, upstreamOf(service, upstreams), bodyBudget, tokens?.loginUrlFor(service.name) ?? gatewayLogin, tokens?.policyFor(service.name), entryRules, config.server.remove_request_headers, `services.${i}.tls`))
    .sort((a, b) => b.prefix.length - a.prefix.length)
}

/** Where a service's requests go: a `builtin:demo` one to its demo upstream, any other to the address it names. */
function upstreamOf(service: ServiceConfig, demoUpstreams: ReadonlyMap<string, URL>): URL {
  return (service.upstream === 'builtin:demo' ? demoUpstreams.get(service.name) : undefined) ?? new URL(service.upstream)
}

/**
 * The services' routes in use. A reload of the configuration replaces them whole, in one assignment: a request
 * reads them once as it arrives and goes on with the route it found, whatever comes after.
 */
export class RouteTable {
  #routes: readonly Route[]
  readonly #replaced: ((routes: readonly Route[]) => void)[] = []
  readonly bodyBudget: BodyBudget

  constructor(routes: readonly Route[], bodyBudget: BodyBudget) {
    this.#routes = routes
    this.bodyBudget = bodyBudget
  }

  /** Longest prefix first, as the router picks. */
  get routes(): readonly Route[] {
    return this.#routes
  }

  replace(routes: readonly Route[]): void {
    this.#routes = routes
    for (const listener of this.#replaced) listener(routes)
  }

  /** Called, in the order they were added, as soon as the routes are replaced. */
  onReplace(listener: (routes: readonly Route[]) => void): void {
    this.#replaced.push(listener)
  }
}
