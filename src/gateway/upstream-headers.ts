import type { GatewayRequest } from '../http/gateway-request.ts'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { UserAccess } from '../access/model.ts'
import { CSRF_HEADER } from '../auth/csrf.ts'
import type { Principal } from '../auth/principal.ts'
import { withoutGatewayCookies, withoutGatewaySetCookies } from './gateway-cookies.ts'
import type { ProxyTrust } from './trusted-proxies.ts'

/** The fields frameworks take for the request's method (Symfony, Laravel, Express's method-override, ASP.NET Core). */
export const METHOD_OVERRIDE_FIELDS = ['x-http-method-override', 'x-http-method', 'x-method-override'] as const
/** The fields frameworks take for the URL asked for (IIS's, Zend's and older Symfony's). */
export const URL_OVERRIDE_FIELDS = ['x-original-url', 'x-rewrite-url'] as const

/** Hop-by-hop fields (RFC 9110 §7.6.1): meaningful for one connection only, never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

/**
 * What a client sends that a service never receives: hop-by-hop fields; the credentials the gateway consumed;
 * `Expect`, which the gateway has already answered (Node sends `100 Continue` itself, and the upstream client refuses
 * the field); the method overrides, which frameworks take for the method (a POST let through as a POST would reach
 * the service as the DELETE the access rules refuse), and the URL overrides, which they take for the path asked for
 * (IIS's, Zend's and older Symfony's `X-Original-URL`, `X-Rewrite-URL`: a path let through would reach the service as
 * the one refused; a proxy in front passes its client's own on, so not even a trusted one's are believed); and the
 * fields the gateway sets itself, so a client's value never stands beside or instead of its own.
 */
const ALWAYS_DROPPED = new Set([
  ...HOP_BY_HOP, 'authorization', 'expect', ...METHOD_OVERRIDE_FIELDS, ...URL_OVERRIDE_FIELDS, 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host',
  // What the gateway vouches for in their place when a trusted proxy sent them (upstreamRequestHeaders): a proxy that
  // passes on its client's own (nginx does, unless told otherwise) would otherwise tell a service another client
  // address, scheme or host than X-Forwarded-* say, and Spring's ForwardedHeaderFilter prefers `Forwarded`.
  'forwarded', 'x-real-ip',
])
const IDENTITY_PREFIX = 'x-gatehouse-'

/**
 * Fields that say who the client is or which URL it asked for, which frameworks believe for the client address and
 * for URL rewriting: passed on only from a trusted proxy (`server.trusted_proxies`), which is where they come from.
 * `X-Original-URI` is what nginx's auth_request examples name the URL in, `X-Original-Host` what Azure's and IIS's
 * proxies (and ASP.NET's forwarded-headers middleware) name the host in.
 */
const FROM_TRUSTED_PROXIES_ONLY = new Set([
  'x-client-ip', 'true-client-ip', 'x-cluster-client-ip', 'cf-connecting-ip', 'fastly-client-ip',
  // PHP's HTTP_CLIENT_IP and the like, which "real client address" recipes look at before REMOTE_ADDR.
  'client-ip', 'x-forwarded', 'forwarded-for', 'x-originating-ip', 'x-host',
  'x-original-uri', 'x-original-host', 'x-original-forwarded-for',
])
/**
 * `X-Forwarded-*`; and Envoy's `X-Envoy-*`, from no one: an Envoy in front of a service (a sidecar, the platform's
 * gateway) takes the client address, the original path, and its retries and timeouts (`x-envoy-retry-on`,
 * `-max-retries`, `-upstream-rq-timeout-ms`) from a request it counts as internal, as one from the gateway's private
 * address is, and strips them only from external requests; a proxy in front of the gateway passes on its client's
 * (nginx cannot clear them by prefix), and what an Envoy in front set there is no business of the service's.
 */
const FORWARDED_PREFIX = 'x-forwarded-'

