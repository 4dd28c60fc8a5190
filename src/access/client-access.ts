import type { Config } from '../config/schema.ts'
import type { User } from '../store/users.ts'
import type { AccessModel } from './model.ts'
import { ServiceRules } from './rules.ts'

/**
 * Whether a user may sign in to a realm client: its `access` rules (docs/access.md), compiled once at start and
 * judged by the same engine as a service's. Answers the refusal's explanation, or undefined when the user may
 * sign in (always, for a client without rules).
 */
export type ClientAccessCheck = (realm: string, clientId: string, user: User, address: string) => string | undefined

export function compileClientAccess(config: Config, model: AccessModel): ClientAccessCheck {
  const rules = new Map(config.realms.flatMap((realm) => realm.clients.filter((client) => client.access).map((client) => {
    const name = `${realm.name}/${client.client_id}`
    return [name, new ServiceRules(name, client.access!, 'client')] as const
  })))
  return (realm, clientId, user, address) => {
    const clientRules = rules.get(`${realm}/${clientId}`)
    if (!clientRules) return undefined
    // A sign-in is no request to a path: rules naming methods or paths see a POST to the client's own name.
    const decision = clientRules.decide({ principal: { user, userId: user.id, method: 'oidc' }, access: model.of(user), method: 'POST', path: `/${clientId}`, address })
    return decision.allowed ? undefined : clientRules.explain(decision)
  }
}
