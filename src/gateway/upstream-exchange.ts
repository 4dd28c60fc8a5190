import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Dispatcher } from 'undici'
import type { GatehouseError } from '../errors.ts'
import { markCutByGateway } from '../http/answer-outcome.ts'
import { cutConnection } from '../http/cut-connection.ts'
import { assignedRequestIdOf } from '../http/request-id.ts'
import { closeLingeringAfter } from '../http/lingering-close.ts'
import { STATUS_CODES } from '../http/node-http.ts'
import { readSoundAnswers } from './upstream-response-parser.ts'
import { clientResponseTrailers } from './upstream-headers.ts'

/** A reason phrase Node writes as given (its check of a header's value): tabs and visible characters, spaces, obs-text. */
const PRINTABLE_REASON = /^[\t\x20-\x7e\x80-\xff]*$/

/** What a forwarded request's exchange needs of the path that forwards it (the lean path, or Fastify's route). */
export interface ExchangeEnds {
  /** The client's request, whose body (if any) is being sent upstream. */
  readonly client: IncomingMessage
  readonly response: ServerResponse
  /**
   * How long the client may read nothing of what it was sent while the body's next chunk waits: the service's
   * `timeouts.response_seconds`, the bound on the service's own pauses between chunks.
   */
  readonly readMs: number
  /** The headers the client is answered with, from the upstream's (filtered and rewritten as each path does). */
  responseHeaders(upstream: IncomingHttpHeaders): OutgoingHttpHeaders
  /** The upstream failed: answer an error, or cut a response already under way. */
  failed(error: Error): void
}

/** Interim (1xx) answers a service may send before its final one, and of them the early hints passed on. */
const MOST_INTERIM_ANSWERS = 32
const MOST_EARLY_HINTS = 4

/**
 * One forwarded request, as undici's dispatcher reports it: the upstream's status and headers go straight to the
 * client's response, the body after them with back-pressure both ways, then its trailers; a client that goes away
 * aborts the upstream request. A client that reads nothing for `readMs` is cut off (one reading slowly is not): the upstream's pause is
 * bounded by the same time, and without it a client that reads nothing would hold its connection and the
 * service's for good.
 */
export class UpstreamExchange implements Dispatcher.DispatchHandler {
  readonly #ends: ExchangeEnds
  #controller: Dispatcher.DispatchController | undefined
  #interimAnswers = 0
  #firstInterimAt = 0
  #unread: NodeJS.Timeout | undefined
  /** The body's bytes handed to the client's response, and how many of them had left its buffers at the last look. */
  #written = 0
  #flushedAtLastLook = 0
  /** The service's reason phrase, where it is not Node's for the status, until the head is written. */
  #reason: string | undefined
  /** The client's head, from the upstream's, until it is written (`onResponseStart`). */
  #head: OutgoingHttpHeaders | undefined

