import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import { createPublicKey, hash, timingSafeEqual, type JsonWebKey } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { isUtf8 } from 'node:buffer'
import { compactVerify, decodeJwt } from 'jose'
import type { App } from '../app.ts'
import { BodyBuffersFull, DatabaseUnavailable, NUL_MESSAGE, recordedError, SignInsThrottled, type GatehouseError } from '../errors.ts'
import { wantsHtml } from '../http/negotiation.ts'
import { escapeHtml, UNFRAMED_PAGE_HEADERS } from '../pages/html.ts'
import { nulFields } from '../http/input-safety.ts'
import { formBytes, formInUtf8, formValuesAreUtf8 } from '../http/legacy-text.ts'
import { anonymousBodyMs } from '../http/anonymous-bodies.ts'
import { contentCodingRefusal, transferCodingRefusal } from '../http/body-codings.ts'
import { closeLingeringAfter } from '../http/lingering-close.ts'
import { PackedChunks } from '../http/packed-chunks.ts'
import { splitTarget } from '../http/request-target.ts'
import { auditedToken, auditedTokenFields } from '../audit/tokens.ts'
import { TOKEN_PREFIX, tokenShapeProblem } from '../auth/token-format.ts'
import { SESSION_COOKIE } from '../auth/session.ts'
import { accountEndpoint } from './account.ts'
import { writeTokenAnswer } from './client-credentials.ts'
import { DEFAULT_SCOPES, orderScopes } from './claims.ts'
import { isIframePath, LOGIN_STATUS_IFRAME, sendIframePage } from './keycloak-pages.ts'
import { errorPage, NO_SUCH_ENDPOINT, PROVIDER_REQUEST, REFRESH_CLIENT_MISMATCH, simplePage, tokenEndpointFailure, type ProviderRequest, type UserinfoRefusal } from './keycloak-format.ts'
import epochTime from './provider-clock.ts'
import { canonicalRealmPath, ENDPOINT_METHODS, GATEWAY_CALLBACK, KEYCLOAK_ROUTES, LOGIN_ACTIONS } from './provider-paths.ts'
import { accessTokenTimesHold, type Realm } from './realm.ts'

const METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'OPTIONS', 'PUT', 'PATCH', 'DELETE']
/**
 * The largest body a realm reads: its forms carry a few tokens at most (a refresh token, a JWT client assertion, an
 * `id_token_hint`, a PKCE verifier: a few KB together), as Keycloak's adapters and openid-client send them, where
 * oidc-provider would read 56 KiB. Larger bodies are refused, unread when their length says so.
 */
export const REALM_BODY_LIMIT = 16 * 1024
const REALM_PATH = /^\/realms\/([A-Za-z0-9._-]+)(\/[^?]*)?$/
const ACCOUNT_PATH = '/account'
/** keycloak-js `register()` sends the browser here (Keycloak's AuthorizationEndpoint `registrations`). */
const REGISTRATIONS_PATH = '/protocol/openid-connect/registrations'
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
/** What oidc-provider is handed in place of a token that is none of the realm's: no record has this id. */
const UNKNOWN_TOKEN = 'unknown'

/** The login step and the gateway's callback: loaded with the first browser login, which needs the realm's provider too. */
let interactions: Promise<typeof import('./interactions.ts')> | undefined
function loadInteractions(): Promise<typeof import('./interactions.ts')> {
  interactions ??= import('./interactions.ts').catch((error: unknown) => {
    interactions = undefined
    throw error
  })
  return interactions
}

/**
 * Mounts each realm at Keycloak's `/realms/<realm>/`. oidc-provider is a Koa application: its request handler gets
 * the request after Fastify has done nothing but route it (no body parser runs; `reply.hijack()` hands over the
 * response). The body is read here as raw bytes, within REALM_BODY_LIMIT and the realms' shared budget, because some Keycloak
 * behaviours need the request adjusted first, all in `adjustForKeycloak`; oidc-provider then parses it as usual.
 * oidc-provider builds its URLs (discovery, redirects) from the request's host: it is given the configured
 * public URL's instead, never the client's `Host` (Keycloak's hostname setting).
 */
export async function registerOidcRoutes(server: FastifyInstance, app: App): Promise<void> {
  if (!app.oidc.configured) return
  await server.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null))
    scope.setErrorHandler(answerUnreadable)
    // Every answer says `nosniff`, as Keycloak's JSON answers and pages do (its DefaultSecurityHeadersProvider). On
    // the raw response: most answers are oidc-provider's, written past Fastify's reply (`handOver`).
    scope.addHook('onRequest', async (_request, reply) => void reply.raw.setHeader('x-content-type-options', 'nosniff'))
    scope.route({ method: METHODS, url: '/realms/*', handler: (request, reply) => handle(app, request, reply) })
    // The platform's OAuth2 endpoints (django-oauth-toolkit's, where awxkit posts the password grant), served by
    // the realm whose clients the OAuth2 applications are.
    const realm = app.oidc.applicationsRealm
    if (!realm) return
    // Every method, so that one the endpoint does not have is answered 405 with Allow, as Django's views do.
    for (const [url, endpoint] of [
      ['/o/token/', KEYCLOAK_ROUTES.token],
      ['/o/revoke_token/', KEYCLOAK_ROUTES.revocation],
      ['/o/authorize/', KEYCLOAK_ROUTES.authorization],
    ] as const) {
      scope.route({ method: METHODS, url, handler: (request, reply) => serveRealm(app, realm, endpoint, request, reply, true) })
    }
  })
}

async function handle(app: App, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const match = REALM_PATH.exec(splitTarget(request.url).path)
  const realm = match ? app.oidc.get(match[1]!) : undefined
  if (!match || !realm) return wantsHtml(request) ? errorPage(reply, 404, 'Page not found') : keycloakError(reply, 404, 'Realm does not exist')
  const rest = canonicalRealmPath(match[2] ?? '/')
  if (rest === undefined) return wantsHtml(request) ? errorPage(reply, 404, 'Page not found') : reply.code(404).header('cache-control', 'no-store').send(NO_SUCH_ENDPOINT)
  return serveRealm(app, realm, rest, request, reply)
}

