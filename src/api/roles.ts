import type { FastifyInstance, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { NotFound } from '../errors.ts'
import type { Actor, RoleAssignment, RoleDefinition } from '../store/access.ts'
import { principalOf } from './access.ts'
import { ID_PATTERN, idParam } from './ids.ts'
import { paged, readPage } from './pagination.ts'
import { parseInput } from './validation.ts'

const base = '/api/gateway/v1'
const name = z.string().trim().min(1, 'This field may not be blank.').max(512)
const description = z.string().max(10_000)
const permissions = z.array(z.string()).max(100)
const createRole = z.object({ name, description, permissions, content_type: z.string().nullable() })
  .partial({ description: true }).strict()
const updateRole = z.object({ name, description, permissions }).partial().strict()
const id = (what: string) => z.union([z.number().int().positive(), z.string().regex(ID_PATTERN).transform(Number)], { error: `Expected a ${what} id.` })
const assignmentInput = (actor: Actor) => z.object({
  role_definition: id('role definition'),
  [actor]: id(actor),
  object_id: id('object').nullable().optional(),
}).strict()
const idQuery = z.string().regex(ID_PATTERN, 'Expected an id.').transform(Number).optional()
const assignmentQuery = (actor: Actor) => z.object({ [actor]: idQuery, role_definition: idQuery, object_id: idQuery, content_type: z.enum(['shared.organization', 'shared.team']).optional() })
const OBJECT_TYPES = { 'shared.organization': 'organization', 'shared.team': 'team' } as const

export function serializeRoleDefinition(role: RoleDefinition) {
  return {
    id: role.id,
    url: `${base}/role_definitions/${role.id}/`,
    related: { user_assignments: `${base}/role_definitions/${role.id}/user_assignments/`, team_assignments: `${base}/role_definitions/${role.id}/team_assignments/` },
    summary_fields: {},
    permissions: role.permissions,
    content_type: role.contentType,
    created: new Date(role.created).toISOString(),
    modified: new Date(role.modified).toISOString(),
    name: role.name,
    description: role.description,
    managed: role.managed,
  }
}

async function serializeAssignment(app: App, assignment: RoleAssignment) {
  const role = app.access.roleDefinition(assignment.roleDefinitionId)
  const object = assignment.objectType === 'team' ? app.access.team(assignment.objectId) : assignment.objectType === 'organization' ? app.access.organization(assignment.objectId) : undefined
  const objectPath = assignment.objectType === 'platform' ? undefined : `${base}/${assignment.objectType === 'team' ? 'teams' : 'organizations'}/${assignment.objectId}/`
  const actorPath = assignment.actor === 'user' ? 'users' : 'teams'
  const user = assignment.actor === 'user' ? await app.accounts.get(assignment.actorId) : undefined
  const team = assignment.actor === 'team' ? app.access.team(assignment.actorId) : undefined
  return {
    id: assignment.id,
    url: `${base}/role_${assignment.actor}_assignments/${assignment.id}/`,
    related: {
      role_definition: `${base}/role_definitions/${assignment.roleDefinitionId}/`,
      [assignment.actor]: `${base}/${actorPath}/${assignment.actorId}/`,
      ...(objectPath ? { content_object: objectPath } : {}),
    },
    summary_fields: {
      role_definition: role ? { id: role.id, name: role.name, description: role.description, managed: role.managed } : null,
      ...(object ? { content_object: { id: object.id, name: object.name } } : {}),
      ...(user ? { user: { id: user.id, username: user.username, first_name: user.firstName, last_name: user.lastName } } : {}),
      ...(team ? { team: { id: team.id, name: team.name, organization: team.organizationId } } : {}),
    },
    created: new Date(assignment.created).toISOString(),
    content_type: assignment.objectType === 'platform' ? null : `shared.${assignment.objectType}`,
    object_id: assignment.objectType === 'platform' ? null : String(assignment.objectId),
    role_definition: assignment.roleDefinitionId,
    [assignment.actor]: assignment.actorId,
  }
}

/**
 * role_definitions/, role_user_assignments/ and role_team_assignments/ in django-ansible-base's shapes.
 * Assignments are created and deleted, never changed (as there); who may grant what: src/access/admin.ts.
 */
export function roleRoutes(api: FastifyInstance, app: App): void {
  api.get(`${base}/role_definitions/`, async (request) => {
    const page = readPage(request)
    const query = parseInput(z.object({ name: z.string().optional() }), { name: (request.query as Record<string, unknown>).name })
    const { count, results } = await app.store.access.listRoleDefinitions({ offset: page.offset, limit: page.pageSize, name: query.name })
    return paged(request, page, count, results.map(serializeRoleDefinition))
  })
  api.post(`${base}/role_definitions/`, async (request, reply) => {
    const input = parseInput(createRole, request.body)
    const role = await app.accessAdmin.createRoleDefinition(principalOf(request).user, { name: input.name, description: input.description, contentType: input.content_type, permissions: input.permissions })
    reply.code(201)
    return serializeRoleDefinition(role)
  })
  api.get(`${base}/role_definitions/:id/`, async (request) => {
    const role = await app.store.access.findRoleDefinition(idParam(request, 'role definition'))
    if (!role) throw new NotFound('No such role definition.')
    return serializeRoleDefinition(role)
  })
  const update = async (request: FastifyRequest) => {
    const input = parseInput(updateRole, request.body)
    return serializeRoleDefinition(await app.accessAdmin.updateRoleDefinition(principalOf(request).user, idParam(request, 'role definition'), input))
  }
  api.patch(`${base}/role_definitions/:id/`, update)
  api.put(`${base}/role_definitions/:id/`, update)
  api.delete(`${base}/role_definitions/:id/`, async (request, reply) => {
    await app.accessAdmin.deleteRoleDefinition(principalOf(request).user, idParam(request, 'role definition'))
    return reply.code(204).send()
  })

  for (const actor of ['user', 'team'] as const) {
    const list = async (request: FastifyRequest, roleDefinitionId?: number) => {
      const page = readPage(request)
      const raw = request.query as Record<string, unknown>
      const query = parseInput(assignmentQuery(actor), { [actor]: raw[actor], role_definition: raw.role_definition, object_id: raw.object_id, content_type: raw.content_type }) as Record<string, unknown>
      const { count, results } = await app.store.access.listAssignments(actor, {
        offset: page.offset,
        limit: page.pageSize,
        actorId: query[actor] as number | undefined,
        roleDefinitionId: roleDefinitionId ?? query.role_definition as number | undefined,
        objectId: query.object_id as number | undefined,
        objectType: query.content_type ? OBJECT_TYPES[query.content_type as keyof typeof OBJECT_TYPES] : undefined,
      })
      return paged(request, page, count, await Promise.all(results.map((a) => serializeAssignment(app, a))))
    }
    api.get(`${base}/role_${actor}_assignments/`, (request) => list(request))
    api.get(`${base}/role_definitions/:id/${actor}_assignments/`, (request) => list(request, idParam(request, 'role definition')))
    api.post(`${base}/role_${actor}_assignments/`, async (request, reply) => {
      const input = parseInput(assignmentInput(actor), request.body) as Record<string, unknown>
      const assignment = await app.accessAdmin.assign(principalOf(request).user, actor, {
        roleDefinitionId: input.role_definition as number,
        actorId: input[actor] as number,
        objectId: input.object_id as number | null | undefined,
      })
      reply.code(201)
      return serializeAssignment(app, assignment)
    })
    api.get(`${base}/role_${actor}_assignments/:id/`, async (request) => {
      const assignment = await app.store.access.findAssignment(actor, idParam(request, 'role assignment'))
      if (!assignment) throw new NotFound('No such role assignment.')
      return serializeAssignment(app, assignment)
    })
    api.delete(`${base}/role_${actor}_assignments/:id/`, async (request, reply) => {
      await app.accessAdmin.unassign(principalOf(request).user, actor, idParam(request, 'role assignment'))
      return reply.code(204).send()
    })
  }
}
