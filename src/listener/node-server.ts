import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Duplex } from 'node:stream'
import { BadRequest, errorBody, ExpectationFailed, HttpVersionNotSupported, type ErrorCode } from '../errors.ts'
import { outcomeOf, type RefusedOnArrival } from '../http/answer-outcome.ts'
import { createServer as createHttpServer } from '../http/node-http.ts'
import { answeredLast, closeLingeringAfter } from '../http/lingering-close.ts'
import { enterRequest } from '../http/request-entry.ts'
import { boundUnreadAnswer } from '../http/unread-answers.ts'
import type { ProxyTrust } from '../gateway/trusted-proxies.ts'

/** Each connection's pipelined requests that wait for their turn, and whether it stopped reading for them. */
const waiting = new WeakMap<Socket, { count: number; paused: boolean }>()
/**
 * How many pipelined requests may wait on a connection before it is read no further. Not fewer: a pause may come in
 * the middle of the next request's headers, which `server.timeouts.headers_seconds` would then cut off while the
 * answers ahead take their time; clients that pipeline at all send a few requests at once, not dozens.
 */
const WAITING_BEFORE_PAUSE = 16

/**
 * Handles a request pipelined behind others (RFC 9112 §9.3.2) once they have been answered, and reads no further from
 * its connection while more than a few wait. Node hands every request it parses to the handler at once and reads on
 * while their answers are pending, so one connection could make the gateway judge and forward any number of requests
 * at once (thousands a second from a single write of small requests), each held in memory until its answer's turn.
 * As nginx and Envoy do, a connection's requests are taken one after the other, and at most those Node parsed from
 * one read wait. Node gives the response the socket when the answers ahead are done, which is the request's turn.
 */
function inTurn(request: IncomingMessage, response: ServerResponse, handle: RequestListener): void {
  const socket = request.socket
  let state = waiting.get(socket)
  if (!state) waiting.set(socket, state = { count: 0, paused: false })
  if (++state.count >= WAITING_BEFORE_PAUSE && !state.paused) {
    state.paused = true
    socket.on('resume', keepPaused)
    socket.pause()
  }
  response.once('socket', () => {
    if (--state.count === 0) {
      waiting.delete(socket)
      if (state.paused) {
        socket.off('resume', keepPaused)
        // Node keeps it paused if it paused it itself (answers it could not write yet).
        socket.resume()
      }
    }
    handle(request, response)
  })
}

/**
 * Whether requests pipelined behind this one wait on its connection. While shutdown drains, the answer that says
 * `Connection: close` is the last one: the requests already received behind it would go unanswered.
 */
export function requestsWaitBehind(request: IncomingMessage): boolean {
  return waiting.has(request.socket)
}

/**
 * Node resumes a connection on its own (each answer written, a finished request's unread body drained): while
 * requests wait on it, it is paused again at once, before anything is read.
 */
function keepPaused(this: Socket): void {
  this.pause()
}

/**
 * Sends `100 Continue` to a client that asked for it (`Expect: 100-continue`, RFC 9110 §10.1.1) when something
 * starts reading its request's body: the proxy once the request is allowed (src/gateway/request-buffer.ts), the API
 * once its access check before the body passed (src/api/register.ts), a realm's endpoint as it reads its form. A
 * request refused before that (no or wrong credentials, forbidden, a body declared too large) is answered without
 * one, as nginx answers: the client does not send a body only to have it dropped. Node then closes the connection
 * after the answer, since a client told nothing may yet send the body or may not, and whatever follows cannot be
 * read as the next request. Node's own 100, without this, went out before the request reached the gateway.
 * A listener for `data` or `readable` marks the start of reading, whichever way the body is read (flowing, piped,
 * iterated); after the final answer has begun, Node's own draining of an unread body invites nothing.
 */
function inviteBodyWhenRead(request: IncomingMessage, response: ServerResponse): void {
  const onListener = (event: string | symbol): void => {
    if (event !== 'data' && event !== 'readable') return
    request.off('newListener', onListener)
    if (!response.headersSent) response.writeContinue()
  }
  request.on('newListener', onListener)
}

/**
 * HTTP/1.0 has no transfer codings: RFC 9112 §6.1 has a server take such a request's framing as faulty. Node decodes
 * its body as chunked, where a proxy in front that reads HTTP/1.0 as HTTP/1.0 takes the body to be empty and the
 * chunks for the next request (request smuggling); nginx refuses such requests with 400 since 1.21.1. The body is
 * never taken: the connection closes after the answer, lingering (closeLingeringAfter) while the client still sends it.
 */
