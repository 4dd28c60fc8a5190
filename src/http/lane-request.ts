import proxyAddr from '@fastify/proxy-addr'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import type { App } from '../app.ts'
import { newRequestContext, type RequestContext } from '../context.ts'
import type { Original } from '../gateway/forward-auth.ts'
import { requestLine } from '../logging/request-line.ts'
import { outcomeOf } from './answer-outcome.ts'
import { hostProblem } from './host-header.ts'
import { requestIdOf } from './request-id.ts'
import { assertSafePath, assertWellFormedEscapes, splitTarget } from './request-target.ts'
import type { GatewayRequest } from './gateway-request.ts'

/**
 * What the lanes that take requests before Fastify (the proxy's, src/gateway/lean-proxy.ts; the realms' token
 * endpoints, src/oidc/token-lane.ts) share: the request as the checks, `authorize` and the log read it, and the
 * line and metrics each answered request leaves, as the general path's hooks leave them.
 */

/** Where each answered request's line goes; undefined when info lines are dropped anyway. */
export interface AnswerLog {
  readonly requestLog: Logger | undefined
}

/** The checks the general path's hooks make before anything else; a request failing one is left to them to answer. */
export function passesRequestChecks(request: LaneRequest): boolean {
  if (hostProblem(request)) return false
  try {
    assertSafePath(splitTarget(request.url).path)
    assertWellFormedEscapes(request.url)
  } catch {
    return false
  }
  return true
}

/**
 * What the general path does when a response closes: the metrics, and the request's one log line, for an answer sent
 * whole as for one the parser replaced, cut short, or never sent because the client left (src/http/answer-outcome.ts).
 */
export function logAnswered(app: App, options: AnswerLog, request: LaneRequest, response: ServerResponse): void {
  const outcome = outcomeOf(response)
  if (outcome.code) request.gatehouse.code = outcome.code
  const answered = { statusCode: outcome.status, elapsedTime: performance.now() - request.startedAt }
  app.metrics.requestDone(request, answered)
  options.requestLog?.info(requestLine(request.id, request.method, request.url, answered.statusCode, answered.elapsedTime, request.gatehouse, outcome.ending, request.headers.traceparent), 'request')
}

/**
 * A request as `authorize` and the header rules read it, made from Node's request alone. `ip`, `protocol` and
 * `host` are read as Fastify reads them (believing X-Forwarded-* only from a trusted proxy); the cookies are parsed
 * by the same parser, and only when asked for.
 */
export class LaneRequest implements GatewayRequest {
  readonly raw: IncomingMessage
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly gatehouse: RequestContext
  readonly startedAt = performance.now()
  readonly #trust: ((address: string) => boolean) | undefined
  readonly #parseCookie: (header: string) => Record<string, string>
  #cookies: Record<string, string> | undefined
  #ip: string | undefined

  /** `original`: the request a forward-auth question describes, judged with this one's headers and context. */
  constructor(raw: IncomingMessage, trust: ((address: string) => boolean) | undefined, parseCookie: (header: string) => Record<string, string>, original?: Original, context?: RequestContext) {
    this.raw = raw
    this.method = original?.method ?? raw.method!
    this.url = original?.url ?? raw.url!
    this.headers = raw.headers
    this.gatehouse = context ?? newRequestContext()
    this.#trust = trust
    this.#parseCookie = parseCookie
  }

  /** This request seen as the original one a forward-auth question describes. */
  viewAs(original: Original): LaneRequest {
    return new LaneRequest(this.raw, this.#trust, this.#parseCookie, original, this.gatehouse)
  }

  get id(): string {
    return requestIdOf(this.raw)
  }

  get cookies(): Record<string, string> {
    return (this.#cookies ??= this.headers.cookie ? this.#parseCookie(this.headers.cookie) : {})
  }

  get ip(): string {
    // Without X-Forwarded-For, Fastify's reading is the peer itself: the common case skips the parse.
    if (!this.#trust || !this.headers['x-forwarded-for']) return this.raw.socket.remoteAddress ?? ''
    // Fastify's own reading of X-Forwarded-For (its proxy-addr), so `ip` is the same on both paths.
    return (this.#ip ??= proxyAddr.all(this.raw, this.#trust).at(-1) ?? '')
  }

  get protocol(): 'http' | 'https' {
    const forwarded = this.#fromTrustedProxy('x-forwarded-proto')
    if (forwarded !== undefined) return forwarded as 'http' | 'https'
    return (this.raw.socket as TLSSocket).encrypted ? 'https' : 'http'
  }

  get host(): string {
    return this.#fromTrustedProxy('x-forwarded-host') ?? this.headers.host ?? ''
  }

  /** The last value of an X-Forwarded-* field, when the peer is a trusted proxy. */
  #fromTrustedProxy(name: 'x-forwarded-proto' | 'x-forwarded-host'): string | undefined {
    const value = this.headers[name] as string | undefined
    if (!value || !this.#trust?.(this.raw.socket.remoteAddress ?? '')) return undefined
    const last = value.lastIndexOf(',')
    return last === -1 ? value.trim() : value.slice(last + 1).trim()
  }
}
