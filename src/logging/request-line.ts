import type { RequestContext } from '../context.ts'
import type { AnswerEnding, ArrivalRefusal } from '../http/answer-outcome.ts'
import { splitTarget } from '../http/request-target.ts'

/**
 * The fields of the one line each request is logged with, whichever path served it (src/server.ts, and the proxy's
 * lean path, src/gateway/lean-proxy.ts): the place, the decision, the authenticator that claimed the credential and
 * the error code, as Oathkeeper logs its decisions. None can hold a secret, so the line skips redaction: the path
 * is logged without its query (clients put `code=`, `access_token=`, `client_secret=` there), without a fragment
 * (no client should send one, but a URL copied from a browser holds `#access_token=` in it) and without the id of a
 * realm login under way.
 */
export function requestLine(id: string, method: string, url: string, status: number, elapsedMs: number, context: RequestContext, ending?: AnswerEnding, traceparent?: string | string[]): object {
  const { place, principal, decision, authenticator, code, accessRule } = context
  return {
    reqId: id,
    trace_id: traceIdOf(traceparent),
    method,
    path: withoutLoginUnderWay(loggedPath(url)),
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
    // The answer did not reach the client whole, and who closed the connection when the gateway did
    // (src/http/answer-outcome.ts); absent on every other line.
    incomplete: ending?.incomplete,
    closed_by: ending?.closedBy,
  }
}

/**
 * A W3C Trace Context `traceparent` (version-traceid-parentid-flags, lower-case hex): version `ff` is invalid, a later
 * version may add fields after a `-`, version `00` none.
 */
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(?:$|-)/

/**
 * The trace id of the request's `traceparent`, the one the service's spans and logs carry (the gateway passes the
 * field on as sent and makes no spans of its own): so its line is found from a trace too. The client's word, as the
 * service takes it; only a well-formed one (hex alone: nothing that could break a line), and none when the field is
 * repeated, which the specification has a receiver discard.
 */
function traceIdOf(traceparent: string | string[] | undefined): string | undefined {
  if (typeof traceparent !== 'string') return undefined
  const match = TRACEPARENT.exec(traceparent)
  if (match === null || (traceparent.startsWith('00') && traceparent.length !== 55)) return undefined
  return match[1]
}

/** A target's path without its query or fragment. */
function loggedPath(url: string): string {
  const { path } = splitTarget(url)
  const fragment = path.indexOf('#')
  return fragment < 0 ? path : path.slice(0, fragment)
}

/**
 * The line of a request refused as it arrived (src/http/answer-outcome.ts): a head the parser could not read has no
 * method or path (its bytes may hold a credential), and a target no route would take (CONNECT's `host:port`) loses
 * any userinfo before `@`. Built apart from `requestLine` so that no other request pays for either.
 */
export function arrivalLine(refusal: ArrivalRefusal, context: RequestContext): object {
  const { id, request, status, elapsedMs, ending } = refusal
  if (request === undefined) return { ...requestLine(id, '', '', status, elapsedMs, context, ending), method: undefined, path: undefined }
  const url = request.url ?? ''
  return requestLine(id, request.method ?? '', url.startsWith('/') ? url : url.slice(url.lastIndexOf('@') + 1), status, elapsedMs, context, ending, request.headers.traceparent)
}

/**
 * A realm's login under way is named in its paths (`/login-actions/ID`, `/protocol/openid-connect/auth/ID`,
 * `/device/ID`) by the very value its short-lived cookies hold (oidc-provider's interaction id, which its resume
 * step takes as proof that the browser is the one that logged in), so the line names the step, not the login.
 */
const LOGIN_UNDER_WAY = /(\/realms\/[^/]+\/(?:login-actions|protocol\/openid-connect\/auth|device)\/)(?!device(?:\/|$))[^/]+/

function withoutLoginUnderWay(path: string): string {
  return path.includes('/realms/') ? path.replace(LOGIN_UNDER_WAY, '$1{id}') : path
}
