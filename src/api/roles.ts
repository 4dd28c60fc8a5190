import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { AssignmentInput, GivenRole } from '../access/admin.ts'
import type { App } from '../app.ts'
import { CONTENT_TYPES, contentTypeNamed, inPlatformOrder, permissionsFor } from '../access/permissions.ts'
import { actorOf, type Actor as AuditActor } from '../audit/actor.ts'
import { NotFound, ValidationFailed } from '../errors.ts'
import { type Actor, assignmentFilterFields, type RoleAssignment, type RoleDefinition, roleDefinitionFilterFields } from '../store/access.ts'
import { principalOf, seesRoleOn, visibilityOf } from './access.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'
import { listQuery, readBoolean, rewrittenParameters } from './list-query.ts'
import { describeList, SERVER_FIELDS } from './metadata.ts'
import { organizationUrl, teamUrl } from './organizations.ts'
import { paged } from './pagination.ts'
import { userSummary, userUrl } from './summaries.ts'
import { assertShownValues, bodyId, idParam, nullableBodyId, shownReadOnly } from './validation.ts'

const name = z.string().trim().min(1, 'This field may not be blank.').max(512)
const description = z.string().trim().max(10_000)
const permissions = z.array(z.string()).max(100)
/** `content_type`: absent or null for a global role, as the platform's default; accepted on a change (src/access/admin.ts). */
const contentTypeField = z.string().max(200).nullable()
const createRoleFields = z.object({ name, description: description.optional(), permissions, content_type: contentTypeField.optional() })
/** A role definition made through the API is a custom one: `managed` false. */
const createRole = createRoleFields.extend(shownReadOnly(['managed'] as const)).strict()
/** `managed`: the system's own roles are managed; shown, never written. */
const updateRole = z.object({ name, description, permissions, content_type: contentTypeField }).partial().extend(shownReadOnly(['managed'] as const)).strict()
const replaceRole = updateRole.required({ name: true, permissions: true })
const assignmentFields = (actor: Actor) => z.object({
  role_definition: bodyId,
  [actor]: bodyId,
  /** The platform's is text (blank and null allowed) read as an id when set: `""` and null both mean none there. */
  object_id: nullableBodyId.optional(),
}).strict()
/** `content_type`: shown, and sent back by the platform's web interface with every assignment it gives (checkShownContentType). */
const assignmentInput = (actor: Actor) => assignmentFields(actor).extend(shownReadOnly(['content_type'] as const)).strict()
/** The platform names what a role is on `shared.organization` or `shared.team`; the store, `organization` or `team`. */
const STORED_TYPES: Record<string, string> = { 'shared.organization': 'organization', 'shared.team': 'team' }
const CONTENT_TYPE_FILTER = /^((?:or__|chain__)?)(not__)?content_type(__model|__api_slug)?(?:__(exact|iexact|in|isnull))?$/

/** What an assignment's `content_type` filter is read as: the store's name (a platform-wide one's null, as the store's fields read it). */
const assignmentList = (actor: Actor) => z.preprocess(platformContentTypes((name) => Object.hasOwn(STORED_TYPES, name) ? STORED_TYPES[name]! : name), listQuery(assignmentFilterFields(actor)))
/** A role definition keeps the platform's name, and null for a platform-wide one, as the platform does. */
const roleDefinitionList = z.preprocess(platformContentTypes((name) => name), listQuery(roleDefinitionFilterFields))

/**
 * The query string's `content_type` filters as the platform's clients write them, turned into the list's own
 * `content_type` filter: by the platform's name (`shared.team`) with any of these lookups, or by the model alone
 * (`content_type__model=team`, as django-ansible-base documents finding an object's assignments: `?object_id=` alone
 * would list a team's and an organization's with the same id) or its `api_slug` (the platform's name again, as its web
 * interface asks for role definitions), a platform-wide role's being null, also as `None` (`content_type=None`, as
 * Django REST framework's filters read it for a foreign key). `stored` turns the platform's name into the one the
 * list keeps. An isnull that is no boolean is refused here, under the parameter the client sent
 * (`content_type__model__isnull`), not the one it would have become.
 */
