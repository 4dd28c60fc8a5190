import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import type { App } from '../app.ts'
import { InvalidOriginalRequest, MissingOriginalUri, NotFound, sendError, UntrustedProxy } from '../errors.ts'
import { assertSafePath, assertWellFormedEscapes, splitTarget } from '../http/request-target.ts'
import type { Route } from './routes.ts'

/**
 * Forward authentication: another proxy (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`,
 * Envoy `ext_authz`) moves the bytes and asks Gatehouse, for each request, whether it may pass. The answer is the
 * same `authorize` step the built-in proxy takes, for the service whose prefix the original path falls under:
 * 200 with the identity headers the service should receive, or the 401, 403 or login redirect the built-in proxy
 * would give. The description of the original request is believed only from `server.trusted_proxies`.
 */

export const AUTHZ_PREFIX = '/api/gateway/v1/authz/'
const EXT_AUTHZ = `${AUTHZ_PREFIX}ext-authz`
const ALL_METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']
const METHOD = /^[A-Z]{1,16}$/
/** What nginx's `auth_request` can act on: it takes only 2xx, 401 and 403, so a login redirect travels as 401 with this. */
const LOGIN_HEADER = 'x-gatehouse-login'

/** The original request, as the asking proxy describes it. */
interface Original {
  readonly method: string
  readonly url: string
}

/** Where each proxy puts the original method and target. */
const describers: Record<string, (request: FastifyRequest) => Original> = {
  /** nginx: `proxy_set_header X-Original-URI $request_uri; X-Original-Method $request_method;`. */
  'auth-request': (request) => ({ method: header(request, 'x-original-method') ?? 'GET', url: required(request, 'x-original-uri') }),
  /** Traefik and Caddy send the X-Forwarded-* set: the target in X-Forwarded-Uri. */
  'forward-auth': (request) => ({ method: header(request, 'x-forwarded-method') ?? 'GET', url: required(request, 'x-forwarded-uri') }),
  /** Envoy appends the original path to the configured prefix and keeps the method. */
  'ext-authz': (request) => ({ method: request.method, url: request.url.slice(EXT_AUTHZ.length) || '/' }),
}

/**
 * The three endpoints, in a scope of their own that takes any method (a proxy may ask with the original's) and reads
 * no body: the question is in the headers, and a body some proxy sends along is drained within the size limit.
 */
export async function registerForwardAuth(server: FastifyInstance, app: App): Promise<void> {
  await server.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => done(null, undefined))
    for (const [flavour, describe] of Object.entries(describers)) {
      const handler = (request: FastifyRequest, reply: FastifyReply) => decide(app, flavour, describe, request, reply)
      scope.route({ method: ALL_METHODS, url: flavour === 'ext-authz' ? `${EXT_AUTHZ}/*` : `${AUTHZ_PREFIX}${flavour}/`, handler })
    }
  })
}

async function decide(app: App, flavour: string, describe: (request: FastifyRequest) => Original, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  reply.header('cache-control', 'no-store')
  if (!app.trustsProxy(request.raw.socket.remoteAddress)) {
    throw new UntrustedProxy()
  }
  const original = describe(request)
  if (!METHOD.test(original.method)) throw new InvalidOriginalRequest('The original method is not an HTTP method.')
  if (!original.url.startsWith('/')) throw new InvalidOriginalRequest('The original URI must be a path, starting with "/".')
  assertWellFormedEscapes(original.url)
  const { path } = splitTarget(original.url)
  assertSafePath(path)
  const route = app.routes.find((candidate) => path.startsWith(candidate.prefix))
  if (!route) throw new NotFound(`No service at ${path.slice(0, 200)}.`)
  const decision = await app.authorize(asOriginal(request, original), route)
  if (!decision.granted) {
    if (decision.loginUrl && flavour === 'auth-request') {
      reply.header(LOGIN_HEADER, decision.loginUrl)
      return sendError(request, reply, decision.refusal)
    }
    if (decision.loginUrl) return reply.redirect(decision.loginUrl, 302)
    return sendError(request, reply, decision.refusal)
  }
  const { principal } = decision
  if (principal) await identityHeaders(app, route, reply, principal)
  return reply.code(200).send()
}

async function identityHeaders(app: App, route: Route, reply: FastifyReply, principal: NonNullable<FastifyRequest['gatehouse']['principal']>): Promise<void> {
  reply.header('x-gatehouse-user', principal.user.username)
  reply.header('x-gatehouse-user-id', String(principal.user.id))
  reply.header('x-gatehouse-auth-method', principal.method)
  reply.header('x-gatehouse-identity', await app.identity.tokenFor(principal, route.name, app.access.of(principal.user)))
}

/**
 * The asking request seen as the original one: its own headers (the credentials come along), the original's method
 * and target. Scheme and host come from the trusted proxy's X-Forwarded-Proto and -Host, as for any request.
 */
function asOriginal(request: FastifyRequest, original: Original): FastifyRequest {
  return Object.create(request, {
    method: { value: original.method },
    url: { value: original.url },
  }) as FastifyRequest
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return typeof value === 'string' && value !== '' ? value : undefined
}

function required(request: FastifyRequest, name: string): string {
  const value = header(request, name)
  if (value === undefined) throw new MissingOriginalUri(`The asking proxy must send the original request's target in ${name}.`)
  return value
}
