import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'
import type { App } from '../app.ts'
import { NotFound, noServiceAt, writeError } from '../errors.ts'
import { splitTarget } from '../http/request-target.ts'
import type { AnsweredRequest } from '../metrics/metrics.ts'
import { bodyOverrideRefusal, bodyScan, MethodMayBeNamed, OVERRIDE_READ_BYTES } from '../access/method-override.ts'
import { answerRefusal, refusedAfterBody } from './authorize.ts'
import { failureAnswer, type Lane, type LaneTable, type ServiceLanes } from './lean-proxy.ts'
import { dropRestOfBody } from './request-buffer.ts'
import { PROXIED_METHODS, unroutedAnswer as answerUnrouted } from './routes.ts'
import { clientResponseHeaders, upstreamRequestHeaders } from './upstream-headers.ts'
import { cutAnswer, UpstreamExchange } from './upstream-exchange.ts'
import { poolClient } from './upstream-pool.ts'
import { WebSocketTunnels } from './websocket.ts'

const METHODS = [...PROXIED_METHODS] as HTTPMethods[]

/** The Fastify route every service's requests reach: the one the lean path leaves to the gateway's own routes (src/server.ts). */
export const PROXIED_URL = '/*'

/** The lane a request of the general path found as it arrived, which it goes on with until it is answered. */
const laneOfRequest = new WeakMap<FastifyRequest, Lane>()

/**
 * One encapsulated Fastify scope for every service, routed by the lanes in use (src/gateway/lean-proxy.ts
 * `ServiceLanes`), so that a reload of the configuration changes the services without touching the router: a body
 * "parser" that hands the request stream through untouched, for src/gateway/request-buffer.ts to read, and each
 * service's CORS. Most proxied requests never come here: the lean path (src/gateway/lean-proxy.ts) takes them first;
 * this serves the rest (WebSocket upgrades, services with CORS, percent-encoded paths) the same way. The gateway's
 * own routes are more specific than this one, and win.
 */
export async function registerProxy(server: FastifyInstance, app: App, lanes: ServiceLanes, answered: (request: FastifyRequest, reply: AnsweredRequest) => void): Promise<ServesOver> {
  const websockets = new WebSocketTunnels(server, app, answered)
  const servesOver: ServesOver = async (request, reply) => {
    const matched = request.routeOptions.url
    const staticPart = matched?.split(/[:*(]/, 1)[0]
    if (matched === undefined || matched === PROXIED_URL || staticPart === matched) return false
    const lane = laneFor(lanes.table, request)
    if (!lane || lane.route.prefix.length <= staticPart!.length) return false
    if (!lane.route.cors?.handle(request, reply)) await forward(app, lane, request, reply, websockets).catch((error: unknown) => reply.send(error))
    return true
  }
  await server.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload))
    scope.addHook('onRequest', async (request, reply) => {
      const lane = laneFor(lanes.table, request)
      if (!lane) return
      laneOfRequest.set(request, lane)
      const { cors } = lane.route
      return cors?.handle(request, reply) ? reply : undefined
    })
    // Neither the handler nor forward() resolves to the reply: a promise resolved with it (a thenable) makes
    // Fastify attach end-of-stream listeners to every response just to learn when it ends.
    const handler = (request: FastifyRequest, reply: FastifyReply): void => {
      const lane = laneOfRequest.get(request)
      if (!lane) {
        const unrouted = unroutedAnswer(app, request)
        return void ('redirectTo' in unrouted ? reply.redirect(unrouted.redirectTo, 301) : reply.send(unrouted.error))
      }
      forward(app, lane, request, reply, websockets).catch((error: unknown) => reply.send(error))
    }
    scope.route({ method: METHODS, url: PROXIED_URL, handler })
  })
  return servesOver
}

/** What the built-in proxy answers a path under no service (routes.ts `unroutedAnswer`). */
export function unroutedAnswer(app: App, request: FastifyRequest): { redirectTo: string } | { error: NotFound } {
  const { path, query } = splitTarget(request.url)
  return answerUnrouted(app.routes, request.method, path, query, app.publishedPath)
}

/**
 * Serves, from the gateway's hooks, a request the router gave to one of the gateway's own routes with a parameter
 * (`/realms/:realm/...`) when a service's prefix goes further than that route's fixed part (`/realms/nested/`): the
 * router preferred the service's route, when each service had one of its own. True when it took the request.
 */
export type ServesOver = (request: FastifyRequest, reply: FastifyReply) => Promise<boolean>