function platformContentTypes(stored: (name: string) => string) {
  return rewrittenParameters(CONTENT_TYPE_FILTER, ([, combined = '', negated = '', by, lookup = 'exact'], key, value, add, context) => {
    const filter = (negate: boolean, suffix = '') => `${combined}${negate ? 'not__' : ''}content_type${suffix}`
    if (lookup === 'isnull') {
      if (readBoolean(value) === undefined) context.addIssue({ code: 'custom', path: [key], message: 'Enter true or false.' })
      else add(filter(negated !== '', '__isnull'), value)
      return
    }
    if (lookup === 'exact' && by === undefined && value === 'None') {
      add(filter(negated !== '', '__isnull'), 'true')
      return
    }
    const name = (given: string) => {
      const cased = lookup === 'iexact' ? given.toLowerCase() : given
      return stored(by === '__model' ? `shared.${cased}` : cased)
    }
    add(filter(negated !== '', lookup === 'exact' ? '' : `__${lookup}`), lookup === 'in' ? value.split(',').map(name).join(',') : name(value))
  })
}

const roleDefinitionUrl = (id: number) => `${GATEWAY_API}/role_definitions/${id}/`

export function serializeRoleDefinition(role: RoleDefinition) {
  const url = roleDefinitionUrl(role.id)
  return {
    id: role.id,
    url,
    related: { user_assignments: `${url}user_assignments/`, team_assignments: `${url}team_assignments/` },
    summary_fields: {},
    permissions: inPlatformOrder(role.permissions),
    content_type: role.contentType,
    created: new Date(role.created).toISOString(),
    created_by: null,
    modified: new Date(role.modified).toISOString(),
    modified_by: null,
    name: role.name,
    description: role.description,
    managed: role.managed,
  }
}

async function serializeAssignment(app: App, assignment: RoleAssignment) {
  const role = app.access.roleDefinition(assignment.roleDefinitionId)
  const platformWide = assignment.objectType === 'platform'
  const object = assignment.objectType === 'team' ? app.access.team(assignment.objectId) : assignment.objectType === 'organization' ? app.access.organization(assignment.objectId) : undefined
  const objectUrl = platformWide ? undefined : (assignment.objectType === 'team' ? teamUrl : organizationUrl)(assignment.objectId)
  const user = assignment.actor === 'user' ? await app.accounts.get(assignment.actorId) : undefined
  const team = assignment.actor === 'team' ? app.access.team(assignment.actorId) : undefined
  return {
    id: assignment.id,
    url: `${GATEWAY_API}/role_${assignment.actor}_assignments/${assignment.id}/`,
    related: {
      role_definition: roleDefinitionUrl(assignment.roleDefinitionId),
      [assignment.actor]: assignment.actor === 'user' ? userUrl(assignment.actorId) : teamUrl(assignment.actorId),
      ...(objectUrl ? { content_object: objectUrl } : {}),
    },
    summary_fields: {
      role_definition: role ? { id: role.id, name: role.name, description: role.description, managed: role.managed } : null,
      ...(object ? { content_object: { id: object.id, name: object.name } } : {}),
      ...(assignment.actor === 'user' ? { user: userSummary(user, assignment.actorId) } : {}),
      ...(team ? { team: { id: team.id, name: team.name, organization: team.organizationId } } : {}),
    },
    created: new Date(assignment.created).toISOString(),
    created_by: null,
    // The platform names objects by their resource's ansible_id too, and shows null for one without a resource: no
    // object here has one (no resource registry; src/api/validation.ts).
    created_by_ansible_id: null,
    content_type: platformWide ? null : `shared.${assignment.objectType}`,
    object_id: platformWide ? null : String(assignment.objectId),
    object_ansible_id: null,
    role_definition: assignment.roleDefinitionId,
    [assignment.actor]: assignment.actorId,
    [`${assignment.actor}_ansible_id`]: null,
  }
}

/**
 * role_definitions/, role_user_assignments/ and role_team_assignments/ in django-ansible-base's shapes, with the
 * platform's list filters. Assignments are created and deleted, never changed (as there); who may grant what:
 * src/access/admin.ts. An assignment shows to those holding a role on its object (platform-wide ones to holders of
 * one), as its visible_items shows them; superusers and auditors see all.
 */
