import cookie from '@fastify/cookie'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { createRequire } from 'node:module'
import type { DestinationStream, Logger } from 'pino'
import type { App } from './app.ts'
import { registerOpenApi } from './api/openapi.ts'
import { registerGatewayApi } from './api/register.ts'
import { CSRF_COOKIE } from './auth/csrf.ts'
import { SESSION_COOKIE } from './auth/session.ts'
import { newRequestContext } from './context.ts'
import { millisecondsOf } from './config/durations.ts'
import { hashingThreads, onRefusedHash } from './directory/passwords.ts'
import { DatabaseUnavailable, HttpVersionNotSupported, NotFound, answerClientError, sendError } from './errors.ts'
import { outcomeOf, type AnswerEnding, type RefusedOnArrival } from './http/answer-outcome.ts'
import { cookieParser } from './http/cookie-header.ts'
import { closeLingeringAfter } from './http/lingering-close.ts'
import { refuseBadHost } from './http/host-header.ts'
import { requestIdOf } from './http/request-id.ts'
import { assertSafePath, assertWellFormedEscapes, splitTarget } from './http/request-target.ts'
import { addRefusalCors } from './gateway/cors.ts'
import { registerForwardAuth } from './gateway/forward-auth.ts'
import { leanProxy, ownedPaths, ServiceLanes, type LeanProxy } from './gateway/lean-proxy.ts'
import { PROXIED_URL, registerProxy, unroutedAnswer, type ServesOver } from './gateway/proxy.ts'
import { PROXIED_METHODS } from './gateway/routes.ts'
import { registerHealthRoutes } from './health/routes.ts'
import { capConnections, ConnectionCaps } from './listener/address-shares.ts'
import { strictTransportSecurity } from './listener/listener.ts'
import { nodeServer, requestsWaitBehind } from './listener/node-server.ts'
import { serverTimeouts } from './listener/timeouts.ts'
import { arrivalLine, requestLine } from './logging/request-line.ts'
import type { AnsweredRequest } from './metrics/metrics.ts'
import { registerMetrics } from './metrics/routes.ts'
import type { TlsCredentials } from './listener/tls.ts'
import type { KeysKept } from './oidc/keys.ts'
import { registerOidcRoutes } from './oidc/routes.ts'
import type { HeldLock } from './store/database.ts'
import { tokenLane } from './oidc/token-lane.ts'
import { registerUi } from './ui/routes.ts'
import { boundedError } from './logging/error-serializer.ts'
import { printableLine } from './logging/printable.ts'

export interface ServerOptions {
  logLevel?: string
  /** Where log lines go (src/logging/pretty.ts for people); JSON lines on standard output by default. */
  logStream?: DestinationStream
  /** Serve HTTPS with these (src/listener/tls.ts); plain HTTP without. */
  https?: TlsCredentials['options']
}

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>

/**
 * Secrets never reach the log, whichever object carries them: fields by these names, at the top of a line's object
 * or one level down, whatever logs them later.
 */
const SECRET_FIELDS = ['password', 'token', 'secret', 'client_secret', 'access_token', 'refresh_token', 'id_token', 'device_code', 'bind_password', 'current_password', 'new_password', 'authorization', 'cookie']
const REDACT = ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-csrftoken"]', 'headers["x-csrftoken"]', ...SECRET_FIELDS, ...SECRET_FIELDS.map((field) => `*.${field}`)]

/** The gateway's credentials, read as Django reads them when a browser sends one twice: the last value (cookie-header.ts). */
const parseCookie = cookieParser(new Set([SESSION_COOKIE, CSRF_COOKIE]))

/** Set on a request once it has been counted and logged, so that no way its answer ends counts it twice. */
const ANSWER_COUNTED = Symbol('answer counted')

/**
 * The HTTP side: the gateway's own API under /api/gateway/, then every service's prefix, each in its own
 * encapsulated scope. Every request gets one typed context and one log line when it ends. Most proxied requests are
 * taken before Fastify sees them (src/gateway/lean-proxy.ts), and so are the realms' token requests
 * (src/oidc/token-lane.ts); both run the same checks as the hooks below.
 */
