import type { TestGateway } from './gateway.ts'
import { adminAuth } from './gateway.ts'
import { call, createOrgAndTeam, roleId } from './access.ts'

/** What the tests read of a JSON schema in the gateway API's OpenAPI document. */
export interface JsonSchema {
  type?: string | string[]
  anyOf?: JsonSchema[]
  enum?: unknown[]
  maxLength?: number
  format?: string
  properties?: Record<string, JsonSchema>
}

/** The JSON types a schema takes (`integer` is a number too); undefined when it says nothing. */
export function typesOf(schema: JsonSchema): Set<string> | undefined {
  if (schema.anyOf) {
    const parts = schema.anyOf.map(typesOf)
    return parts.some((part) => part === undefined) ? undefined : new Set(parts.flatMap((part) => [...part!]))
  }
  if (schema.enum) return new Set(schema.enum.map((value) => (value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value)))
  if (schema.type === undefined) return undefined
  return new Set([schema.type].flat().map((type) => (type === 'integer' ? 'number' : type)))
}

/**
 * One object of each kind the gateway API has an id path for, made through the API as the admin and named after
 * `name`: their ids by the path segment before `{id}` (`users`, `role_user_assignments`, ...).
 */
export async function oneOfEach(gw: Pick<TestGateway, 'fetch'>, name: string): Promise<Record<string, number>> {
  const { organization, team } = await createOrgAndTeam(gw, name, `${name} team`)
  const lower = name.toLowerCase()
  const user = await call(gw, 'POST', 'users/', { username: lower, password: `${lower}-password-long` })
  const token = await call(gw, 'POST', 'tokens/', { description: lower })
  const application = await call(gw, 'POST', 'applications/', { name, client_type: 'confidential', authorization_grant_type: 'password', organization })
  const role = await call(gw, 'POST', 'role_definitions/', { name: `${name} viewer`, content_type: 'shared.team', permissions: ['shared.view_team'] })
  const userAssignment = await call(gw, 'POST', 'role_user_assignments/', { role_definition: role.body.id, user: user.body.id, object_id: team })
  const teamAssignment = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Team Member'), team, object_id: team })
  return {
    users: user.body.id, organizations: organization, teams: team!, tokens: token.body.id, applications: application.body.id,
    role_definitions: role.body.id, role_user_assignments: userAssignment.body.id, role_team_assignments: teamAssignment.body.id,
  }
}

/** Everything an administrator can list, as text: compared before and after bad input, it must not change. */
export async function adminListings(gw: Pick<TestGateway, 'fetch'>): Promise<string[]> {
  const lists = ['users/', 'organizations/', 'teams/', 'tokens/', 'applications/', 'role_definitions/', 'role_user_assignments/', 'role_team_assignments/', 'sessions/', 'settings/all/']
  const texts = await Promise.all(lists.map(async (list) => (await gw.fetch(`/api/gateway/v1/${list}?page_size=200`, { headers: adminAuth })).text()))
  // What signing in with basic credentials updates by itself.
  return texts.map((text) => text.replace(/"(last_login|last_used)":"[^"]*"/g, ''))
}