/**
 * The service of the longest prefix the path starts with, as the router matched a prefix: on the path as decoded
 * too, so that `/a/%62/` reaches neither `/a/b/` (its raw path does not start with it) nor `/a/` (whose service
 * would read it as `/a/b/`), as when each service had a route of its own.
 */
function laneFor(table: LaneTable, request: FastifyRequest): Lane | undefined {
  const { path } = splitTarget(request.url)
  const index = table.routes.findIndex((route) => path.startsWith(route.prefix))
  if (index === -1 || !path.includes('%')) return index === -1 ? undefined : table.lanes[index]
  const decoded = `/${(request.params as { '*': string })['*']}`
  return table.routes.findIndex((route) => decoded.startsWith(route.prefix)) === index ? table.lanes[index] : undefined
}

async function forward(app: App, lane: Lane, request: FastifyRequest, reply: FastifyReply, websockets: WebSocketTunnels): Promise<void> {
  const { route, upstream, basePath, rewrite } = lane
  const { path, query } = splitTarget(request.url)
  const decision = await app.authorize(request, route)
  if (!decision.granted) {
    answerRefusal(reply, decision)
    return
  }
  const { principal } = decision
  // The caller's teams, organizations and roles, which the identity token and X-Gatehouse-Teams carry.
  const access = principal ? app.access.of(principal.user) : undefined
  const identity = principal ? await app.identity.tokenFor(principal, route.name, access) : undefined
  const upstreamPath = route.stripPrefix ? path.slice(route.prefix.length - 1) : path
  // What the client receives of the service's answer's fields, for an upgrade's answer as for any other.
  const clientHeaders = (upstreamHeaders: IncomingHttpHeaders): IncomingHttpHeaders => {
    const kept = rewrite(clientResponseHeaders(upstreamHeaders, request.id, reply.raw), request)
    return route.cors ? route.cors.fromUpstream(kept) : kept
  }
  const upgrade = websockets.upgradeOf(request)
  if (upgrade) {
    await websockets.tunnel(route, request, reply, upgrade, basePath + upstreamPath + query, upstreamRequestHeaders(request, request.headers, app.trustsProxy, route.removedFields, principal, identity, access), clientHeaders)
    return
  }
  const raw = request.raw
  // Gone while it was judged: as on the lean path (src/gateway/lean-proxy.ts), nothing is taken for it.
  if (reply.raw.destroyed) return
  const reading = route.requestBuffer.read(raw, reply.raw, request.gatehouse.methodOverride ? OVERRIDE_READ_BYTES : 0, bodyScan(request.gatehouse.methodOverride, request.headers))
  const body = reading instanceof Promise ? await reading : reading
  if (body === undefined) return
  const overridden = bodyOverrideRefusal(request.gatehouse.methodOverride, request.headers, body)
  if (overridden) {
    dropRestOfBody(raw, reply.raw)
    throw refusedAfterBody(request, overridden)
  }
  const waiting = route.pool.admit(poolClient(request), route.name, (release) => reply.raw.once('close', release))
  if (waiting) await waiting
  // The gateway's own time runs until here, a wait for a free upstream connection included.
  const context = request.gatehouse
  const forwardedAt = reply.elapsedTime
  context.forwardedAtMs = forwardedAt
  const headers = upstreamRequestHeaders(request, request.headers, app.trustsProxy, route.removedFields, principal, identity, access)
  headers.host = route.upstream.host
  // From here the answer is written to Node's response, as on the lean path; the headers the reply already has
  // (CORS) go out with it.
  reply.hijack()
  const response = reply.raw
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) response.setHeader(name, value)
  const failed = (error: Error) => {
    const answer = failureAnswer(request, route, error)
    if (response.headersSent) return void cutAnswer(response, answer)
    // As on the lean path: a body still arriving that no one reads now.
    dropRestOfBody(raw, response)
    writeError(request, response, answer, request.log)
  }
  try {
    upstream.dispatch(
      { method: request.method as Dispatcher.HttpMethod, path: basePath + upstreamPath + query, headers: headers as Record<string, string | string[]>, body },
      new UpstreamExchange({
        client: raw,
        response,
        readMs: route.timeouts.responseMs,
        responseHeaders: (upstreamHeaders) => {
          context.upstreamMs = reply.elapsedTime - forwardedAt
          return clientHeaders(upstreamHeaders)
        },
        failed: (error) => {
          if (!(error instanceof MethodMayBeNamed)) request.log.warn({ err: error }, 'response errored')
          failed(error)
        },
      }),
    )
  } catch (error) {
    failed(error as Error)
  }
}