export async function buildServer(app: App, options: ServerOptions = {}): Promise<FastifyInstance> {
  // Set once every route is known: proxied requests are offered to it before Fastify routes them.
  let lean: LeanProxy | undefined
  // Set once the request log is made: requests the listener refuses before any route (src/listener/node-server.ts,
  // answerClientError) are counted and logged through it.
  let refusedOnArrival: RefusedOnArrival | undefined
  const refused: RefusedOnArrival = (refusal) => refusedOnArrival?.(refusal)
  // Set once the request log is made: requests the router refuses (a path it cannot decode, a part longer than any
  // parameter) get a reply that runs no hook, so they are counted and logged through it.
  let refusedByRouter: ((request: FastifyRequest, reply: FastifyReply) => void) | undefined
  // For the answers the listener writes on a connection's socket itself, which no response's header reaches.
  const hsts = options.https && app.config.server.tls ? strictTransportSecurity(app.config.server.tls) : undefined
  const server = Fastify({
    serverFactory: (fastifyHandler, factoryOptions) => nodeServer(fastifyHandler, factoryOptions as unknown as Parameters<typeof nodeServer>[1], () => lean, app.trustsProxy, refused, millisecondsOf(app.config.server.timeouts.send_seconds), hsts),
    logger: { level: options.logLevel ?? process.env.GATEHOUSE_LOG_LEVEL ?? 'info', redact: REDACT, serializers: { err: boundedError }, hooks: { streamWrite: printableLine }, ...(options.logStream ? { stream: options.logStream } : {}) },
    ...serverTimeouts(app.config.server, options.https),
    // One structured line per request comes from the onResponse hook below instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // request.ip, .protocol and .host believe X-Forwarded-* only from a trusted proxy; no list, no belief at all.
    trustProxy: app.config.server.trusted_proxies.length ? (address: string) => app.trustsProxy(address) : false,
    bodyLimit: app.config.server.api_body_limit_bytes,
    genReqId: requestIdOf,
    requestIdHeader: false,
    // A request that reaches an open connection while shutdown drains (src/listener/drain.ts) is served, and
    // its connection closed after it, instead of getting a 503 for work the drain has time for.
    return503OnClosing: false,
    clientErrorHandler: (error, socket) => answerClientError(error, socket, refused, hsts),
    // A path the router cannot decode is answered like every other error, not with Fastify's own body.
    frameworkErrors: (error, request, reply) => {
      refusedByRouter?.(request, reply)
      addRefusalCors(app.routes, request, reply)
      return sendError(request, reply, error)
    },
    schemaController: { compilersFactory: compilersOnFirstUse() },
  })

  capConnections(server.server, new ConnectionCaps({
    most: app.config.server.max_connections,
    perAddress: app.config.server.max_connections_per_address,
    exempt: app.trustsProxy,
    counted: app.metrics.connectionRefused,
    warned: (cap, address) => server.log.warn({ address, limit: `server.${cap}` }, `connection refused: server.${cap} (${app.config.server[cap]}) reached`),
  }))
  // Parses cookies for every route (the session cookie authenticates services too) and writes Set-Cookie. The
  // plugin reads each request's cookies with server.parseCookie: the gateway's parser, as the lean path's is.
  await server.register(cookie)
  server.parseCookie = parseCookie
  server.decorateRequest('gatehouse', null as never)
  // The paths of the gateway's own routes, which the lean proxy path must leave to Fastify's router.
  const ownRoutes: string[] = []
  server.addHook('onRoute', (route) => {
    if (route.url !== PROXIED_URL) ownRoutes.push(...route.config?.answersFor ?? [route.url])
  })
  let closing = false
  server.addHook('preClose', async () => {
    closing = true
  })
  // Fastify's router has every answer close its connection once closing: one with requests pipelined behind it
  // keeps it open for them, and the last of them closes it (as the lean path's answers do).
  server.addHook('onRequest', async (request, reply) => {
    if (closing && requestsWaitBehind(request.raw)) reply.raw.removeHeader('connection')
  })
  // Before any hook that may refuse the request (a bad Host, an unsafe path): the refusal's code is noted in the
  // context, and a request without one is neither counted nor given its code in the log line.
  server.addHook('onRequest', async (request) => {
    request.gatehouse = newRequestContext()
    // A request line of HTTP/2.0 or HTTP/0.9 is refused before it gets here (src/listener/node-server.ts), but for a
    // WebSocket handshake, which Node hands to its upgrade path (src/gateway/websocket.ts): refused as the others
    // are, not answered with HTTP/1.1's framing.
    if (request.raw.httpVersionMajor !== 1) throw new HttpVersionNotSupported()
  })
  server.addHook('onRequest', refuseBadHost)
  // An answer given before the request's body came (a 405, a 404, a page asked for with a body): Node would go on
  // reading the rest to drop it, as slowly as it comes, for up to the request's whole time. The connection closes
  // after the answer instead, as nginx's lingering close does, and what still comes is read for a few seconds only.
  server.addHook('onSend', async (request, reply) => {
    if (!request.raw.complete) closeLingeringAfter(reply.raw)
  })
  server.addHook('onRequest', async (request, reply) => {
    try {
      assertSafePath(splitTarget(request.url).path)
      assertWellFormedEscapes(request.url)
    } catch (error) {
      // This runs before the service's own hook, which adds its CORS headers to every other answer.
      addRefusalCors(app.routes, request, reply)
      throw error
    }
  })
  // The request line's fields are fixed and none can hold a secret, so it skips the redaction pass, which
  // (for the wildcard paths) costs about as much as the rest of the line. Keep secrets out of it.
  // It is also where every refusal is logged, once, with its reason, as Oathkeeper logs its decisions: the place,
  // the decision, the authenticator that claimed the credential and the error code.
  const requestLog = server.log.child({}, { redact: [] }) as Logger
  // Below info (GATEHOUSE_LOG_LEVEL=warn) the line would be dropped: no request pays for building it then.
  const logsRequests = requestLog.isLevelEnabled('info')
  // Counted and logged once when answered: by the onResponse hook, when a WebSocket's 101 is sent (the tunnel's reply
  // is hijacked, and its hooks never run), or when a response closes unfinished (the client left, the answer was cut or
  // the parser's refusal replaced it: src/http/answer-outcome.ts), where Fastify runs no hook.
  const answered = (request: FastifyRequest, reply: AnsweredRequest, ending?: AnswerEnding): void => {
    const counted = request as FastifyRequest & { [ANSWER_COUNTED]?: true }
    if (counted[ANSWER_COUNTED]) return
    counted[ANSWER_COUNTED] = true
    app.metrics.requestDone(request, reply)
    if (!logsRequests) return
    requestLog.info(requestLine(request.id, request.method, request.url, reply.statusCode, reply.elapsedTime, request.gatehouse ?? newRequestContext(), ending, request.headers.traceparent), 'request')
  }
  server.addHook('onRequest', async (request, reply) => {
    reply.raw.on('close', () => {
      if (reply.raw.writableFinished) return
      const outcome = outcomeOf(reply.raw)
      if (outcome.code && request.gatehouse) request.gatehouse.code = outcome.code
      answered(request, { statusCode: outcome.status, elapsedTime: reply.elapsedTime }, outcome.ending)
    })
  })
  server.addHook('onResponse', async (request, reply) => answered(request, reply))
  // Set once every route is known: a service's request the router gave to a route of the gateway's own. After the
  // hooks every request runs: it is counted and logged as any other.
  let servesOver: ServesOver | undefined
  server.addHook('onRequest', async (request, reply) => {
    if (PROXIED_METHODS.has(request.method) && await servesOver?.(request, reply)) return reply
  })
  refusedByRouter = (request, reply) => {
    request.gatehouse = newRequestContext()
    reply.raw.once('close', () => {
      const outcome = reply.raw.writableFinished ? undefined : outcomeOf(reply.raw)
      if (outcome?.code) request.gatehouse!.code = outcome.code
      answered(request, outcome ? { statusCode: outcome.status, elapsedTime: reply.elapsedTime } : reply, outcome?.ending)
    })
  }
  // Refused as they arrive, these reach no place: they count, and their lines name, the gateway's own.
  refusedOnArrival = (refusal) => {
    const context = { ...newRequestContext(), place: app.places.gatewayApi.open, code: refusal.code }
    app.metrics.requestDone({ method: refusal.request?.method ?? '', gatehouse: context }, { statusCode: refusal.status, elapsedTime: refusal.elapsedMs })
    if (logsRequests) requestLog.info(arrivalLine(refusal, context), 'request')
  }
  server.setErrorHandler((error, request, reply) => sendError(request, reply, error))
  logDatabaseOutages(server, app)
  logHashingThreadsPutAside(server)
  logRefusedPasswordHashes(server)
  logKeptSigningKeys(server, app)
  app.audit.onError = (error) => {
    // An outage is logged once, above; the entries wait for the database within the queue's bound.
    if (!(error instanceof DatabaseUnavailable)) server.log.error({ err: error }, 'audit trail: entries could not be written')
  }
  app.audit.start()
  app.settings.onUnreadable((found) => {
    for (const { name, reason, using } of found) {
      server.log.warn({ setting: name, reason }, `stored setting ${name} cannot be read by this version: ${using === 'default' ? 'its default is used' : 'the value this process had is kept'}`)
    }
  })
  app.accounts.onLastSuperuserKept((user) => {
    server.log.warn({ user: user.username, source: user.source }, 'a login would have left no active superuser: the account keeps its superuser flag until another superuser is active')
  })
  app.accounts.onAddressWithheld((user, { email, heldBy }) => {
    server.log.warn({ user: user.username, source: user.source, email, held_by: heldBy }, 'directory address not stored: another account signs in with it, and a login by it would name both; the directory entry or the other account must change')
  })
  app.memberships.onSkipped(({ source, user, mapping }) => {
    server.log.warn({ source, user: user.username, organization: mapping.organization, team: mapping.team, role: mapping.role }, 'membership mapping skipped at sign-in: its organization or team was deleted meanwhile, so the role was not given')
  })
  app.directoryCheck?.onDisabled((user, code) => {
    // Compared by value: the check's module loads only where LDAP is configured.
    server.log.warn({ user: user.username, source: user.source }, code === 'directory_entry_unreadable'
      ? 'directory entry unreadable in account checks run after run while the directory answered about others: account disabled, its sessions ended and its tokens refused; a superuser enables it again once the entry can be read'
      : 'directory entry gone or no longer matching the user filter: account disabled, its sessions ended and its tokens refused')
  })
  app.directoryCheck?.onUnavailable((error) => {
    server.log.warn({ error: error.message, cause: causeOf(error) }, 'directory account check: the directory did not answer, so no account was disabled; the next check tries again, after the accounts it stopped at')
  })
  app.directoryCheck?.onFailedLookup(({ user, error }, runs, disabledAfter) => {
    server.log.warn({ user: user.username, error: error.message, cause: causeOf(error), runs_in_a_row: runs }, `directory account check: this account's entry could not be read while the directory answered about others, so it was passed over; after ${disabledAfter} checks in a row it is disabled`)
  })
  app.directoryCheck?.onNobodyFound((accounts) => {
    server.log.warn({ accounts }, 'directory account check: the directory found none of these accounts, which looks like a user search that finds nobody, so none was disabled; check ldap.user_search with `gatehouse ldap test`, and disable people who really left by hand')
  })
  app.directoryCheck?.onTakeOver(() => {
    server.log.info({ interval_seconds: app.config.ldap?.account_check.interval_seconds }, 'this process runs the directory account check for every process on the database, until it stops')
  })
  app.directoryCheck?.start()
  app.oidc.backchannelLogouts.onFailure(({ realm, clientId, uri, outcome, detail }) => {
    server.log.warn({ realm, client_id: clientId, uri, outcome, detail }, 'back-channel logout: the client was not told of a session that ended')
  })
  server.setNotFoundHandler((request, reply) => {
    const unrouted = unroutedAnswer(app, request)
    return 'redirectTo' in unrouted ? reply.redirect(unrouted.redirectTo, 301) : sendError(request, reply, unrouted.error)
  })

  await registerOpenApi(server)
  await registerGatewayApi(server, app)
  registerHealthRoutes(server, app)
  registerMetrics(server, app)
  await registerForwardAuth(server, app)
  await registerOidcRoutes(server, app)
  const lanes = new ServiceLanes(app)
  servesOver = await registerProxy(server, app, lanes, answered)
  await registerUi(server, app)
  const laneOptions = {
    log: server.log as Logger,
    requestLog: logsRequests ? requestLog : undefined,
    closesConnection: (raw: IncomingMessage) => closing && !requestsWaitBehind(raw),
    parseCookie,
  }
  const proxyLane = leanProxy(app, { lanes, ownsPath: ownedPaths(ownRoutes), ...laneOptions })
  // The realms' token endpoints are taken before Fastify too (src/oidc/token-lane.ts).
  const realmTokens = tokenLane(app, laneOptions)
  lean = realmTokens ? (raw, response) => realmTokens(raw, response) || proxyLane(raw, response) : proxyLane
  return server
}

