import type { FastifyRequest } from 'fastify'
import type { App } from '../app.ts'
import type { Visibility } from '../access/model.ts'
import type { ObjectType } from '../store/access.ts'
import { CSRF_FORM_FIELD } from '../auth/csrf.ts'
import { CsrfTokenMissing, NotAuthenticated } from '../errors.ts'
import { mediaType } from '../http/negotiation.ts'
import type { Access } from '../gateway/places.ts'
import type { Principal } from '../auth/principal.ts'
import { answerAccess } from './methods.ts'
import type { ChangeAllowance } from './change-allowance.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access
  }
}

/**
 * The gateway API's authorization step: the place its route's access selects from the route table
 * (src/gateway/places.ts), judged by the one `authorize`, before the body is read (`beforeBody`), so a caller who may
 * not use the route gets its refusal at once and makes the gateway read and parse nothing it sends. One request waits
 * for its body (`afterBody`): a session's form whose CSRF token is in the form itself (`csrfmiddlewaretoken`), as a
 * browser's form sends it; its session is valid, or it would have been refused already. The token is then taken out of
 * the form, as Django's CSRF middleware takes it before the view reads the form.
 */
export function apiAccessCheck(app: App) {
  const check = async (request: FastifyRequest) => app.authorize(request, app.places.gatewayApi[accessOf(request)])
  return {
    async beforeBody(request: FastifyRequest): Promise<void> {
      const decision = await check(request)
      if (decision.granted || (decision.refusal instanceof CsrfTokenMissing && mediaType(request) === 'application/x-www-form-urlencoded')) return
      throw decision.refusal
    },
    async afterBody(request: FastifyRequest): Promise<void> {
      const body = request.body
      const form = typeof body === 'object' && body !== null && mediaType(request) === 'application/x-www-form-urlencoded' ? body as Record<string, unknown> : undefined
      // Judged again with the form's token: a refused session's form, and one on a public route (the login form), which
      // went on as anonymous before its body came and whose session the login replaces (src/auth/session-start.ts).
      if (request.gatehouse.decision !== 'granted' || (form && CSRF_FORM_FIELD in form && !request.gatehouse.principal)) {
        request.gatehouse.code = undefined
        const decision = await check(request)
        if (!decision.granted) throw decision.refusal
      }
      // The form's CSRF token is the request's, not a field of the object it writes (Django's middleware takes it
      // before the view reads the form); the login form, which is public, reads it itself.
      if (accessOf(request) !== 'public' && form) delete form[CSRF_FORM_FIELD]
    },
  }
}

/** Methods that read; every other one may change something (and write an audit entry). */
const READS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Counts each change an account that is not a superuser asks for against its allowance, once its access is granted
 * and its input is valid, before anything is done.
 */
export function changeAllowanceCheck(allowance: ChangeAllowance) {
  return async (request: FastifyRequest): Promise<void> => {
    const user = request.gatehouse.principal?.user
    if (user && !user.isSuperuser && !READS.has(request.method)) allowance.admit(user.id)
  }
}

/** The access a request's route declares (`user` when it declares none), or the path's that answers its method for it. */
function accessOf(request: FastifyRequest): Access {
  return answerAccess(request) ?? request.routeOptions.config.access ?? 'user'
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