/** One request to a realm's endpoint `rest` (the path below `/realms/<realm>`), or to the platform's `/o/` path for it. */
async function serveRealm(app: App, realm: Realm, rest: string, request: FastifyRequest, reply: FastifyReply, platform = false): Promise<FastifyReply> {
  const { query } = splitTarget(request.url)
  request.gatehouse.place = app.places.realm(realm.name)
  // What other processes changed (a realm's keys replaced, its sessions ended) is known before the realm answers from
  // what it holds in memory, as the gateway's own requests know it (pipeline.ts); an outage is the endpoints' to answer.
  await app.bus.freshen().catch(() => {})
  // A browser's request for one of the realm's pages is refused with a page, as the pages' own errors are.
  const page = BROWSER_PAGES.has(rest) && wantsHtml(request)
  if (nulFields(request.query).length) return page ? errorPage(reply, 400, NUL_MESSAGE) : nulRefused(reply)

  if (rest.startsWith(LOGIN_ACTIONS) && (request.method === 'GET' || request.method === 'POST')) {
    return (await loadInteractions()).loginStep(app, realm, rest.slice(LOGIN_ACTIONS.length), request, reply)
  }
  if (rest === GATEWAY_CALLBACK && request.method === 'GET') return (await loadInteractions()).gatewayCallback(app, realm, request, reply)
  // Keycloak's GET resources: the pages keycloak-js frames, and the realm description.
  if ((isIframePath(rest) || rest === '/') && request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(reply, ['GET', 'HEAD'])
  if (isIframePath(rest)) {
    if (rest === LOGIN_STATUS_IFRAME) await (await loadInteractions()).markGatewaySignIn(app, realm, request, reply)
    return sendIframePage(realm, rest, new URLSearchParams(query), reply)
  }
  if (rest === ACCOUNT_PATH) return accountEndpoint(app, realm, request, reply)
  if (rest === REGISTRATIONS_PATH || (rest === KEYCLOAK_ROUTES.authorization && asksToRegister(query))) return registrationNotAllowed(request, reply)
  if (rest === '/') return reply.header('cache-control', 'no-store').send(await realmInfo(realm))
  const allowed = ENDPOINT_METHODS.get(rest)
  if (allowed && !allowed.includes(request.method)) return methodNotAllowed(reply, allowed)
  // A CORS preflight is oidc-provider's to answer; an OPTIONS without an Origin is none, and Keycloak's endpoints
  // answer it 200 (their `@OPTIONS preflight()`), where oidc-provider has no route for it.
  if (allowed && request.method === 'OPTIONS' && request.headers.origin === undefined) {
    return reply.code(200).header('allow', allowed.join(', ')).header('cache-control', 'no-store').send()
  }

  if (startsSignIn(rest, request.method, query)) {
    try {
      app.signInStarts.admit(request.ip)
    } catch (error) {
      if (!(error instanceof SignInsThrottled)) throw error
      for (const [name, value] of Object.entries(error.headers ?? {})) reply.header(name, value)
      if (!BROWSER_PAGES.has(rest)) return keycloakError(reply, error.status, error.message, error.code)
      return reply.code(error.status).header('cache-control', 'no-store').headers(UNFRAMED_PAGE_HEADERS).type('text/html; charset=utf-8')
        .send(simplePage('Too many sign-ins', `<p>${escapeHtml(error.message)}</p>`))
    }
  }

  await serveProvider(app, realm, rest, query, {
    raw: request.raw,
    response: reply.raw,
    ip: request.ip,
    secure: app.csrf.isSecure(request),
    platform,
    log: request.log,
    refuse: (status, description, error, headers = {}) => {
      for (const [name, value] of Object.entries(headers)) reply.header(name, value)
      if (page) errorPage(reply, status, description)
      else keycloakError(reply, status, description, error)
    },
    recordFailure: (error) => recordedError(request, error, request.log),
    handOver: () => reply.hijack(),
    signedInAtGateway: async (accepts) => (await loadInteractions()).silentGatewaySignIn(app, realm, request, accepts),
    gatewayAccount: async () => (await (await loadInteractions()).gatewaySessionUser(app, realm, request))?.user.id,
    sessionAccount: async () => {
      const sessionId = request.cookies?.[SESSION_COOKIE]
      return sessionId ? app.sessions.resolve(sessionId).then((session) => session.userId, () => undefined) : undefined
    },
  })
  return reply
}

/**
 * Accounts are made by administrators, the directory or single sign-on, never by a visitor: the registrations
 * endpoint answers as Keycloak's with "User registration" off, its error page (400) "Registration not allowed".
 */
function registrationNotAllowed(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (request.method !== 'GET' && request.method !== 'HEAD') return methodNotAllowed(reply, ['GET', 'HEAD'])
  return reply.code(400).header('cache-control', 'no-store').headers(UNFRAMED_PAGE_HEADERS).type('text/html; charset=utf-8')
    .send(simplePage('Registration not allowed', '<p>Registration not allowed</p><p>Ask an administrator for an account.</p>'))
}

/**
 * An authorization request with `prompt=create` (Initiating User Registration via OpenID Connect), which Keycloak's
 * AuthorizationEndpoint sends to its registration: that value alone, compared whole. A form POST of it is sent on as
 * the same GET (`asGet`), which this answers.
 */
function asksToRegister(query: string): boolean {
  const prompts = new URLSearchParams(query).getAll('prompt')
  return prompts.length === 1 && prompts[0] === 'create'
}

/**
 * A request Fastify refuses before a realm's handler sees it (a `Content-Type` that is no media type) gets Keycloak's
 * error shape, as JAX-RS words it (`HTTP 415 Unsupported Media Type`); anything else goes to the gateway's own handler.
 */
function answerUnreadable(error: Error & { statusCode?: number }, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error.statusCode !== 415) throw error
  return keycloakError(reply, 415, 'HTTP 415 Unsupported Media Type')
}

/** Keycloak's 405 for a known path asked with another method, with `Allow`. */
function methodNotAllowed(reply: FastifyReply, allowed: readonly string[]): FastifyReply {
  reply.header('allow', allowed.join(', '))
  if (wantsHtml(reply.request)) return errorPage(reply, 405, 'Method not allowed')
  return reply.code(405).header('cache-control', 'no-store').type('application/json')
    .send({ error: 'HTTP 405 Method Not Allowed', error_description: NO_SUCH_ENDPOINT.error_description })
}


/** The endpoints whose answers are pages for a browser, also when a start is refused. */
const BROWSER_PAGES: ReadonlySet<string> = new Set([KEYCLOAK_ROUTES.authorization, KEYCLOAK_ROUTES.end_session, KEYCLOAK_ROUTES.code_verification])

/**
 * Whether the request may start a sign-in, whose record (an interaction, a device code, a pushed request) waits for
 * its end or expiry: an authorization request that may show a login page, a device authorization, or a pushed
 * authorization request (which a public client sends without a credential). `prompt=none` never shows a page
 * (keycloak-js's silent check-sso sends it on every page load), and is not counted, unless the request uses a pushed
 * request: then the pushed parameters, not the URL's, decide, and the URL's `prompt` says nothing. The logout and
 * device code pages count too: their forms' anti-forgery secret is kept in a realm browser session, which oidc-provider
 * saves new, for the session's whole lifetime, for a browser that has none.
 */
function startsSignIn(rest: string, method: string, query: string): boolean {
  if (rest === KEYCLOAK_ROUTES.device_authorization || rest === KEYCLOAK_ROUTES.pushed_authorization_request) return method === 'POST'
  if (rest === KEYCLOAK_ROUTES.end_session || rest === KEYCLOAK_ROUTES.code_verification) return method === 'GET' || method === 'HEAD'
  if (rest !== KEYCLOAK_ROUTES.authorization) return false
  // A form POST is sent on as the same request by GET (`asGet`), which is the one counted.
  if (method === 'POST') return false
  const params = new URLSearchParams(query)
  keycloakPrompt(params)
  return params.get('prompt') !== 'none' || params.has('request_uri') || params.has('request')
}

