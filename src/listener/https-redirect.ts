import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { answerClientError } from '../errors.ts'
import { createServer } from '../http/node-http.ts'
import { normaliseTarget } from '../http/request-target.ts'

/**
 * The plain-HTTP port of a gateway that serves HTTPS: every request is answered with a redirect to the same
 * path and query on HTTPS, and nothing else is served there. 308 keeps the method and body (RFC 9110 15.4.9),
 * so API clients that follow it repeat their request over TLS. No Strict-Transport-Security here: RFC 6797
 * section 7.2 forbids it over plain HTTP.
 */
export interface RedirectTarget {
  /** The configured https public URL's origin, used whatever Host the request names. */
  origin?: string | undefined
  /** Otherwise the request's Host name with this port. */
  httpsPort: number
}

const TIMEOUT_MS = 10_000
/** A Host header: a DNS name, IPv4 address or bracketed IPv6 address, with an optional port. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/

export function createHttpsRedirect(target: RedirectTarget): Server {
  // Nothing here waits on anything but the client, and no client needs long to send a request line and headers.
  // Node checks these deadlines on a timer, every 30 s unless told otherwise, which let a client that never finished
  // its headers hold its connection three times as long; once a second, as on the gateway's port.
  // A request without Host gets the JSON answer below, as on the HTTPS port: Node's own 400 has no body.
  const timeouts = { headersTimeout: TIMEOUT_MS, requestTimeout: TIMEOUT_MS, connectionsCheckingInterval: 1000, requireHostHeader: false }
  const server = createServer(timeouts, (request, response) => redirect(request, response, target))
  server.keepAliveTimeout = 1000
  // A request that times out or is not valid HTTP gets the gateway's JSON answer, as on its HTTPS port: Node's own has no body.
  server.on('clientError', answerClientError)
  return server
}

function redirect(request: IncomingMessage, response: ServerResponse, target: RedirectTarget): void {
  // An absolute-form target names the path to redirect to, and its host the one to name, as on the HTTPS port.
  normaliseTarget(request)
  const path = request.url ?? ''
  // Node keeps the first of several Host fields; the HTTPS port refuses such a request, and so does this one.
  const hosts = request.rawHeaders.filter((_value, i) => i % 2 === 0 && request.rawHeaders[i]!.toLowerCase() === 'host').length
  const origin = hosts > 1 ? undefined : target.origin ?? originFromHost(request.headers.host, target.httpsPort)
  // The body is never read: the connection closes after this answer.
  response.shouldKeepAlive = false
  if (!path.startsWith('/') || origin === undefined) {
    const body = JSON.stringify({ code: 'bad_request', detail: 'Use HTTPS: this port only redirects requests with a valid Host header and path.' })
    response.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
    response.end(body)
    return
  }
  response.writeHead(308, { location: origin + path, 'content-length': 0 })
  response.end()
}

function originFromHost(host: string | undefined, httpsPort: number): string | undefined {
  if (host === undefined || !HOST.test(host)) return undefined
  const name = host.replace(/:\d+$/, '')
  return `https://${name}${httpsPort === 443 ? '' : `:${httpsPort}`}`
}
