import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { App } from '../app.ts'
import type { CsrfPolicy } from '../auth/csrf.ts'
import type { UserAccess } from '../access/model.ts'
import type { Principal } from '../auth/principal.ts'
import { DatabaseUnavailable, DirectoryUnavailable, type GatehouseError, InvalidUpgrade, PasswordChecksBusy, UpstreamHandshakeInvalid, UpstreamTimeout, UpstreamUnavailable, WebSocketVersionUnsupported } from '../errors.ts'
import type { GatewayRequest } from '../http/gateway-request.ts'
import { markCutByGateway } from '../http/answer-outcome.ts'
import { answeredLast, lingeringClose } from '../http/lingering-close.ts'
import { PackedChunks } from '../http/packed-chunks.ts'
import { enterRequest } from '../http/request-entry.ts'
import { strictTransportSecurity } from '../listener/listener.ts'
import { splitTarget } from '../http/request-target.ts'
import { request as httpRequest, ServerResponse } from '../http/node-http.ts'
import type { AnsweredRequest } from '../metrics/metrics.ts'
import type { Decision } from './authorize.ts'
import type { Route } from './routes.ts'
import { unknownTransferCoding } from './upstream-exchange.ts'
import { poolClient } from './upstream-pool.ts'
import { closeFrame, FrameBoundaries } from './websocket-frames.ts'

/**
 * WebSockets through the gateway (RFC 6455). An upgrade request is routed as any other request is (the same hooks,
 * authentication, refusals and redirects) and, once allowed, tunnelled byte for byte to the service with the identity
 * headers. An open socket lives only as long as its credential: every open tunnel's request goes through `authorize`
 * again, from memory, as soon as this process applies news of a change (looked for ten times a second) and twice a
 * second anyway (for expiry), and a socket whose session or token was revoked, whose user was disabled, whose
 * credential expired or whose access was withdrawn is closed. When the gateway closes a socket itself it says why with
 * a close frame to each end, put between two frames of the stream it joins.
 */

/** How often open sockets' credentials are checked again when nothing changed: an expired credential's closes within a second. */
const RECHECK_MS = 500
/**
 * How often, while sockets are open, this process looks for news of changes (on SQLite a read of the WAL index's header;
 * PostgreSQL's news is pushed and costs nothing to ask for): news checks every socket at once, so a revocation through
 * another process closes its sockets within about this long, not a whole RECHECK_MS later.
 */
const LOOK_MS = 100
/** A Sec-WebSocket-Key is 16 random bytes in base64 (RFC 6455 §4.1). */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/
/** What a key is hashed with into the Sec-WebSocket-Accept that proves the answer is to it (RFC 6455 §1.3). */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
/** What a client may send behind its upgrade while the service has not answered; more is refused (RFC 6455 §4.1: it must wait). */
const KEPT_WHILE_WAITING = 64 * 1024
/**
 * The close code and reason (RFC 6455 §7.4) both ends are sent when the gateway closes a socket itself: 1008 (policy
 * violation) when the credential no longer lets it in, 1013 (try again later) when it cannot be checked now (a
 * database outage, a directory that does not answer, every password check busy), as its reconnection is answered 503
 * meanwhile, 1001 (going away) for shutdown, a quiet socket and a service a reload removed or changed.
 */
const GOING_AWAY = 1001
const CLOSE_CODES: Readonly<Record<string, { code: number; reason: string }>> = {
  credential_revoked: { code: 1008, reason: 'credential revoked' },
  access_narrowed: { code: 1008, reason: 'access narrowed' },
  database_unavailable: { code: 1013, reason: 'database unavailable' },
  directory_unavailable: { code: 1013, reason: 'directory unavailable' },
  password_checks_busy: { code: 1013, reason: 'password checks busy' },
  shutdown: { code: GOING_AWAY, reason: 'shutting down' },
  service_reloaded: { code: GOING_AWAY, reason: 'service reconfigured' },
  idle: { code: GOING_AWAY, reason: 'idle timeout' },
}
/** How long the gateway waits for each direction's frame in flight to end, to put its close frame after it, before it cuts both connections. */
const BOUNDARY_WAIT_MS = 1000
/**
 * How long a tunnel one side has ended (a TCP half-close, relayed to the other) waits for the other side to end too
 * before both connections are cut: a service that never ends its side (Node's own `upgrade` sockets allow half-open)
 * would otherwise hold the client's connection, and its place under the connection caps, until the idle timeout.
 */
const HALF_CLOSED_MS = 2000