/** What serving one of oidc-provider's endpoints needs of a request, whichever way it came in (Fastify's route, or token-lane.ts). */
export interface ProviderExchange {
  readonly raw: IncomingMessage
  readonly response: ServerResponse
  /** The client address as Gatehouse resolved it (X-Forwarded-For believed from trusted proxies only). */
  readonly ip: string
  /** Whether the request was https, as the gateway judges it for its own cookies; by the public URL when not said (the token endpoint sets no cookie). */
  readonly secure?: boolean
  /** Whether it came by the platform's `/o/` paths (django-oauth-toolkit's endpoints) rather than the realm's. */
  readonly platform?: boolean
  readonly log: ProviderRequest['log']
  /** Answers in Keycloak's error shape before oidc-provider sees the request, with `headers` besides its own. */
  refuse(status: number, description: string, error?: string, headers?: Readonly<Record<string, string | string[]>>): void
  /** Notes a failure for the request's log line and logs Gatehouse's own faults, as its error responder does; the failure as Gatehouse classes it. */
  recordFailure(error: unknown): GatehouseError
  /** From here on the response is oidc-provider's. */
  handOver(): void
  /** The browser's gateway session, for a silent authorization (`ProviderRequest.signedInAtGateway`). */
  signedInAtGateway?: ProviderRequest['signedInAtGateway']
  /** The account of the browser's gateway session (`ProviderRequest.gatewayAccount`). */
  gatewayAccount?: ProviderRequest['gatewayAccount']
  /** The account of the browser's gateway session, for counting (`ProviderRequest.sessionAccount`). */
  sessionAccount?: ProviderRequest['sessionAccount']
}

/**
 * A request for one of oidc-provider's endpoints (`rest`, below the realm's path): read, adjusted for Keycloak, handed
 * over. A failure on the way is the token endpoint's to answer in its clients' shape (keycloak-format.ts
 * `tokenEndpointFailure`, as oidc-provider's own failures there are); elsewhere the caller's error responder's.
 */
export async function serveProvider(app: App, realm: Realm, rest: string, query: string, exchange: ProviderExchange): Promise<void> {
  let ready: ReadyForProvider | undefined
  try {
    ready = await readyForProvider(app, realm, rest, query, exchange)
  } catch (error) {
    if (rest !== KEYCLOAK_ROUTES.token) throw error
    const failure = tokenEndpointFailure(exchange.recordFailure(error))
    return exchange.refuse(failure.status, failure.error_description, failure.error, failure.headers)
  }
  if (!ready) return
  exchange.handOver()
  if (exchange.platform && rest === KEYCLOAK_ROUTES.token) answerGrantsCreated(exchange.response)
  if (ready.answer) return writeTokenAnswer(exchange.response, ready.answer)
  ready.handler(ready.request(), exchange.response)
}

/**
 * django-ansible-base's TokenView answers a POST's granted tokens 201 where django-oauth-toolkit answers 200
 * (`create_token_response`), so the platform's `/o/token/` does too; awxkit takes any 2xx (`resp.ok`). A shortcut
 * and oidc-provider (through Koa, which leaves the head to Node's implicit `writeHead`) both write the status
 * through `writeHead`, so it is changed there; refusals keep theirs.
 */
function answerGrantsCreated(response: ServerResponse): void {
  const writeHead = response.writeHead.bind(response) as (status: number, ...rest: unknown[]) => ServerResponse
  response.writeHead = ((status: number, ...rest: unknown[]) => {
    if (status !== 200) return writeHead(status, ...rest)
    response.statusMessage = 'Created'
    return writeHead(201, ...rest)
  }) as ServerResponse['writeHead']
}

/** A request ready for oidc-provider's `handler`, or already answered by a shortcut (`answer`, yet to be written). */
interface ReadyForProvider {
  handler: (request: IncomingMessage, response: ServerResponse) => void
  request: () => IncomingMessage
  answer: Record<string, unknown> | undefined
}

/** Everything before the response is handed over; undefined when the request was refused. */
async function readyForProvider(app: App, realm: Realm, rest: string, query: string, exchange: ProviderExchange): Promise<ReadyForProvider | undefined> {
  const { raw } = exchange
  let body: Buffer | undefined
  if (hasBody(raw)) {
    const coding = transferCodingRefusal(raw.headers) ?? contentCodingRefusal(raw.headers)
    if (coding) {
      // The body is not read: the connection closes after the answer, lingering while the client still sends it.
      closeLingeringAfter(exchange.response)
      return void exchange.refuse(coding.status, coding.message, 'invalid_request', { ...coding.headers, connection: 'close' })
    }
    const read = await readRealmBody(app, raw, exchange.response, exchange.ip)
    if (read === 'too_large') return void exchange.refuse(400, 'Request body too large', 'invalid_request', { connection: 'close' })
    if (read === 'too_slow') return void exchange.refuse(408, 'Request body not received in time', 'invalid_request', { connection: 'close' })
    if (read === 'budget_full') {
      const full = new BodyBuffersFull()
      return void exchange.refuse(full.status, full.message, full.code, { 'retry-after': String(BodyBuffersFull.retryAfterSeconds), connection: 'close' })
    }
    body = read
    if (isForm(raw)) {
      // A client secret is UTF-8, in the form as in HTTP basic (`basicCredentials`): other bytes are never a match.
      if (!formValuesAreUtf8(body, 'client_secret')) return void exchange.refuse(INVALID_CLIENT.refused.status, INVALID_CLIENT.refused.description, INVALID_CLIENT.refused.error)
      // A password in ISO-8859-1 is read as the gateway's basic authorization reads it; lossy decoding would match U+FFFD.
      body = formInUtf8(body)
    }
    if (body.includes(0) || (isForm(raw) && nulFields([...new URLSearchParams(body.toString('utf8'))]).length)) return void exchange.refuse(400, NUL_MESSAGE, 'invalid_request')
  }
  const adjusted = await adjustForKeycloak(realm, raw.method!, rest, query, raw, body)
  const target = exchange.platform && rest === KEYCLOAK_ROUTES.revocation && 'path' in adjusted && isForm(raw) ? withPersonalToken(app, adjusted, exchange.ip) : adjusted
  if ('refused' in target) return void exchange.refuse(target.refused.status, target.refused.description, target.refused.error)
  if ('page' in target) {
    exchange.handOver()
    return void writePage(exchange.response, target.page.status, target.page.title, target.page.message)
  }
  if ('redirect' in target) {
    exchange.handOver()
    return void exchange.response.writeHead(303, { location: target.redirect, 'cache-control': 'no-store' }).end()
  }
  const { handler, clientCredentials, refreshToken, password } = await realm.provider()
  app.oidc.maintain()
  let replayed: IncomingMessage | undefined
  const request = () => (replayed ??= replayRequest(raw, exchange.ip, target, target.query ?? query, publicUrl(app.publicUrl), `/realms/${realm.name}`, { log: exchange.log, address: exchange.ip, logout: target.logout === true, prefilledUserCode: target.prefilledUserCode, revokeAlso: target.revokeAlso, unreadableToken: target.unreadableToken === true && !exchange.platform, refusedOnceAuthenticated: target.refusedOnceAuthenticated, introspectedAudience: target.introspectedAudience, userinfoRefusal: target.userinfoRefusal, refreshTokenAccount: target.refreshTokenAccount, refreshTokenExpiry: target.refreshTokenExpiry, secure: exchange.secure ?? app.publicUrl.startsWith('https:'), signedInAtGateway: exchange.signedInAtGateway, gatewayAccount: exchange.gatewayAccount, sessionAccount: exchange.sessionAccount }))
  const plainGrant = rest === KEYCLOAK_ROUTES.token && target.body && !query && !target.query
  const answer = plainGrant ? (await clientCredentials(target.body!, request().headers, exchange.ip)) ?? (await refreshToken(target.body!, request(), exchange.response)) ?? (await password(target.body!, request(), exchange.response)) : undefined
  return { handler, request, answer }
}

