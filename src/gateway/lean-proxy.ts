import { createRequire, Module } from 'node:module'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { buildConnector as UndiciBuildConnector, Dispatcher, Pool as UndiciPool } from 'undici'
import type { App } from '../app.ts'
import { GatehouseError, UpstreamTimeout, UpstreamUnavailable, writeError } from '../errors.ts'
import type { GatewayRequest } from '../http/gateway-request.ts'
import { LaneRequest, logAnswered, passesRequestChecks } from '../http/lane-request.ts'
import { splitTarget } from '../http/request-target.ts'
import { bodyOverrideRefusal, bodyScan, MethodMayBeNamed, OVERRIDE_READ_BYTES } from '../access/method-override.ts'
import { refusedAfterBody, type Decision } from './authorize.ts'
import { FORWARD_AUTH_CACHE_CONTROL, forwardAuthFlavour, judgeForwardAuth, type Flavour, type ForwardAuthAnswer } from './forward-auth.ts'
import { publicBase, responseRewrite, type PublicBase, type ResponseRewrite } from './response-rewrite.ts'
import { PROXIED_METHODS, type Route } from './routes.ts'
import { clientResponseHeaders, upstreamRequestHeaders } from './upstream-headers.ts'
import { dropRestOfBody, hasRequestBody } from './request-buffer.ts'
import { cutAnswer, mayResend, ResendOnce, UpstreamExchange, type ResendingConnections } from './upstream-exchange.ts'
// Before any upstream connection: undici's parser then reads an unasked `100 Continue` as the interim answer it is.
import { poolClient } from './upstream-pool.ts'


const require = createRequire(import.meta.url)

/**
 * undici's client requires its HTTP/2 half (client-h2.js, and with it node:http2: about 16 ms of every start) when it
 * loads, though it calls it only for a connection whose TLS handshake chose `h2`, which these pools, made without
 * `allowH2`, never offer. Until such a call, the module cache holds a stand-in under its file name (Node's documented
 * `require.cache`), which requires the real module when first called and hands every call on to it.
 */
function deferHttp2Client(): void {
  const file = require.resolve('undici/lib/dispatcher/client-h2.js')
  if (require.cache[file]) return
  const standIn = new Module(file)
  standIn.filename = file
  standIn.loaded = true
  let connectH2: ((...args: unknown[]) => unknown) | undefined
  standIn.exports = (...args: unknown[]): unknown => {
    if (!connectH2) {
      if (require.cache[file] === standIn) delete require.cache[file]
      connectH2 = require(file) as (...args: unknown[]) => unknown
    }
    return connectH2(...args)
  }
  require.cache[file] = standIn
}

deferHttp2Client()
/**
 * undici's connection pool on its own: undici's index also loads fetch, WebSockets, caches and mocks, which nothing
 * here uses, and that took a tenth of the time to start.
 */
const Pool = require('undici/lib/dispatcher/pool.js') as typeof UndiciPool
const buildConnector = require('undici/lib/core/connect.js') as typeof UndiciBuildConnector
/**
 * The proxied request path without Fastify: a request for a service's prefix is taken off Node's HTTP server before
 * Fastify routes it, and judged and forwarded here with the same steps the general path runs (src/server.ts hooks,
 * src/gateway/proxy.ts): the Host and request-target checks, `authorize`, the same refusals, the pool shares, the
 * same headers both ways, one log line and the metrics. Request bodies are read as src/gateway/request-buffer.ts
 * says; responses stream.
 * Forward-auth questions without a body are answered here too (src/gateway/forward-auth.ts decides for both paths).
 *
 * What it does not take, Fastify's router gets unchanged: the gateway's own paths, methods no service route has,
 * paths with percent escapes (the router matches them decoded), services with CORS, WebSocket upgrades (Node's
 * `upgrade` event, src/gateway/websocket.ts) and requests that fail the Host or request-target checks, which the
 * general path answers as it answers them everywhere.
 */

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

/** What a forwarded request that failed is answered: the refusal of a body its scan found may name a method, or the upstream's failure. */
export function failureAnswer(request: GatewayRequest, route: Route, error: Error): GatehouseError {
  return error instanceof MethodMayBeNamed ? refusedAfterBody(request, error.refusal) : upstreamFailure(route, error)
}

/** An upstream that failed to answer, as the client is told: 504 when it was too slow, 502 otherwise. */
export function upstreamFailure(route: Route, error: Error): GatehouseError {
  const cause = (error as { cause?: { code?: string } }).cause
  const code = cause?.code ?? (error as { code?: string }).code ?? ''
  return TIMEOUT_CODES.has(code) ? new UpstreamTimeout(route.name, error) : new UpstreamUnavailable(route.name, error)
}

