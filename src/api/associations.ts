import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import type { Permission } from '../access/permissions.ts'
import { AssignedObjectMissing, AssigneeMissing, NotFound, PermissionDenied, ValidationFailed } from '../errors.ts'
import { mediaType } from '../http/negotiation.ts'
import type { RoleDefinition } from '../store/access.ts'
import { userFilterFields } from '../store/users.ts'
import { principalOf, visibilityOf } from './access.ts'
import type { GatewayApi } from './gateway-api.ts'
import { listQuery } from './list-query.ts'
import { describeList } from './metadata.ts'
import { paged } from './pagination.ts'
import { giveRoles, takeRoles } from './roles.ts'
import { serializeUser } from './users.ts'
import { idParam, pkOfWrongType, pythonType } from './validation.ts'

/** One association: the users of `parent` holding `role` on it, at `{parent}s/{id}/{name}/`. */
interface Association {
  parent: 'organization' | 'team'
  name: 'users' | 'admins'
  role: string
}

const ASSOCIATIONS: readonly Association[] = [
  { parent: 'team', name: 'users', role: 'Team Member' },
  { parent: 'team', name: 'admins', role: 'Team Admin' },
  { parent: 'organization', name: 'users', role: 'Organization Member' },
  { parent: 'organization', name: 'admins', role: 'Organization Admin' },
]

const CHANGE: Record<Association['parent'], Permission> = { organization: 'shared.change_organization', team: 'shared.change_team' }

/** The body's `instances` as it arrives; read by instancesOf, in Django REST framework's words. */
const associationBody = z.preprocess((input) => input ?? {}, z.object({ instances: z.unknown().optional() }).strict())

/**
 * teams/{id}/users/, teams/{id}/admins/, organizations/{id}/users/ and organizations/{id}/admins/, with their
 * associate/ and disassociate/ actions, as django-ansible-base's AssociationResourceRouter serves them for the
 * platform: thin views over the Team Member, Team Admin, Organization Member and Organization Admin assignments.
 * Associating gives the role exactly as role_user_assignments/ would, with the same checks (src/access/admin.ts),
 * and disassociating takes it back; the lists show the users holding the role on the object directly.
 * A parent the caller does not see is 404; changing its users asks its change permission first (403), as
 * check_parent_object_permissions does, then the body is read.
 */
export function associationRoutes(api: GatewayApi, app: App): void {
  const users = listQuery(userFilterFields)
  for (const association of ASSOCIATIONS) {
    const path = `/${association.parent}s/:id/${association.name}/`
    // As Django REST framework names the related list view django-ansible-base's router makes (its class,
    // Related<parent viewset><related viewset>, has no docstring, hence no description); associating has its own routes.
    const parent = association.parent === 'team' ? 'Team' : 'Organization'
    describeList(api, path, { name: `Related ${parent} View Set ${parent} Related User List`, description: '' })
    api.get(path, { schema: { params: idParam, querystring: users } }, async (request) => {
      const { role, objectId } = parentOf(app, request, association, request.params.id)
      const { page, filter } = request.query
      const holding = { roleDefinitionId: role.id, objectType: association.parent, objectId }
      const { count, users: results } = await app.store.users.list({ offset: page.offset, limit: page.pageSize, filter, holding, visibleIds: visibilityOf(app, request)?.users })
      return paged(request, page, count, results.map(serializeUser))
    })
    api.post(`${path}associate/`, { schema: { params: idParam, body: associationBody } }, async (request, reply) => {
      const { role, objectId } = parentToChange(app, request, association, request.params.id)
      const visible = visibilityOf(app, request)?.users
      // Only users the caller sees, as the platform takes them from the users list filtered for the caller.
      const users = await instancesOf(sentInstances(request), 'associate', async (id) => {
        const user = await app.store.users.findById(id)
        return user && (!visible || user.isSuperuser || visible.has(id)) ? user : undefined
      })
      // All or none: a list that fails part way leaves nothing given.
      try {
        await giveRoles(app, request, 'user', users.map((user) => ({ roleDefinitionId: role.id, actorId: user.id, objectId })))
      } catch (error) {
        // The parent deleted since it was found (by another process): answered as a request after it is.
        if (error instanceof AssignedObjectMissing) throw new NotFound(`No such ${association.parent}.`)
        // A user deleted since: as instancesOf refuses one that does not exist.
        if (error instanceof AssigneeMissing) throw new ValidationFailed({ instances: [`Invalid pk "${error.id}" - ${NOT_FOUND.associate}.`] })
        throw error
      }
      return reply.code(204).send()
    })
    api.post(`${path}disassociate/`, { schema: { params: idParam, body: associationBody } }, async (request, reply) => {
      const { role, objectId } = parentToChange(app, request, association, request.params.id)
      // Only users holding the role on the parent, as django-ansible-base's DisassociationSerializerBase takes them
      // from the related list's queryset (not filtered by what the caller sees): any other, or one that does not
      // exist, is refused, and nothing is taken.
      const held = await instancesOf(sentInstances(request), 'disassociate', (actorId) =>
        app.store.access.findHeldAssignment({ roleDefinitionId: role.id, actor: 'user', actorId, objectType: association.parent, objectId }))
      await takeRoles(app, request, 'user', held)
      return reply.code(204).send()
    })
  }
}

