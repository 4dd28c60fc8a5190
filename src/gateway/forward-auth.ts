import { hash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import type { App } from '../app.ts'
import { bodyOverrideRefusal } from '../access/method-override.ts'
import type { UserAccess } from '../access/model.ts'
import { CSRF_HEADER } from '../auth/csrf.ts'
import type { Principal } from '../auth/principal.ts'
import { challengesInOneField, GatehouseError, InvalidOriginalRequest, MissingOriginalMethod, MissingOriginalUri, NotAuthenticated, NotFound, sendError, UntrustedProxy } from '../errors.ts'
import type { GatewayRequest } from '../http/gateway-request.ts'
import { isHost } from '../http/host-header.ts'
import { assertSafePath, assertWellFormedEscapes, decodedPath, mergeSlashes, originForm, splitTarget, targetAsSent } from '../http/request-target.ts'
import { refusedAfterBody } from './authorize.ts'
import { PROXIED_METHODS, unroutedAnswer } from './routes.ts'
import { fieldsReadAs, METHOD_OVERRIDE_FIELDS, teamsHeader, underscoredIdentityField, URL_OVERRIDE_FIELDS } from './upstream-headers.ts'
import { withoutGatewayCookies } from './gateway-cookies.ts'
import { checkHandshakeOrigin } from './websocket.ts'

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
/**
 * What a request line's target may hold (RFC 9112 §3.2, RFC 3986): visible ASCII, the rest percent-encoded. A proxy
 * in front passes on the bytes a client sent (nginx's `$request_uri` keeps raw UTF-8), and Node reads a field's bytes
 * as Latin-1, so `/café/` would be judged as `/cafÃ©/`, outside a rule on `/café/*`, and reach the service as
 * `/café/`. The built-in proxy's parser refuses such a target with 400 too.
 */
const TARGET = /^[\x21-\x7e]+$/
/** What nginx's `auth_request` can act on: it takes only 2xx, 401 and 403, so a login redirect travels as 401 with this. */
const LOGIN_HEADER = 'x-gatehouse-login'

/** The original request, as the asking proxy describes it. */
export interface Original {
  readonly method: string
  readonly url: string
}

/** The three flavours, by the endpoint a proxy asks at. */
export type Flavour = 'auth-request' | 'forward-auth' | 'ext-authz'

/** Where each proxy puts the original method and target. */
const describers: Record<Flavour, (request: GatewayRequest) => Original> = {
  /** nginx: `proxy_set_header X-Original-URI $request_uri; X-Original-Method $request_method;`. */
  'auth-request': (request) => described(request, 'x-original-method', 'x-original-uri'),
  /** Traefik and Caddy send the X-Forwarded-* set: the target in X-Forwarded-Uri. */
  'forward-auth': (request) => described(request, 'x-forwarded-method', 'x-forwarded-uri'),
  /** Envoy appends the original path to the configured prefix and keeps the method. */
  'ext-authz': (request) => ({ method: request.method, url: request.url.slice(EXT_AUTHZ.length) || '/' }),
}

/** The flavour whose endpoint a raw path is, exactly as the routes below are written; undefined for any other. */
export function forwardAuthFlavour(path: string): Flavour | undefined {
  if (!path.startsWith(AUTHZ_PREFIX)) return undefined
  if (path === `${AUTHZ_PREFIX}auth-request/`) return 'auth-request'
  if (path === `${AUTHZ_PREFIX}forward-auth/`) return 'forward-auth'
  return path.startsWith(`${EXT_AUTHZ}/`) ? 'ext-authz' : undefined
}

/** What the asking proxy is told: let it pass with these headers, send the client to log in, or refuse. */
export type ForwardAuthAnswer =
  | { readonly granted: true; readonly headers: Readonly<Record<string, string>> }
  | { readonly granted: false; readonly redirect: string; readonly status: 301 | 302 }
  | { readonly granted: false; readonly refusal: GatehouseError; readonly headers: Readonly<Record<string, string>> }

/** Every answer, allowed or not, is one no cache in between may keep on its own. */
export const FORWARD_AUTH_CACHE_CONTROL = 'no-store'

/**
 * The three endpoints, in a scope of their own that takes any method (a proxy may ask with the original's) and reads
 * no body: the question is in the headers, and a body some proxy sends along is drained within the size limit.
 * The proxy's lean path (src/gateway/lean-proxy.ts) answers the bodiless questions at these endpoints before
 * Fastify sees them, with the same `judgeForwardAuth`; these routes answer the rest.
 */
export async function registerForwardAuth(server: FastifyInstance, app: App): Promise<void> {
  await server.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => done(null, undefined))
    for (const flavour of Object.keys(describers) as Flavour[]) {
      const handler = async (request: FastifyRequest, reply: FastifyReply) => {
        reply.header('cache-control', FORWARD_AUTH_CACHE_CONTROL)
        const answer = await judgeForwardAuth(app, flavour, request, (original) => asOriginal(request, original))
        if (answer.granted) return reply.headers(answer.headers).code(200).send()
        if ('redirect' in answer) return reply.redirect(answer.redirect, answer.status)
        return sendError(request, reply.headers(answer.headers), answer.refusal)
      }
      scope.route({ method: ALL_METHODS, url: flavour === 'ext-authz' ? `${EXT_AUTHZ}/*` : `${AUTHZ_PREFIX}${flavour}/`, handler })
    }
  })
}