export function roleRoutes(api: GatewayApi, app: App): void {
  describeList(api, '/role_definitions/', {
    name: 'Role Definition List',
    description: 'Managed and custom role definitions: everyone signed in may read; superusers make custom ones.',
    create: { body: createRoleFields.strict(), readOnly: { ...SERVER_FIELDS, managed: 'boolean' }, allowed: (principal) => principal.user.isSuperuser },
  })
  api.get('/role_definitions/', { schema: { querystring: roleDefinitionList } }, async (request) => {
    const { page, filter } = request.query
    const { count, results } = await app.store.access.listRoleDefinitions({ offset: page.offset, limit: page.pageSize, filter })
    return paged(request, page, count, results.map(serializeRoleDefinition))
  })
  // Only superusers write role definitions (AccessAdmin), declared on the routes so anyone else is refused before the body is read.
  const superuser = { access: 'superuser' } as const
  api.post('/role_definitions/', { config: superuser, schema: { body: createRole } }, async (request, reply) => {
    const input = request.body
    assertShownValues(input, { managed: false }, ['managed'])
    const role = await app.accessAdmin.createRoleDefinition(principalOf(request).user, { name: input.name, description: input.description, contentType: input.content_type, permissions: input.permissions })
    app.audit.change(actorOf(request), 'create', roleObject(role), undefined, serializeRoleDefinition(role))
    reply.code(201)
    return serializeRoleDefinition(role)
  })
  api.get('/role_definitions/:id/', { schema: { params: idParam } }, async (request) => {
    const role = await app.store.access.findRoleDefinition(request.params.id)
    if (!role) throw new NotFound('No such role definition.')
    return serializeRoleDefinition(role)
  })
  for (const [method, body] of [['PATCH', updateRole], ['PUT', replaceRole]] as const) api.route({
    method,
    url: '/role_definitions/:id/',
    config: superuser,
    schema: { params: idParam, body },
    handler: async (request) => {
      const shown = await app.store.access.findRoleDefinition(request.params.id)
      if (shown) assertShownValues(request.body, serializeRoleDefinition(shown), ['managed'])
      const { name, description, permissions, content_type: contentType } = request.body
      // What the update itself changed from: another change at the same time may have come between.
      const { before, after } = await app.accessAdmin.updateRoleDefinition(principalOf(request).user, request.params.id, { name, description, permissions, contentType })
      app.audit.change(actorOf(request), 'update', roleObject(after), serializeRoleDefinition(before), serializeRoleDefinition(after))
      return serializeRoleDefinition(after)
    },
  })
  api.delete('/role_definitions/:id/', { config: superuser, schema: { params: idParam } }, async (request, reply) => {
    const before = await app.store.access.findRoleDefinition(request.params.id)
    await app.accessAdmin.deleteRoleDefinition(principalOf(request).user, request.params.id)
    app.audit.change(actorOf(request), 'delete', { type: 'role_definition', id: request.params.id, name: before?.name }, before && serializeRoleDefinition(before))
    return reply.code(204).send()
  })

  // django-ansible-base's RoleMetadataView: what a client offers when it makes a role definition, by content type
  // and `system` for a platform-wide one, in the order it lists them (organization, team, system).
  const metadata = Object.freeze({
    allowed_permissions: Object.fromEntries([...CONTENT_TYPES, null].map((type) => [type ?? 'system', permissionsFor(type)])),
  })
  api.get('/role_metadata/', async () => metadata)

  for (const actor of ['user', 'team'] as const) {
    const querystring = assignmentList(actor)
    describeList(api, `/role_${actor}_assignments/`, {
      name: `Role ${actor === 'user' ? 'User' : 'Team'} Assignment List`,
      description: `Roles given to ${actor}s on an organization, a team or the platform; admins of an object give roles on it.`,
      create: {
        body: assignmentFields(actor),
        readOnly: { id: 'integer', url: 'string', related: 'field', summary_fields: 'field', created: 'datetime', content_type: 'field' },
        allowed: (principal) => app.access.canSomewhere(principal.user, 'shared.change_team') || app.access.canSomewhere(principal.user, 'shared.change_organization'),
      },
    })
    api.get(`/role_${actor}_assignments/`, { schema: { querystring } }, async (request) => {
      const { page, filter } = request.query
      const { count, results } = await app.store.access.listAssignments(actor, { offset: page.offset, limit: page.pageSize, filter, onObjects: visibilityOf(app, request)?.assignments })
      return paged(request, page, count, await Promise.all(results.map((a) => serializeAssignment(app, a))))
    })
    api.get(`/role_definitions/:id/${actor}_assignments/`, { schema: { params: idParam, querystring } }, async (request) => {
      // A missing parent is 404, as django-ansible-base's related lists answer it (RelatedListMixin.get_parent_object).
      if (!await app.store.access.findRoleDefinition(request.params.id)) throw new NotFound('No such role definition.')
      const { page, filter } = request.query
      const { count, results } = await app.store.access.listAssignments(actor, { offset: page.offset, limit: page.pageSize, filter, roleDefinitionId: request.params.id, onObjects: visibilityOf(app, request)?.assignments })
      return paged(request, page, count, await Promise.all(results.map((a) => serializeAssignment(app, a))))
    })
    api.post(`/role_${actor}_assignments/`, { schema: { body: assignmentInput(actor) } }, async (request, reply) => {
      const input = request.body as Record<string, number | null | undefined>
      await checkShownContentType(app, input.role_definition!, request.body.content_type)
      const shown = await giveRole(app, request, actor, { roleDefinitionId: input.role_definition!, actorId: input[actor]!, objectId: input.object_id })
      // A role given again is answered with the assignment held, 201 as the platform answers it.
      reply.code(201)
      return shown
    })
    api.get(`/role_${actor}_assignments/:id/`, { schema: { params: idParam } }, async (request) => {
      const assignment = await app.store.access.findAssignment(actor, request.params.id)
      if (!assignment || !seesRoleOn(visibilityOf(app, request), assignment)) throw new NotFound('No such role assignment.')
      return serializeAssignment(app, assignment)
    })
    api.delete(`/role_${actor}_assignments/:id/`, { schema: { params: idParam } }, async (request, reply) => {
      const before = await app.store.access.findAssignment(actor, request.params.id)
      if (before && !seesRoleOn(visibilityOf(app, request), before)) throw new NotFound('No such role assignment.')
      await takeRole(app, request, actor, request.params.id, before)
      return reply.code(204).send()
    })
  }
}

