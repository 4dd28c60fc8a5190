import type { IncomingHttpHeaders } from 'node:http'
import type { RequestContext } from '../context.ts'
import type { WatchedConnection } from './client-gone.ts'

/**
 * What deciding about a request reads of it, whichever door it came in by: a Fastify request (the gateway's own
 * routes) satisfies it, and so does the proxy's lean request (src/gateway/lean-proxy.ts), which skips Fastify.
 * `ip`, `protocol` and `host` believe X-Forwarded-* only from a trusted proxy, as Fastify's do.
 */
export interface GatewayRequest {
  /** Its log line's `reqId`, which the service gets as X-Request-Id (src/http/request-id.ts). */
  readonly id: string
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly cookies: { readonly [name: string]: string | undefined }
  readonly ip: string
  readonly protocol: 'http' | 'https'
  readonly host: string
  /** A parsed body; none on proxied requests, whose body streams through. */
  readonly body?: unknown
  readonly raw: { readonly socket: WatchedConnection & { readonly remoteAddress?: string | undefined }; readonly rawHeaders: readonly string[] }
  readonly gatehouse: RequestContext
}
