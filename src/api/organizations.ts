import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { DELETED_WITH_ORGANIZATION } from '../audit/trail.ts'
import { NotFound } from '../errors.ts'
import { type Organization, organizationFilterFields, type Team, teamFilterFields } from '../store/access.ts'
import { principalOf, visibilityOf } from './access.ts'
import { auditApplicationsGone } from './applications.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'
import { listQuery } from './list-query.ts'
import { describeList, SERVER_FIELDS } from './metadata.ts'
import { paged } from './pagination.ts'
import { activityStreamUrl } from './summaries.ts'
import { assertShownValues, bodyId, idParam, shownReadOnly } from './validation.ts'
import { CONTROLS_REFUSED, withoutControls } from '../directory/upstream-profile.ts'

const name = z.string().trim().min(1, 'This field may not be blank.').max(512).refine(withoutControls, CONTROLS_REFUSED)
/**
 * An organization's name may not end in `~`: realm tokens carry Keycloak group paths, which escape only the slash
 * (`~/`), so the team Ops of an organization `Target~` would have the path `/Target~/Ops` of an organization named
 * `Target/Ops` (src/access/model.ts). A team's name ends its path, and may.
 */
const organizationName = name.refine((text) => !text.endsWith('~'), 'An organization name may not end with "~".')
const description = z.string().trim().max(10_000)
const createOrganizationFields = z.object({ name: organizationName, description: description.optional() })
const createOrganization = createOrganizationFields.extend(shownReadOnly(['managed'] as const)).strict()
/** `managed`: shown, as the platform shows it, and always false: no organization is made by the system. */
const updateOrganization = z.object({ name: organizationName, description }).partial().extend(shownReadOnly(['managed'] as const)).strict()
const replaceOrganization = updateOrganization.required({ name: true })
const createTeam = z.object({ name, description: description.optional(), organization: bodyId }).strict()
const updateTeam = z.object({ name, description, organization: bodyId }).partial().strict()
const replaceTeam = updateTeam.required({ name: true, organization: true })

export const organizationUrl = (id: number) => `${GATEWAY_API}/organizations/${id}/`
export const teamUrl = (id: number) => `${GATEWAY_API}/teams/${id}/`

export function serializeOrganization(organization: Organization) {
  const url = organizationUrl(organization.id)
  return {
    id: organization.id,
    url,
    related: { teams: `${url}teams/`, users: `${url}users/`, admins: `${url}admins/`, activity_stream: activityStreamUrl('organization', organization.id) },
    summary_fields: {},
    created: new Date(organization.created).toISOString(),
    created_by: null,
    modified: new Date(organization.modified).toISOString(),
    modified_by: null,
    name: organization.name,
    description: organization.description,
    managed: false,
  }
}

export function serializeTeam(app: App, team: Team) {
  const organization = app.access.organization(team.organizationId)
  const url = teamUrl(team.id)
  return {
    id: team.id,
    url,
    related: { organization: organizationUrl(team.organizationId), users: `${url}users/`, admins: `${url}admins/`, activity_stream: activityStreamUrl('team', team.id) },
    summary_fields: { organization: organization ? { id: organization.id, name: organization.name, description: organization.description } : null },
    created: new Date(team.created).toISOString(),
    created_by: null,
    modified: new Date(team.modified).toISOString(),
    modified_by: null,
    name: team.name,
    description: team.description,
    organization: team.organizationId,
  }
}

/**
 * organizations/ and teams/ in the platform's shapes, with its list filters. Each caller sees those they may view
 * (`view_organization`, `view_team`; superusers and auditors all), as the platform's access_qs shows them;
 * who may change what is decided in src/access/admin.ts.
 */