/**
 * The decision for the original request a proxy describes: the same `authorize` the built-in proxy runs, for the
 * service whose prefix the original path falls under. `viewAs` gives the asking request seen as the original one
 * (its own headers, the original's method and target). Malformed questions throw their 4xx.
 */
export async function judgeForwardAuth(app: App, flavour: Flavour, request: GatewayRequest, viewAs: (original: Original) => GatewayRequest): Promise<ForwardAuthAnswer> {
  // The gateway merges a target's slashes before routing, and Fastify's router decodes it: `//api/gateway/...` or
  // `/api/gateway/v1/%61uthz/...` would be answered too, spellings a proxy keeping the endpoints internal by a rule
  // on the path as written would let a client through with. The proxies' own questions name these paths as written.
  const asSent = splitTarget(targetAsSent(request.raw) ?? request.url).path
  if (forwardAuthFlavour(asSent) !== flavour) throw new NotFound(`No forward-auth endpoint at ${asSent.slice(0, 200)}.`)
  if (!app.trustsProxy(request.raw.socket.remoteAddress)) {
    throw new UntrustedProxy()
  }
  if (!holdsSecret(app, request)) throw new UntrustedProxy(`Forward authentication answers only a proxy that sends forward_auth.secret in ${SECRET_HEADER}.`)
  // The original path as the built-in proxy routes it, its slashes merged (src/http/request-target.ts): the proxy in
  // front may forward it unmerged, and a service that merges them acts on the path judged here.
  // A target in absolute form is judged by its path: Caddy's `{http.request.uri}` is the target as the client sent it,
  // and a client may send that form (RFC 9112 §3.2.2). Its host is the one the proxy sends in X-Forwarded-Host.
  const described = describers[flavour](request)
  if (!TARGET.test(described.url)) throw new InvalidOriginalRequest('The original URI holds characters a request target may not: spaces, controls or bytes beyond ASCII (percent-encode them).')
  const absolute = originForm(described.url)
  if (absolute && !isHost(absolute.authority)) throw new InvalidOriginalRequest('The original URI names no valid host.')
  const original = { method: described.method, url: mergeSlashes(absolute?.target ?? described.url) }
  if (!METHOD.test(original.method)) throw new InvalidOriginalRequest('The original method is not an HTTP method.')
  request.gatehouse.describedMethod = original.method
  if (!original.url.startsWith('/')) throw new InvalidOriginalRequest('The original URI must be a path, starting with "/", or an absolute http(s) URI.')
  assertWellFormedEscapes(original.url)
  const { path, query } = splitTarget(original.url)
  assertSafePath(path)
  // As the built-in proxy routes: methods it takes only, the service by the decoded path (Fastify's router decodes
  // `/a/%62/` to `/a/b/`), and none when the path as written does not start with that service's prefix.
  const routed = decodedPath(path)
  const route = PROXIED_METHODS.has(original.method) ? app.routes.find((candidate) => routed.startsWith(candidate.prefix)) : undefined
  if (!route || !path.startsWith(route.prefix)) return unrouted(app, flavour, original.method, path, query)
  const smuggled = underscoredIdentityField(request.headers, route.removedFields)
  if (smuggled) throw new InvalidOriginalRequest(`The request carries ${smuggled.slice(0, 100)}, which a service may read as an identity field: Gatehouse vouches for no request carrying one.`)
  assertNoOtherUrl(request, original.url)
  const namedMethods = overridingMethods(request, original.method)
  const asked = viewAs(original)
  // The original is the request the proxy in front received, as the client addressed it: the page a login comes back to.
  let decision = await app.authorize(asked, route, original.url)
  // The proxy forwards what the built-in proxy drops: a method a field names is judged as the request's own too.
  for (const method of namedMethods) {
    if (!decision.granted) break
    const named = await app.authorize(viewAs({ method, url: original.url }), route, original.url)
    if (!named.granted) decision = named
  }
  if (decision.granted && isWebSocketHandshake(request)) {
    // The built-in proxy holds an upgrade with ambient credentials to the trusted origins (src/gateway/websocket.ts).
    try {
      checkHandshakeOrigin(app.csrf, decision.principal, asked)
    } catch (error) {
      if (error instanceof GatehouseError) return { granted: false, refusal: error, headers: {} }
      throw error
    }
  }
  // The body never comes here: a form's method, where the service's rules name methods, is judged as every one it may name.
  const overridden = decision.granted ? bodyOverrideRefusal(asked.gatehouse.methodOverride, asked.headers, 'unseen') : undefined
  if (overridden) return { granted: false, refusal: refusedAfterBody(asked, overridden), headers: {} }
  if (!decision.granted) {
    if (flavour === 'auth-request') challengesInOneField(request, decision.refusal)
    // nginx's auth_request passes on only 2xx, 401 and 403: its login redirect travels as a 401 with the address.
    if (decision.loginUrl && flavour === 'auth-request') return { granted: false, refusal: decision.refusal, headers: { [LOGIN_HEADER]: decision.loginUrl } }
    if (decision.loginUrl) return { granted: false, redirect: decision.loginUrl, status: 302 }
    return { granted: false, refusal: decision.refusal, headers: {} }
  }
  const { principal } = decision
  if (!principal) return { granted: true, headers: forEnvoy(flavour, request, undefined, {}) }
  const access = app.access.of(principal.user)
  // As the built-in proxy: the identity token signed earlier comes without a promise to wait on.
  const identity = app.identity.reusableToken(principal, route.name) ?? await app.identity.tokenFor(principal, route.name, access)
  return { granted: true, headers: forEnvoy(flavour, request, principal, identityHeaders(principal, identity, access)) }
}

