import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import type { TestGateway } from './gateway.ts'
import { adminAuth, json } from './gateway.ts'

/** Calls the gateway API as `headers` (the admin by default) and returns status, parsed body and the request's id (its log line's `reqId`). */
export async function call(gw: Pick<TestGateway, 'fetch'>, method: string, path: string, body?: unknown, headers: Record<string, string> = adminAuth): Promise<{ status: number; body: any; requestId: string | null }> {
  const response = await gw.fetch(`/api/gateway/v1/${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: response.status, body: response.status === 204 ? undefined : await json(response), requestId: response.headers.get('x-request-id') }
}

export async function roleId(gw: Pick<TestGateway, 'fetch'>, name: string): Promise<number> {
  const { body } = await call(gw, 'GET', `role_definitions/?name=${encodeURIComponent(name)}`)
  return body.results[0].id
}

export async function userId(gw: Pick<TestGateway, 'fetch'>, username: string): Promise<number> {
  const { body } = await call(gw, 'GET', `users/?username=${encodeURIComponent(username)}`)
  return body.results[0].id
}

/** Creates an organization (and a team in it when `team` is given) through the API; returns their ids. */
export async function createOrgAndTeam(gw: Pick<TestGateway, 'fetch'>, organization: string, team?: string): Promise<{ organization: number; team: number | undefined }> {
  const org = await call(gw, 'POST', 'organizations/', { name: organization })
  if (org.status !== 201) throw new Error(`organization not created: ${JSON.stringify(org.body)}`)
  if (!team) return { organization: org.body.id, team: undefined }
  const created = await call(gw, 'POST', 'teams/', { name: team, organization: org.body.id })
  if (created.status !== 201) throw new Error(`team not created: ${JSON.stringify(created.body)}`)
  return { organization: org.body.id, team: created.body.id }
}

/** Gives `username` the named role on an object (or platform-wide) through the API; returns the assignment. */
export async function grant(gw: Pick<TestGateway, 'fetch'>, username: string, role: string, objectId?: number, headers: Record<string, string> = adminAuth): Promise<{ status: number; body: any }> {
  return call(gw, 'POST', 'role_user_assignments/', { role_definition: await roleId(gw, role), user: await userId(gw, username), ...(objectId === undefined ? {} : { object_id: objectId }) }, headers)
}

/**
 * The demo configuration's services plus one `builtin:demo` service per entry, at `/api/{name}/`, taking basic
 * credentials and guarded by `access`: a configuration override for startGateway.
 */
export function demoWithRuledServices(services: Record<string, unknown[]>): { services: Record<string, unknown>[] } {
  const demo = loadConfigFile(demoConfigFile) as { services: Record<string, unknown>[] }
  const ruled = Object.entries(services).map(([name, access]) => ({ name, prefix: `/api/${name}/`, upstream: 'builtin:demo', accepts: ['basic'], access }))
  return { services: [...demo.services, ...ruled] }
}
