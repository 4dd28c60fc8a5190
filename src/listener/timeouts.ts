import { millisecondsOf } from '../config/durations.ts'
import type { Config } from '../config/schema.ts'
import type { TlsCredentials } from './tls.ts'

/**
 * How long a client may take to send a request (`server.timeouts`). Without these, a client that sends headers
 * and never finishes them, or a `Content-Length` it never delivers, holds its connection (and, once forwarded,
 * an upstream connection) for good. Node checks the deadlines on a timer; once a second instead of its default
 * 30 s, so they hold to about a second.
 */
export function serverTimeouts(server: Config['server'], https: TlsCredentials['options'] | undefined): {
  requestTimeout: number
  http?: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number }
  https?: TlsCredentials['options'] & { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number; handshakeTimeout: number }
} {
  const node = {
    headersTimeout: millisecondsOf(server.timeouts.headers_seconds),
    requestTimeout: millisecondsOf(server.timeouts.request_seconds),
    connectionsCheckingInterval: 1000,
  }
  // Fastify sets the server's requestTimeout from its own option (0, none, unless given). Over TLS the deadlines start
  // once the handshake is done: until then Node's own handshakeTimeout (120 s) held a client that never finished one,
  // so the handshake gets the time the headers get.
  return { requestTimeout: node.requestTimeout, ...(https ? { https: { ...https, ...node, handshakeTimeout: node.headersTimeout } } : { http: node }) }
}