/**
 * A path under no service, answered as the built-in proxy answers it (routes.ts `unroutedAnswer`), at the address the
 * client gave the proxy in front; nginx's `auth_request`, which acts on no redirect, gets the redirect as a login
 * redirect's 401 naming the address, which its configuration turns into a 302.
 */
function unrouted(app: App, flavour: Flavour, method: string, path: string, query: string): ForwardAuthAnswer {
  const answer = unroutedAnswer(app.routes, method, path, query)
  if ('error' in answer) throw answer.error
  if (flavour === 'auth-request') return { granted: false, refusal: new NotAuthenticated(`The service is at ${answer.redirectTo}, the address in ${LOGIN_HEADER}.`), headers: { [LOGIN_HEADER]: answer.redirectTo } }
  return { granted: false, redirect: answer.redirectTo, status: 301 }
}

/**
 * What Envoy is told to change in the request it forwards, which its filters cannot do by name alone: the credential
 * goes (`x-envoy-auth-headers-to-remove`, which Envoy reads from an HTTP authorization service's allowed answer), with
 * the CSRF token of a request the session cookie authenticated, as the built-in proxy drops it, and the Cookie field
 * comes without the gateway's own cookies (sent back as `cookie`, which the documented configuration lets through to
 * the service; removed where nothing else is left). The other proxies' configurations do these themselves.
 */
function forEnvoy(flavour: Flavour, request: GatewayRequest, principal: Principal | undefined, headers: Record<string, string>): Record<string, string> {
  if (flavour !== 'ext-authz') return headers
  const removed = ['authorization']
  if (principal?.method === 'session' && request.headers[CSRF_HEADER] !== undefined) removed.push(CSRF_HEADER)
  const cookie = request.headers.cookie
  if (cookie !== undefined) {
    const kept = withoutGatewayCookies(cookie)
    if (kept === undefined) removed.push('cookie')
    else if (kept !== cookie) headers.cookie = kept
  }
  headers[ENVOY_REMOVES] = removed.join(', ')
  return headers
}

/** The field an HTTP authorization service names the request's fields in that Envoy is to remove before the service. */
const ENVOY_REMOVES = 'x-envoy-auth-headers-to-remove'