function refuseFaultyFraming(request: IncomingMessage, response: ServerResponse, id: string, refused: RefusedOnArrival): void {
  countWhenClosed(request, response, id, BadRequest.code, refused)
  closeLingeringAfter(response)
  const json = JSON.stringify(errorBody(new BadRequest('An HTTP/1.0 request cannot have a Transfer-Encoding.'), id))
  response.writeHead(400, { 'x-request-id': id, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), connection: 'close' }).end(json)
}

/**
 * A request line of HTTP/2.0 or HTTP/0.9, which Node's parser takes and would have served as HTTP/1.1, with HTTP/1.1's
 * framing: a client or a proxy in front speaking either reads the exchange otherwise. nginx answers a major version
 * above 1 with 505 as well (an HTTP/2 client uses its preface, which is no request line, or TLS's ALPN). Nothing of
 * the request is taken: the connection closes after the answer, lingering while the client still sends a body.
 */
function refuseVersion(request: IncomingMessage, response: ServerResponse, id: string, refused: RefusedOnArrival): void {
  countWhenClosed(request, response, id, HttpVersionNotSupported.code, refused)
  closeLingeringAfter(response)
  const json = JSON.stringify(errorBody(new HttpVersionNotSupported(), id))
  response.writeHead(505, { 'x-request-id': id, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), connection: 'close' }).end(json)
}

/**
 * A refusal answered before a lane or Fastify takes the request, whose hooks would have counted and logged it: its
 * line is written when its response closes, as theirs are, and says how the answer ended.
 */
function countWhenClosed(request: IncomingMessage, response: ServerResponse, id: string, code: ErrorCode, refused: RefusedOnArrival): void {
  const startedAt = performance.now()
  response.once('close', () => {
    const { status, ending } = outcomeOf(response)
    refused({ id, request, status, code, elapsedMs: performance.now() - startedAt, ending })
  })
}

/**
 * Whether Node's parser read the request as one asking to switch protocols (an `Upgrade` field and `upgrade` named in
 * `Connection`, RFC 9110 §7.8) that the gateway declines: every one but a WebSocket's (src/gateway/websocket.ts), an
 * h2c upgrade such as `curl --http2` sends included. Node serves it over HTTP/1.1, but its parser stops after such a
 * request and throws away whatever else the read that held it brought: a request pipelined behind it went unanswered
 * and, worse, when that read ended inside the headers of a request with a body, the body arriving in the next read
 * was taken for a request of its own, one no other HTTP/1.1 reader of the connection would see (a proxy in front
 * forwarding the body as a body). What follows such a request on its connection cannot be read as the client sent it.
 */
function declinedUpgrade(request: IncomingMessage): boolean {
  const { upgrade, connection } = request.headers
  return upgrade !== undefined && connection !== undefined && connection.split(',').some((option) => option.trim().toLowerCase() === 'upgrade')
}

/** How long a CONNECT's refusal may take to be written before its socket is destroyed anyway. */
const CONNECT_ANSWER_MS = 5_000

/** The options Fastify hands its `serverFactory`: its own, resolved, with the node server's under `http` or `https`. */
interface FactoryOptions {
  readonly http?: object | null
  readonly https?: HttpsServerOptions | true | null
  readonly keepAliveTimeout: number
  readonly requestTimeout: number
  readonly connectionTimeout: number
  readonly maxRequestsPerSocket?: number | null
}

/**
 * The HTTP(S) server Fastify would create (fastify/lib/server.js), with `take` offered each request before Fastify's
 * router: the proxy's lean path (src/gateway/lean-proxy.ts) answers what it takes, Fastify the rest. Both see the
 * target in origin form, its path's slashes merged (src/http/request-target.ts). Every answer carries the request's
 * id in X-Request-Id: set here for Fastify's, by the lane for what it takes. What is refused here, before either,
 * is counted and logged through `refused`. A client may leave the answers Fastify writes unread for `sendMs` at most
 * (src/http/unread-answers.ts); the lane bounds its own. Over HTTPS, the answers written on the socket itself (to CONNECT) carry
 * `strictTransportSecurity`, as the listener gives every response (src/listener/listener.ts).
 */