  constructor(ends: ExchangeEnds) {
    readSoundAnswers()
    this.#ends = ends
    ends.response.on('close', this.#clientGone)
  }

  readonly #clientGone = (): void => {
    clearTimeout(this.#unread)
    if (!this.#ends.response.writableFinished) this.#controller?.abort(new Error('The client went away.'))
  }

  readonly #resume = (): void => {
    clearTimeout(this.#unread)
    this.#unread = undefined
    this.#controller?.resume()
  }

  /**
   * The bound on a paused answer is on the client reading nothing: one reading slowly, whose buffers drain more
   * slowly than `readMs` at a time, keeps its answer while what it reads leaves them.
   */
  readonly #cutOffUnlessReading = (): void => {
    const flushed = this.#flushed()
    if (flushed <= this.#flushedAtLastLook) return void cutAnswer(this.#ends.response)
    this.#flushedAtLastLook = flushed
    this.#unread?.refresh()
  }

  /** The bytes written that Node has handed to the kernel since the answer began: more only as the client reads. */
  #flushed(): number {
    return this.#written - this.#ends.response.writableLength
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#ends.response.destroyed) controller.abort(new Error('The client went away.'))
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    const { client, response } = this.#ends
    if (statusCode < 200) {
      // An informational answer before the final one. It used to be written as the final answer, which left the client
      // with nothing. RFC 9110 §15.2 has a proxy pass 1xx on, except to HTTP/1.0 clients; Node can send 103 Early
      // Hints (their Link fields) and no other, so the rest are dropped, as nginx drops them all.
      // undici waits response_seconds afresh after each: a service sending them without end held the client and an
      // upstream connection for good, and hints written past the client's back-pressure grew memory by gigabytes. So
      // the final answer must follow the first within response_seconds and 32 of them, and a few hints are passed on,
      // each only once the client has taken what it was sent.
      const now = performance.now()
      if (++this.#interimAnswers === 1) this.#firstInterimAt = now
      if (now - this.#firstInterimAt > this.#ends.readMs) return controller.abort(interimFlood('UND_ERR_HEADERS_TIMEOUT', `The service sent interim answers for longer than ${this.#ends.readMs} ms without a final one.`))
      if (this.#interimAnswers > MOST_INTERIM_ANSWERS) return controller.abort(interimFlood('UPSTREAM_INTERIM_ANSWERS', `The service sent more than ${MOST_INTERIM_ANSWERS} interim answers.`))
      if (statusCode === 103 && headers.link && client.httpVersion !== '1.0' && this.#interimAnswers <= MOST_EARLY_HINTS && response.writableLength === 0) writeEarlyHints(response, headers.link)
      return
    }
    const coding = unknownTransferCoding(headers)
    if (coding) return controller.abort(coding)
    // An HTTP/1 connection cannot be reused until its request body has been read: the upstream answered before. The
    // body goes on to the service while it reads it (one answering as it reads); the connection is closed once the
    // answer is written, lingering, as the client may still be sending (src/http/lingering-close.ts).
    if (!client.complete) closeLingeringAfter(response)
    // Held until the body's first bytes or its end: a service that breaks off before either is answered 502 (or 504)
    // like one that never answered, where a head already written could only be cut, and the client got nothing at all.
    // Node would not send a written head before either anyway. The status is the response's meanwhile, for the log
    // line of a client that leaves before.
    response.statusCode = statusCode
    // The service's reason phrase, as nginx passes it on (Node would write its own words for the status, `unknown` for
    // one it has none for); one Node would refuse keeps Node's. Written with the head only: a service that breaks off
    // before it is answered 502 in the gateway's words.
    this.#reason = statusMessage !== undefined && statusMessage !== STATUS_CODES[statusCode] && PRINTABLE_REASON.test(statusMessage) ? statusMessage : undefined
    this.#head = this.#ends.responseHeaders(headers)
  }

  /** Writes the held head; the error Node refuses it with (a status below 100 or above 999), if it does. */
  #writeHead(): Error | undefined {
    const head = this.#head
    if (!head) return undefined
    this.#head = undefined
    try {
      const { response } = this.#ends
      if (this.#reason === undefined) response.writeHead(response.statusCode, head)
      else response.writeHead(response.statusCode, this.#reason, head)
      return undefined
    } catch (error) {
      return error as Error
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const { response } = this.#ends
    // The upstream's answer is not one to pass on.
    const refused = this.#writeHead()
    if (refused) return controller.abort(refused)
    this.#written += chunk.length
    if (!response.write(chunk)) {
      controller.pause()
      // undici may hand over a chunk it already had after the pause: one bound and one wait for 'drain', from the first.
      if (this.#unread) return
      response.once('drain', this.#resume)
      this.#flushedAtLastLook = this.#flushed()
      this.#unread = setTimeout(this.#cutOffUnlessReading, this.#ends.readMs)
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    const { response } = this.#ends
    const refused = this.#writeHead()
    if (refused) return this.#ends.failed(refused)
    // Most answers have none: one look at an empty object. Node sends them only where the answer is chunked.
    for (const _ in trailers) {
      response.addTrailers(clientResponseTrailers(trailers))
      break
    }
    response.end()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#ends.response.destroyed) return
    this.#ends.failed(error)
  }
}

/** Methods whose request sent twice does what it does once (RFC 9110 §9.2.2), of those the proxy forwards (no TRACE). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])
/** A connection to the service closed or reset under a request, as a kept-alive one the service closes as it is reused is. */
const CONNECTION_LOST = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])

/** Whether a request may be sent again should its connection be lost: an idempotent method, and a body held whole (or none). */
export function mayResend(options: Dispatcher.DispatchOptions): boolean {
  const { body } = options
  return IDEMPOTENT.has(options.method) && (body === null || body === undefined || Buffer.isBuffer(body))
}

/**
 * Sends a request again, once, on another connection, when the one it went on was lost before any of the service's
 * answer (not even an interim one) came back: a service closing a kept-alive connection as the next request goes out
 * on it is otherwise a 502 for a request it never saw, and nginx resends such a request too (an idempotent one, not
 * yet answered). Only for requests `mayResend`: a POST the service may have acted on is answered 502, as before.
 */
export class ResendOnce implements Dispatcher.DispatchHandler {
  readonly #handler: Dispatcher.DispatchHandler
  readonly #options: Dispatcher.DispatchOptions
  readonly #connections: ResendingConnections
  #answered = false
  #resent = false

  /** Fields, not a closure: the one object a request that may be resent costs more. */
  constructor(handler: Dispatcher.DispatchHandler, options: Dispatcher.DispatchOptions, connections: ResendingConnections) {
    this.#handler = handler
    this.#options = options
    this.#connections = connections
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    this.#answered = true
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk)
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#handler.onResponseEnd?.(controller, trailers)
  }

  onResponseError(controller: Dispatcher.DispatchController | undefined, error: Error): void {
    const code = (error as { code?: string }).code ?? ''
    // undici reports a connection that failed as it was made without a controller.
    if (this.#answered || this.#resent || controller?.aborted || !CONNECTION_LOST.has(code)) return this.#handler.onResponseError?.(controller!, error)
    this.#resent = true
    this.#connections.dispatchOnce(this.#options, this)
  }
}

/** Where a resent request goes: the service's connections as they are then (a TLS reload may have replaced them). */
export interface ResendingConnections {
  dispatchOnce(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean
}

/**
 * Cuts an answer under way: the client's connection is reset, so that a body cut short cannot pass for whole. Its
 * length not reached, or no last chunk, says so to an HTTP/1.1 client; an HTTP/1.0 client's answer has neither when
 * the service's had no length, and ends where the connection does, so a close would have it read what it got as
 * the whole answer (as nginx's clients do). The request's line says the gateway closed it (`closed_by`), with the
 * failure's code when the service's answer broke off or paused too long (`upstream_unavailable`,
 * `upstream_timeout`): the same line without them is a client that went away.
 */
export function cutAnswer(response: ServerResponse, failure?: GatehouseError): void {
  markCutByGateway(response, failure?.code)
  const socket = response.socket as Socket | null
  if (socket && !socket.destroyed) cutConnection(socket)
  response.destroy()
}

/**
 * Whether a response's transfer codings are `chunked` alone, the one coding the upstream client takes off. With
 * another (`gzip, chunked`), the client was sent the body still in that coding, with nothing saying so, since
 * Transfer-Encoding is not passed on; and with `chunked` not last (`chunked, gzip`) the body runs until the service
 * closes the connection (RFC 9112 §6.3). nginx answers such a response 502 ("upstream sent unknown
 * Transfer-Encoding").
 */
function onlyChunked(codings: string | string[]): boolean {
  return typeof codings === 'string' && codings.trim().toLowerCase() === 'chunked'
}

/** The failure to answer for a response whose transfer codings are not `chunked` alone (above); undefined for one that has none or only that. */
export function unknownTransferCoding(headers: IncomingHttpHeaders): Error | undefined {
  const codings = headers['transfer-encoding']
  if (codings === undefined || onlyChunked(codings)) return undefined
  return Object.assign(new Error(`The service answered with Transfer-Encoding "${codings}", of which only "chunked" is decoded.`), { code: 'UPSTREAM_TRANSFER_CODING' })
}

/** The failure of a service that kept sending interim answers: a timeout's code is answered 504, another 502 (lean-proxy.ts). */
function interimFlood(code: string, message: string): Error {
  return Object.assign(new Error(message), { code })
}

/**
 * A Link field is a list of links (RFC 8288 §3), and servers send several in one field; Node's `writeEarlyHints`
 * takes one link to a string, so the list is split before each `<` that starts a link. A hint Node still refuses
 * (a link it does not read as one) is left out, as every other 1xx is: the final answer follows anyway, and a 502
 * for an answer the service got right was what a refused hint gave.
 */
function writeEarlyHints(response: ServerResponse, link: string | string[]): void {
  const links = [link].flat().flatMap((field) => field.split(/,\s*(?=<)/))
  // The request's id, as on every other answer the client gets: set on the proxied path's requests as they arrive.
  const id = assignedRequestIdOf(response.req)
  try {
    response.writeEarlyHints(id === undefined ? { link: links } : { link: links, 'x-request-id': id })
  } catch {
    // Nothing was written: Node checks every link before it writes any.
  }
}
