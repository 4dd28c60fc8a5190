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
  /** The service's response without CORS headers of its own: the gateway's policy is the one browsers see. */
  withoutUpstreamHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders
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

  function addOriginHeaders(reply: FastifyReply, origin: string): void {
    // A wildcard without credentials is the same answer for every origin, so it needs no Vary.
    if (anyOrigin && !config!.allow_credentials) {
      reply.header('access-control-allow-origin', '*')
    } else {
      reply.header('access-control-allow-origin', origin)
      reply.header('vary', 'Origin')
    }
    if (config!.allow_credentials) reply.header('access-control-allow-credentials', 'true')
  }

  function preflight(request: FastifyRequest, reply: FastifyReply, origin: string, method: string): void {
    if (!allowed(origin)) throw new CorsRefused(`Pages from ${origin.slice(0, 200)} may not call this service.`)
    if (!methods.has(method)) throw new CorsRefused(`Method ${method.slice(0, 20)} is not allowed from other origins; allowed: ${allowMethods}.`)
    const asked = request.headers['access-control-request-headers']
    const refused = typeof asked === 'string' ? asked.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name && !headers.has(name)) : []
    if (refused.length) throw new CorsRefused(`Request headers ${refused.join(', ').slice(0, 200)} are not allowed from other origins.`)
    addOriginHeaders(reply, origin)
    reply.header('access-control-allow-methods', allowMethods)
    if (allowHeaders) reply.header('access-control-allow-headers', allowHeaders)
    reply.header('access-control-max-age', maxAge)
    reply.code(204).send()
  }

  return {
    handle(request, reply) {
      const origin = request.headers.origin
      if (typeof origin !== 'string') return false
      const method = request.headers['access-control-request-method']
      if (request.method === 'OPTIONS' && typeof method === 'string') {
        preflight(request, reply, origin, method)
        return true
      }
      if (allowed(origin)) {
        addOriginHeaders(reply, origin)
        if (exposeHeaders) reply.header('access-control-expose-headers', exposeHeaders)
      }
      return false
    },
    withoutUpstreamHeaders(upstream) {
      for (const name of Object.keys(upstream)) if (name.startsWith('access-control-')) delete upstream[name]
      return upstream
    },
  }
}
