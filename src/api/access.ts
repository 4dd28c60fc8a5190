import type { FastifyRequest } from 'fastify'
import type { App } from '../app.ts'
import { NotAuthenticated, PermissionDenied } from '../errors.ts'
import { assertScopeAllows, challengesFor } from '../gateway/policy.ts'
import { publicPathMatcher } from '../gateway/routes.ts'
import { splitTarget } from '../gateway/path-safety.ts'
import type { Principal } from '../auth/principal.ts'

/**
 * Who may call a gateway API route; declared on the route itself (`config: { access }`).
 * `public`: open while listed in `gateway.public_paths`; `open`: always (the JWKS services verify with).
 */
export type Access = 'open' | 'public' | 'user' | 'superuser'

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access
  }
}

/**
 * The gateway API's authorization step, run before every handler. A `public` route is open only while its
 * path is also in `gateway.public_paths`, so configuration can close a public route but never open a private one.
 * On open routes a credential that fails is ignored (a stale cookie must not block the login page).
 */
export function apiAccessCheck(app: App) {
  const isConfiguredPublic = publicPathMatcher(app.config.gateway.public_paths)
  return async function checkAccess(request: FastifyRequest): Promise<void> {
    const access: Access = request.routeOptions.config.access ?? 'user'
    request.gatehouse.service = 'gateway'
    const open = access === 'open' || (access === 'public' && isConfiguredPublic(splitTarget(request.url).path))
    let principal: Principal | undefined
    try {
      principal = await app.auth.authenticate(request, app.config.gateway.accepts)
    } catch (error) {
      if (!open) throw error
    }
    if (principal) {
      assertScopeAllows(principal, request.method)
      request.gatehouse.principal = principal
    }
    if (open) return
    if (!principal) throw new NotAuthenticated(undefined, challengesFor(app.config.gateway.accepts))
    if (access === 'superuser' && !principal.user.isSuperuser) throw new PermissionDenied()
  }
}

/** The authenticated principal of a non-public route (the access check guarantees there is one). */
export function principalOf(request: FastifyRequest): Principal {
  const principal = request.gatehouse.principal
  if (!principal) throw new NotAuthenticated()
  return principal
}
