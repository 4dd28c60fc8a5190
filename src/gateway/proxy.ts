import replyFrom from '@fastify/reply-from'
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { App } from '../app.ts'
import type { Principal } from '../auth/principal.ts'
import { NotAuthenticated, UpstreamTimeout, UpstreamUnavailable, sendError } from '../errors.ts'
import { assertScopeAllows, redirectsToLogin, refuseUnauthenticated } from './policy.ts'
import { splitTarget } from './path-safety.ts'
import type { Route } from './routes.ts'

const METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

/** Hop-by-hop fields (RFC 9110 §7.6.1): meaningful for one connection only, never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])
const GATEWAY_COOKIES = new Set(['gateway_sessionid', 'csrftoken'])
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT'])

/**
 * One encapsulated Fastify scope per service: its own upstream connection pool and timeouts, and a body
 * "parser" that hands the request stream through untouched, so uploads are streamed, never buffered.
 */
export async function registerProxy(server: FastifyInstance, app: App): Promise<void> {
  for (const route of app.routes) {
    await server.register(async (scope) => {
      scope.removeAllContentTypeParsers()
      scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload))
      await scope.register(replyFrom, {
        base: route.upstream.origin,
        disableRequestLogging: true,
        undici: {
          connections: 128,
          connectTimeout: route.timeouts.connectMs,
          headersTimeout: route.timeouts.responseMs,
          bodyTimeout: route.timeouts.responseMs,
        },
      })
      const basePath = route.upstream.pathname.replace(/\/$/, '')
      // Neither the handler nor forward() resolves to the reply: a promise resolved with it (a thenable) makes
      // Fastify attach end-of-stream listeners to every response just to learn when it ends.
      const handler = (request: FastifyRequest, reply: FastifyReply): void => {
        forward(app, route, basePath, request, reply).catch((error: unknown) => reply.send(error))
      }
      scope.route({ method: METHODS, url: `${route.prefix}*`, handler })
    })
  }
}

async function forward(app: App, route: Route, basePath: string, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const context = request.gatehouse
  context.service = route.name
  const { path, query } = splitTarget(request.url)
  const open = route.isPublic(path)
  let principal: Principal | undefined
  try {
    principal = await app.auth.authenticate(request, route.accepts)
  } catch (error) {
    // On a public path a failing credential (a stale cookie, say) means anonymous, not refused.
    if (!open && error instanceof NotAuthenticated && redirectsToLogin(request, route.unauthenticated)) {
      // A refused session cookie is deleted on the way to the login page too.
      const clear = error.headers['set-cookie']
      if (clear) reply.header('set-cookie', clear)
      reply.redirect(app.loginUrlFor(route)(request.url), 302)
      return
    }
    if (!open) throw error
  }
  if (principal) {
    assertScopeAllows(principal, request.method)
    context.principal = principal
  } else if (!open) {
    refuseUnauthenticated(request, reply, route.unauthenticated, route.accepts, app.loginUrlFor(route))
    return
  }
  const identity = principal ? await app.identity.tokenFor(principal, route.name) : undefined
  const upstreamPath = route.stripPrefix ? path.slice(route.prefix.length - 1) : path
  const forwardedAt = reply.elapsedTime
  context.forwardedAtMs = forwardedAt
  reply.from(basePath + upstreamPath + query, {
    rewriteRequestHeaders: (_raw, headers) => requestHeaders(request, headers, app, principal, identity),
    rewriteHeaders: (headers) => {
      context.upstreamMs = reply.elapsedTime - forwardedAt
      return withoutHopByHop(headers as IncomingHttpHeaders)
    },
    retryDelay: () => null,
    onError: (replyWithError, { error }) => {
      const cause = (error as { cause?: { code?: string } }).cause
      const code = cause?.code ?? (error as { code?: string }).code ?? ''
      const mapped = TIMEOUT_CODES.has(code) ? new UpstreamTimeout(route.name, error) : new UpstreamUnavailable(route.name, error)
      // reply-from has already logged the failure with its cause, at warn.
      sendError(request, replyWithError as FastifyReply, mapped)
    },
  })
}

/**
 * What a service receives: the client's headers without hop-by-hop fields, without the credentials the
 * gateway consumed (Authorization, its own cookies) and without any X-Gatehouse-* a client sent, plus
 * X-Forwarded-* and the verified identity. Built in one pass into a new object.
 */
function requestHeaders(request: FastifyRequest, incoming: IncomingHttpHeaders, app: App, principal: Principal | undefined, identity: string | undefined): IncomingHttpHeaders {
  const listed = connectionOptions(incoming.connection)
  const headers: IncomingHttpHeaders = {}
  for (const name of Object.keys(incoming)) {
    if (HOP_BY_HOP.has(name) || listed?.has(name) || name === 'authorization' || name.startsWith('x-gatehouse-')) continue
    headers[name] = incoming[name]
  }
  if (headers.cookie) {
    const kept = headers.cookie.split(/;\s*/).filter((pair) => !GATEWAY_COOKIES.has(pair.slice(0, pair.indexOf('=')).trim()))
    if (kept.length) headers.cookie = kept.join('; ')
    else delete headers.cookie
  }
  const peer = request.raw.socket.remoteAddress ?? ''
  const prior = app.config.server.trust_proxy ? request.headers['x-forwarded-for'] : undefined
  headers['x-forwarded-for'] = prior ? `${prior}, ${peer}` : peer
  headers['x-forwarded-proto'] = request.protocol
  headers['x-forwarded-host'] = request.host
  if (principal && identity) {
    headers['x-gatehouse-user'] = principal.user.username
    headers['x-gatehouse-user-id'] = String(principal.user.id)
    headers['x-gatehouse-auth-method'] = principal.method
    headers['x-gatehouse-identity'] = identity
  }
  return headers
}

function withoutHopByHop(incoming: IncomingHttpHeaders): IncomingHttpHeaders {
  const listed = connectionOptions(incoming.connection)
  const headers: IncomingHttpHeaders = {}
  for (const name of Object.keys(incoming)) {
    if (!HOP_BY_HOP.has(name) && !listed?.has(name)) headers[name] = incoming[name]
  }
  return headers
}

/**
 * The field names a Connection header lists (RFC 9110 §7.6.1), lower-cased; undefined when there are none, or
 * only `keep-alive` (hop-by-hop anyway), which is what nearly every upstream response says.
 */
function connectionOptions(connection: string | string[] | undefined): Set<string> | undefined {
  if (typeof connection !== 'string') return undefined
  const options = connection.toLowerCase()
  if (options === 'keep-alive') return undefined
  return new Set(options.split(',').map((name) => name.trim()))
}