/** The public URL, parsed once for as long as it stays the same. */
let parsedPublicUrl: { href: string; url: URL } | undefined
function publicUrl(href: string): URL {
  if (parsedPublicUrl?.href !== href) parsedPublicUrl = { href, url: new URL(href) }
  return parsedPublicUrl.url
}

/** A request answered before oidc-provider sees it, as Keycloak answers it. */
interface Refusal {
  refused: { status: number; error?: string; description: string }
}
const INVALID_CLIENT: Refusal = { refused: { status: 401, error: 'invalid_client', description: 'Invalid client or Invalid client credentials' } }
/** JAX-RS's answer to a body its method does not consume, in the shape of the realm's other such answers (`answerUnreadable`). */
const UNSUPPORTED_MEDIA_TYPE: Refusal = { refused: { status: 415, description: 'HTTP 415 Unsupported Media Type' } }
const NUL_IN_CREDENTIALS: Refusal = { refused: { status: 400, error: 'invalid_request', description: NUL_MESSAGE } }
const invalidGrant = (description: string): Refusal => ({ refused: { status: 400, error: 'invalid_grant', description } })

/** A browser request answered before oidc-provider sees it, with Keycloak's error page. */
interface PageRefusal {
  page: { status: number; title: string; message: string }
}

/** A browser request sent on to the same endpoint as a GET (`redirect` is where). */
interface Redirect {
  redirect: string
}

interface Target {
  path: string
  body: Buffer | undefined
  /** Answer a successful revocation 204, as Keycloak's logout does. */
  logout?: boolean
  /** Revokes a personal token once the revocation succeeded (`withPersonalToken`). */
  revokeAlso?: () => Promise<void>
  /** Replaces the Authorization header; null drops it. */
  authorization?: string | null
  /** Replaces the query string (with its `?`). */
  query?: string
  /** The device page's user code from its link, shown in the form (`ProviderRequest.prefilledUserCode`). */
  prefilledUserCode?: string
  /** A revocation of a value that is no token the realm signed (`ProviderRequest.unreadableToken`). */
  unreadableToken?: boolean
  /** The answer once the client authenticated (`ProviderRequest.refusedOnceAuthenticated`). */
  refusedOnceAuthenticated?: { status: number; error: string; description: string }
  /** The `aud` an access token being introspected was signed with (`ProviderRequest.introspectedAudience`). */
  introspectedAudience?: { aud: unknown }
  /** The body is a form the gateway made in place of one that was none (`emptyFormInstead`). */
  formInstead?: boolean
  /** A userinfo request Keycloak refuses for how it carries its token (`ProviderRequest.userinfoRefusal`). */
  userinfoRefusal?: UserinfoRefusal
  /** The account of the refresh token a token request brings (`ProviderRequest.refreshTokenAccount`). */
  refreshTokenAccount?: string
  /** When that refresh token expires (`ProviderRequest.refreshTokenExpiry`). */
  refreshTokenExpiry?: number
}

/**
 * - Keycloak's logout with a refresh token (`POST .../logout` with `client_id` and `refresh_token`, as scripts
 *   log out) ends the session: it becomes a revocation of that refresh token, which revokes its grant. As
 *   Keycloak's LogoutEndpoint, a token that is not the realm's, has expired or belongs to another client is
 *   refused with 400; one whose session already ended is not an error.
 * - Access tokens are JWTs, which oidc-provider's introspection and revocation refuse to look up by design;
 *   Keycloak accepts them. A JWT whose signature verifies is handed over as its `jti`, under which Gatehouse
 *   recorded it; one that does not verify is handed over as an unknown token.
 * - Refresh tokens are Keycloak's JWTs around oidc-provider's refresh token id (keycloak-tokens.ts): wherever a
 *   client sends one (refresh, logout, introspection, revocation), oidc-provider gets the id inside.
 * - Userinfo gets the same treatment for its bearer token, in the Authorization header or the form's `access_token`
 *   (`userinfoTarget`).
 * - Browser and device authorizations get Keycloak's default client scopes (`profile email`) besides what they
 *   ask for, as the password grant does: Keycloak's tokens name them in `scope`, and oidc-provider refuses an
 *   authorization that grants no scope at all.
 * - A confidential client may send its secret both in HTTP basic and in the form (keycloak-connect's
 *   introspection does); oidc-provider takes one mechanism only. When both name the same client and secret, the
 *   form's copy is dropped; when they differ, the request is refused.
 * - An Authorization header that holds no HTTP basic credentials (`Negotiate`, which browsers send on their own, or
 *   `Bearer` from a client library's default headers) is ignored, as Keycloak's ClientIdAndSecretAuthenticator
 *   ignores one its BasicAuthHelper cannot read when the form names the client. When the form does not, its
 *   `WWW-Authenticate: Basic` challenge names no client, and Keycloak's ClientAuthenticationFlow sends only a
 *   challenge of an authenticator that found the client: the request is answered as one without the header (a JWT
 *   client assertion authenticates, nothing at all is "Missing client_id parameter"). oidc-provider would refuse the
 *   header's format, or two authentication mechanisms. Userinfo reads its own way (`userinfoTarget`).
 * - Client credentials in HTTP basic are read as Keycloak reads them, as UTF-8 (`basicCredentials`); bytes that are
 *   not UTF-8 are refused as wrong credentials, and a NUL character as one in the form is. oidc-provider refuses characters outside printable ASCII in HTTP
 *   basic, which Keycloak takes: such credentials are handed over in the form instead, where it takes them.
 */