/**
 * The fields of FROM_TRUSTED_PROXIES_ONLY that name the client's address (and `X-Forwarded`, RFC 7239's syntax under
 * an older name): from a trusted proxy, the gateway's own values in their place, as for `X-Real-IP`. The proxy in
 * front (nginx unless told otherwise) passes on what its client wrote in them, and a service that believes one for the
 * client's address (an allow-list, a rate limit) would believe that; the address the gateway judged from the trusted
 * chain is the one it can vouch for.
 */
const CLIENT_ADDRESS_FIELDS = new Set([
  'x-client-ip', 'true-client-ip', 'x-cluster-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'client-ip', 'forwarded-for', 'x-originating-ip',
])
const ENVOY_PREFIX = 'x-envoy-'

/**
 * Fields that say what the body is, which pass on though a client's Connection names them. The body was judged as
 * they describe it (a form's `_method`, src/access/method-override.ts): without its media type, Rack reads a POST's
 * body as a form, so a `text/plain` body left unread here would reach the service as a form naming DELETE. RFC 9110
 * §7.6.1 has no sender name a field meant for every recipient there; nginx and Envoy remove no field Connection names.
 */
const DESCRIBES_BODY: ReadonlySet<string> = new Set(['content-type', 'content-encoding'])

/**
 * The fields other authenticating proxies set to tell a service who is calling: a service that was behind one of
 * them believes these, so a client that sends them through the gateway would be whoever it names. Removed from
 * every client, trusted proxies too (a proxy in front passes its client's on). Exact names, then families by
 * prefix. As oauth2-proxy removes the fields it injects from the incoming request, and dex every `X-Remote-*`.
 */
const OTHER_PROXIES_IDENTITY = [
  // Authelia, Authentik's and others' forward auth.
  'remote-*',
  // oauth2-proxy (upstream headers, and the X-Auth-Request-* of --set-xauthrequest), and its nginx example's X-User.
  'x-forwarded-user', 'x-forwarded-email', 'x-forwarded-groups', 'x-forwarded-preferred-username', 'x-forwarded-access-token',
  'x-auth-request-*', 'gap-auth', 'gap-signature', 'x-user', 'x-email',
  // Apache's and Kubernetes' authenticating proxies (X-Remote-User, X-Remote-Group, X-Remote-Extra-*).
  'x-remote-*',
  'x-pomerium-*', 'x-authentik-*', 'x-vouch-*',
  // Grafana's auth proxy default; Kong's authentication plugins.
  'x-webauth-*', 'x-consumer-*', 'x-authenticated-userid', 'x-authenticated-user', 'x-credential-identifier',
  // The clouds' identity-aware proxies: Cloudflare Access, Google IAP, AWS ALB, Azure App Service.
  'cf-access-*', 'x-goog-authenticated-user-*', 'x-goog-iap-jwt-assertion', 'x-amzn-oidc-*', 'x-ms-client-principal*', 'x-ms-token-*',
  // A TLS client certificate, as proxies that checked one describe it (nginx's `proxy_set_header X-SSL-Client-DN
  // $ssl_client_s_dn` and the like, HAProxy, Traefik's passTLSClientCert, AWS ALB's and Azure's mutual TLS, Envoy's
  // XFCC): the gateway uses none, so only a client could have set them.
  'x-ssl-*', 'ssl-client-*', 'x-client-cert*', 'x-client-verify', 'x-client-dn', 'x-forwarded-tls-client-cert*',
  'x-arr-clientcert', 'x-amzn-mtls-*', 'x-forwarded-client-cert',
]

/**
 * Whether a field name (lower-case, spelled with dashes: one with `_` never passes on) is one of `names`: exact names,
 * and prefixes ending in `*`, a configured `_` read as `-`. Compiled once per service, with the configured names
 * besides the other proxies' identity fields.
 */
export type RemovedFields = (canonical: string) => boolean

