import type { Config } from '../config/schema.ts'
import type { User } from '../store/users.ts'
import type { AccessModel } from './model.ts'
import { ServiceRules } from './rules.ts'

/**
 * Whether a user may sign in to a realm client: its `access` rules (docs/access.md), compiled once at start and
 * judged by the same engine as a service's, and for an OAuth2 application whether an external account may have its
 * tokens. Answers the refusal's explanation, or undefined when the user may sign in (always, for a configured
 * client without rules).
 */
export type ClientAccessCheck = (realm: string, clientId: string, user: User, address: string) => string | undefined

/**
 * `externalUsersGetApplicationTokens`: the setting `allow_external_users_to_create_oauth2_tokens`, read at each
 * sign-in. The platform refuses an external account every OAuth2 token while it is off, an application's as well as
 * a personal one; a client of the configuration is the realm's own, to which directory and single sign-on accounts
 * sign in as in Keycloak.
 */
export function compileClientAccess(config: Config, model: AccessModel, externalUsersGetApplicationTokens: () => boolean): ClientAccessCheck {
  const rules = new Map(config.realms.flatMap((realm) => realm.clients.filter((client) => client.access).map((client) => {
    const name = `${realm.name}/${client.client_id}`
    return [name, new ServiceRules(name, client.access!, 'client')] as const
  })))
  const configured = new Set(config.realms.flatMap((realm) => realm.clients.map((client) => `${realm.name}/${client.client_id}`)))
  return (realm, clientId, user, address) => {
    // A client the configuration does not name is an OAuth2 application (src/oidc/applications.ts).
    if (user.external && !configured.has(`${realm}/${clientId}`) && !externalUsersGetApplicationTokens()) {
      return 'OAuth2 applications issue no tokens to external users (LDAP, single sign-on) while allow_external_users_to_create_oauth2_tokens is off.'
    }
    const clientRules = rules.get(`${realm}/${clientId}`)
    if (!clientRules) return undefined
    // A sign-in is no request to a path: rules naming methods or paths see a POST to the client's own name.
    const decision = clientRules.decide({ principal: { user, userId: user.id, method: 'oidc' }, access: model.of(user), method: 'POST', path: `/${clientId}`, address })
    return decision.allowed ? undefined : clientRules.explain(decision)
  }
}