interface Upgrade {
  readonly socket: Duplex
  readonly head: Buffer
}

interface Tunnel {
  readonly request: FastifyRequest
  readonly route: Route
  readonly userId: number
  /** What the service was told at the upgrade that the caller may do (`authorityOf`). */
  readonly authority: ReadonlySet<string>
  /** The account, access and scope the last check found the same authority in: when none changed, nothing is built again. */
  checked: { user: Principal['user']; access: UserAccess; scope: Principal['scope'] }
  close(reason: string): void
  /** Whether its own check is under way, and whether news arrived during it (which it may have read the caches before). */
  checking: boolean
  again: boolean
}

/**
 * Runs `then` once the connection has no answer in flight. Node hands over an upgrade as soon as it is parsed, also one
 * pipelined behind requests still being answered on the same connection (RFC 9112 §9.3.2 has their answers sent first,
 * in order): its answer written then would be cut into theirs, and binding a response to the connection threw, which
 * took the process down. The answer in flight is Node's `_httpMessage` of the socket; the next one ahead takes its
 * place when it is done. The upgrade's socket is paused meanwhile (Node stopped reading it).
 */
function afterAnswersAhead(socket: Duplex, then: () => void, waited = false): void {
  const ahead = (socket as { _httpMessage?: NodeJS.EventEmitter | null })._httpMessage
  if (ahead && !socket.destroyed) return void ahead.once('close', () => afterAnswersAhead(socket, then, true))
  // The listener stops reading a connection whose pipelined requests wait (src/listener/node-server.ts), while Node's
  // stream still counts a read under way for the parser it has since let go: an empty push ends that read, so that
  // the socket reads again once the tunnel wants its bytes.
  if (waited && !socket.destroyed) socket.push(Buffer.alloc(0))
  then()
}

/** Runs `then` once `stream` has closed: at once (in a microtask) when it is already destroyed, its close under way or past. */
function whenClosed(stream: Duplex, then: () => void): void {
  if (stream.destroyed) queueMicrotask(then)
  else stream.once('close', then)
}

/** Only WebSocket upgrades leave the ordinary request path: others (h2c, say) are answered over HTTP/1.1. */
export function asksForWebSocket(request: IncomingMessage): boolean {
  const upgrade = request.headers.upgrade
  return typeof upgrade === 'string' && upgrade.split(',').some((protocol) => protocol.trim().toLowerCase() === 'websocket')
}

export class WebSocketTunnels {
  readonly #app: App
  readonly #answered: (request: FastifyRequest, reply: AnsweredRequest) => void
  readonly #upgrades = new WeakMap<IncomingMessage, Upgrade>()
  readonly #open = new Set<Tunnel>()
  /**
   * Every upgraded connection until it closes, with how to end it (a tunnel's, once it is one), which resolves once
   * it has ended (a tunnel's, once its close is logged): shutdown ends them all.
   */
  readonly #connections = new Map<Duplex, (reason: string) => Promise<void>>()
  /** Each open socket's route: a reload of the configuration that removes or changes it closes the socket. */
  readonly #routeOf = new Map<Duplex, Route>()
  /** Open sockets by service, for the metrics. */
  readonly #openByService = new Map<string, number>()
  #closing = false
  #timer: NodeJS.Timeout | undefined
  #checkedAt = 0
  #soon: NodeJS.Immediate | undefined

