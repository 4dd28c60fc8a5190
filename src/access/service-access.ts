import type { FastifyRequest } from 'fastify'
import type { Principal } from '../auth/principal.ts'
import { AccessDenied } from '../errors.ts'
import type { AccessModel, UserAccess } from './model.ts'
import type { ServiceRules } from './rules.ts'

/**
 * The access step of a service's route: for a signed-in caller, the service's rules decide (a service without
 * rules lets every signed-in caller through). The deciding rule goes into the request's log line, and a refusal's
 * detail names it. Returns the caller's memberships, which the identity token carries.
 */
export function authorizeServiceRequest(rules: ServiceRules | undefined, model: AccessModel, request: FastifyRequest, principal: Principal, path: string): UserAccess {
  const access = model.of(principal.user)
  if (!rules) return access
  const decision = rules.decide({ principal, access, method: request.method, path, address: request.ip })
  request.gatehouse.accessRule = decision.rule === undefined ? 'none' : `${decision.rule}: ${decision.description}`
  if (!decision.allowed) throw new AccessDenied(rules.explain(decision))
  return access
}