async function adjustForKeycloak(realm: Realm, method: string, path: string, query: string, raw: IncomingMessage, body: Buffer | undefined): Promise<Target | Refusal | PageRefusal | Redirect> {
  if (path === KEYCLOAK_ROUTES.userinfo && method !== 'OPTIONS') return userinfoTarget(realm, method, raw, body)
  if (path === KEYCLOAK_ROUTES.end_session && method === 'GET') {
    const refusal = logoutRefusal(new URLSearchParams(query))
    if (refusal) return refusal
  }
  if (path === KEYCLOAK_ROUTES.code_verification && (method === 'GET' || method === 'HEAD')) {
    // A link with the code (`verification_uri_complete`) fills the form in, and the person sends it: oidc-provider
    // would post it at once, so that any site could make a visitor's browser send codes, each a wrong guess counted
    // against the visitor's session, address or account (user-code-guesses.ts).
    const params = new URLSearchParams(query)
    const prefilled = params.get('user_code')
    if (prefilled !== null) {
      params.delete('user_code')
      return { path, body, query: params.size ? `?${params}` : '', prefilledUserCode: prefilled.slice(0, 64) }
    }
  }
  if (path === KEYCLOAK_ROUTES.authorization && method === 'GET') {
    const params = new URLSearchParams(query)
    const promptChanged = keycloakPrompt(params)
    if (withDefaultScopes(params) || promptChanged) return { path, body, query: `?${params}` }
  }
  // Keycloak takes these two by POST as forms only (`@Consumes` form: an empty one too), and answers anything else 415.
  if (method === 'POST' && (path === KEYCLOAK_ROUTES.end_session || path === KEYCLOAK_ROUTES.authorization) && !isForm(raw)) return UNSUPPORTED_MEDIA_TYPE
  // Its token and revocation endpoints consume forms too; RESTEasy Reactive compares a Content-Type that is sent, so a
  // request without one is read as an empty form.
  if (method === 'POST' && (path === KEYCLOAK_ROUTES.token || path === KEYCLOAK_ROUTES.revocation) && raw.headers['content-type'] !== undefined && !isForm(raw)) return UNSUPPORTED_MEDIA_TYPE
  // Its introspection endpoint consumes any type and reads the parameters of a form only: any other body (JSON, say) is
  // an empty form there, so a client named by HTTP basic is still authenticated and then told the token is missing.
  const formInstead = method === 'POST' && path === KEYCLOAK_ROUTES.introspection && !isForm(raw)
  if (method === 'POST' && (isForm(raw) || formInstead) && (body || formInstead || path === KEYCLOAK_ROUTES.end_session || path === KEYCLOAK_ROUTES.authorization)) {
    const form = new URLSearchParams(formInstead ? '' : body?.toString('utf8') ?? '')
    if (path === KEYCLOAK_ROUTES.end_session && !form.has('refresh_token')) return logoutRefusal(form) ?? asGet(realm, path, form)
    if (path === KEYCLOAK_ROUTES.authorization) return asGet(realm, path, form)
    const basic = raw.headers.authorization === undefined ? undefined : basicCredentials(raw.headers.authorization)
    if (basic === NOT_UTF8) return INVALID_CLIENT
    const ignoredHeader = raw.headers.authorization !== undefined && basic === undefined
    // Refused as one in the form is (readyForProvider): the client id would reach the store, which takes no NUL.
    if (basic && `${basic.clientId}${basic.secret}`.includes('\u0000')) return NUL_IN_CREDENTIALS
    const publicClient = publicClientId(realm, basic, form)
    if (publicClient) {
      form.delete('client_secret')
      form.set('client_id', publicClient)
      return keycloakForm(realm, path, raw, form, basic !== undefined || ignoredHeader, publicClient)
    }
    // An empty secret is a wrong one to Keycloak (ClientIdAndSecretAuthenticator: 401), as in the form; oidc-provider
    // reads it as no secret sent, and answered 400 invalid_request.
    if (basic?.secret === '') return INVALID_CLIENT
    if (form.has('client_secret') && basic) {
      if (!sameClientSecret(basic, form)) return INVALID_CLIENT
      form.delete('client_secret')
    }
    // Dropped from the header only when the form names no other client (oidc-provider refuses two client ids).
    const basicInForm = basic !== undefined && !PRINTABLE_ASCII.test(basic.clientId + basic.secret) && [null, basic.clientId].includes(form.get('client_id'))
    if (basicInForm) {
      form.set('client_id', basic.clientId)
      form.set('client_secret', basic.secret)
    }
    const target = await keycloakForm(realm, path, raw, form, basicInForm || ignoredHeader, basic?.clientId ?? form.get('client_id') ?? assertedClientId(form))
    return formInstead && 'path' in target ? { ...target, formInstead } : target
  }
  return { path, body }
}

/**
 * A configured public client named by HTTP basic or the form (the same one when both name one), that sends a secret:
 * Keycloak checks none for a public client (ClientIdAndSecretAuthenticator), and so ignores it; oidc-provider would
 * refuse it as an authentication method the client does not have. Undefined otherwise.
 */
function publicClientId(realm: Realm, basic: ClientCredentials | undefined, form: URLSearchParams): string | undefined {
  const formClientIds = form.getAll('client_id')
  const clientId = basic?.clientId ?? formClientIds[0]
  if (clientId === undefined || formClientIds.length > 1 || (basic && formClientIds.length && formClientIds[0] !== clientId)) return undefined
  if (!basic && form.getAll('client_secret').length !== 1) return undefined
  return realm.client(clientId)?.public_client === true ? clientId : undefined
}

/**
 * The client a JWT client assertion names (its `sub`, which RFC 7523 makes the client id), read without checking it:
 * the client authenticating so may leave `client_id` out. Only to tell whose request it is before oidc-provider checks
 * the assertion; undefined when it names none.
 */
function assertedClientId(form: URLSearchParams): string | undefined {
  const assertion = form.getAll('client_assertion')
  if (assertion.length !== 1) return undefined
  try {
    const { sub } = decodeJwt(assertion[0]!)
    return typeof sub === 'string' ? sub : undefined
  } catch {
    return undefined
  }
}

/**
 * The rest of a form POST's adjustments, once the client's credentials are in the form; `withoutAuthorization`: the
 * Authorization header is not given to oidc-provider, as its HTTP basic credentials were moved to the form or it is
 * one Keycloak ignores (`adjustForKeycloak`). `clientId` is the client the request names.
 */
async function keycloakForm(realm: Realm, path: string, raw: IncomingMessage, form: URLSearchParams, withoutAuthorization: boolean, clientId: string | undefined): Promise<Target | Refusal | PageRefusal | Redirect> {
  if (path === KEYCLOAK_ROUTES.end_session) {
    const logout = await logoutByRefreshToken(realm, raw, form)
    return withoutAuthorization && 'path' in logout ? { ...logout, authorization: null } : logout
  }
  if (path === KEYCLOAK_ROUTES.device_authorization) withDefaultScopes(form)
  if (path === KEYCLOAK_ROUTES.pushed_authorization_request) keycloakPrompt(form)
  let refreshTokenAccount: string | undefined
  let refreshTokenExpiry: number | undefined
  if (path === KEYCLOAK_ROUTES.token && form.getAll('refresh_token').length === 1) {
    const value = form.get('refresh_token')!
    const token = JWT_SHAPE.test(value) ? await realm.refreshToken(value) : undefined
    form.set('refresh_token', token?.jti ?? UNKNOWN_TOKEN)
    refreshTokenExpiry = token?.exp
    // An expired one is refused for that, whatever became of its account, as Keycloak checks the token first.
    if (token && token.exp > epochTime()) refreshTokenAccount = token.sub
  }
  let unreadableToken = false
  let accessToken: AccessTokenClaims | undefined
  if ((path === KEYCLOAK_ROUTES.introspection || path === KEYCLOAK_ROUTES.revocation) && form.getAll('token').length === 1) {
    const token = form.get('token')!
    // A personal token is left for the platform's revocation (`withPersonalToken`); no provider record has its value.
    if (JWT_SHAPE.test(token)) {
      accessToken = await accessTokenClaims(realm, token)
      const id = accessToken?.jti ?? (await realm.refreshToken(token))?.jti
      form.set('token', id ?? UNKNOWN_TOKEN)
      unreadableToken = id === undefined && !(await signedByRealm(realm, token))
    } else {
      if (!token.startsWith(TOKEN_PREFIX)) form.set('token', UNKNOWN_TOKEN)
      unreadableToken = true
    }
  }
  return {
    path,
    body: Buffer.from(form.toString()),
    ...(withoutAuthorization ? { authorization: null } : {}),
    ...(unreadableToken && path === KEYCLOAK_ROUTES.revocation ? { unreadableToken } : {}),
    ...(accessToken && path === KEYCLOAK_ROUTES.introspection ? { introspectedAudience: { aud: accessToken.aud } } : {}),
    ...(refreshTokenAccount !== undefined ? { refreshTokenAccount } : {}),
    ...(refreshTokenExpiry !== undefined ? { refreshTokenExpiry } : {}),
  }
}

/**
 * Keycloak's logout (LogoutEndpoint) has not taken `redirect_uri` since version 18, and takes
 * `post_logout_redirect_uri` only with `id_token_hint` or `client_id`, which name the client whose URIs it is checked
 * against: otherwise it answers an error page, and so does Gatehouse, instead of logging out.
 */
