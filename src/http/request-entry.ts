import type { IncomingMessage } from 'node:http'
import { normaliseForwardingHeaders, type ProxyTrust } from '../gateway/trusted-proxies.ts'
import { assignRequestId } from './request-id.ts'
import { normaliseTarget } from './request-target.ts'

/**
 * What every request gets before anything reads it, whichever way it came in (an ordinary request,
 * src/listener/node-server.ts, or an upgrade, src/gateway/websocket.ts): its target in origin form with its path's
 * slashes merged, a proxy's forwarding headers in the one form the access rules, the lockout and the services read,
 * and its id, which it returns.
 */
export function enterRequest(request: IncomingMessage, trustsProxy: ProxyTrust): string {
  normaliseTarget(request)
  normaliseForwardingHeaders(request.headers)
  return assignRequestId(request, trustsProxy)
}