  /**
   * Takes WebSocket upgrades off Node's HTTP server and hands them to Fastify's router with a response bound to
   * their socket, so a refusal is the ordinary JSON (or redirect) answer, after which the connection is closed.
   * `answered` counts and logs a request once answered; an opened socket's is, with its 101, as its reply's hooks
   * never run.
   */
  constructor(server: FastifyInstance, app: App, answered: (request: FastifyRequest, reply: AnsweredRequest) => void) {
    this.#app = app
    this.#answered = answered
    app.metrics.watchWebSockets(() => this.#openByService)
    app.bus.onApplied(() => this.#recheckSoon())
    // A socket judged by a service's previous rules, or open on the upstream it no longer has, ends as at shutdown: its
    // client reconnects to the service as it is now. Those of a service the reload kept are left alone.
    app.services.onReplace((routes) => {
      const kept = new Set(routes)
      for (const [client, route] of this.#routeOf) if (!kept.has(route)) void this.#connections.get(client)?.('service_reloaded')
    })
    const http = server.server as Server & { shouldUpgradeCallback: (request: IncomingMessage) => boolean }
    http.shouldUpgradeCallback = asksForWebSocket
    http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      afterAnswersAhead(socket, () => this.#route(server, request, socket, head))
    })
    // Before the server closes, not after (onClose): Fastify runs those hooks once every connection has ended, which
    // an open WebSocket never does on its own, so a shutdown waited for its sockets and they for it, for good. They
    // end when shutdown begins: a socket has no answer to finish, and its client reconnects to a process still serving.
    // Their closing handshakes take a moment (bounded: BOUNDARY_WAIT_MS, then lingeringClose's), waited for so that
    // every close is logged and counted before the process exits.
    server.addHook('preClose', async () => {
      this.#closing = true
      await Promise.all([...this.#connections.values()].map((end) => end('shutdown')))
    })
  }

  /** Hands an upgrade to Fastify's router with a response bound to its socket, as any request (the constructor). */
  #route(server: FastifyInstance, request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const app = this.#app
    if (this.#closing || socket.destroyed) return void socket.destroy()
    // Sent behind the connection's last answer (src/http/lingering-close.ts): never taken; the connection closes.
    if (answeredLast(socket)) return
    // As for every other request (src/listener/node-server.ts).
    const id = enterRequest(request, app.trustsProxy)
    this.#upgrades.set(request, { socket, head })
    const response = new ServerResponse(request)
    this.#connections.set(socket, () => {
      const ended = once(socket, 'close').then(() => undefined)
      // A shutdown closing an upgrade still unanswered: its line says so, not that its client left.
      markCutByGateway(response)
      socket.destroy()
      return ended
    })
    socket.once('close', () => this.#connections.delete(socket))
    socket.on('error', () => socket.destroy())
    response.shouldKeepAlive = false
    response.setHeader('x-request-id', id)
    // An upgrade's answer (a refusal, a redirect to sign in) is an HTTPS response like any other, which RFC 6797 has
    // carry Strict-Transport-Security: the listener sets it on the responses Node makes, and this one is made here.
    const tls = app.config.server.tls
    if (tls && (socket as TLSSocket).encrypted) response.setHeader('strict-transport-security', strictTransportSecurity(tls))
    response.assignSocket(socket as Socket)
    response.on('finish', () => lingeringClose(socket))
    server.routing(request, response)
  }

  /** The upgrade this request asks for, if it came in as one. */
  upgradeOf(request: FastifyRequest): Upgrade | undefined {
    return this.#upgrades.get(request.raw)
  }

  /**
   * Tunnels an allowed upgrade to the service. `headers` are what the service gets for an ordinary request (identity,
   * X-Forwarded-*, credentials removed). The service's own answer, 101 or a refusal, goes back to the client with the
   * fields `clientHeaders` makes of its own, as of any answer of the service's (filtered, its address and paths made
   * public).
   */
  async tunnel(route: Route, request: FastifyRequest, reply: FastifyReply, upgrade: Upgrade, target: string, headers: IncomingHttpHeaders, clientHeaders: (upstream: IncomingHttpHeaders) => IncomingHttpHeaders): Promise<void> {
    checkHandshake(request)
    const principal = request.gatehouse.principal
    checkHandshakeOrigin(this.#app.csrf, principal, request)
    // A place among the service's sockets (not its pool's connections), before anything reaches the service, held
    // until the client's connection and the service's, once it has one, have both closed, whichever way it ends
    // (`release` gives it back once, however often called).
    const release = route.tunnels.admit(poolClient(request), principal?.user.id, route.name)
    let holding = 1
    const closed = () => {
      if (--holding === 0) release()
    }
    whenClosed(upgrade.socket, closed)
    const answer = await handshake(route, target, { ...headers, host: route.upstream.host, connection: 'Upgrade', upgrade: 'websocket' }, upgrade.socket, upgrade.head).catch((error: unknown) => {
      // Logged with why, as both proxy paths log a failed request (the answer says only that the service failed): a
      // certificate refused, a connection refused, a timeout.
      if (error instanceof UpstreamUnavailable || error instanceof UpstreamTimeout) request.log.warn({ err: error.cause ?? error }, 'response errored')
      throw error
    })
    if (!answer) {
      // The client left before the service answered: the service's connection is closed, and there is no one to answer.
      reply.hijack()
      upgrade.socket.destroy()
      // Or a shutdown closed it first.
      const closedBy = this.#closing ? 'shutdown' : 'client_before_answer'
      this.#app.metrics.webSocketClosed(route.name, closedBy)
      request.log.info({ service: route.name, path: splitTarget(request.url).path, user: principal?.user.username, auth: principal?.method, closed_by: closedBy }, 'websocket closed')
      return
    }
    const answerHeaders = clientHeaders(answer.response.headers)
    if (!('socket' in answer)) {
      const status = answer.response.statusCode ?? 0
      // A 101 without the fields of an upgrade (Node takes it for an ordinary answer) switched to nothing the client
      // asked for; a status past 599 is none a client could be answered with.
      if (status < 200 || status > 599) {
        answer.response.destroy()
        throw new UpstreamHandshakeInvalid(route.name, status === 101 ? 'its 101 did not say Upgrade and Connection: upgrade' : `it answered with status ${status}`)
      }
      // As for any answer of the service's (src/gateway/upstream-exchange.ts): a body in a coding never taken off.
      const coding = unknownTransferCoding(answer.response.headers)
      if (coding) {
        answer.response.destroy()
        throw new UpstreamUnavailable(route.name, coding)
      }
      // A refusal from the service is relayed as an ordinary response, after which the connection ends. Until then the
      // client's bytes are read only to be dropped, so that a client that leaves (its end closed) is seen to, and takes
      // the answer and the service's connection with it: a service streaming its refusal would otherwise hold both.
      upgrade.socket.on('end', () => upgrade.socket.destroy()).resume()
      // Bounded as an ordinary answer is: a service that pauses, or a client that takes nothing, for the service's
      // response_seconds ends both (Node's server bounds no upgraded connection, and nothing else did here).
      const relayed = answer.response
      const cut = () => {
        relayed.destroy()
        upgrade.socket.destroy()
      }
      const client = upgrade.socket as Socket
      relayed.socket.setTimeout(route.timeouts.responseMs, cut)
      client.setTimeout(route.timeouts.responseMs, cut)
      reply.code(status).headers(answerHeaders).send(relayed)
      return
    }
    const service = answer.socket
    holding++
    whenClosed(service, closed)
    // The request is judged again now that the service has answered, before a byte is carried: the wait may have lasted
    // up to response_seconds, in which a revocation reached no socket, this one not being open yet.
    let judgedAgain: Decision | undefined
    try {
      checkServiceHandshake(route, request, answer.response)
      if (principal) judgedAgain = await this.#decide(request, route)
    } catch (error) {
      service.destroy()
      throw error
    }
    reply.hijack()
    const client = upgrade.socket
    if (client.destroyed) {
      // Shutdown began, or the client left, while the service answered.
      service.destroy()
      return
    }
    const opened = performance.now()
    // As every answer does: the request's id (a service's own is X-Upstream-Request-Id among its fields).
    client.write(switchingProtocols(answer.response.statusMessage, { 'x-request-id': request.id, ...answerHeaders }))
    let closedBy: string | undefined
    let closingSince: number | undefined
    const access = principal && this.#app.access.of(principal.user)
    const tunnel: Tunnel | undefined = principal && access
      ? { request, route, userId: principal.user.id, authority: authorityOf(principal, access), checked: { user: principal.user, access, scope: principal.scope }, close, checking: false, again: false }
      : undefined
    // Refused now: the socket opens only to be closed at once, as one revoked just after would be, and the client's
    // bytes sent behind its upgrade never reach the service.
    // A reload that replaced the service while its upgrade was under way closes it as it would have had it opened before.
    const closeAtOnce = !this.#app.routes.includes(route) ? 'service_reloaded' : tunnel && judgedAgain ? this.#reasonToClose(tunnel, judgedAgain) : undefined
    const toClient = carry(service, client, answer.head)
    const toService = carry(client, service, closeAtOnce ? Buffer.alloc(0) : upgrade.head)
    this.#answered(request, { statusCode: 101, elapsedTime: reply.elapsedTime })
    const { promise: logged, resolve: markLogged } = Promise.withResolvers<void>()
    if (this.#connections.has(client)) {
      this.#connections.set(client, (reason) => {
        close(reason)
        return logged
      })
      this.#routeOf.set(client, route)
    }
    function cut(): void {
      client.destroy()
      service.destroy()
    }
    /**
     * Once one side has closed its connection, the other's is cut, as it would see from the side itself. When the
     * gateway closes the socket, each end gets a close frame at the end of the frame in flight towards it, and both
     * connections are then closed as any other the gateway ends (lingeringClose), so the frame is not lost to a reset.
     */
    function close(reason: string): void {
      if (closedBy) return
      closedBy = reason
      closingSince = performance.now()
      const said = CLOSE_CODES[reason]
      if (!said) return cut()
      const cutting = setTimeout(cut, BOUNDARY_WAIT_MS).unref()
      let waiting = 2
      const sent = () => {
        if (--waiting) return
        clearTimeout(cutting)
        lingeringClose(client)
        lingeringClose(service)
      }
      toClient.endWith(closeFrame(said.code, said.reason, false), sent)
      // A client whose credential no longer lets it in, or cannot be checked now, sends the service nothing more: the
      // rest of a frame it is in the middle of would be bytes of a revoked client, so the service gets nothing more, and
      // its connection closes without a close frame. Shutdown and a quiet socket still let that frame end.
      toService.endWith(closeFrame(said.code, said.reason, true), sent, said.code !== GOING_AWAY)
    }
    this.#openByService.set(route.name, (this.#openByService.get(route.name) ?? 0) + 1)
    const ended = () => {
      if (tunnel) this.#forget(tunnel)
      this.#routeOf.delete(client)
      this.#openByService.set(route.name, this.#openByService.get(route.name)! - 1)
      this.#app.metrics.webSocketClosed(route.name, closedBy!)
      const now = performance.now()
      // closing_ms: from the decision to close to both connections closed (the close frames' exchange, or the cut).
      request.log.info({ service: route.name, path: splitTarget(request.url).path, user: principal?.user.username, auth: principal?.method, ms: Math.round(now - opened), closed_by: closedBy, closing_ms: Math.round(now - closingSince!) }, 'websocket closed')
      markLogged()
    }
    // Bytes either way pass through the client's socket (read from it, or written to it), so its timeout is the
    // tunnel's: it fires only when neither side has sent for that long.
    if (route.timeouts.websocketIdleMs) (client as Socket).setTimeout(route.timeouts.websocketIdleMs, () => close('idle'))
    client.once('close', () => close('client'))
    service.once('close', () => close('service'))
    client.on('error', () => close('client'))
    service.on('error', () => close('service'))
    service.once('close', ended)
    if (closeAtOnce) close(closeAtOnce)
    else if (tunnel) this.#watch(tunnel)
  }

  #watch(tunnel: Tunnel): void {
    this.#open.add(tunnel)
    this.#timer ??= setInterval(() => void this.#look(), LOOK_MS).unref()
  }

  #forget(tunnel: Tunnel): void {
    this.#open.delete(tunnel)
    if (this.#open.size === 0 && this.#timer) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  /** Asks for news (which, applied, checks every socket) and checks them anyway every RECHECK_MS. */
  async #look(): Promise<void> {
    await this.#app.bus.freshen().catch(() => {})
    if (performance.now() - this.#checkedAt >= RECHECK_MS) this.#recheck()
  }

  #recheckSoon(): void {
    if (this.#open.size === 0) return
    this.#soon ??= setImmediate(() => {
      this.#soon = undefined
      this.#recheck()
    })
  }

