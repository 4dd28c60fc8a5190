import type { RequestContext } from '../context.ts'
import { splitTarget } from '../http/request-target.ts'

/**
 * The fields of the one line each request is logged with, whichever path served it (src/server.ts, and the proxy's
 * lean path, src/gateway/lean-proxy.ts): the place, the decision, the authenticator that claimed the credential and
 * the error code, as Oathkeeper logs its decisions. None can hold a secret, so the line skips redaction.
 */
export function requestLine(id: string, method: string, url: string, status: number, elapsedMs: number, context: RequestContext): object {
  const { place, principal, decision, authenticator, code, accessRule } = context
  return {
    reqId: id,
    method,
    path: splitTarget(url).path,
    status,
    ms: Math.round(elapsedMs * 10) / 10,
    service: place?.service,
    place: place?.name,
    decision,
    code,
    authenticator,
    user: principal?.user.username,
    auth: principal?.method,
    access_rule: accessRule,
  }
}