/**
 * An assignment's `content_type` is read-only in the platform's serializer, which drops it from input; its web
 * interface sends it with every assignment it gives (`shared.team`, or null for a platform-wide role). Taken when it
 * names the role definition's own type, in any spelling the platform reads (`team`, `shared.team`); another is refused
 * by name rather than dropped, as the caller meant another kind of object than the one the role makes object_id name.
 * A role definition that does not exist is left for the grant to refuse, naming role_definition.
 */
async function checkShownContentType(app: App, roleDefinitionId: number, given: unknown): Promise<void> {
  if (given === undefined) return
  const role = await app.store.access.findRoleDefinition(roleDefinitionId)
  if (!role) return
  const named = given === null || given === '' ? null : typeof given === 'string' ? contentTypeNamed(given) : undefined
  if (named !== role.contentType) {
    const expected = role.contentType === null ? 'null: the role definition is platform-wide' : `"${role.contentType}", the role definition's`
    throw new ValidationFailed({ content_type: [`This field is read-only: give ${expected}, or leave it out.`] })
  }
}

/**
 * Gives a role for the caller, as role_user_assignments/ and role_team_assignments/ do, and answers the assignment
 * in their shape. A new one goes into the audit trail; one held already is answered as it is, as nothing changed.
 */
export async function giveRole(app: App, request: FastifyRequest, actor: Actor, input: AssignmentInput) {
  const [shown] = await giveRoles(app, request, actor, [input])
  return shown!
}

/** Gives several roles for the caller at once, all or none (AccessAdmin.assignAll), each into the audit trail. */
export async function giveRoles(app: App, request: FastifyRequest, actor: Actor, inputs: readonly AssignmentInput[]) {
  return auditGiven(app, actorOf(request), actor, await app.accessAdmin.assignAll(principalOf(request).user, actor, inputs))
}

/** Records the roles a committed change by `by` gave in the audit trail (those held already are no change), and shows each. */
export async function auditGiven(app: App, by: AuditActor, actor: Actor, given: readonly GivenRole[]) {
  const shown = []
  for (const { assignment, created } of given) {
    const serialized = await serializeAssignment(app, assignment)
    if (created) app.audit.change(by, 'create', assignmentObject(app, actor, assignment), undefined, serialized)
    shown.push(serialized)
  }
  return shown
}

/** Takes roles back for the caller, all or none, as deleting each assignment from role_user_assignments/ does, into the audit trail. */
export async function takeRoles(app: App, request: FastifyRequest, actor: Actor, assignments: readonly RoleAssignment[]): Promise<void> {
  await app.accessAdmin.unassignAll(principalOf(request).user, actor, assignments.map((assignment) => assignment.id))
  for (const before of assignments) app.audit.change(actorOf(request), 'delete', assignmentObject(app, actor, before), await serializeAssignment(app, before))
}

/** Takes a role back for the caller, as deleting the assignment from role_user_assignments/ does, into the audit trail. */
export async function takeRole(app: App, request: FastifyRequest, actor: Actor, id: number, before: RoleAssignment | undefined): Promise<void> {
  await app.accessAdmin.unassign(principalOf(request).user, actor, id)
  if (before) app.audit.change(actorOf(request), 'delete', assignmentObject(app, actor, before), await serializeAssignment(app, before))
}

/** How the audit trail names a role definition, and an assignment (by the role it gives). */
function roleObject(role: RoleDefinition) {
  return { type: 'role_definition', id: role.id, name: role.name }
}

function assignmentObject(app: App, actor: Actor, assignment: RoleAssignment) {
  return { type: `role_${actor}_assignment`, id: assignment.id, name: app.access.roleDefinition(assignment.roleDefinitionId)?.name }
}
