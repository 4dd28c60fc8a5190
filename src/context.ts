import type { FastifyRequest } from 'fastify'
import type { Principal } from './auth/principal.ts'

/** Everything Gatehouse knows about one request, in one typed place (`request.gatehouse`). */
export interface RequestContext {
  /** The service whose route matched: a configured service's name, or `gateway` for the gateway's own API and pages. */
  service: string | undefined
  principal: Principal | undefined
  /** Proxied requests: the time (ms since the request arrived) it was forwarded, and how long the upstream took to answer with headers. */
  forwardedAtMs: number | undefined
  upstreamMs: number | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    gatehouse: RequestContext
  }
}

export function contextOf(request: FastifyRequest): RequestContext {
  return request.gatehouse
}
