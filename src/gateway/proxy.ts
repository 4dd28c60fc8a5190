import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Dispatcher } from 'undici'
import type { App } from '../app.ts'
import { NotFound, writeError } from '../errors.ts'
import { splitTarget } from '../http/request-target.ts'
import type { AnsweredRequest } from '../metrics/metrics.ts'
import { bodyOverrideRefusal, bodyScan, MethodMayBeNamed, OVERRIDE_READ_BYTES } from '../access/method-override.ts'
import { answerRefusal, refusedAfterBody } from './authorize.ts'
import { failureAnswer, type UpstreamDispatcher } from './lean-proxy.ts'
import { dropRestOfBody } from './request-buffer.ts'
import { publicBase, responseRewrite, type ResponseRewrite } from './response-rewrite.ts'
import { PROXIED_METHODS, type Route } from './routes.ts'
import { clientResponseHeaders, upstreamRequestHeaders } from './upstream-headers.ts'
import { cutAnswer, UpstreamExchange } from './upstream-exchange.ts'
import { poolClient } from './upstream-pool.ts'
import { WebSocketTunnels } from './websocket.ts'

const METHODS = [...PROXIED_METHODS] as HTTPMethods[]

/**
 * One encapsulated Fastify scope per service: its upstream connection pool and timeouts, and a body "parser" that
 * hands the request stream through untouched, for src/gateway/request-buffer.ts to read. Most proxied requests never
 * come here: the lean path (src/gateway/lean-proxy.ts) takes them first; this serves the rest (WebSocket upgrades,
 * services with CORS, percent-encoded paths) the same way.
 */
export async function registerProxy(server: FastifyInstance, app: App, upstreams: ReadonlyMap<Route, UpstreamDispatcher>, answered: (request: FastifyRequest, reply: AnsweredRequest) => void): Promise<void> {
  const websockets = new WebSocketTunnels(server, app, answered)
  const base = publicBase(app)
  for (const route of app.routes) {
    await server.register(async (scope) => {
      scope.removeAllContentTypeParsers()
      scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload))
      const { cors } = route
      if (cors) scope.addHook('onRequest', async (request, reply) => (cors.handle(request, reply) ? reply : undefined))
      const rewrite = responseRewrite(route, base)
      const basePath = route.upstream.pathname.replace(/\/$/, '')
      // Closed with the server, once the requests in flight are done.
      const upstream = upstreams.get(route)!
      // Neither the handler nor forward() resolves to the reply: a promise resolved with it (a thenable) makes
      // Fastify attach end-of-stream listeners to every response just to learn when it ends.
      const handler = (request: FastifyRequest, reply: FastifyReply): void => {
        forward(app, route, upstream, basePath, rewrite, request, reply, websockets).catch((error: unknown) => reply.send(error))
      }
      scope.route({ method: METHODS, url: `${route.prefix}*`, handler })
    })
  }
}

async function forward(app: App, route: Route, upstream: UpstreamDispatcher, basePath: string, rewrite: ResponseRewrite, request: FastifyRequest, reply: FastifyReply, websockets: WebSocketTunnels): Promise<void> {
  const { path, query } = splitTarget(request.url)
  // The router matches decoded paths (`/%72ec/` as `/rec/`); the prefix is cut, and public paths judged, on the
  // raw path, so one that does not start with the prefix as written is not this service's.
  if (!path.startsWith(route.prefix)) throw new NotFound(`No service or API at ${path}.`)
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
