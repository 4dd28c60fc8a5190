import { AccessDenied } from '../errors.ts'
import { ALLOW, type EntryRule } from '../gateway/places.ts'
import { decodedPath, splitTarget } from '../http/request-target.ts'
import type { AccessModel } from './model.ts'
import { mayName, queryOverrideRefusal, unreadBodyMethods } from './method-override.ts'
import type { AccessDecision, ServiceRules } from './rules.ts'

/**
 * A service's access rules as one entry rule of its place: `authorize` (src/gateway/authorize.ts) runs it for a
 * signed-in caller on the service's private paths. The deciding rule goes into the request's log line, and a
 * refusal's detail names it, or says that none allowed; anonymous callers never get this far. Rules naming paths
 * judge the path decoded, as the service reads it: a rule denying `/svc/admin/*` also denies `/svc/%61dmin/x`. A
 * POST naming another method in the service's override parameter is judged as that method too: in the query here,
 * in a form body once it is read (`request.gatehouse.methodOverride`, src/access/method-override.ts).
 */
export function accessEntryRule(rules: ServiceRules, model: AccessModel): EntryRule {
  return {
    name: 'access',
    decide(principal, request) {
      const { path: rawPath, query } = splitTarget(request.url)
      const path = decodedPath(rawPath)
      const access = model.of(principal.user)
      const decision = rules.decide({ principal, access, method: request.method, path, address: request.ip })
      request.gatehouse.accessRule = ruleOf(decision)
      if (!decision.allowed) return new AccessDenied(rules.explain(decision))
      const parameter = rules.methodOverride
      if (parameter === undefined || request.method !== 'POST') return ALLOW
      const judge = (method: string) => {
        const overridden = rules.decide({ principal, access, method, path, address: request.ip })
        if (overridden.allowed) return undefined
        request.gatehouse.accessRule = ruleOf(overridden)
        return new AccessDenied(`${rules.explain(overridden)} The request names the method ${method.slice(0, 20)} in ${parameter}, which the service takes for its own.`)
      }
      const pending = { parameter, json: rules.methodOverrideJson, unreadMethods: unreadBodyMethods(rules.namedMethods), judge }
      const inQuery = queryOverrideRefusal(pending, query)
      if (inQuery) return inQuery
      if (mayName(request.headers['content-type'], rules.methodOverrideJson)) request.gatehouse.methodOverride = pending
      return ALLOW
    },
  }
}

function ruleOf(decision: AccessDecision): string {
  return decision.rule === undefined ? 'none' : `${decision.rule}: ${decision.description}`
}