export function removedFields(configured: readonly string[]): RemovedFields {
  const names = [...OTHER_PROXIES_IDENTITY, ...configured].map((name) => name.toLowerCase().replaceAll('_', '-'))
  const exact = new Set(names.filter((name) => !name.endsWith('*')))
  // One expression for every prefix: a quarter of the time of testing them one by one, for each field of each request.
  const prefixes = new RegExp(`^(?:${names.filter((name) => name.endsWith('*')).map((name) => name.slice(0, -1).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`)
  return (canonical) => exact.has(canonical) || prefixes.test(canonical)
}

/**
 * A character of a field name besides letters (lower case, as Node gives them), digits and `-`: the only ones nginx
 * passes on (`ignore_invalid_headers on` and `underscores_in_headers off`, its defaults).
 */
const NOT_A_PLAIN_NAME = /[^a-z0-9-]/
const NOT_PLAIN_CHARACTERS = /[^a-z0-9-]/g

/**
 * Whether a client's field reaches the service. None whose name holds anything but letters, digits and `-` (`_`, `.`,
 * `~`...), from any client, as nginx drops them: CGI-style servers (WSGI, PHP, Rack, uWSGI) turn `-` and `_` alike
 * into `_`, and PHP `.` too, so `X_Gatehouse_User`, `X.Gatehouse.User`, `X_CSRFToken` or `X_Request_Id` would read
 * there as the field the gateway sets or removes, and a name list would have to foresee every field a service believes.
 */
function passesOn(name: string, fromTrustedProxy: boolean, removed: RemovedFields): boolean {
  if (NOT_A_PLAIN_NAME.test(name) || ALWAYS_DROPPED.has(name) || name.startsWith(IDENTITY_PREFIX) || name.startsWith(ENVOY_PREFIX) || removed(name)) return false
  if (fromTrustedProxy) return true
  return !FROM_TRUSTED_PROXIES_ONLY.has(name) && !name.startsWith(FORWARDED_PREFIX)
}

/**
 * The first field of a request whose name holds a character nginx would drop it for (`_`, `.`...) that a CGI-style
 * server would read as an identity field: the gateway's own (`X_Gatehouse_User`, `X.Gatehouse.User`),
 * `Authorization`, or one of `removed` (another proxy's identity, a configured name). Where another proxy forwards
 * the request (forward authentication), Gatehouse cannot drop the field as its own proxy does: it refuses to vouch
 * for a request carrying one. Other such fields are not looked at.
 */
export function underscoredIdentityField(headers: IncomingHttpHeaders, removed: RemovedFields): string | undefined {
  for (const name of Object.keys(headers)) {
    if (!NOT_A_PLAIN_NAME.test(name)) continue
    const canonical = name.replace(NOT_PLAIN_CHARACTERS, '-')
    if (canonical.startsWith(IDENTITY_PREFIX) || canonical === 'authorization' || removed(canonical)) return name
  }
  return undefined
}

/**
 * The request's fields that a framework reads as one of `fields`, in any spelling a CGI-style server reads alike
 * (`X_HTTP_Method_Override`, `X-HTTP_Method-Override`), with their values, repeated fields one by one.
 */
export function fieldsReadAs(headers: IncomingHttpHeaders, fields: readonly `x-${string}`[]): [name: string, value: string][] {
  const found: [string, string][] = []
  for (const name of Object.keys(headers)) {
    // Asked for every forward-auth question: most fields are told apart by their first letter (Node lowercases names).
    if (name.charCodeAt(0) !== 120 || !fields.includes((NOT_A_PLAIN_NAME.test(name) ? name.replace(NOT_PLAIN_CHARACTERS, '-') : name) as `x-${string}`)) continue
    const value = headers[name]
    for (const one of Array.isArray(value) ? value : [value ?? '']) found.push([name, one])
  }
  return found
}

/**
 * What a service receives: the client's headers that pass on (above), without the fields a Connection header
 * lists (but those that describe the body), those the service's `removed` names and the gateway's own cookies, plus
 * X-Forwarded-* and the verified identity (with the caller's teams, `access`), and the request's id. Built in one
 * pass into a new object.
 */
