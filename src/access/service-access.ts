import { AccessDenied } from '../errors.ts'
import { ALLOW, type EntryRule } from '../gateway/places.ts'
import { decodedPath, splitTarget } from '../http/request-target.ts'
import type { AccessModel } from './model.ts'
import type { ServiceRules } from './rules.ts'

/**
 * A service's access rules as one entry rule of its place: `authorize` (src/gateway/authorize.ts) runs it for a
 * signed-in caller on the service's private paths. The deciding rule goes into the request's log line, and a
 * refusal's detail names it, or says that none allowed; anonymous callers never get this far. Rules naming paths
 * judge the path decoded, as the service reads it: a rule denying `/svc/admin/*` also denies `/svc/%61dmin/x`.
 */
export function accessEntryRule(rules: ServiceRules, model: AccessModel): EntryRule {
  return {
    name: 'access',
    decide(principal, request) {
      const path = decodedPath(splitTarget(request.url).path)
      const decision = rules.decide({ principal, access: model.of(principal.user), method: request.method, path, address: request.ip })
      request.gatehouse.accessRule = decision.rule === undefined ? 'none' : `${decision.rule}: ${decision.description}`
      return decision.allowed ? ALLOW : new AccessDenied(rules.explain(decision))
    },
  }
}