export function organizationRoutes(api: GatewayApi, app: App): void {
  const seesOrganization = (request: FastifyRequest, id: number) => visibilityOf(app, request)?.organizations.has(id) ?? true
  const seesTeam = (request: FastifyRequest, id: number) => visibilityOf(app, request)?.teams.has(id) ?? true
  describeList(api, '/organizations/', {
    name: 'Organization List',
    description: 'Organizations: each caller sees those they may view; superusers create them, their admins change them.',
    create: { body: createOrganizationFields.strict(), readOnly: { ...SERVER_FIELDS, managed: 'boolean' }, allowed: (principal) => principal.user.isSuperuser },
  })
  describeList(api, '/teams/', {
    name: 'Team List',
    description: 'Teams, each in one organization: each caller sees those they may view; organization admins add them.',
    create: { body: createTeam, readOnly: SERVER_FIELDS, allowed: (principal) => app.access.canSomewhere(principal.user, 'shared.add_team') },
  })
  api.get('/organizations/', { schema: { querystring: listQuery(organizationFilterFields) } }, async (request) => {
    const { page, filter } = request.query
    const { count, results } = await app.store.access.listOrganizations({ offset: page.offset, limit: page.pageSize, filter, ids: visibilityOf(app, request)?.organizations })
    return paged(request, page, count, results.map(serializeOrganization))
  })
  // Superusers only (AccessAdmin.createOrganization), declared on the route so anyone else is refused before the body is read.
  api.post('/organizations/', { config: { access: 'superuser' }, schema: { body: createOrganization } }, async (request, reply) => {
    assertShownValues(request.body, { managed: false }, ['managed'])
    const { name, description } = request.body
    const organization = await app.accessAdmin.createOrganization(principalOf(request).user, { name, description })
    app.audit.change(actorOf(request), 'create', { type: 'organization', id: organization.id, name: organization.name }, undefined, serializeOrganization(organization))
    reply.code(201)
    return serializeOrganization(organization)
  })
  api.get('/organizations/:id/', { schema: { params: idParam } }, async (request) => {
    const organization = await app.store.access.findOrganization(request.params.id)
    if (!organization || !seesOrganization(request, organization.id)) throw new NotFound('No such organization.')
    return serializeOrganization(organization)
  })
  for (const [method, body] of [['PATCH', updateOrganization], ['PUT', replaceOrganization]] as const) api.route({
    method,
    url: '/organizations/:id/',
    schema: { params: idParam, body },
    handler: async (request) => {
      const shown = await app.store.access.findOrganization(request.params.id)
      if (!seesOrganization(request, request.params.id)) throw new NotFound('No such organization.')
      if (shown) assertShownValues(request.body, serializeOrganization(shown), ['managed'])
      const { name, description } = request.body
      // What the update itself changed from: another change at the same time may have come between.
      const { before, after } = await app.accessAdmin.updateOrganization(principalOf(request).user, request.params.id, { name, description })
      app.audit.change(actorOf(request), 'update', { type: 'organization', id: after.id, name: after.name }, serializeOrganization(before), serializeOrganization(after))
      return serializeOrganization(after)
    },
  })
  api.delete('/organizations/:id/', { schema: { params: idParam } }, async (request, reply) => {
    const before = await app.store.access.findOrganization(request.params.id)
    if (!seesOrganization(request, request.params.id)) throw new NotFound('No such organization.')
    const gone = await app.accessAdmin.deleteOrganization(principalOf(request).user, request.params.id)
    const actor = actorOf(request)
    app.audit.change(actor, 'delete', { type: 'organization', id: request.params.id, name: before?.name }, before && serializeOrganization(before))
    for (const team of gone.teams) app.audit.change(actor, 'delete', { type: 'team', id: team.id, name: team.name }, serializeTeam(app, team), undefined, DELETED_WITH_ORGANIZATION)
    await auditApplicationsGone(app, actor, gone.applications, DELETED_WITH_ORGANIZATION)
    return reply.code(204).send()
  })

  const teamList = listQuery(teamFilterFields)
  api.get('/teams/', { schema: { querystring: teamList } }, async (request) => {
    const { page, filter } = request.query
    const { count, results } = await app.store.access.listTeams({ offset: page.offset, limit: page.pageSize, filter, ids: visibilityOf(app, request)?.teams })
    return paged(request, page, count, results.map((team) => serializeTeam(app, team)))
  })
  api.get('/organizations/:id/teams/', { schema: { params: idParam, querystring: teamList } }, async (request) => {
    if (!(await app.store.access.findOrganization(request.params.id)) || !seesOrganization(request, request.params.id)) throw new NotFound('No such organization.')
    const { page, filter } = request.query
    const { count, results } = await app.store.access.listTeams({ offset: page.offset, limit: page.pageSize, filter, organizationId: request.params.id, ids: visibilityOf(app, request)?.teams })
    return paged(request, page, count, results.map((team) => serializeTeam(app, team)))
  })
  api.post('/teams/', { schema: { body: createTeam } }, async (request, reply) => {
    const { name: teamName, description: text, organization } = request.body
    const team = await app.accessAdmin.createTeam(principalOf(request).user, { name: teamName, description: text, organizationId: organization })
    app.audit.change(actorOf(request), 'create', { type: 'team', id: team.id, name: team.name }, undefined, serializeTeam(app, team))
    reply.code(201)
    return serializeTeam(app, team)
  })
  api.get('/teams/:id/', { schema: { params: idParam } }, async (request) => {
    const team = await app.store.access.findTeam(request.params.id)
    if (!team || !seesTeam(request, team.id)) throw new NotFound('No such team.')
    return serializeTeam(app, team)
  })
  for (const [method, body] of [['PATCH', updateTeam], ['PUT', replaceTeam]] as const) api.route({
    method,
    url: '/teams/:id/',
    schema: { params: idParam, body },
    handler: async (request) => {
      const { name: teamName, description: text, organization } = request.body
      if (!seesTeam(request, request.params.id)) throw new NotFound('No such team.')
      const { before, after } = await app.accessAdmin.updateTeam(principalOf(request).user, request.params.id, { name: teamName, description: text, organizationId: organization })
      app.audit.change(actorOf(request), 'update', { type: 'team', id: after.id, name: after.name }, serializeTeam(app, before), serializeTeam(app, after))
      return serializeTeam(app, after)
    },
  })
  api.delete('/teams/:id/', { schema: { params: idParam } }, async (request, reply) => {
    const before = await app.store.access.findTeam(request.params.id)
    if (!seesTeam(request, request.params.id)) throw new NotFound('No such team.')
    await app.accessAdmin.deleteTeam(principalOf(request).user, request.params.id)
    app.audit.change(actorOf(request), 'delete', { type: 'team', id: request.params.id, name: before?.name }, before && serializeTeam(app, before))
    return reply.code(204).send()
  })
}