/** The parent object the caller sees (404 otherwise, as for one that does not exist) and the association's role. */
function parentOf(app: App, request: FastifyRequest, association: Association, objectId: number): { role: RoleDefinition; objectId: number } {
  const visible = visibilityOf(app, request)
  const exists = association.parent === 'team' ? app.access.team(objectId) : app.access.organization(objectId)
  const seen = association.parent === 'team' ? visible?.teams.has(objectId) : visible?.organizations.has(objectId)
  if (!exists || seen === false) throw new NotFound(`No such ${association.parent}.`)
  const role = app.access.roleDefinitionNamed(association.role)
  if (!role) throw new Error(`the managed role ${association.role} is missing`)
  return { role, objectId }
}

/** The parent as parentOf finds it, for a caller who may change it; whether they may give the role is asked as each is given. */
function parentToChange(app: App, request: FastifyRequest, association: Association, objectId: number): { role: RoleDefinition; objectId: number } {
  const parent = parentOf(app, request, association, objectId)
  if (!app.access.can(principalOf(request).user, CHANGE[association.parent], association.parent, objectId)) throw new PermissionDenied()
  return parent
}

/**
 * The body's `instances`; from a form, as Django REST framework reads a list field from one (QueryDict.getlist): every
 * value given, a single one included, and none when it is absent.
 */
function sentInstances(request: FastifyRequest<{ Body: { instances?: unknown } }>): unknown {
  const { instances } = request.body
  if (mediaType(request) !== 'application/x-www-form-urlencoded') return instances
  return instances === undefined ? [] : Array.isArray(instances) ? instances : [instances]
}

/**
 * What `instances` names, read as Django REST framework's PrimaryKeyRelatedField(many=True) reads it: item by item,
 * each a pk that `find` must find (the platform's queryset for the action), and the first problem only, in its words;
 * none at all is refused as django-ansible-base's AssociateMixin refuses it. Repeats are taken once.
 */
async function instancesOf<T>(instances: unknown, action: 'associate' | 'disassociate', find: (id: number) => Promise<T | undefined>): Promise<T[]> {
  const refuse = (message: string) => new ValidationFailed({ instances: [message] })
  if (instances === undefined) throw refuse('This field is required.')
  if (instances === null) throw refuse('This field may not be null.')
  // An object is read as Python iterates a dict, by its keys (django-ansible-base's tests send `{}`, refused as empty).
  const items = Array.isArray(instances) ? instances : typeof instances === 'object' ? Object.keys(instances) : undefined
  if (!items) throw refuse(`Expected a list of items but got type "${pythonType(instances)}".`)
  // Each id is looked up: a bound keeps one request's work bounded (the platform has none).
  if (items.length > MAX_INSTANCES) throw refuse(`Give at most ${MAX_INSTANCES} instances at once.`)
  const found = new Map<number, T>()
  for (const item of items) {
    const text = typeof item === 'number' || typeof item === 'string' ? String(item) : ''
    if (!/^-?[0-9]{1,20}$/.test(text)) throw refuse(pkOfWrongType(item))
    const id = Number(text)
    if (found.has(id)) continue
    const object = id >= 1 && id <= 2 ** 31 - 1 ? await find(id) : undefined
    if (object === undefined) throw refuse(`Invalid pk "${text}" - ${NOT_FOUND[action]}.`)
    found.set(id, object)
  }
  if (!found.size) throw refusedInView(`Please pass in one or more instances to ${action}`)
  return [...found.values()]
}

/** How django-ansible-base's serializers say a pk is not among those the action takes (DisassociationSerializerBase words its own). */
const NOT_FOUND = {
  associate: 'object does not exist',
  disassociate: 'object does not exist or is not associated with parent object',
} as const

const MAX_INSTANCES = 200

/** A refusal django-ansible-base raises in its view with a string, which Django REST framework sends bare, not in a list. */
function refusedInView(message: string): ValidationFailed {
  return new ValidationFailed({ instances: [message] }, message, { bare: ['instances'] })
}
