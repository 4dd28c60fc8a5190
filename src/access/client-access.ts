import type { Config } from '../config/schema.ts'
import type { User } from '../store/users.ts'
import type { AccessModel } from './model.ts'
import { type AccessDecision, ServiceRules } from './rules.ts'

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
    const decision = signIn(clientRules, clientId, user, model, address)
    return decision.allowed ? undefined : clientRules.explain(decision)
  }
}

/**
 * Keycloak's `resource_access` of a user's access token: for each client of the realm with `roles`, the roles whose
 * rules allow the user (in the order the configuration names them), judged as a sign-in to that client is; clients
 * whose roles the user holds none of are left out, as Keycloak leaves them out.
 */
export type ClientRolesOf = (realm: string, user: User, address: string | undefined) => Record<string, { roles: string[] }>

export function compileClientRoles(config: Config, model: AccessModel): ClientRolesOf {
  const byRealm = new Map(config.realms.map((realm) => [realm.name, realm.clients.filter((client) => client.roles).map((client) => ({
    clientId: client.client_id,
    roles: Object.entries(client.roles!).map(([role, rules]) => ({ role, rules: new ServiceRules(`${realm.name}/${client.client_id}`, rules, 'client') })),
  }))]))
  return (realm, user, address) => {
    const held: Record<string, { roles: string[] }> = {}
    for (const { clientId, roles } of byRealm.get(realm) ?? []) {
      const allowed = roles.filter(({ rules }) => signIn(rules, clientId, user, model, address).allowed).map(({ role }) => role)
      if (allowed.length) held[clientId] = { roles: allowed }
    }
    return held
  }
}

/** A sign-in is no request to a path: rules naming methods or paths see a POST to the client's own name, by `oidc`. */
function signIn(rules: ServiceRules, clientId: string, user: User, model: AccessModel, address: string | undefined): AccessDecision {
  return rules.decide({ principal: { user, userId: user.id, method: 'oidc' }, access: model.of(user), method: 'POST', path: `/${clientId}`, address })
}