export function upstreamRequestHeaders(request: GatewayRequest, incoming: IncomingHttpHeaders, trustsProxy: ProxyTrust, removed: RemovedFields, principal: Principal | undefined, identity: string | undefined, access?: UserAccess): IncomingHttpHeaders {
  const peer = request.raw.socket.remoteAddress ?? ''
  const fromTrustedProxy = trustsProxy(peer)
  const listed = connectionOptions(incoming.connection)
  // With the session cookie it goes with, the CSRF token is the gateway's credential too: a service cannot check it
  // (the cookie is taken out below), and its logs are no place for it.
  const csrfDropped = principal?.method === 'session'
  // Fields are left out, never deleted once added: an object that loses a property turns into a dictionary, which
  // made every later step of the request (the fields added below, undici's reading of them) slower.
  const headers: IncomingHttpHeaders = {}
  // Whether a trusted proxy sent `Forwarded` or `X-Real-IP`: they are then the gateway's own, below.
  let vouched = false
  for (const name of Object.keys(incoming)) {
    if (!passesOn(name, fromTrustedProxy, removed) || (listed?.has(name) && !DESCRIBES_BODY.has(name))) {
      if (fromTrustedProxy && (name === 'forwarded' || name === 'x-real-ip')) vouched = true
      continue
    }
    if (name === 'cookie') {
      // An empty field passes on as it came; one left empty once the gateway's cookies are out (`gateway_sessionid=x;`)
      // does not pass on at all.
      const cookie = incoming.cookie!
      const kept = cookie === '' ? cookie : withoutGatewayCookies(cookie)
      if (kept !== undefined) headers.cookie = kept
    } else if (fromTrustedProxy && CLIENT_ADDRESS_FIELDS.has(name)) {
      headers[name] = request.ip
    } else if (fromTrustedProxy && name === 'x-forwarded') {
      headers[name] = forwardedElement(request)
    } else if (name !== CSRF_HEADER || !csrfDropped) headers[name] = incoming[name]
  }
  const prior = fromTrustedProxy ? request.headers['x-forwarded-for'] : undefined
  headers['x-forwarded-for'] = prior ? `${prior}, ${peer}` : peer
  headers['x-forwarded-proto'] = request.protocol
  // An HTTP/1.0 request may name no host: an empty field would be a host to a framework that believes it (Django's
  // DisallowedHost), so none is sent.
  if (request.host) headers['x-forwarded-host'] = request.host
  // The client's own passed on above only when a trusted proxy sent it, and then it is this id already.
  headers['x-request-id'] = request.id
  if (vouched) {
    headers.forwarded = forwardedElement(request)
    headers['x-real-ip'] = request.ip
  }
  if (principal && identity) {
    headers['x-gatehouse-user'] = principal.user.username
    headers['x-gatehouse-user-id'] = String(principal.user.id)
    headers['x-gatehouse-auth-method'] = principal.method
    headers['x-gatehouse-identity'] = identity
    if (access?.teams.length) headers['x-gatehouse-teams'] = teamsHeader(access)
  }
  return headers
}

/** RFC 7239's one element for what the gateway vouches for: the client's address, the scheme and the host asked for. */
function forwardedElement(request: GatewayRequest): string {
  const address = request.ip.includes(':') ? `"[${request.ip}]"` : request.ip
  const host = request.host ? `;host=${TOKEN.test(request.host) ? request.host : JSON.stringify(request.host)}` : ''
  return `for=${address};proto=${request.protocol}${host}`
}

/** An RFC 7230 token: a value that needs no quotes. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * Team names, each percent-encoded (a name may hold a comma), comma-separated: for upstreams that read a header, not a
 * JWT. A user's access is one frozen object until memberships change, so its header is made once.
 */
export function teamsHeader(access: UserAccess): string {
  let header = teamsHeaders.get(access)
  if (header === undefined) {
    header = access.teams.map((team) => encodeURIComponent(team.name)).join(',')
    teamsHeaders.set(access, header)
  }
  return header
}

const teamsHeaders = new WeakMap<UserAccess, string>()