  /** Whether the caller of a socket that is still let in has lost any authority the service was told of at the upgrade. */
  #narrowed(tunnel: Tunnel, principal: Principal): boolean {
    const access = this.#app.access.of(principal.user)
    const { checked } = tunnel
    if (checked.user === principal.user && checked.access === access && checked.scope === principal.scope) return false
    const now = authorityOf(principal, access)
    for (const held of tunnel.authority) if (!now.has(held)) return true
    tunnel.checked = { user: principal.user, access, scope: principal.scope }
    return false
  }

  /**
   * Decides on every open socket's request again. Each socket's check runs on its own: one that waits (a directory
   * that is slow to answer for its Basic credentials, up to its lookup_seconds) holds up no other's.
   */
  #recheck(): void {
    this.#checkedAt = performance.now()
    for (const tunnel of this.#open) void this.#check(tunnel)
  }

  async #check(tunnel: Tunnel): Promise<void> {
    if (tunnel.checking) {
      tunnel.again = true
      return
    }
    tunnel.checking = true
    try {
      do {
        tunnel.again = false
        const reason = this.#reasonToClose(tunnel, await this.#decide(tunnel.request, tunnel.route))
        if (reason) return tunnel.close(reason)
      } while (tunnel.again && this.#open.has(tunnel))
    } finally {
      tunnel.checking = false
    }
  }

  /** The request's decision now; one that could not be made (the database failing, say) refuses. */
  #decide(request: FastifyRequest, route: Route): Promise<Decision> {
    return this.#app.authorize(request, route).catch((error: unknown) => ({ granted: false as const, refusal: error as GatehouseError }))
  }

  /** Why a socket is closed on this decision: no longer let in, only as someone else, or with less than the service was told of. */
  #reasonToClose(tunnel: Tunnel, decision: Decision): string | undefined {
    if (!decision.granted) return closeReasonOf(decision.refusal)
    if (decision.principal?.user.id !== tunnel.userId) return 'credential_revoked'
    if (this.#narrowed(tunnel, decision.principal)) return 'access_narrowed'
    return undefined
  }
}