function logoutRefusal(params: URLSearchParams): PageRefusal | undefined {
  if (params.has('redirect_uri')) return logoutFailed('Invalid parameter: redirect_uri')
  if (params.has('post_logout_redirect_uri') && !params.has('id_token_hint') && !params.has('client_id')) return logoutFailed('Missing parameter: id_token_hint')
  return undefined
}

function logoutFailed(message: string): PageRefusal {
  return { page: { status: 400, title: 'Logout failed', message } }
}

/**
 * The longest URL a form POST is sent on to: the browser would send it back as a request target, which the gateway
 * (Node's 16 KiB for the request line and headers, cookies included) and nginx's default 8 KiB line in front refuse,
 * and which clients refuse to read in a `Location` header already.
 */
const MAX_REDIRECT_LENGTH = 8 * 1024

/** Parameters that authenticate a client, which never go into a URL (browser history, server logs). */
const CLIENT_CREDENTIALS = ['client_secret', 'client_assertion', 'client_assertion_type']

/**
 * OpenID Connect lets a browser send the authorization and logout requests as form POSTs (keycloak-js 26 logs out
 * so with `logoutMethod: 'POST'`), which Keycloak takes. oidc-provider takes them only with its realm cookie
 * `SameSite=None`, which a cross-site page could then send along with any request; the browser is sent on to the
 * same request as a GET instead (303), on which a top-level navigation carries the `SameSite=Lax` cookie.
 */
function asGet(realm: Realm, path: string, form: URLSearchParams): Redirect | PageRefusal {
  for (const name of CLIENT_CREDENTIALS) form.delete(name)
  const query = form.toString()
  const redirect = `${realm.issuer}${path}${query ? `?${query}` : ''}`
  if (redirect.length > MAX_REDIRECT_LENGTH) return { page: { status: 400, title: 'Invalid Request', message: 'The request is too long to be sent on.' } }
  return { redirect }
}

/**
 * Userinfo reads its access token as Keycloak's UserInfoEndpoint does, and oidc-provider gets only what it found: a
 * bearer header (`AppAuthManager.extractAuthorizationHeaderTokenOrReturnNull`: the scheme `Bearer` in any case, one
 * space, then a token that is not blank and has no space; anything else is no token), then, in a POST whose body is a
 * form, the form's `access_token`. A body of another type, the query and every other parameter are ignored, where
 * oidc-provider refuses a body that is no form, a token in the query, and checks a `scope` parameter. The token is
 * handed over in the header as its `jti` (`accessTokenRecordId`); a request with none reaches oidc-provider without
 * one, and keycloak-format.ts answers its refusal. Refused as Keycloak refuses them, once oidc-provider has set the
 * endpoint's CORS (`ProviderRequest.userinfoRefusal`): an `access_token` repeated in the form, or one in the form
 * besides a bearer header. More than one Authorization header is JAX-RS's bare 401, before anything else is read.
 */
async function userinfoTarget(realm: Realm, method: string, raw: IncomingMessage, body: Buffer | undefined): Promise<Target | Refusal> {
  if (raw.rawHeaders.filter((name, index) => index % 2 === 0 && name.toLowerCase() === 'authorization').length > 1) return UNAUTHORIZED
  let token = bearerToken(raw.headers.authorization)
  let userinfoRefusal: UserinfoRefusal | undefined
  if (method === 'POST' && isForm(raw)) {
    const formTokens = new URLSearchParams(body?.toString('utf8') ?? '').getAll('access_token')
    if (formTokens.length > 1) userinfoRefusal = 'duplicate_parameter'
    else if (formTokens.length === 1 && token !== undefined) userinfoRefusal = 'two_methods'
    else if (formTokens.length === 1) token = formTokens[0]
  }
  const authorization = userinfoRefusal === undefined && token !== undefined ? `Bearer ${await accessTokenRecordId(realm, token)}` : null
  // An empty form, whatever the request carried: oidc-provider reads none of it.
  return { path: KEYCLOAK_ROUTES.userinfo, body: Buffer.alloc(0), formInstead: true, query: '', authorization, ...(userinfoRefusal ? { userinfoRefusal } : {}) }
}

/** JAX-RS's answer to a `NotAuthorizedException` that Keycloak's error handler writes (no challenge, no CORS). */
const UNAUTHORIZED: Refusal = { refused: { status: 401, description: 'HTTP 401 Unauthorized' } }

/** The token of an Authorization header as Keycloak's AppAuthManager reads one (`extractTokenStringFromAuthHeader`). */
function bearerToken(header: string | undefined): string | undefined {
  const space = header?.indexOf(' ') ?? -1
  if (space <= 0 || header!.slice(0, space).toLowerCase() !== 'bearer') return undefined
  const token = header!.slice(space + 1)
  return token.trim() === '' || token.includes(' ') ? undefined : token
}

/**
 * The record id of an access token the realm signed, for oidc-provider to look up; `UNKNOWN_TOKEN` for anything else.
 * Every token the realm issues is a JWT, so a value that is none is refused, as Keycloak refuses it: the record's id is
 * the token's `jti`, which every service the token reaches reads (and may log), and is no credential.
 */
async function accessTokenRecordId(realm: Realm, value: string): Promise<string> {
  return JWT_SHAPE.test(value) ? (await accessTokenClaims(realm, value))?.jti ?? UNKNOWN_TOKEN : UNKNOWN_TOKEN
}

/** Adds Keycloak's default client scopes to the parameters' `scope`; false when there was nothing to add to (or it is repeated). */
function withDefaultScopes(params: URLSearchParams): boolean {
  if (params.getAll('scope').length > 1 || (params.has('request') || params.has('request_uri'))) return false
  const asked = (params.get('scope') ?? '').split(' ').filter(Boolean)
  const scope = orderScopes([...DEFAULT_SCOPES, ...asked])
  if (scope === asked.join(' ')) return false
  params.set('scope', scope)
  return true
}

/** The `prompt` values that change a login, at Keycloak's as at oidc-provider's (provider.ts `acceptingSelectAccount`). */
const PROMPT_VALUES: ReadonlySet<string> = new Set(['none', 'login', 'consent', 'select_account'])
/** The values that still mean something in a passive login (`prompt=none`): `login` makes it need the form. */
const PASSIVE_PROMPT_VALUES: ReadonlySet<string> = new Set(['none', 'login'])

/**
 * `prompt` as Keycloak's AuthorizationEndpoint reads it: it checks no value, and acts on `none` and `login` alone
 * (TokenUtil `hasPrompt`; `consent` asks nothing of first-party clients, `select_account` nothing of a browser that
 * holds one session), where oidc-provider refuses any value it has no prompt for, and `none` with any other.
 * So the values Keycloak ignores are left out, and with `none` all but `login`; `none login`, which Keycloak answers
 * `login_required` (a passive login that needs the form), is left to oidc-provider's refusal, which provider.ts
 * words so. Whether the parameters changed; a repeated `prompt` is left to oidc-provider's refusal.
 */
function keycloakPrompt(params: URLSearchParams): boolean {
  const prompts = params.getAll('prompt')
  if (prompts.length !== 1) return false
  const asked = prompts[0]!.split(' ')
  const known = asked.filter((value) => PROMPT_VALUES.has(value))
  const kept = known.includes('none') ? known.filter((value) => PASSIVE_PROMPT_VALUES.has(value)) : known
  if (kept.length === asked.length) return false
  if (kept.length) params.set('prompt', kept.join(' '))
  else params.delete('prompt')
  return true
}

