import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'

/**
 * Two sound answers undici's HTTP/1 client takes for broken ones, and the gateway answered 502 or cut the client off:
 *
 * - A `100 Continue` nobody asked for: undici never sends `Expect`, so it fails the request on any 100. Some servers
 *   send one before every answer to a request with a body, asked or not; RFC 9110 §15.2.1 has a client discard a
 *   100 it did not ask for, and nginx does. It is handed on as the other informational answers are (as `102`, which
 *   src/gateway/upstream-exchange.ts drops like every 1xx but `103`), and the final answer that follows is read as
 *   usual. A client's own `Expect: 100-continue` is answered by the gateway itself, as it starts to read the body
 *   (src/listener/node-server.ts), and never passed on, so a service's 100 is never the client's to receive.
 * - A `304` (or `204`) with a `Content-Length`: RFC 9110 §8.6 lets a 304 carry the length the 200 would have had,
 *   and ASP.NET MVC sends it. Such an answer has no body (llhttp reads none), but undici compares the length with
 *   the body's zero bytes and fails the request, after the client's response had begun: the client got nothing. The
 *   parser is told no length was given; the field still goes to the client, as nginx passes it. The connection is
 *   not used again, though (unless the length was 0): undici's failure closed it, and so kept bytes a broken service
 *   sends after such an answer (its body after all) from being read as the answer to the next request on it,
 *   another client's. Nor is it after a 304 or 204 with a `Transfer-Encoding`, which llhttp reads without a body
 *   and as reusable: servers that send one follow it with a chunked body, if only its last chunk (`0`), and that
 *   arriving a moment later was read as the answer to the next request sent on the connection, another client's 502.
 *
 * undici has no option for either, so its response parser is given them. The parser's class is not exported: one is
 * made on a socket that never connects, to reach its prototype, once, with the first forwarded request (which
 * compiles undici's HTTP parser, as the first upstream connection would anyway: nothing is added to the start).
 * undici is pinned to an exact version; should its parser change, the gateway warns once and goes on as before
 * (those answers then give 502) rather than failing.
 */
const require = createRequire(import.meta.url)

/** A Content-Length of zero, however many digits it is written with. */
const ZERO = /^0+$/
/** What the handlers are told instead of 100: an informational status they already drop. */
const STAND_IN = 102

interface ResponseParser {
  /** The Content-Length field's value as read, '' for none; compared with the body's length at its end. */
  contentLength: string
  /** The header section's fields as read: name, value, name, value... */
  headers: Buffer[]
  onHeadersComplete(statusCode: number, upgrade: boolean, shouldKeepAlive: boolean): number
  destroy(): void
}

function responseParserPrototype(): ResponseParser {
  const connectH1 = require('undici/lib/dispatcher/client-h1.js') as (client: object, socket: EventEmitter) => unknown
  const { kParser } = require('undici/lib/core/symbols.js') as { kParser: symbol }
  const socket = Object.assign(new EventEmitter(), { destroyed: false, errored: null })
  connectH1({}, socket)
  const parser = (socket as unknown as Record<symbol, ResponseParser | undefined>)[kParser]
  const prototype = parser && Object.getPrototypeOf(parser) as ResponseParser
  if (!parser || typeof prototype?.onHeadersComplete !== 'function' || typeof parser.contentLength !== 'string' || !Array.isArray(parser.headers)) {
    throw new Error('undici\'s HTTP/1 response parser has changed: src/gateway/upstream-response-parser.ts must be revised.')
  }
  parser.destroy()
  socket.removeAllListeners()
  return prototype
}

/** Whether a header section (name, value, ... as the parser holds it) has a Transfer-Encoding field. */
function hasTransferEncoding(headers: readonly Buffer[]): boolean {
  for (let index = 0; index < headers.length; index += 2) {
    const name = headers[index]!
    if (name.length === 17 && name.toString('latin1').toLowerCase() === 'transfer-encoding') return true
  }
  return false
}

let patched = false

/** Called with each forwarded request; patches the parser the first time. */
export function readSoundAnswers(): void {
  if (patched) return
  patched = true
  try {
    const prototype = responseParserPrototype()
    const onHeadersComplete = prototype.onHeadersComplete
    prototype.onHeadersComplete = function (this: ResponseParser, statusCode, upgrade, shouldKeepAlive) {
      let keepAlive = shouldKeepAlive
      if (statusCode === 304 || statusCode === 204) {
        if (this.contentLength !== '') {
          if (!ZERO.test(this.contentLength)) keepAlive = false
          this.contentLength = ''
        } else if (hasTransferEncoding(this.headers)) {
          keepAlive = false
        }
      }
      return onHeadersComplete.call(this, statusCode === 100 ? STAND_IN : statusCode, upgrade, keepAlive)
    }
  } catch (error) {
    process.emitWarning(`${(error as Error).message} A service's unasked 100 Continue, or its 304 with a length, will give 502.`)
  }
}