/**
 * What the service is told the caller may do, as words: a scope that writes, each flag, and each team, organization,
 * role and group the identity token and X-Gatehouse-Teams name (src/gateway/identity.ts). The service learns them at
 * the upgrade only, and cannot hear of a change: a socket whose caller has lost any of them since is closed
 * (`access_narrowed`), so that its reconnection is judged, and told, anew. Gaining one closes nothing.
 */
function authorityOf(principal: Principal, access: UserAccess): Set<string> {
  const authority = new Set<string>()
  if (principal.scope !== 'read') authority.add('write')
  if (principal.user.isSuperuser) authority.add('superuser')
  if (principal.user.isSystemAuditor) authority.add('auditor')
  for (const team of access.teams) authority.add(`team:${team.id}`)
  for (const organization of access.organizations) authority.add(`organization:${organization.id}`)
  for (const role of access.roles) authority.add(`role:${role}`)
  for (const group of principal.user.groups) authority.add(`group:${group}`)
  return authority
}

/**
 * Why a socket whose request is refused now is closed. A check that cannot be made now is not a revocation, but the
 * socket is not kept on trust either (past auth.max_stale_seconds a revocation could not be heard of; a directory
 * that does not answer cannot say the password still holds): it is closed as one to try again later, as its
 * reconnection is answered 503 until the check can be made, rather than as a revoked credential, which a client may
 * take for a reason to stop trying.
 */