/**
 * Fastify's own schema compilers (ajv, fast-json-stringify), loaded only when a route first needs one. Fastify
 * loads both when it is created, a tenth of the start, though no route of the gateway uses them: the API's routes
 * are validated by their zod schemas (src/api/validation.ts) and none has a response schema. Should a route come
 * to need one, it gets the same compiler Fastify would have used, from Fastify's own dependencies.
 */
function compilersOnFirstUse(): CompilersFactory {
  // From Fastify's own directory (its package.json: `fastify` itself may resolve to its bundle, src/vendor/).
  const fromFastify = createRequire(import.meta.resolve('fastify/package.json'))
  type Builder = (externalSchemas: unknown, options: unknown) => unknown
  const onFirstUse = (selector: string): Builder => {
    let build: Builder | undefined
    return (externalSchemas, options) => (build ??= (fromFastify(selector) as () => Builder)())(externalSchemas, options)
  }
  return { buildValidator: onFirstUse('@fastify/ajv-compiler'), buildSerializer: onFirstUse('@fastify/fast-json-stringify-compiler') } as CompilersFactory
}

/** Keys that could not be read again go on from memory while they may (src/oidc/keys.ts): the log says until when. */
function logKeptSigningKeys(server: FastifyInstance, app: App): void {
  const warn = ({ purpose, error, signsUntil }: KeysKept) => server.log.warn(
    { purpose, error: (error as Error)?.message ?? String(error), signs_until: new Date(signsUntil).toISOString() },
    'signing keys could not be read again: signing with those in memory until signs_until (then signing fails until they can be read), verifying with them meanwhile',
  )
  app.identity.onKeysKept(warn)
  for (const realm of app.oidc.all()) realm.onKeysKept(warn)
}

