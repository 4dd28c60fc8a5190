import type { FastifyInstance, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { NotFound } from '../errors.ts'
import type { Organization, Team } from '../store/access.ts'
import { principalOf } from './access.ts'
import { ID_PATTERN, idParam } from './ids.ts'
import { paged, readPage } from './pagination.ts'
import { parseInput } from './validation.ts'

const base = '/api/gateway/v1'
const name = z.string().trim().min(1, 'This field may not be blank.').max(512)
const description = z.string().max(10_000)
const createOrganization = z.object({ name, description }).partial({ description: true }).strict()
const updateOrganization = z.object({ name, description }).partial().strict()
const organizationId = z.union([z.number().int().positive(), z.string().regex(ID_PATTERN).transform(Number)], { error: 'Expected an organization id.' })
const createTeam = z.object({ name, description, organization: organizationId }).partial({ description: true }).strict()
const updateTeam = z.object({ name, description, organization: organizationId }).partial().strict()
const nameQuery = z.object({ name: z.string().optional() })
const teamQuery = z.object({ name: z.string().optional(), organization: z.string().regex(ID_PATTERN, 'Expected an organization id.').transform(Number).optional() })

export function serializeOrganization(organization: Organization) {
  return {
    id: organization.id,
    url: `${base}/organizations/${organization.id}/`,
    related: { teams: `${base}/organizations/${organization.id}/teams/` },
    summary_fields: {},
    created: new Date(organization.created).toISOString(),
    modified: new Date(organization.modified).toISOString(),
    name: organization.name,
    description: organization.description,
    managed: false,
  }
}

export function serializeTeam(app: App, team: Team) {
  const organization = app.access.organization(team.organizationId)
  return {
    id: team.id,
    url: `${base}/teams/${team.id}/`,
    related: { organization: `${base}/organizations/${team.organizationId}/` },
    summary_fields: { organization: organization ? { id: organization.id, name: organization.name, description: organization.description } : null },
    created: new Date(team.created).toISOString(),
    modified: new Date(team.modified).toISOString(),
    name: team.name,
    description: team.description,
    organization: team.organizationId,
  }
}

/**
 * organizations/ and teams/ in the platform's shapes. Every signed-in
 * user may read them; who may change what is decided in src/access/admin.ts.
 */
export function organizationRoutes(api: FastifyInstance, app: App): void {
  const filters = (request: FastifyRequest) => request.query as Record<string, unknown>

  api.get(`${base}/organizations/`, async (request) => {
    const page = readPage(request)
    const { name: nameFilter } = parseInput(nameQuery, { name: filters(request).name })
    const { count, results } = await app.store.access.listOrganizations({ offset: page.offset, limit: page.pageSize, name: nameFilter })
    return paged(request, page, count, results.map(serializeOrganization))
  })
  api.post(`${base}/organizations/`, async (request, reply) => {
    const input = parseInput(createOrganization, request.body)
    reply.code(201)
    return serializeOrganization(await app.accessAdmin.createOrganization(principalOf(request).user, input))
  })
  api.get(`${base}/organizations/:id/`, async (request) => {
    const organization = await app.store.access.findOrganization(idParam(request, 'organization'))
    if (!organization) throw new NotFound('No such organization.')
    return serializeOrganization(organization)
  })
  const update = async (request: FastifyRequest) => {
    const input = parseInput(updateOrganization, request.body)
    return serializeOrganization(await app.accessAdmin.updateOrganization(principalOf(request).user, idParam(request, 'organization'), input))
  }
  api.patch(`${base}/organizations/:id/`, update)
  api.put(`${base}/organizations/:id/`, update)
  api.delete(`${base}/organizations/:id/`, async (request, reply) => {
    await app.accessAdmin.deleteOrganization(principalOf(request).user, idParam(request, 'organization'))
    return reply.code(204).send()
  })

  const listTeams = async (request: FastifyRequest, organization: number | undefined) => {
    const page = readPage(request)
    const query = parseInput(teamQuery, { name: filters(request).name, organization: filters(request).organization })
    const { count, results } = await app.store.access.listTeams({ offset: page.offset, limit: page.pageSize, name: query.name, organizationId: organization ?? query.organization })
    return paged(request, page, count, results.map((team) => serializeTeam(app, team)))
  }
  api.get(`${base}/teams/`, (request) => listTeams(request, undefined))
  api.get(`${base}/organizations/:id/teams/`, async (request) => {
    const id = idParam(request, 'organization')
    if (!(await app.store.access.findOrganization(id))) throw new NotFound('No such organization.')
    return listTeams(request, id)
  })
  api.post(`${base}/teams/`, async (request, reply) => {
    const input = parseInput(createTeam, request.body)
    reply.code(201)
    return serializeTeam(app, await app.accessAdmin.createTeam(principalOf(request).user, { name: input.name, description: input.description, organizationId: input.organization }))
  })
  api.get(`${base}/teams/:id/`, async (request) => {
    const team = await app.store.access.findTeam(idParam(request, 'team'))
    if (!team) throw new NotFound('No such team.')
    return serializeTeam(app, team)
  })
  const updateOne = async (request: FastifyRequest) => {
    const input = parseInput(updateTeam, request.body)
    const team = await app.accessAdmin.updateTeam(principalOf(request).user, idParam(request, 'team'), { name: input.name, description: input.description, organizationId: input.organization })
    return serializeTeam(app, team)
  }
  api.patch(`${base}/teams/:id/`, updateOne)
  api.put(`${base}/teams/:id/`, updateOne)
  api.delete(`${base}/teams/:id/`, async (request, reply) => {
    await app.accessAdmin.deleteTeam(principalOf(request).user, idParam(request, 'team'))
    return reply.code(204).send()
  })
}