function closeReasonOf(refusal: unknown): string {
  if (refusal instanceof DatabaseUnavailable) return 'database_unavailable'
  if (refusal instanceof DirectoryUnavailable) return 'directory_unavailable'
  if (refusal instanceof PasswordChecksBusy) return 'password_checks_busy'
  return 'credential_revoked'
}

/**
 * A browser sends its cookies, and the Basic credentials it keeps for the site, with a WebSocket from any site's page,
 * and a GET carries no CSRF token: the Origin is what tells a page of ours from another site's (cross-site WebSocket
 * hijacking). A bearer token is never sent by a browser on its own. Throws the refusal; for the built-in proxy's
 * upgrades and for the handshakes a forward-auth question describes (src/gateway/forward-auth.ts).
 */
export function checkHandshakeOrigin(csrf: CsrfPolicy, principal: Principal | undefined, request: GatewayRequest): void {
  if (principal?.method === 'session' || principal?.method === 'basic') csrf.checkOrigin(request)
}

/** The opening handshake's requirements on the client (RFC 6455 §4.2.1); a bad one never reaches the service. */
function checkHandshake(request: FastifyRequest): void {
  const { headers } = request
  if (request.method !== 'GET') throw new InvalidUpgrade('A WebSocket upgrade must be a GET request.')
  if (request.raw.httpVersion !== '1.1') throw new InvalidUpgrade('A WebSocket upgrade needs HTTP/1.1.')
  if (headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined) throw new InvalidUpgrade('A WebSocket upgrade has no body.')
  const key = headers['sec-websocket-key']
  if (typeof key !== 'string' || !WEBSOCKET_KEY.test(key)) throw new InvalidUpgrade('Sec-WebSocket-Key must be 16 bytes in base64.')
  if (headers['sec-websocket-version'] !== '13') throw new WebSocketVersionUnsupported()
}

/**
 * The service's 101 must answer this handshake as RFC 6455 §4.1 has a client check it: an upgrade to a WebSocket, the
 * Sec-WebSocket-Accept of the client's key, and no protocol or extension the client did not offer. The gateway checks
 * before it carries a byte: a service that says 101 without switching (or switches to something else) would otherwise
 * get the client's connection raw, to send it requests that no rule of the gateway's has seen (WebSocket smuggling).
 */
