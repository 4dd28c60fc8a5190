import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { ProxyTrust } from '../gateway/trusted-proxies.ts'

/**
 * What an id taken from a proxy may look like: nginx's `$request_id` (hex), UUIDs, Envoy's and the cloud load
 * balancers' (`Root=1-...`, dots, colons). Nothing that could break a log line or a header, and not so long that a
 * proxy's id could fill the logs.
 */
const WELL_FORMED = /^[A-Za-z0-9._:=+-]{1,128}$/

/**
 * Where a request's id is kept: a property of Node's request under a symbol of this module's, which nothing else
 * reads. A WeakMap keyed by the request cost every proxied request an entry the garbage collector must visit as an
 * ephemeron in each young-generation collection (docs/performance.md).
 */
const REQUEST_ID = Symbol('request id')

type WithId = IncomingMessage & { [REQUEST_ID]?: string }

/**
 * Gives a request its id, as it arrives, for its log line, the service (`X-Request-Id`) and the client (echoed in the
 * answer), as oauth2-proxy and nginx do: the id a trusted proxy sent, so one id follows the request through every hop,
 * or a new UUID. Any other client's id is not believed: it could pass itself off as another request in the logs.
 */
export function assignRequestId(request: IncomingMessage, trustsProxy: ProxyTrust): string {
  const sent = request.headers['x-request-id']
  const id = typeof sent === 'string' && WELL_FORMED.test(sent) && trustsProxy(request.socket.remoteAddress) ? sent : randomUUID()
  const identified: WithId = request
  identified[REQUEST_ID] = id
  return id
}

/** The id `assignRequestId` gave the request, if it gave one (none on the metrics listener, say): nothing is made up. */
export function assignedRequestIdOf(request: IncomingMessage): string | undefined {
  return (request as WithId)[REQUEST_ID]
}

/** The id `assignRequestId` gave the request (a new one for a request that came another way, as in tests). */
export function requestIdOf(request: IncomingMessage): string {
  return ((request as WithId)[REQUEST_ID] ??= randomUUID())
}