/** What forwards a request to a service: only `dispatch` is asked of it. */
export type UpstreamDispatcher = Pick<Dispatcher, 'dispatch'>

/** A service route as both proxy paths need it: everything that can be computed once per route. */
export interface Lane {
  readonly route: Route
  readonly basePath: string
  readonly rewrite: ResponseRewrite
  readonly upstream: UpstreamDispatcher
}

/** The lanes in use, in their routes' order (the longest prefix first), replaced whole with the routes. */
export interface LaneTable {
  readonly routes: readonly Route[]
  readonly lanes: readonly Lane[]
  /** The same for the lean path: none for a service with CORS, which the general path serves. */
  readonly lean: readonly (Lane | undefined)[]
}

/**
 * Each service's lane, with its upstream connections (an undici pool with the service's size and timeouts), for both
 * paths. When a reload of the configuration replaces the routes (src/gateway/routes.ts `RouteTable`), the lanes are
 * replaced in the same step: a route kept keeps its lane and its connections; a removed or changed one's connections
 * close once the requests that found it before are answered.
 */
export class ServiceLanes {
  #table: LaneTable
  readonly #base: PublicBase

  constructor(app: App) {
    this.#base = publicBase(app)
    this.#table = this.#laneTable(app.services.routes, new Map())
    app.services.onReplace((routes) => {
      const running = this.#table
      this.#table = this.#laneTable(routes, new Map(running.lanes.map((lane) => [lane.route, lane])))
      const kept = new Set(routes)
      for (const lane of running.lanes) if (!kept.has(lane.route)) (lane.upstream as ServiceConnections).retire()
    })
  }

  /** Read once per request: what it finds there it goes on with, whatever a reload does meanwhile. */
  get table(): LaneTable {
    return this.#table
  }

  #laneTable(routes: readonly Route[], running: ReadonlyMap<Route, Lane>): LaneTable {
    const lanes = routes.map((route) => running.get(route) ?? {
      route,
      basePath: route.upstream.pathname.replace(/\/$/, ''),
      rewrite: responseRewrite(route, this.#base),
      upstream: new ServiceConnections(route),
    })
    return Object.freeze({ routes, lanes, lean: lanes.map((lane) => (lane.route.cors ? undefined : lane)) })
  }
}

/**
 * One service's pool, replaced when its TLS files are read again (SIGHUP): requests from then on go to a new pool,
 * whose connections are made with the new files, and the previous pool closes once the requests it holds are answered
 * (its idle keep-alive connections at once), so no connection made with the previous files takes another request.
 * The two together stay within the service's pool size, which the admission (src/gateway/upstream-pool.ts) bounds.
 */
class ServiceConnections implements UpstreamDispatcher, ResendingConnections {
  readonly #route: Route
  #pool: UpstreamDispatcher & Pick<UndiciPool, 'close'>

  constructor(route: Route) {
    this.#route = route
    this.#pool = servicePool(route)
    route.upstreamTls.onReload(() => {
      const previous = this.#pool
      this.#pool = servicePool(route)
      void previous.close().catch(() => {})
    })
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#pool.dispatch(options, mayResend(options) ? new ResendOnce(handler, options, this) : handler)
  }

  /** On the pool of the moment, with no second chance: a resend's. */
  dispatchOnce(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#pool.dispatch(options, handler)
  }

  /**
   * The service is no longer routed to (a reload removed or changed it): its pool closes once the requests it holds
   * are answered, its idle connections at once. A request that found the service before, still judged or reading its
   * body then, is forwarded as it would have been, on a connection of its own, closed after its answer.
   */
  retire(): void {
    const previous = this.#pool
    const route = this.#route
    this.#pool = {
      dispatch(options, handler) {
        const pool = servicePool(route)
        const accepted = pool.dispatch(options, handler)
        void pool.close().catch(() => {})
        return accepted
      },
      close: () => Promise.resolve(),
    }
    void previous.close().catch(() => {})
  }
}

function servicePool(route: Route): UndiciPool {
  const { configured, secureContext, servername } = route.upstreamTls.current()
  // A connector of its own per pool: its TLS sessions, resumed on later connections, were made with these files.
  const connector = configured ? buildConnector({ timeout: route.timeouts.connectMs, ...(secureContext ? { secureContext } : {}) }) : undefined
  return new Pool(route.upstream.origin, {
    connections: route.pool.connections,
    connectTimeout: route.timeouts.connectMs,
    headersTimeout: route.timeouts.responseMs,
    bodyTimeout: route.timeouts.responseMs,
    ...(connector ? { connect: (options, callback) => connector({ ...options, servername }, callback) } : {}),
  })
}

/**
 * Whether a route of the gateway's own (by its Fastify URL) may match a path: exactly, for a static route; by the
 * part before its first parameter or wildcard otherwise. Erring towards Fastify costs speed, never correctness.
 */