function checkServiceHandshake(route: Route, request: FastifyRequest, response: IncomingMessage): void {
  const { headers } = response
  const accept = createHash('sha1').update(String(request.headers['sec-websocket-key']) + ACCEPT_GUID).digest('base64')
  const problem =
    headers.upgrade?.toLowerCase() !== 'websocket' ? 'it did not switch to a WebSocket'
    : headers['sec-websocket-accept'] !== accept ? 'its Sec-WebSocket-Accept does not answer the key'
    : headers['sec-websocket-protocol'] !== undefined && !tokens(request.headers['sec-websocket-protocol']).has(headers['sec-websocket-protocol'])
      ? 'it chose a protocol the client did not offer'
    : [...extensionNames(headers['sec-websocket-extensions'])].some((name) => !extensionNames(request.headers['sec-websocket-extensions']).has(name))
      ? 'it chose an extension the client did not offer'
    : undefined
  if (problem) throw new UpstreamHandshakeInvalid(route.name, problem)
}

/** The comma-separated tokens of a field (or of each of its lines). */
function tokens(field: string | string[] | undefined): Set<string> {
  return new Set([field ?? []].flat().flatMap((line) => line.split(',')).map((token) => token.trim()).filter(Boolean))
}

/** The names of the extensions a Sec-WebSocket-Extensions field lists, without their parameters. */
function extensionNames(field: string | string[] | undefined): Set<string> {
  return new Set([...tokens(field)].map((extension) => extension.split(';', 1)[0]!.trim().toLowerCase()))
}

type Answer = { response: IncomingMessage } | { response: IncomingMessage; socket: Duplex; head: Buffer }

/**
 * Sends the upgrade to the service and waits, at most the route's response timeout, for its answer; resolves with
 * nothing, the service's connection closed, once the client leaves first.
 */
function handshake(route: Route, target: string, headers: IncomingHttpHeaders, client: Duplex, head: Buffer): Promise<Answer | undefined> {
  const { upstream } = route
  const https = upstream.protocol === 'https:'
  const send = https ? httpsRequest : httpRequest
  // The service's own CAs, client certificate and name (`services[].tls`), as its pool connects with them.
  const { configured, secureContext, servername } = https ? route.upstreamTls.current() : { configured: false, secureContext: undefined, servername: undefined }
  const tls = configured ? { ...(secureContext ? { secureContext } : {}), servername: servername ?? '' } : {}
  return new Promise((resolve, reject) => {
    const outgoing = send({ host: upstream.hostname.replace(/^\[|\]$/g, ''), port: upstream.port || undefined, path: target, method: 'GET', headers, agent: false, ...tls })
    const giveUp = (outcome: () => void) => {
      clearTimeout(timer)
      outgoing.destroy()
      outcome()
    }
    const stopWatching = watchForLeaving(client, head.length, () => giveUp(() => resolve(undefined)), () => giveUp(() => reject(new InvalidUpgrade(`A WebSocket client must wait for the answer to its upgrade before it sends more than ${KEPT_WHILE_WAITING / 1024} KiB.`))))
    const timer = setTimeout(() => {
      stopWatching()
      outgoing.destroy()
      reject(new UpstreamTimeout(route.name))
    }, route.timeouts.responseMs)
    const settle = (answer: Answer) => {
      clearTimeout(timer)
      stopWatching()
      resolve(answer)
    }
    outgoing.once('socket', (socket) => {
      // An https connection is open once its TLS handshake is done, as for ordinary requests (undici's connect
      // timeout): a service that takes the TCP connection and never finishes the handshake, or dribbles it, would
      // otherwise hold the client for response_seconds and be answered 504 rather than 502.
      const connecting = setTimeout(() => outgoing.destroy(new Error('connect timeout')), route.timeouts.connectMs)
      socket.once(upstream.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connecting))
      socket.once('close', () => clearTimeout(connecting))
    })
    outgoing.once('upgrade', (response, socket, head) => settle({ response, socket, head }))
    outgoing.once('response', (response) => settle({ response }))
    outgoing.once('error', (error) => {
      clearTimeout(timer)
      stopWatching()
      reject(new UpstreamUnavailable(route.name, error))
    })
    outgoing.end()
  })
}

/**
 * Calls `left` once the client leaves (closes its end, or its connection) while the service's answer is awaited, so
 * that a service that takes its time holds no connection for a client long gone. A paused socket never sees its
 * client's end, and only reading does: what the client sends meanwhile (its first frames, pipelined behind the
 * upgrade) is kept, up to KEPT_WHILE_WAITING; past that, `overflowed` is called (RFC 6455 §4.1 has a client wait for
 * the answer), rather than the socket paused, so that no client can hold the service's connection by sending that
 * much and then closing its side unseen. The returned function stops watching and puts what was kept back, in
 * order, to be the tunnel's first bytes.
 */