/** A hashing thread put aside (src/directory/hashing-threads.ts): its checks were answered 503, and nothing else says why. */
function logHashingThreadsPutAside(server: FastifyInstance): void {
  const stop = hashingThreads.onPutAside((reason) => {
    server.log.error({ reason }, 'password checks: a hashing thread was put aside and replaced; the check it was at was answered 503 password_check_failed')
  })
  server.addHook('onClose', async () => stop())
}

/**
 * A sign-in refused because its account's stored password hash costs more than Gatehouse verifies (src/directory/
 * passwords.ts): the person is told only that the password is wrong; the administrator, which account to give a new
 * password. The hash's parameters, never the hash.
 */
function logRefusedPasswordHashes(server: FastifyInstance): void {
  const stop = onRefusedHash(({ userId, username, reason }) => {
    server.log.warn({ user_id: userId, username, reason }, 'password checks: a sign-in was refused without running its account\'s stored password hash; give the account a new password')
  })
  server.addHook('onClose', async () => stop())
}

/** How the log names each kind of lock a request gave up waiting for (src/store/database.ts, HeldLock). */
const LOCK_HELD: Record<HeldLock, string> = {
  row: 'database row locked: another client of the database held a row a request had to change',
  table: 'database table locked: another client of the database held a lock on a whole table a request needed',
  advisory: 'database advisory lock held: another transaction held the advisory lock a request had to take (one user\'s sessions under sessions_per_user_limit, the settings, a signing key)',
}