/**
 * Where a service's own `X-Request-Id` answer field goes when it is not the request's id: the client keeps the
 * gateway's, the one in its log line and in what the service received (as Envoy's `always_set_request_id_in_response`
 * keeps its own), and learns the service's too.
 */
const UPSTREAM_REQUEST_ID = 'x-upstream-request-id'
const STRICT_TRANSPORT_SECURITY = 'strict-transport-security'

/**
 * What the client receives of a service's response headers: no hop-by-hop fields, none of the gateway's cookies set,
 * and the service's own request id under another name (above), so the client's `X-Request-Id` stays `requestId`.
 * `withId`: the request's id comes first among them (for a response that has no field set before its writeHead).
 * A service's `Strict-Transport-Security` gives way to the one the gateway's HTTPS listener set on `response`
 * already: browsers hold one policy for the whole host, the operator's (`server.tls`), which a service's
 * `includeSubDomains` (Spring Security's default) or `max-age=0` would otherwise replace for the login page and
 * every other service too.
 */
export function clientResponseHeaders(incoming: IncomingHttpHeaders, requestId: string, response: Pick<ServerResponse, 'hasHeader'>, withId = false): IncomingHttpHeaders {
  const listed = connectionOptions(incoming.connection)
  const headers: IncomingHttpHeaders = withId ? { 'x-request-id': requestId } : {}
  for (const name of Object.keys(incoming)) {
    if (name !== 'x-request-id' && !HOP_BY_HOP.has(name) && !listed?.has(name)) headers[name] = incoming[name]
  }
  const serviceId = incoming['x-request-id']
  if (serviceId !== undefined && serviceId !== requestId && !listed?.has('x-request-id')) headers[UPSTREAM_REQUEST_ID] = serviceId
  if (headers[STRICT_TRANSPORT_SECURITY] !== undefined && response.hasHeader(STRICT_TRANSPORT_SECURITY)) delete headers[STRICT_TRANSPORT_SECURITY]
  if (headers['set-cookie']) {
    const kept = withoutGatewaySetCookies(headers['set-cookie'])
    if (kept) headers['set-cookie'] = kept
    else delete headers['set-cookie']
  }
  return headers
}

/**
 * Trailer fields a client must not take from a service's trailers (RFC 9110 §6.5.1): framing, routing,
 * authentication and cookies, response control, how to read the content, and CORS. A client that merged them into
 * the header section would act on fields the gateway never checked or rewrote there (its cookies, `Location`, the
 * service's `Access-Control-*` it replaces, the request's id); checksums, `Server-Timing`, gRPC's status and the like pass.
 */
const NEVER_TRAILERS = new Set([
  ...HOP_BY_HOP, 'content-length', 'host', 'authorization', 'www-authenticate', 'proxy-authenticate', 'set-cookie',
  'cache-control', 'expires', 'age', 'date', 'vary', 'location', 'content-location', 'refresh', 'retry-after',
  'content-type', 'content-encoding', 'content-range', 'x-request-id',
])

/** What the client receives of a service's trailers: those that may be trailers at all, as they came. */
export function clientResponseTrailers(incoming: IncomingHttpHeaders): IncomingHttpHeaders {
  const trailers: IncomingHttpHeaders = {}
  for (const name of Object.keys(incoming)) {
    if (!NEVER_TRAILERS.has(name) && !name.startsWith('access-control-')) trailers[name] = incoming[name]
  }
  return trailers
}

/**
 * The field names a Connection header lists (RFC 9110 §7.6.1), lower-cased; undefined when there are none, or
 * only `keep-alive` (hop-by-hop anyway), which is what nearly every upstream response says. Several Connection
 * fields are one list (RFC 9110 §5.3): undici hands them over as an array, whose names were let through.
 */
function connectionOptions(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined
  const options = (typeof connection === 'string' ? connection : connection.join(',')).toLowerCase()
  if (options === 'keep-alive') return undefined
  return new Set(options.split(',').map((name) => name.trim()))
}