function watchForLeaving(client: Duplex, sentWithUpgrade: number, left: () => void, overflowed: () => void): () => void {
  if (client.destroyed) {
    queueMicrotask(left)
    return () => undefined
  }
  // Held at about their size, however small the chunks a client sends (src/http/packed-chunks.ts).
  const packed = new PackedChunks()
  const kept: Buffer[] = []
  if (sentWithUpgrade > KEPT_WHILE_WAITING) {
    queueMicrotask(overflowed)
    return () => undefined
  }
  // What came in the upgrade's own reads (Node's `head`) counts too: sent with the request, most of it did.
  let keptBytes = sentWithUpgrade
  let watching = true
  const keep = (chunk: Buffer) => {
    for (const piece of packed.add(chunk)) kept.push(piece)
    keptBytes += chunk.length
    if (keptBytes <= KEPT_WHILE_WAITING) return
    // Never carried: the upgrade is refused.
    kept.length = 0
    packed.flush()
    stop()
    overflowed()
  }
  const leave = () => {
    stop()
    left()
  }
  // Once only: the service's connection may still report an error after the client has left.
  const stop = () => {
    if (!watching) return
    watching = false
    client.off('data', keep).off('end', leave).off('close', leave)
    client.pause()
    kept.push(...packed.flush())
    if (kept.length && !client.destroyed && !client.readableEnded) client.unshift(Buffer.concat(kept))
  }
  client.on('data', keep).once('end', leave).once('close', leave)
  return stop
}

/** The service's 101 as the client gets it: its fields as any answer's (without hop-by-hop ones), and the upgrade's own. */
function switchingProtocols(statusMessage: string | undefined, headers: IncomingHttpHeaders): string {
  let head = `HTTP/1.1 101 ${statusMessage}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`
  for (const [name, value] of Object.entries(headers)) {
    for (const one of [value ?? []].flat()) head += `${name}: ${one}\r\n`
  }
  return `${head}\r\n`
}

interface Carried {
  /**
   * Stops at the next frame boundary and sends `frame` there, the last bytes `to` gets from this side; then `sent`.
   * `notMidFrame`: in the middle of a frame, stops carrying at once instead, sending `to` nothing more (its
   * connection then closes without a close frame of this side's).
   */
  endWith(frame: Buffer, sent: () => void, notMidFrame?: boolean): void
}

/**
 * Carries one direction of a tunnel, `first` then what `from` sends, as `from.pipe(to)` would: it stops reading
 * while `to` is full, and ends `to` when `from` ends. It follows the frames on their way (headers only), so that the
 * gateway's close frame can follow a whole frame rather than cut into one.
 */
function carry(from: Duplex, to: Duplex, first: Buffer): Carried {
  const frames = new FrameBoundaries()
  let last: { frame: Buffer; sent: () => void } | undefined
  const pass = (bytes: Buffer) => {
    if (bytes.length && !to.write(bytes)) from.pause()
  }
  const data = (chunk: Buffer) => {
    if (!last) {
      frames.advance(chunk)
      return pass(chunk)
    }
    pass(chunk.subarray(0, frames.advance(chunk, true)))
    if (frames.atBoundary) finish()
  }
  const drain = () => from.resume()
  const end = () => {
    to.end()
    const cut = setTimeout(() => {
      from.destroy()
      to.destroy()
    }, HALF_CLOSED_MS).unref()
    to.once('close', () => clearTimeout(cut))
  }
  // What the side sends after the close frame is read and dropped (its answering close frame, say) by lingeringClose.
  const finish = () => {
    from.off('data', data).off('end', end)
    to.off('drain', drain)
    // One that already carried the side's own close frame is past its last frame: a second would be ignored.
    if (to.writable && !frames.closeSeen) to.write(last!.frame)
    last!.sent()
  }
  from.on('data', data).once('end', end)
  to.on('drain', drain)
  frames.advance(first)
  pass(first)
  // The client's socket was paused while the service's answer was awaited.
  if (!to.writableNeedDrain) from.resume()
  return {
    endWith(frame, sent, notMidFrame = false) {
      last = { frame, sent }
      if (frames.atBoundary) return finish()
      if (!notMidFrame) return
      // Nothing more is carried; `to`'s connection is left to the close (lingeringClose once the other direction has
      // sent its close frame): that direction reads from the same connection, and may still finish its own frame.
      from.off('data', data).off('end', end)
      to.off('drain', drain)
      sent()
    },
  }
}