/**
 * A database outage is logged when it begins, at most once a minute while it lasts, and when it ends (Health in
 * src/store/database.ts holds back outages that begin within a minute of the last line); each request it fails is
 * answered 503 database_unavailable and appears only in its own request line. A lock another transaction on
 * PostgreSQL held for the query timeout is no outage, and is logged as what it is, at most once a minute for each kind.
 */
function logDatabaseOutages(server: FastifyInstance, app: App): void {
  const stop = app.store.database.onOutage(({ state, since, failures, error, earlierOutages, earlierFailures, earlierSince, earlierError }) => {
    const earlier = earlierOutages ? { earlier_outages: earlierOutages, earlier_failures: earlierFailures, earlier_since: new Date(earlierSince!).toISOString(), earlier_error: earlierError } : {}
    // Outages held back within a minute of the last line, told once that minute is over: none under way now.
    if (state === 'available' && failures === 0 && earlierOutages) return void server.log.warn(earlier, 'database unavailable for moments since the last line (a full disk or a read-only database refuses each write and answers the reads between them), available now')
    const fields = { since: new Date(since).toISOString(), failures, error, ...earlier }
    if (state === 'available') server.log.info(fields, 'database available again')
    else server.log.warn(fields, state === 'unavailable' ? 'database unavailable: answering 503 until it answers again' : 'database still unavailable')
  })
  const stopLockWaits = app.store.database.onLockWait(({ lock, waits, error, where }) => {
    server.log.warn({ lock, waits, error, where }, `${LOCK_HELD[lock]} for as long as storage.timeouts.query_seconds lets a query wait, so the request was answered 503 with nothing of it written; the database answers (no outage), and requests that need other locks go on`)
  })
  server.addHook('onClose', async () => {
    stop()
    stopLockWaits()
  })
}

/** What caused an error, for a log line: what the directory or the network said, on one line, without a stack trace. */
function causeOf(error: Error): string | undefined {
  if (!(error.cause instanceof Error)) return undefined
  return error.cause.message.split('\n').filter((line) => line.trim() && !/^\s+at /.test(line)).join(': ')
}
