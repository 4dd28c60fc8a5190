import proxyAddr from '@fastify/proxy-addr'
import { randomUUID } from 'node:crypto'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { App } from '../app.ts'
import { newRequestContext, type RequestContext } from '../context.ts'
import { writeError } from '../errors.ts'
import type { LeanProxyOptions } from '../gateway/lean-proxy.ts'
import { hostProblem } from '../http/host-header.ts'
import { assertSafePath } from '../http/request-target.ts'
import { requestLine } from '../logging/request-line.ts'
import { KEYCLOAK_ROUTES } from './provider.ts'
import { serveProvider } from './routes.ts'

/**
 * The realms' token endpoints without Fastify: the grants are the provider's busiest requests, and Fastify's routing,
 * content-type parsing and hooks cost each of them a share that shows next to the grant itself. A `POST` to
 * `/realms/<realm>/protocol/openid-connect/token` is taken off Node's HTTP server before Fastify routes it
 * (src/listener/node-server.ts offers every request, as to the proxy's lean path), and served by the same steps as
 * on Fastify's route (routes.ts `serveProvider`), after the same checks as the server's hooks (Host, request
 * target), with the same log line and metrics. Anything else, a query string or percent escapes included, a
 * request failing a check, and a realm that does not exist, is left to Fastify, which answers it as always.
 */
const TOKEN_PATH = new RegExp(`^/realms/([A-Za-z0-9._-]+)${KEYCLOAK_ROUTES.token}$`)

export type TokenLaneOptions = Pick<LeanProxyOptions, 'log' | 'requestLog' | 'closing'>

/** Takes a request (true) or leaves it to Fastify (false); undefined when no realm is configured. */
export function tokenLane(app: App, options: TokenLaneOptions): ((raw: IncomingMessage, response: ServerResponse) => boolean) | undefined {
  if (!app.oidc.configured) return undefined
  const trust = app.config.server.trusted_proxies.length ? app.trustsProxy : undefined
  return (raw, response) => {
    if (raw.method !== 'POST') return false
    const realmName = TOKEN_PATH.exec(raw.url!)?.[1]
    const realm = realmName === undefined ? undefined : app.oidc.get(realmName)
    if (!realm) return false
    const request = new TokenRequest(raw, trust)
    if (hostProblem(request) || !safePath(raw.url!)) return false
    if (options.closing()) response.setHeader('connection', 'close')
    request.gatehouse.place = app.places.realm(realm.name)
    response.on('finish', () => done(app, options, request, response))
    const log = { error: (fields: object, message: string) => options.log.error({ reqId: request.id, ...fields }, message) }
    serveProvider(app, realm, KEYCLOAK_ROUTES.token, '', {
      raw,
      response,
      ip: request.ip,
      log,
      refuse: (status, description, error, close) => {
        if (close) response.setHeader('connection', 'close')
        writeKeycloakError(response, status, description, error)
      },
      handOver: () => {},
    }).catch((error: unknown) => {
      if (response.headersSent) response.destroy()
      else writeError(request, response, error, log)
    })
    return true
  }
}

function safePath(path: string): boolean {
  try {
    assertSafePath(path)
    return true
  } catch {
    return false
  }
}

/** Keycloak's error shape, with the headers Fastify's route sends it with (routes.ts `keycloakError`). */
function writeKeycloakError(response: ServerResponse, status: number, description: string, error?: string): void {
  const body = JSON.stringify(error ? { error, error_description: description } : { error: description })
  response.statusCode = status
  response.setHeader('cache-control', 'no-store')
  response.setHeader('pragma', 'no-cache')
  response.setHeader('content-type', 'application/json; charset=utf-8')
  response.setHeader('content-length', Buffer.byteLength(body))
  response.end(body)
}

/** What the server's response hook does for every request: the metrics, and the request's one log line. */
function done(app: App, options: TokenLaneOptions, request: TokenRequest, response: ServerResponse): void {
  const answered = { statusCode: response.statusCode, elapsedTime: performance.now() - request.startedAt }
  app.metrics.requestDone(request, answered)
  options.requestLog?.info(requestLine(request.id, request.method, request.url, answered.statusCode, answered.elapsedTime, request.gatehouse), 'request')
}

/** A token request as the checks, the error writer and the log read it; `ip` and `host` as Fastify reads them. */
class TokenRequest {
  readonly raw: IncomingMessage
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly gatehouse: RequestContext = newRequestContext()
  readonly startedAt = performance.now()
  readonly #trust: ((address: string) => boolean) | undefined
  #id: string | undefined

  constructor(raw: IncomingMessage, trust: ((address: string) => boolean) | undefined) {
    this.raw = raw
    this.method = raw.method!
    this.url = raw.url!
    this.headers = raw.headers
    this.#trust = trust
  }

  get id(): string {
    return (this.#id ??= randomUUID())
  }

  get ip(): string {
    if (!this.#trust || !this.headers['x-forwarded-for']) return this.raw.socket.remoteAddress ?? ''
    return proxyAddr.all(this.raw, this.#trust).at(-1) ?? ''
  }

  /** X-Forwarded-Host's last value from a trusted proxy, else Host. */
  get host(): string {
    const forwarded = this.headers['x-forwarded-host'] as string | undefined
    if (!forwarded || !this.#trust?.(this.raw.socket.remoteAddress ?? '')) return this.headers.host ?? ''
    return forwarded.slice(forwarded.lastIndexOf(',') + 1).trim()
  }
}
