import type { PendingOverride } from './access/method-override.ts'
import type { BearerValue } from './auth/bearer.ts'
import type { Principal } from './auth/principal.ts'
import type { AuthMethod } from './config/schema.ts'
import type { ErrorCode } from './errors.ts'
import type { Place } from './gateway/places.ts'

/** Everything Gatehouse knows about one request, in one typed place (`request.gatehouse`). */
export interface RequestContext {
  /** Where the request landed (src/gateway/places.ts); none for health probes, a realm's own endpoints, unknown paths. */
  place: Place | undefined
  principal: Principal | undefined
  /** The access rule that decided (src/access/rules.ts), for the request's log line. */
  accessRule?: string | undefined
  /** The authenticator that claimed the request's credential, whether the credential checked out or not. */
  authenticator: AuthMethod | undefined
  /**
   * A POST to a service whose rules name methods, with a body that may be a form naming another method: judged once
   * the body is read (src/access/method-override.ts).
   */
  methodOverride?: PendingOverride | undefined
  /**
   * A forward-authentication question (src/gateway/forward-auth.ts): the method of the original request it describes,
   * which the metrics class it by; Traefik and Caddy ask with GET whatever the client's method was.
   */
  describedMethod?: string | undefined
  /** What `authorize` decided; none where no place decides. */
  decision: 'granted' | 'refused' | undefined
  /** The stable code of the error the request was answered with, if any. */
  code: ErrorCode | undefined
  /** Proxied requests: the time (ms since the request arrived) it was forwarded, and how long the upstream took to answer with headers. */
  forwardedAtMs: number | undefined
  upstreamMs: number | undefined
  /**
   * The Authorization header's bearer value, read once for both bearer authenticators (src/auth/bearer.ts): null
   * when there is none, undefined until read. A credential: never logged.
   */
  bearer: BearerValue | null | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    gatehouse: RequestContext
  }
}

export function newRequestContext(): RequestContext {
  return { place: undefined, principal: undefined, authenticator: undefined, methodOverride: undefined, decision: undefined, code: undefined, forwardedAtMs: undefined, upstreamMs: undefined, bearer: undefined }
}