export function nodeServer(fastifyHandler: RequestListener, options: FactoryOptions, take: () => ((...args: Parameters<RequestListener>) => boolean) | undefined, trustsProxy: ProxyTrust, refused: RefusedOnArrival, sendMs: number, strictTransportSecurity?: string): Server {
  const handler: RequestListener = (request, response) => {
    // Pipelined behind a request still being answered: its response has no socket until that answer is done.
    if (response.socket === null) return inTurn(request, response, handle)
    handle(request, response)
  }
  const handle: RequestListener = (request, response) => {
    // Behind the connection's last answer: never taken, never answered; the connection closes.
    if (answeredLast(request.socket)) return
    const id = enterRequest(request, trustsProxy)
    if (request.httpVersionMajor !== 1) return refuseVersion(request, response, id, refused)
    if (request.httpVersionMinor === 0 && request.headers['transfer-encoding'] !== undefined) return refuseFaultyFraming(request, response, id, refused)
    // Answered as any request, and its connection's last (declinedUpgrade): nothing parsed behind it is taken.
    if (declinedUpgrade(request)) closeLingeringAfter(response)
    // A lane that takes the request answers with the id itself: the forward-auth answer writes all its header fields
    // in one writeHead, which costs less when none was set before it.
    if (take()?.(request, response)) return
    response.setHeader('x-request-id', id)
    boundUnreadAnswer(response, sendMs)
    fastifyHandler(request, response)
  }
  // A request without Host is refused by src/http/host-header.ts, as JSON like every other refusal; Node's own 400
  // has no body.
  const requireHostHeader = false
  const https = options.https === true ? {} : options.https
  const server = https ? createHttpsServer({ ...https, requireHostHeader }, handler) : createHttpServer({ ...options.http, requireHostHeader }, handler)
  server.on('connection', pinPeerAddress)
  if (https) {
    server.on('secureConnection', pinPeerAddress)
    // As nginx: a client may not renegotiate TLS 1.2 (each renegotiation a full handshake, with a private key
    // operation, which Node allows three times in ten minutes); TLS 1.3 has none.
    server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation())
  }
  server.keepAliveTimeout = options.keepAliveTimeout
  server.requestTimeout = options.requestTimeout
  server.setTimeout(options.connectionTimeout)
  if (options.maxRequestsPerSocket) server.maxRequestsPerSocket = options.maxRequestsPerSocket
  // A client that asked to be told before it sends its body is told once the body is read, not before the request is
  // judged (inviteBodyWhenRead). Requests without Expect never come here: nothing is added to theirs.
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    inviteBodyWhenRead(request, response)
    handler(request, response)
  })
  // An Expect other than 100-continue: Node's own 417 has no body. The request's body is not taken, so the
  // connection closes after the answer, lingering while the client still sends it.
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const id = enterRequest(request, trustsProxy)
    countWhenClosed(request, response, id, ExpectationFailed.code, refused)
    closeLingeringAfter(response)
    const json = JSON.stringify(errorBody(new ExpectationFailed(), id))
    response.writeHead(417, { 'x-request-id': id, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), connection: 'close' }).end(json)
  })
  // CONNECT asks for a tunnel through a forward proxy, which Gatehouse is not. Node has no answer of its own for it: it
  // closed the connection without a word.
  server.on('connect', (request: IncomingMessage, socket: Duplex) => {
    const id = enterRequest(request, trustsProxy)
    const startedAt = performance.now()
    const json = JSON.stringify(errorBody(new BadRequest('Gatehouse is no forward proxy: it opens no tunnels (CONNECT).'), id))
    socket.on('error', () => socket.destroy())
    // Node hands the socket over and no longer tracks it: nothing else would close it (not the client timeouts, not
    // shutdown's closing of connections), so it is destroyed once the answer is written, or after a short bound.
    let cut = false
    const bound = setTimeout(() => {
      cut = true
      socket.destroy()
    }, CONNECT_ANSWER_MS).unref()
    // Logged when the socket closes, as a response's line is when it closes: an answer not written whole is incomplete.
    socket.once('close', () => refused({
      id, request, status: 400, code: BadRequest.code, elapsedMs: performance.now() - startedAt,
      ending: socket.writableFinished ? undefined : cut ? { incomplete: true, closedBy: 'gateway' } : { incomplete: true },
    }))
    const hsts = strictTransportSecurity === undefined ? '' : `strict-transport-security: ${strictTransportSecurity}\r\n`
    socket.end(`HTTP/1.1 400 Bad Request\r\nx-request-id: ${id}\r\n${hsts}content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`, () => {
      clearTimeout(bound)
      socket.destroy()
    })
  })
  return server
}

/**
 * Keeps a connection's peer address readable for as long as its requests are being judged. Node reads it from the
 * socket, and a socket destroyed meanwhile (the client reset the connection) answers undefined: the credential
 * cache, the lockout and the pool's shares would each meet a request with no client. Pinned when the connection
 * opens (the TLS socket over it too), every reader (Fastify's `request.ip`, proxy-addr, the lean path) gets the
 * address the connection came from. A connection whose client reset it before it was taken has no address to pin,
 * and no one to answer: it is closed before anything it sent is read.
 */
function pinPeerAddress(socket: Socket): void {
  const address = socket.remoteAddress
  if (address === undefined) return void socket.destroy()
  Object.defineProperty(socket, 'remoteAddress', { value: address, enumerable: true })
}