/**
 * The methods the question's method override fields name besides the original's own (uppercased, as the frameworks
 * read them). The built-in proxy drops these fields; a proxy in front passes them on (nginx's question carries the
 * client's fields, and so does its request to the service), and the service's framework would act on the method
 * named: each is judged as well. A value that names no method is refused, as the service's reading of it is unknown.
 */
function overridingMethods(request: GatewayRequest, own: string): string[] {
  const named = new Set<string>()
  for (const [field, value] of fieldsReadAs(request.headers, METHOD_OVERRIDE_FIELDS)) {
    for (const part of value.split(',')) {
      const method = part.trim().toUpperCase()
      if (method === '') continue
      if (!METHOD.test(method)) throw new InvalidOriginalRequest(`The request's ${field.slice(0, 100)} names no HTTP method, and a service's framework may take it for the request's method.`)
      if (method !== own) named.add(method)
    }
  }
  return [...named]
}

/**
 * A URL override field (`X-Original-URL`, `X-Rewrite-URL`) that names another target than the original: a framework
 * that reads it (IIS's, Zend's, older Symfony's) would act on that one, judged or not. The same target (as Kubernetes'
 * ingress-nginx sends in its questions, as an absolute URL) is the one judged.
 */
function assertNoOtherUrl(request: GatewayRequest, judged: string): void {
  for (const [field, value] of fieldsReadAs(request.headers, URL_OVERRIDE_FIELDS)) {
    if (mergeSlashes(originForm(value)?.target ?? value) !== judged) {
      throw new InvalidOriginalRequest(`The request carries ${field.slice(0, 100)} naming another target than the original, which a service's framework may take for the one asked for: Gatehouse vouches for no such request.`)
    }
  }
}

/** Where the asking proxy sends `forward_auth.secret`. The built-in proxy never passes an `X-Gatehouse-*` field on. */
export const SECRET_HEADER = 'x-gatehouse-forward-auth-secret'

/** The configured secret's digest, made once for each configuration. */
const secretDigests = new WeakMap<object, Buffer>()

/**
 * Whether the question carries `forward_auth.secret`, when one is set. A client that reaches these endpoints through
 * the proxy's route to Gatehouse's own paths comes from the proxy's address too, and would be handed its own identity
 * token, which its service believes for any method. Compared as SHA-256 digests, in constant time whatever the length.
 */
function holdsSecret(app: App, request: GatewayRequest): boolean {
  const settings = app.config.forward_auth
  if (settings?.secret === undefined) return true
  let expected = secretDigests.get(settings)
  if (expected === undefined) {
    expected = hash('sha256', settings.secret, 'buffer')
    secretDigests.set(settings, expected)
  }
  const given = request.headers[SECRET_HEADER]
  return typeof given === 'string' && timingSafeEqual(hash('sha256', given, 'buffer'), expected)
}

/** What the built-in proxy sends the service (src/gateway/upstream-headers.ts): X-Gatehouse-Teams too, when there are teams. */
function identityHeaders(principal: Principal, identity: string, access: UserAccess): Record<string, string> {
  const headers: Record<string, string> = {
    'x-gatehouse-user': principal.user.username,
    'x-gatehouse-user-id': String(principal.user.id),
    'x-gatehouse-auth-method': principal.method,
    'x-gatehouse-identity': identity,
  }
  if (access.teams.length) headers['x-gatehouse-teams'] = teamsHeader(access)
  return headers
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

/**
 * Whether the original request opens a WebSocket: by its Sec-WebSocket-Key, which every browser sends with one, no
 * page's script can set, and the proxies pass on (Upgrade and Connection are hop-by-hop: nginx drops them).
 */
function isWebSocketHandshake(request: GatewayRequest): boolean {
  return request.headers['sec-websocket-key'] !== undefined
}

function header(request: GatewayRequest, name: string): string | undefined {
  const value = request.headers[name]
  return typeof value === 'string' && value !== '' ? value : undefined
}

/**
 * The original request as a proxy's headers name it. Both are required: a question without the method, judged as a
 * GET, would let every write pass as a read, and nginx hands on a client's own header where its configuration sets none.
 */
function described(request: GatewayRequest, methodHeader: string, targetHeader: string): Original {
  const url = header(request, targetHeader)
  if (url === undefined) throw new MissingOriginalUri(`The asking proxy must send the original request's target in ${targetHeader}.`)
  const method = header(request, methodHeader)
  if (method === undefined) throw new MissingOriginalMethod(`The asking proxy must send the original request's method in ${methodHeader}.`)
  return { method, url }
}
