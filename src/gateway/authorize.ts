import type { FastifyReply } from 'fastify'
import type { GatewayRequest } from '../http/gateway-request.ts'
import type { AuthPipeline } from '../auth/pipeline.ts'
import type { Principal } from '../auth/principal.ts'
import { GatehouseError, NotAuthenticated, Unauthenticated } from '../errors.ts'
import { ALLOW, type Place } from './places.ts'
import { redirectsToLogin, scopeRefusal } from './policy.ts'
import { challengesFor } from '../http/challenges.ts'
import { splitTarget } from '../http/request-target.ts'
import { isSafeMethod } from '../http/negotiation.ts'
import type { CsrfPolicy } from '../auth/csrf.ts'

/** What `authorize` decided: let the request in (with its principal, or anonymous), or refuse it with a reason. */
export type Decision =
  | { readonly granted: true; readonly principal: Principal | undefined }
  /** `loginUrl`: a browser (or a place that always redirects) is sent to log in instead of being shown the refusal. */
  | { readonly granted: false; readonly refusal: GatehouseError; readonly loginUrl?: string }

/**
 * Where the client addressed the request, which a login sends the browser back to: by default the request's own
 * target under the path the gateway is published at (`published`, src/gateway/policy.ts); `target` when the client
 * addressed another (a forward-auth question is about the request the proxy in front received, as it received it).
 */
export interface ClientAddress {
  readonly published: string
  readonly target?: string | undefined
}

/**
 * The one step that decides, for every place a request can land (src/gateway/places.ts), whether it gets in:
 * authenticate with what the place accepts (a write with basic credentials only from a trusted origin); on a public
 * path a failing credential means anonymous; a token's scope must allow the method; elsewhere no usable credential
 * means a login redirect or 401, and the place's entry rules judge whoever signed in, the first refusal winning. The place, principal and decision go into the request
 * context, which the request log line reports (src/server.ts).
 */
export async function authorize(auth: AuthPipeline, csrf: Pick<CsrfPolicy, 'checkOrigin'>, request: GatewayRequest, place: Place, client: ClientAddress): Promise<Decision> {
  const context = request.gatehouse
  context.place = place
  const decision = await decide(auth, csrf, request, place, client)
  context.decision = decision.granted ? 'granted' : 'refused'
  if (!decision.granted) context.code = decision.refusal.code
  return decision
}

async function decide(auth: AuthPipeline, csrf: Pick<CsrfPolicy, 'checkOrigin'>, request: GatewayRequest, place: Place, client: ClientAddress): Promise<Decision> {
  const open = place.isPublic(splitTarget(request.url).path)
  let principal: Principal | undefined
  try {
    const authenticated = await auth.authenticate(request, place.accepts)
    // A browser that was once asked for basic credentials (the 401's WWW-Authenticate) sends them again on its own,
    // also with a form another site submits, to a service as to the gateway API; such a request names that site in
    // Origin. The session cookie's writes are checked by its authenticator, with the CSRF token besides.
    if (authenticated?.method === 'basic' && !isSafeMethod(request.method)) csrf.checkOrigin(request)
    principal = authenticated
  } catch (error) {
    if (!open) return refuse(request, place, client, error)
  }
  if (principal) {
    // Known from here on, refused or not: the log says who was refused.
    request.gatehouse.principal = principal
    const scopeProblem = scopeRefusal(principal, request.method)
    if (scopeProblem) return { granted: false, refusal: scopeProblem }
  } else if (!open) {
    return refuse(request, place, client, new NotAuthenticated(undefined, challengesFor(place.accepts)))
  }
  if (principal && !open) {
    for (const rule of place.entry) {
      const verdict = rule.decide(principal, request)
      if (verdict !== ALLOW) return { granted: false, refusal: verdict }
    }
  }
  return { granted: true, principal }
}

/**
 * A refusal that came of the request's body, read after `authorize` let it in (a form naming a method the service's
 * rules refuse, src/access/method-override.ts): the request log says it was refused after all.
 */
export function refusedAfterBody<E extends Error>(request: GatewayRequest, refusal: E): E {
  request.gatehouse.decision = 'refused'
  return refusal
}

/**
 * A request without a usable credential: a browser goes to log in (as the platform the first document describes
 * sends failed credentials too), an API client keeps the 401 that says what was wrong. Anything else that went
 * wrong while authenticating (a CSRF failure, a database outage) is the refusal itself.
 */
function refuse(request: GatewayRequest, place: Place, client: ClientAddress, error: unknown): Decision {
  if (!(error instanceof GatehouseError)) throw error
  if (error instanceof Unauthenticated && redirectsToLogin(request, place.unauthenticated)) {
    return { granted: false, refusal: error, loginUrl: place.loginUrl(client.target ?? client.published + request.url) }
  }
  return { granted: false, refusal: error }
}

/**
 * Carries out a refusal: the login redirect (deleting a refused session cookie on the way), or the error, thrown
 * for the one error responder.
 */
export function answerRefusal(reply: FastifyReply, decision: Extract<Decision, { granted: false }>): FastifyReply {
  if (!decision.loginUrl) throw decision.refusal
  const clear = decision.refusal.headers['set-cookie']
  if (clear) reply.header('set-cookie', clear)
  return reply.redirect(decision.loginUrl, 302)
}
