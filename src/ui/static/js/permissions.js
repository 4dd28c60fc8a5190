import { api } from './api.js'

/**
 * What the signed-in user may do to organizations, teams and role assignments, worked out as the API decides it
 * (docs/access.md) from what the pages can read: the superuser flag, the roles the user holds (their own role
 * assignments, and those of the teams they are members of) and each role's permissions. The pages offer an action
 * only where it answers yes. It never answers no to what the API would allow: what it cannot read (more roles than it
 * reads at once) answers yes, as do the API's rules beyond roles (a name the configuration's access rules use, an
 * organization with applications), whose refusal the page shows.
 *
 * @typedef {{type: 'platform' | 'organization' | 'team', id: number}} AccessObject
 * @typedef {{everything: boolean, can: (permission: string, object: AccessObject, organizationOfTeam?: number) => boolean}} Permissions `everything`: a superuser's, or
 *   permissions not known
 */

/** How many of a list the pages read for this, at most: one whose answers run past it answers yes to everything. */
const MOST_READ = 200
/** How many ids one `__in` filter may name (the API's cap). */
const MOST_IN_FILTER = 100

/** @type {Permissions} */
const EVERYTHING = { everything: true, can: () => true }

/**
 * The object of a role assignment, from its `content_type` and `object_id`.
 * @param {{content_type: string | null, object_id: string | null}} assignment
 * @returns {AccessObject}
 */
export function objectOf(assignment) {
  if (!assignment.content_type) return { type: 'platform', id: 0 }
  return { type: assignment.content_type === 'shared.team' ? 'team' : 'organization', id: Number(assignment.object_id) }
}

/**
 * The permissions of these role definitions, by id; a role the caller cannot read is left out.
 * @param {Iterable<number>} ids
 * @returns {Promise<Map<number, string[]>>}
 */
export function rolePermissions(ids) {
  return readByIds('role_definitions/', ids, (role) => role.permissions)
}

/**
 * The organization of each of these teams the caller sees, by team id.
 * @param {Iterable<number>} ids
 * @returns {Promise<Map<number, number>>}
 */
export function organizationsOfTeams(ids) {
  return readByIds('teams/', ids, (team) => team.organization)
}

/**
 * One value of each of these objects of a list, by id, read with `id__in` as many ids at a time as the API takes.
 * @template T
 * @param {string} list
 * @param {Iterable<number>} ids
 * @param {(item: any) => T} valueOf
 * @returns {Promise<Map<number, T>>}
 */
async function readByIds(list, ids, valueOf) {
  const wanted = [...new Set(ids)]
  /** @type {Map<number, T>} */
  const found = new Map()
  for (let from = 0; from < wanted.length; from += MOST_IN_FILTER) {
    const page = await api(list, { query: { id__in: wanted.slice(from, from + MOST_IN_FILTER).join(','), page_size: MOST_IN_FILTER } })
    for (const item of page.results) found.set(item.id, valueOf(item))
  }
  return found
}

/**
 * The signed-in user's permissions.
 * @param {import('./app.js').User} me
 * @returns {Promise<Permissions>}
 */
export async function permissionsOf(me) {
  if (me.is_superuser) return EVERYTHING
  const [own, access] = await Promise.all([
    api('role_user_assignments/', { query: { user: me.id, page_size: MOST_READ } }),
    api(`users/${me.id}/access/`),
  ])
  // A team passes its roles to its members (those it holds, and those of the teams it is a member of: the access
  // answer's teams are all the teams the user is in, directly or not).
  const teams = access.teams.map((/** @type {{id: number}} */ team) => team.id)
  if (own.count > own.results.length || teams.length > MOST_IN_FILTER) return EVERYTHING
  const passed = teams.length ? await api('role_team_assignments/', { query: { team__in: teams.join(','), page_size: MOST_READ } }) : { count: 0, results: [] }
  if (passed.count > passed.results.length) return EVERYTHING
  const assignments = [...own.results, ...passed.results]
  const permissions = await rolePermissions(assignments.map((a) => a.role_definition))
  /** @type {{permissions: string[] | undefined, object: AccessObject}[]} */
  const held = assignments.map((a) => ({ permissions: permissions.get(a.role_definition), object: objectOf(a) }))
  return {
    everything: false,
    can(permission, object, organizationOfTeam) {
      return held.some((h) => (h.permissions === undefined || h.permissions.includes(permission)) && (
        h.object.type === 'platform'
        || (h.object.type === object.type && h.object.id === object.id)
        || (object.type === 'team' && h.object.type === 'organization' && (organizationOfTeam === undefined || h.object.id === organizationOfTeam))))
    },
  }
}

/**
 * Whether the API would let the user take back an assignment: they may change its object and hold every permission
 * the role gives there (a platform-wide one, superusers alone).
 * @param {Permissions} permissions
 * @param {any} assignment
 * @param {string[] | undefined} roleGives the role's permissions; undefined when not known
 * @param {number | undefined} organizationOfTeam for an assignment on a team
 */
export function mayRevoke(permissions, assignment, roleGives, organizationOfTeam) {
  const object = objectOf(assignment)
  if (object.type === 'platform') return permissions.everything
  const change = object.type === 'team' ? 'shared.change_team' : 'shared.change_organization'
  return [change, ...(roleGives ?? [])].every((permission) => permissions.can(permission, object, organizationOfTeam))
}

/**
 * Whether the API would let the signed-in user change another user's record, as it decides (docs/access.md): a
 * superuser anyone; no one else a superuser, nor a user in no organization; an organization admin a user whose roles
 * are all on organizations they administer (or those organizations' teams), holding each of those roles'
 * permissions there. Their own record is theirs to change, under its own rules.
 * @param {import('./app.js').User} me
 * @param {any} user
 * @param {{organizations: unknown[], services: unknown[] | null}} access the user's `users/{id}/access/`, as the caller sees it
 */
export async function mayChangeUser(me, user, access) {
  if (me.is_superuser || user.id === me.id) return true
  if (user.is_superuser || !access.organizations.length) return false
  // The API judges no service for a user who holds something the caller does not see: nothing the caller administers.
  if (access.services === null) return false
  const permissions = await permissionsOf(me)
  if (permissions.everything) return true
  const held = await api('role_user_assignments/', { query: { user: user.id, page_size: MOST_READ } })
  if (held.count > held.results.length) return true
  const objects = held.results.map(objectOf)
  if (objects.some((/** @type {AccessObject} */ o) => o.type === 'platform')) return false
  const [gives, teamOrganizations] = await Promise.all([
    rolePermissions(held.results.map((/** @type {any} */ a) => a.role_definition)),
    organizationsOfTeams(objects.filter((/** @type {AccessObject} */ o) => o.type === 'team').map((/** @type {AccessObject} */ o) => o.id)),
  ])
  return held.results.every((/** @type {any} */ assignment, /** @type {number} */ index) => {
    const object = objects[index]
    const organization = object.type === 'organization' ? object.id : teamOrganizations.get(object.id)
    if (organization === undefined || !permissions.can('shared.change_organization', { type: 'organization', id: organization })) return false
    return (gives.get(assignment.role_definition) ?? []).every((permission) => permissions.can(permission, object, teamOrganizations.get(object.id)))
  })
}
