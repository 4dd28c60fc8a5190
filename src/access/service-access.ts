import { AccessDenied } from '../errors.ts'
import { ALLOW, type EntryRule } from '../gateway/places.ts'
import { decodedPath, splitTarget } from '../http/request-target.ts'
import type { AccessModel } from './model.ts'
import { mayName, queryOverrideRefusal, unreadBodyMethods, type PendingOverride } from './method-override.ts'
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
      if (request.method !== 'POST') return ALLOW
      const pending = pendingOverride(rules, (method) => rules.decide({ principal, access, method, path, address: request.ip }), (refused) => {
        request.gatehouse.accessRule = ruleOf(refused)
      })
      if (!pending) return ALLOW
      const inQuery = queryOverrideRefusal(pending, query)
      if (inQuery) return inQuery
      if (mayName(request.headers['content-type'], rules.methodOverrideJson)) request.gatehouse.methodOverride = pending
      return ALLOW
    },
  }
}

/**
 * How a POST's override parameter is judged for a service whose rules name methods (src/access/method-override.ts):
 * `decide` is the rules' decision for the request as another method, `refused` told of the one that refuses it.
 * Undefined for a service that takes no override parameter. `bin/gatehouse access check` judges a query by it too.
 */
export function pendingOverride(rules: ServiceRules, decide: (method: string) => AccessDecision, refused: (decision: AccessDecision) => void): PendingOverride | undefined {
  const parameter = rules.methodOverride
  if (parameter === undefined) return undefined
  const judge = (method: string) => {
    const overridden = decide(method)
    if (overridden.allowed) return undefined
    refused(overridden)
    return new AccessDenied(`${rules.explain(overridden)} The request names the method ${method.slice(0, 20)} in ${parameter}, which the service takes for its own.`)
  }
  return { parameter, json: rules.methodOverrideJson, unreadMethods: unreadBodyMethods(rules.namedMethods), judge }
}

function ruleOf(decision: AccessDecision): string {
  return decision.rule === undefined ? 'none' : `${decision.rule}: ${decision.description}`
}
