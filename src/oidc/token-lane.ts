import type { IncomingMessage, ServerResponse } from 'node:http'
import type { App } from '../app.ts'
import { recordedError, writeError } from '../errors.ts'
import type { LeanProxyOptions } from '../gateway/lean-proxy.ts'
import { LaneRequest, logAnswered, passesRequestChecks } from '../http/lane-request.ts'
import { KEYCLOAK_ROUTES } from './provider-paths.ts'
import { serveProvider, writeKeycloakError } from './routes.ts'

/**
 * The realms' token endpoints without Fastify: the grants are the provider's busiest requests, and Fastify's routing,
 * content-type parsing and hooks cost each of them a share that shows next to the grant itself. A `POST` to
 * `/realms/<realm>/protocol/openid-connect/token` is taken off Node's HTTP server before Fastify routes it
 * (src/listener/node-server.ts offers every request, as to the proxy's lean path), and served by the same steps as
 * on Fastify's route (routes.ts `serveProvider`), after the same checks as the server's hooks (Host, request
 * target), with the same log line and metrics. Anything else, a query string or percent escapes included, a body
 * that is no form, a request failing a check, and a realm that does not exist, is left to Fastify, which answers it
 * as always.
 */
const TOKEN_PATH = new RegExp(`^/realms/([A-Za-z0-9._-]+)${KEYCLOAK_ROUTES.token}$`)
/**
 * The body clients send a grant in. Any other (or none) is left to Fastify, whose parsing of the field answers one that
 * is no media type at all with 415, as on every other realm endpoint (docs/oidc.md); a grant never comes in one.
 */
const FORM_CONTENT_TYPE = /^\s*application\/x-www-form-urlencoded\s*(?:;|$)/i

export type TokenLaneOptions = Pick<LeanProxyOptions, 'log' | 'requestLog' | 'closesConnection' | 'parseCookie'>

/** Takes a request (true) or leaves it to Fastify (false); undefined when no realm is configured. */
export function tokenLane(app: App, options: TokenLaneOptions): ((raw: IncomingMessage, response: ServerResponse) => boolean) | undefined {
  if (!app.oidc.configured) return undefined
  const trust = app.config.server.trusted_proxies.length ? app.trustsProxy : undefined
  return (raw, response) => {
    if (raw.method !== 'POST' || !FORM_CONTENT_TYPE.test(raw.headers['content-type'] ?? '')) return false
    const realmName = TOKEN_PATH.exec(raw.url!)?.[1]
    const realm = realmName === undefined ? undefined : app.oidc.get(realmName)
    if (!realm) return false
    const request = new LaneRequest(raw, trust, options.parseCookie)
    if (!passesRequestChecks(request)) return false
    response.setHeader('x-request-id', request.id)
    // As every other answer of the realms (routes.ts).
    response.setHeader('x-content-type-options', 'nosniff')
    if (options.closesConnection(raw)) response.setHeader('connection', 'close')
    request.gatehouse.place = app.places.realm(realm.name)
    response.on('close', () => logAnswered(app, options, request, response))
    const log = { error: (fields: object, message: string) => options.log.error({ reqId: request.id, ...fields }, message) }
    serveProvider(app, realm, KEYCLOAK_ROUTES.token, '', {
      raw,
      response,
      ip: request.ip,
      log,
      refuse: (status, description, error, headers = {}) => {
        for (const [name, value] of Object.entries(headers)) response.setHeader(name, value)
        writeKeycloakError(response, status, description, error)
      },
      recordFailure: (error) => recordedError(request, error, log),
      handOver: () => {},
    }).catch((error: unknown) => {
      if (response.headersSent) response.destroy()
      else writeError(request, response, error, log)
    })
    return true
  }
}