/** The refresh token record id inside a refresh token JWT; a value no record has when the JWT is not the realm's. */
/** Keycloak's logout with a refresh token, as a revocation of the token's record (which ends its grant). */
async function logoutByRefreshToken(realm: Realm, raw: IncomingMessage, form: URLSearchParams): Promise<Target> {
  const revocationOf = (token: string): Buffer => {
    const revocation = new URLSearchParams()
    for (const [name, value] of form) {
      if (name === 'client_id' || name === 'client_secret' || name === 'client_assertion' || name === 'client_assertion_type') revocation.append(name, value)
    }
    revocation.append('token', token)
    revocation.append('token_type_hint', 'refresh_token')
    return Buffer.from(revocation.toString())
  }
  // Keycloak authenticates the client before it reads the token (LogoutEndpoint.logoutToken): a refused token is
  // answered once the client has been, by a revocation of no token, so that a caller without the client's
  // credentials learns nothing of the token.
  const refused = (description: string): Target => ({ path: KEYCLOAK_ROUTES.revocation, body: revocationOf(UNKNOWN_TOKEN), refusedOnceAuthenticated: { status: 400, error: 'invalid_grant', description } })
  const values = form.getAll('refresh_token')
  const token = values.length === 1 && JWT_SHAPE.test(values[0]!) ? await realm.refreshToken(values[0]!) : undefined
  if (!token) return refused('Invalid refresh token')
  if (token.exp <= epochTime()) return refused('Token is not active')
  const clientId = form.get('client_id') ?? basicClientId(raw.headers.authorization)
  if (clientId !== undefined && clientId !== token.azp) return refused(REFRESH_CLIENT_MISMATCH)
  return { path: KEYCLOAK_ROUTES.revocation, body: revocationOf(token.jti), logout: true }
}

/**
 * The platform's `/o/revoke_token/` revokes any access token by its value once the client has authenticated
 * (django-oauth-toolkit's `OAuth2Validator.revoke_token` looks the value up among all access and refresh tokens,
 * whatever their application), and the platform's personal tokens are access tokens without an application. A
 * personal token's value is handed to oidc-provider as a value no token of its has, so that it authenticates the
 * client and answers as for any unknown token; its 200 then waits until the personal token is revoked as
 * `DELETE tokens/{id}/` revokes it (every process drops it) and audited as that deletion is, by the client's
 * address, with no user: the client proved who it is, and the value proves nothing about who holds it.
 * The realm's own revocation endpoint knows no personal tokens, as Keycloak's.
 */
function withPersonalToken(app: App, target: Target, address: string): Target {
  const form = new URLSearchParams(target.body?.toString('utf8') ?? '')
  const values = form.getAll('token')
  if (values.length !== 1 || !values[0]!.startsWith(TOKEN_PREFIX)) return target
  const value = values[0]!
  form.set('token', UNKNOWN_TOKEN)
  const revised = { ...target, body: Buffer.from(form.toString()) }
  if (tokenShapeProblem(value)) return revised
  return {
    ...revised,
    revokeAlso: async () => {
      const record = await app.tokens.revokeByValue(value)
      if (record) app.audit.change({ userId: null, username: null, address, method: null }, 'delete', auditedToken(record), auditedTokenFields(record))
    },
  }
}

/** Whether HTTP basic and the form carry the same client secret (and, when the form names one, the same client). */
function sameClientSecret(basic: ClientCredentials, form: URLSearchParams): boolean {
  if (form.getAll('client_secret').length !== 1) return false
  const formClientId = form.get('client_id')
  const digest = (value: string) => hash('sha256', value, 'buffer')
  return timingSafeEqual(digest(basic.secret), digest(form.get('client_secret')!)) && (formClientId === null || formClientId === basic.clientId)
}

function basicClientId(authorization: string | undefined): string | undefined {
  const basic = authorization === undefined ? undefined : basicCredentials(authorization)
  return basic === NOT_UTF8 ? undefined : basic?.clientId
}

interface ClientCredentials {
  clientId: string
  secret: string
}
/** HTTP basic credentials whose bytes are not UTF-8. */
const NOT_UTF8 = Symbol('not UTF-8')
/** What oidc-provider takes in HTTP basic credentials (its `noVSCHAR`). */
const PRINTABLE_ASCII = /^[\x20-\x7E]*$/

/**
 * A client's HTTP basic credentials; RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined. As
 * Keycloak's BasicAuthHelper.RFC6749, the text is UTF-8, but strictly: Keycloak reads bytes that are not UTF-8 as
 * U+FFFD, so that a secret holding U+FFFD would match any such bytes; here they are `NOT_UTF8`, refused.
 */
function basicCredentials(authorization: string): ClientCredentials | typeof NOT_UTF8 | undefined {
  const basic = /^basic +([A-Za-z0-9+/]+=*) *$/i.exec(authorization)?.[1]
  if (!basic) return undefined
  // One character per byte, so that the colon and the form-urlencoding are found before the text is decoded.
  const decoded = Buffer.from(basic, 'base64').toString('latin1')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  const [clientId, secret] = [decoded.slice(0, colon), decoded.slice(colon + 1)].map(formBytes) as [Buffer, Buffer]
  if (!isUtf8(clientId) || !isUtf8(secret)) return NOT_UTF8
  return { clientId: clientId.toString('utf8'), secret: secret.toString('utf8') }
}

/**
 * Keycloak's realm description at `/realms/<realm>`: older Keycloak adapters read the realm's public key here
 * instead of from the JWKS.
 */
async function realmInfo(realm: Realm): Promise<Record<string, unknown>> {
  const keys = await realm.keySet()
  const active = keys.publicJwks.find((k) => k.kid === keys.activeKid)!
  const spki = createPublicKey({ key: active as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'der' })
  return {
    realm: realm.name,
    public_key: spki.toString('base64'),
    'token-service': `${realm.issuer}/protocol/openid-connect`,
    'account-service': `${realm.issuer}/account`,
    // Keycloak's PublicRealmResource: the realm's not-before (0 before any `logout-all`); left out while the database,
    // which keeps it, does not answer and this process has not read it yet, so that the public key is still served.
    ...await realm.knownNotBefore().then((notBefore) => ({ 'tokens-not-before': notBefore }), (error: unknown) => {
      if (error instanceof DatabaseUnavailable) return {}
      throw error
    }),
  }
}

/** Whether a JWT carries a valid signature of the realm's key, whatever it is (an ID token, an expired token). */
async function signedByRealm(realm: Realm, jwt: string): Promise<boolean> {
  try {
    await compactVerify(jwt, await realm.verificationKey(), { algorithms: [realm.signatureAlgorithm] })
    return true
  } catch {
    return false
  }
}

/** What routes.ts reads of an access token this realm signed: its `jti`, and the `aud` it was signed with (if any). */
interface AccessTokenClaims {
  jti: string
  aud: unknown
}

/**
 * The claims of an access token this realm signed as its issuer; undefined when the signature does not verify, or it
 * names another issuer (signed under another `server.public_url`: the gateway's services refuse it, as Keycloak's
 * userinfo and introspection do), or whose own times do not hold (`accessTokenTimesHold`): its record's expiry is
 * oidc-provider's to judge, and a token signed with other times than its record's is judged by both.
 */