export function ownedPaths(urls: readonly string[]): (path: string) => boolean {
  const exact = new Set(urls.filter((url) => !/[:*(]/.test(url)))
  const starts = [...new Set(urls.filter((url) => /[:*(]/.test(url)).map((url) => url.slice(0, url.search(/[:*(]/))))]
  // Every proxied request is compared with these: a prefix that starts with a shorter one can add no match.
  const prefixes = starts.filter((prefix) => !starts.some((shorter) => shorter !== prefix && prefix.startsWith(shorter)))
  return (path) => exact.has(path) || prefixes.some((prefix) => path.startsWith(prefix))
}

export interface LeanProxyOptions {
  /** Each route's lane and upstream connections, shared with the general path. */
  readonly lanes: ServiceLanes
  /** Whether Fastify's router has a route of the gateway's own that may match this (raw) path. */
  readonly ownsPath: (path: string) => boolean
  readonly parseCookie: (header: string) => Record<string, string>
  readonly log: Logger
  /** Where the request line goes; undefined when info lines are dropped anyway. */
  readonly requestLog: Logger | undefined
  /**
   * True once the server drains (src/listener/drain.ts) and no request waits behind this one on its connection: its
   * answer then closes the connection.
   */
  readonly closesConnection: (raw: IncomingMessage) => boolean
}

/** Takes a request (true) or leaves it to Fastify (false). */
export type LeanProxy = (raw: IncomingMessage, response: ServerResponse) => boolean

export function leanProxy(app: App, options: LeanProxyOptions): LeanProxy {
  const trust = app.config.server.trusted_proxies.length ? app.trustsProxy : undefined

  function laneFor(raw: IncomingMessage, path: string): Lane | undefined {
    if (!PROXIED_METHODS.has(raw.method!)) return undefined
    if (path.includes('%') || options.ownsPath(path)) return undefined
    // The one read of the lanes in use; the longest prefix first, as the router picks.
    const { routes, lean } = options.lanes.table
    const index = routes.findIndex((route) => path.startsWith(route.prefix))
    return index === -1 ? undefined : lean[index]
  }

  return (raw, response) => {
    const { path } = splitTarget(raw.url!)
    const flavour = forwardAuthFlavour(path)
    const lane = flavour ? undefined : laneFor(raw, path)
    // A forward-auth question is taken when it has no body to drain (nginx, Traefik and Caddy send none).
    if (!lane && !(flavour && !hasRequestBody(raw))) return false
    const request = new LaneRequest(raw, trust, options.parseCookie)
    if (!passesRequestChecks(request)) return false
    // Answers write the request's id with their other fields: a forwarded one with the service's (`serve`), an allowed
    // forward-auth answer with the identity's (answerForwardAuth), the others as they are written (`identified`).
    // Node takes the fields of one writeHead as given, where those set before it (setHeader) are each stored and
    // then merged with the writeHead's, one setHeader each: 1-1.5 µs of a request (docs/performance.md).
    if (options.closesConnection(raw)) response.setHeader('connection', 'close')
    // `on`, not `once`, here and below: a response closes once only, and `once` would wrap each listener and unhook it
    // again, on every request. On `close`, not `finish`: a request whose client left, or whose answer was cut or
    // replaced by the parser's, is logged too.
    response.on('close', () => logAnswered(app, options, request, response))
    const answering = lane ? serve(app, options, lane, request, response) : answerForwardAuth(app, options, flavour!, request, response)
    answering.catch((error: unknown) => fail(options, request, response, error))
    return true
  }
}

/**
 * A forward-auth question (src/gateway/forward-auth.ts), answered as its Fastify route answers it. Most answers are
 * allowed: those go out in one writeHead of a list of fields.
 */
async function answerForwardAuth(app: App, options: LeanProxyOptions, flavour: Flavour, request: LaneRequest, response: ServerResponse): Promise<void> {
  let answer: ForwardAuthAnswer
  try {
    answer = await judgeForwardAuth(app, flavour, request, (original) => request.viewAs(original))
  } catch (error) {
    setRefusalHeaders(request, response)
    throw error
  }
  if (answer.granted) {
    response.writeHead(200, allowedFields(request, answer.headers)).end()
    return
  }
  setRefusalHeaders(request, response)
  if ('redirect' in answer) {
    redirect(response, answer.redirect, answer.status)
    return
  }
  for (const [name, value] of Object.entries(answer.headers)) response.setHeader(name, value)
  writeError(request, response, answer.refusal, errorLog(options, request))
}

/** The allowed answer's fields, as one list: the request's id, no-store, no body, and the identity headers. */
function allowedFields(request: LaneRequest, identity: Readonly<Record<string, string>>): string[] {
  const fields = ['x-request-id', request.id, 'cache-control', FORWARD_AUTH_CACHE_CONTROL, 'content-length', '0']
  for (const name in identity) fields.push(name, identity[name]!)
  return fields
}

/** What every other answer carries, set before the refusal or redirect is written. */
function setRefusalHeaders(request: LaneRequest, response: ServerResponse): void {
  identified(request, response)
  response.setHeader('cache-control', FORWARD_AUTH_CACHE_CONTROL)
}

/** The response, with the request's id set: for an answer of the gateway's own, written field by field. */
function identified(request: LaneRequest, response: ServerResponse): ServerResponse {
  response.setHeader('x-request-id', request.id)
  return response
}

function redirect(response: ServerResponse, location: string, status: 301 | 302 = 302): void {
  response.setHeader('location', location)
  response.setHeader('content-length', 0)
  response.statusCode = status
  response.end()
}

async function serve(app: App, options: LeanProxyOptions, lane: Lane, request: LaneRequest, response: ServerResponse): Promise<void> {
  const { route } = lane
  const decision = await app.authorize(request, route)
  if (!decision.granted) {
    refuse(options, request, response, decision)
    return
  }
  const { principal } = decision
  const access = principal ? app.access.of(principal.user) : undefined
  const identity = principal ? app.identity.reusableToken(principal, route.name) ?? await app.identity.tokenFor(principal, route.name, access) : undefined
  const { path, query } = splitTarget(request.url)
  const upstreamPath = route.stripPrefix ? path.slice(route.prefix.length - 1) : path
  const headers = upstreamRequestHeaders(request, request.headers, app.trustsProxy, route.removedFields, principal, identity, access)
  headers.host = route.upstream.host
  const { method, raw } = request
  // Gone while it was judged (its credentials verified off the event loop): its response has closed already, so
  // nothing would give back an upstream connection taken for it, or end a wait for a body that never comes.
  if (response.destroyed) return
  const reading = route.requestBuffer.read(raw, response, request.gatehouse.methodOverride ? OVERRIDE_READ_BYTES : 0, bodyScan(request.gatehouse.methodOverride, request.headers))
  const body = reading instanceof Promise ? await reading : reading
  if (body === undefined) return
  const overridden = bodyOverrideRefusal(request.gatehouse.methodOverride, request.headers, body)
  if (overridden) {
    dropRestOfBody(raw, response)
    writeError(request, identified(request, response), refusedAfterBody(request, overridden), errorLog(options, request))
    return
  }
  const waiting = route.pool.admit(poolClient(request), route.name, (release) => response.on('close', release))
  if (waiting) await waiting
  // The gateway's own time runs until here, a wait for the body and for a free upstream connection included.
  request.gatehouse.forwardedAtMs = performance.now() - request.startedAt
  lane.upstream.dispatch(
    { method: method as Dispatcher.HttpMethod, path: lane.basePath + upstreamPath + query, headers: headers as Record<string, string | string[]>, body },
    new UpstreamExchange({
      client: raw,
      response,
      readMs: route.timeouts.responseMs,
      responseHeaders: (upstream) => {
        request.gatehouse.upstreamMs = performance.now() - request.startedAt - request.gatehouse.forwardedAtMs!
        return lane.rewrite(clientResponseHeaders(upstream, request.id, response, true), request)
      },
      failed: (error) => {
        if (!(error instanceof MethodMayBeNamed)) options.log.warn({ reqId: request.id, err: error }, 'response errored')
        fail(options, request, response, failureAnswer(request, route, error))
      },
    }),
  )
}

/** A login redirect (deleting a refused session cookie on the way), or the refusal itself. */
function refuse(options: LeanProxyOptions, request: LaneRequest, response: ServerResponse, decision: Extract<Decision, { granted: false }>): void {
  identified(request, response)
  if (!decision.loginUrl) {
    writeError(request, response, decision.refusal, errorLog(options, request))
    return
  }
  const clear = decision.refusal.headers['set-cookie']
  if (clear) response.setHeader('set-cookie', clear)
  redirect(response, decision.loginUrl)
}

function fail(options: LeanProxyOptions, request: LaneRequest, response: ServerResponse, error: unknown): void {
  if (response.headersSent) return void cutAnswer(response, error instanceof GatehouseError ? error : undefined)
  // The client may still be sending a body no one reads now: the connection cannot serve another request.
  dropRestOfBody(request.raw, response)
  writeError(request, identified(request, response), error, errorLog(options, request))
}

function errorLog(options: LeanProxyOptions, request: LaneRequest): { error(fields: object, message: string): void } {
  return { error: (fields, message) => options.log.error({ reqId: request.id, ...fields }, message) }
}

