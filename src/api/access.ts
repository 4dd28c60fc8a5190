import type { FastifyRequest } from 'fastify'
import type { App } from '../app.ts'
import type { Visibility } from '../access/model.ts'
import type { ObjectType } from '../store/access.ts'
import { NotAuthenticated } from '../errors.ts'
import type { Access } from '../gateway/places.ts'
import type { Principal } from '../auth/principal.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access
  }
}

/**
 * The gateway API's authorization step, run before every handler: the place its route's access selects from the
 * route table (src/gateway/places.ts), judged by the one `authorize`.
 */
export function apiAccessCheck(app: App) {
  return async function checkAccess(request: FastifyRequest): Promise<void> {
    const place = app.places.gatewayApi[request.routeOptions.config.access ?? 'user']
    const decision = await app.authorize(request, place)
    if (!decision.granted) throw decision.refusal
  }
}

/** The authenticated principal of a non-public route (the access check guarantees there is one). */
export function principalOf(request: FastifyRequest): Principal {
  const principal = request.gatehouse.principal
  if (!principal) throw new NotAuthenticated()
  return principal
}

/** What the caller may see of organizations, teams, users and assignments; undefined for everything (src/access/model.ts). */
export function visibilityOf(app: App, request: FastifyRequest): Visibility | undefined {
  return app.access.visibleTo(principalOf(request).user)
}

/**
 * Whether a role held on an object (an assignment, or a role a user holds) shows to a caller who sees `visible`
 * (undefined: everything), as the assignment lists show them.
 */
export function seesRoleOn(visible: Visibility | undefined, held: { objectType: ObjectType; objectId: number }): boolean {
  if (!visible) return true
  if (held.objectType === 'platform') return visible.assignments.platform
  return (held.objectType === 'team' ? visible.assignments.teams : visible.assignments.organizations).has(held.objectId)
}