async function accessTokenClaims(realm: Realm, jwt: string): Promise<AccessTokenClaims | undefined> {
  try {
    const { payload } = await compactVerify(jwt, await realm.verificationKey(), { algorithms: [realm.signatureAlgorithm] })
    const claims = JSON.parse(new TextDecoder().decode(payload)) as { jti?: unknown; typ?: unknown; aud?: unknown; iss?: unknown; exp?: unknown; nbf?: unknown; iat?: unknown }
    const holds = typeof claims.jti === 'string' && claims.typ === 'Bearer' && claims.iss === realm.issuer && accessTokenTimesHold(claims, epochTime())
    return holds ? { jti: claims.jti as string, aud: claims.aud } : undefined
  } catch {
    return undefined
  }
}

function hasBody(raw: IncomingMessage): boolean {
  return raw.headers['transfer-encoding'] !== undefined || Number(raw.headers['content-length'] ?? 0) > 0
}

function isForm(raw: IncomingMessage): boolean {
  // The media type whole: `application/x-www-form-urlencoded-other` is another type, not a form.
  return /^application\/x-www-form-urlencoded\s*(?:;|$)/i.test(raw.headers['content-type'] ?? '')
}

/**
 * A realm's request body, whole: `too_large` past REALM_BODY_LIMIT (refused unread when its length says so; a chunked
 * one once it passes the limit), `too_slow` when it has not all arrived within `anonymousBodyMs` (src/http/anonymous-bodies.ts), `budget_full` when
 * holding it would take the bodies the gateway reads for itself past `server.api_body_buffers_mb`, or `client`'s
 * share of it (`App.ownBodies`, which the gateway API's take from too: src/api/body-parsers.ts), as many anonymous
 * clients posting large forms at once would otherwise have the gateway hold all of them. Each chunk takes its bytes as
 * it comes, so a client that says a length and sends little holds little; all of it is given back when `response`
 * closes. A body refused part-way has its connection closed after the answer: the rest is not read, and reading on
 * would wait on the client. Read with plain stream events: an async iterator per request cost more than the read
 * itself on the token endpoint.
 */
export function readRealmBody(app: App, raw: IncomingMessage, response: ServerResponse, client: string): Promise<Buffer | 'too_large' | 'too_slow' | 'budget_full'> {
  const budget = app.ownBodies
  const declared = raw.headers['transfer-encoding'] === undefined ? Number(raw.headers['content-length'] ?? 0) : undefined
  if (declared !== undefined && !(declared <= REALM_BODY_LIMIT)) return Promise.resolve('too_large')
  let held = 0
  response.once('close', () => budget.give(held, client))
  return new Promise((resolve, reject) => {
    // Held at about their size, however small the chunks a client sends (src/http/packed-chunks.ts).
    const packed = new PackedChunks()
    const chunks: Buffer[] = []
    let size = 0
    const refuse = (reason: 'too_large' | 'too_slow' | 'budget_full') => {
      stop()
      closeLingeringAfter(response)
      resolve(reason)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > REALM_BODY_LIMIT) return refuse('too_large')
      if (!budget.take(chunk.length, client)) return refuse('budget_full')
      held += chunk.length
      for (const piece of packed.add(chunk)) chunks.push(piece)
    }
    const onEnd = () => {
      stop()
      resolve(Buffer.concat([...chunks, ...packed.flush()], size))
    }
    const onError = (error: Error) => {
      stop()
      reject(error)
    }
    const deadline = setTimeout(() => refuse('too_slow'), anonymousBodyMs(app.config.server.timeouts.request_seconds))
    const stop = () => {
      clearTimeout(deadline)
      raw.off('data', onData)
      raw.off('end', onEnd)
      raw.off('error', onError)
    }
    raw.on('data', onData)
    raw.on('end', onEnd)
    raw.on('error', onError)
  })
}

/**
 * The request as oidc-provider sees it: the same connection and headers, the path relative to the realm (with
 * the full path as `originalUrl`, from which oidc-provider takes its mount path), and the body already read.
 * Its scheme and host are the public URL's, given as forwarding headers that oidc-provider (a proxied Koa app)
 * trusts, for the URLs it builds (whether its cookies are Secure is `ProviderRequest.secure`), and the client address is the one Gatehouse resolved; whatever forwarding headers the client sent
 * are dropped.
 */
function replayRequest(raw: IncomingMessage, ip: string, target: Target, query: string, publicUrl: URL, mountPath: string, info: ProviderRequest): IncomingMessage {
  const { body } = target
  const headers = { ...raw.headers }
  if (body) {
    delete headers['transfer-encoding']
    headers['content-length'] = String(body.length)
  }
  if (target.formInstead) headers['content-type'] = 'application/x-www-form-urlencoded'
  if (target.authorization === null) delete headers.authorization
  else if (target.authorization) headers.authorization = target.authorization
  delete headers.forwarded
  headers.host = publicUrl.host
  headers['x-forwarded-host'] = publicUrl.host
  headers['x-forwarded-proto'] = publicUrl.protocol.slice(0, -1)
  headers['x-forwarded-for'] = ip
  const basePath = publicUrl.pathname.replace(/\/$/, '')
  const replay = {
    headers,
    method: raw.method,
    url: target.path + query,
    originalUrl: basePath + mountPath + target.path + query,
    httpVersion: raw.httpVersion,
    httpVersionMajor: raw.httpVersionMajor,
    httpVersionMinor: raw.httpVersionMinor,
    socket: raw.socket,
    connection: raw.socket,
    [PROVIDER_REQUEST]: info,
    // All that oidc-provider's body reader (lib/shared/selective_body.js) asks of the request stream. A stream
    // (a PassThrough) carrying the body cost more per token request than the rest of the replay.
    readable: true,
    readableEncoding: null,
    iterator: () => bodyChunks(body),
  }
  return replay as unknown as IncomingMessage
}

async function* bodyChunks(body: Buffer | undefined): AsyncGenerator<Buffer> {
  if (body?.length) yield body
}

/** Text with a NUL character, which no parameter has a use for (src/http/input-safety.ts), in Keycloak's error shape. */
function nulRefused(reply: FastifyReply): FastifyReply {
  return keycloakError(reply, 400, NUL_MESSAGE, 'invalid_request')
}

function keycloakError(reply: FastifyReply, status: number, description: string, error?: string): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').header('pragma', 'no-cache').type('application/json')
    .send(keycloakErrorBody(description, error))
}

/** `keycloakError` on a bare node response, for the token lane (token-lane.ts), with the same headers. */
export function writeKeycloakError(response: ServerResponse, status: number, description: string, error?: string): void {
  const body = JSON.stringify(keycloakErrorBody(description, error))
  response.statusCode = status
  response.setHeader('cache-control', 'no-store')
  response.setHeader('pragma', 'no-cache')
  response.setHeader('content-type', 'application/json; charset=utf-8')
  response.setHeader('content-length', Buffer.byteLength(body))
  response.end(body)
}

/** One of the realm's error pages, on a bare node response. */
function writePage(response: ServerResponse, status: number, title: string, message: string): void {
  const page = simplePage(title, `<p>${escapeHtml(message)}</p>`)
  response.writeHead(status, { ...UNFRAMED_PAGE_HEADERS, 'cache-control': 'no-store', 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(page) }).end(page)
}

function keycloakErrorBody(description: string, error?: string): Record<string, string> {
  return error ? { error, error_description: description } : { error: description }
}
