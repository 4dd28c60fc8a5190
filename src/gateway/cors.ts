import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { CorsConfig } from '../config/cors.ts'
import { CorsRefused } from '../errors.ts'

/**
 * A service's CORS policy (the Fetch standard, "CORS protocol"), compiled once. Preflights are answered here,
 * before authentication, since browsers send them without credentials; the headers of every other response to an
 * allowed origin are added here too, so a page can also read the gateway's own answers (401, 403, 502).
 */
export interface CorsPolicy {
  /** Answers a preflight (and returns true), or adds the response headers for an allowed origin. */
  handle(request: FastifyRequest, reply: FastifyReply): boolean
  /** Adds the response headers for an allowed origin to a refusal of the request, a preflight's too. */
  refusal(request: FastifyRequest, reply: FastifyReply): void
  /**
   * The service's response without CORS headers of its own (the gateway's policy is the one browsers see), and with
   * `Origin` in its `Vary`, which would otherwise replace the gateway's.
   */
  fromUpstream(headers: IncomingHttpHeaders): IncomingHttpHeaders
}

export function compileCors(config: CorsConfig | undefined): CorsPolicy | undefined {
  if (!config) return undefined
  const anyOrigin = config.allowed_origins.includes('*')
  const origins = new Set(config.allowed_origins)
  const methods = new Set<string>(config.allowed_methods)
  // As in access rules: a service answers HEAD with its GET handler, and browsers take HEAD as safelisted anyway.
  if (methods.has('GET')) methods.add('HEAD')
  const headers = new Set(config.allowed_headers)
  const allowMethods = config.allowed_methods.join(', ')
  const allowHeaders = config.allowed_headers.join(', ')
  const exposeHeaders = config.exposed_headers.join(', ')
  const maxAge = String(config.max_age_seconds)
  const allowed = (origin: string) => anyOrigin || origins.has(origin)
  // A wildcard without credentials is the same answer for every origin; any other policy answers each origin its own
  // way (its own Access-Control-Allow-Origin, or none), so every answer says it depends on Origin, those to requests
  // without one or from an origin not allowed too: a shared cache would otherwise hand one origin's answer to another
  // (the Fetch standard, "CORS protocol and HTTP caches").
  const variesByOrigin = !(anyOrigin && !config.allow_credentials)

  function addOriginHeaders(reply: FastifyReply, origin: string): void {
    reply.header('access-control-allow-origin', variesByOrigin ? origin : '*')
    if (config!.allow_credentials) reply.header('access-control-allow-credentials', 'true')
  }

  function preflight(request: FastifyRequest, reply: FastifyReply, origin: string, method: string): void {
    if (!allowed(origin)) throw new CorsRefused(`Pages from ${origin.slice(0, 200)} may not call this service.`)
    if (!methods.has(method)) throw new CorsRefused(`Method ${method.slice(0, 20)} is not allowed from other origins; allowed: ${allowMethods}.`)
    const asked = request.headers['access-control-request-headers']
    const refused = typeof asked === 'string' ? asked.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name && !headers.has(name)) : []
    if (refused.length) throw new CorsRefused(`Request headers ${refused.join(', ').slice(0, 200)} are not allowed from other origins.`)
    addOriginHeaders(reply, origin)
    // Private Network Access: a browser that asks refuses a public page's request to a gateway on a private network
    // unless the answer allows it. Not allowed, the preflight is answered as any other, as Kong's and Envoy's are,
    // rather than refused: a browser that only warns of it (Chrome for a time) then still sends the request.
    if (config!.allow_private_network && request.headers['access-control-request-private-network'] === 'true') reply.header('access-control-allow-private-network', 'true')
    reply.header('access-control-allow-methods', allowMethods)
    if (allowHeaders) reply.header('access-control-allow-headers', allowHeaders)
    reply.header('access-control-max-age', maxAge)
    reply.code(204).send()
  }

  function addResponseHeaders(reply: FastifyReply, origin: string): void {
    if (!allowed(origin)) return
    addOriginHeaders(reply, origin)
    if (exposeHeaders) reply.header('access-control-expose-headers', exposeHeaders)
  }

  return {
    handle(request, reply) {
      if (variesByOrigin) reply.header('vary', 'Origin')
      const origin = request.headers.origin
      if (typeof origin !== 'string') return false
      const method = request.headers['access-control-request-method']
      if (request.method === 'OPTIONS' && typeof method === 'string') {
        preflight(request, reply, origin, method)
        return true
      }
      addResponseHeaders(reply, origin)
      return false
    },
    refusal(request, reply) {
      if (variesByOrigin) reply.header('vary', 'Origin')
      const origin = request.headers.origin
      if (typeof origin === 'string') addResponseHeaders(reply, origin)
    },
    fromUpstream(upstream) {
      for (const name of Object.keys(upstream)) if (name.startsWith('access-control-')) delete upstream[name]
      // One field, or several (a list, RFC 9110 §5.3).
      const vary = [upstream.vary ?? []].flat().join(', ')
      if (variesByOrigin && vary && !/(?:^|,)\s*(?:origin|\*)\s*(?:,|$)/i.test(vary)) upstream.vary = `${vary}, Origin`
      return upstream
    },
  }
}

/**
 * The CORS headers of the service whose prefix the raw path starts with, for a refusal the gateway makes before the
 * service's own hook runs (a path it will not route: `unsafe_path`, `malformed_escape`), so a page of an allowed
 * origin can read that answer too. Only refusals look the service up; the prefixes are longest first.
 */
export function addRefusalCors(routes: readonly { readonly prefix: string; readonly cors: CorsPolicy | undefined }[], request: FastifyRequest, reply: FastifyReply): void {
  const url = request.url
  const route = routes.find((candidate) => url.startsWith(candidate.prefix))
  route?.cors?.refusal(request, reply)
}
