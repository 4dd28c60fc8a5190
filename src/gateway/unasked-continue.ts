import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'

/**
 * undici's HTTP/1 client takes any `100 Continue` for a broken answer and fails the request (it never sends
 * `Expect`, so it never asks for one), and the gateway answered 502. Some servers send one before every answer to a
 * request with a body, asked or not; RFC 9110 §15.2.1 has a client discard a 100 it did not ask for, and nginx does.
 * undici has no option for it, so its response parser is given one: a 100 is handed on as the other informational
 * answers are (as `102`, which src/gateway/upstream-exchange.ts drops like every 1xx but `103`), and the final answer
 * that follows is read as usual. The parser's class is not exported: one is made on a socket that never connects,
 * to reach its prototype, once, with the first forwarded request (which compiles undici's HTTP parser, as the first
 * upstream connection would anyway: nothing is added to the start). undici is pinned to an exact version; should its
 * parser change, the gateway warns once and goes on as before (an unasked 100 then gives 502) rather than failing.
 * A client's own `Expect: 100-continue` is answered by Node before the request reaches the gateway, so a service's
 * 100 is never the client's to receive.
 */
const require = createRequire(import.meta.url)

/** What the handlers are told instead of 100: an informational status they already drop. */
const STAND_IN = 102

interface ResponseParser {
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
  if (!parser || typeof prototype?.onHeadersComplete !== 'function') {
    throw new Error('undici\'s HTTP/1 response parser has changed: src/gateway/unasked-continue.ts must be revised.')
  }
  parser.destroy()
  socket.removeAllListeners()
  return prototype
}

let patched = false

/** Called with each forwarded request; patches the parser the first time. */
export function discardUnaskedContinue(): void {
  if (patched) return
  patched = true
  try {
    const prototype = responseParserPrototype()
    const onHeadersComplete = prototype.onHeadersComplete
    prototype.onHeadersComplete = function (this: ResponseParser, statusCode, upgrade, shouldKeepAlive) {
      return onHeadersComplete.call(this, statusCode === 100 ? STAND_IN : statusCode, upgrade, shouldKeepAlive)
    }
  } catch (error) {
    process.emitWarning(`${(error as Error).message} A service's unasked 100 Continue will give 502.`)
  }
}
