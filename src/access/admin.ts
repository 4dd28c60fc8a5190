import { AssignedObjectMissing, AssigneeMissing, ManagedRole, NotFound, PermissionDenied, pkDoesNotExist, ValidationFailed } from '../errors.ts'
import { ForeignKeyViolation, UniqueViolation } from '../store/errors.ts'
import type { Actor, Changed, ObjectType, Organization, RoleAssignment, RoleDefinition, Team } from '../store/access.ts'
import type { Announce, EventBus } from '../store/event-bus.ts'
import type { Repositories, Store } from '../store/store.ts'
import type { User } from '../store/users.ts'
import type { Application } from '../store/applications.ts'
import { ACCESS_TOPIC, accessTeamKey, accessUserKey, USER_TOPIC } from '../store/topics.ts'
import { endApplicationTokens } from '../oidc/applications.ts'
import { teamKey, type AccessModel } from './model.ts'
import type { ConfiguredName } from './rules.ts'
import { contentTypeNamed, inPlatformOrder, permissionNamed, PLATFORM_AUDITOR, rolePermissionProblem, type ContentType, type Permission } from './permissions.ts'

export interface AssignmentInput {
  roleDefinitionId: number
  actorId: number
  /** The organization's or team's id; absent for a platform-wide role. */
  objectId?: number | null | undefined
}

/** A role to give on an object, to whom the caller says later (AccessAdmin.checkUserGrants). */
export type Grant = Omit<AssignmentInput, 'actorId'>

/** A grant checked for its giver: the role and the object it is given on. */
export interface CheckedGrant {
  readonly role: RoleDefinition
  readonly object: { type: ObjectType; id: number }
}

/** A role given: its assignment, and whether this gave it (false: it was held already). */
export interface GivenRole {
  assignment: RoleAssignment
  created: boolean
}

interface CheckedAssignment {
  role: RoleDefinition
  given: Omit<RoleAssignment, 'id' | 'created'>
}

/** The managed role of a team's members (teams/{id}/users/). */
const TEAM_MEMBER = 'Team Member'

const OBJECT_TYPE_OF: Record<ContentType, 'organization' | 'team'> = { 'shared.organization': 'organization', 'shared.team': 'team' }

/**
 * Every change to organizations, teams, role definitions and assignments, and who may make it: superusers
 * anything; an organization's admins (`change_organization`, `add_team`, ...) their organization and its teams;
 * a team's admins (`change_team`) their team and its members; a Platform Auditor nothing. Each change is one
 * transaction with its `access` event, so every process applies it before its next request.
 * Input that refers to something missing or mismatched is a 400 naming the field, and nothing is written.
 */
export class AccessAdmin {
  readonly #store: Store
  readonly #bus: EventBus
  readonly #model: AccessModel
  #configured: NamesInConfiguration

  /** `configured`: the organizations and teams the configuration's rules and mappings name (src/access/rules.ts). */
  constructor(store: Store, bus: EventBus, model: AccessModel, configured: readonly ConfiguredName[]) {
    this.#store = store
    this.#bus = bus
    this.#model = model
    this.#configured = new NamesInConfiguration(configured)
  }

  /** The organizations and teams the configuration names, once a reload of it replaced the services' rules. */
  useConfiguredNames(configured: readonly ConfiguredName[]): void {
    this.#configured = new NamesInConfiguration(configured)
  }

  async createOrganization(actor: User, input: { name: string; description?: string | undefined }): Promise<Organization> {
    requireSuperuser(actor)
    return this.#change('organization', (tx) => tx.access.createOrganization(input))
  }

  async updateOrganization(actor: User, id: number, changes: { name?: string | undefined; description?: string | undefined }): Promise<Changed<Organization>> {
    const organization = await this.#requireOrganization(id)
    this.#require(actor, 'shared.change_organization', 'organization', id)
    if (changes.name !== undefined && changes.name !== organization.name) {
      this.#requireUnnamed(actor, this.#configured.namesOrganization(organization.name))
      // Only superusers create organizations: taking a name the configuration uses is creating that organization.
      if (this.#configured.namesOrganization(changes.name)) requireSuperuser(actor, NAME_IN_CONFIGURATION)
    }
    return this.#change('organization', async (tx) => (await tx.access.updateOrganization(id, changes)) ?? notFound('organization'))
  }

  /** Deletes an organization; answers what went with it, for the audit trail to record each as deleted too. */
  async deleteOrganization(actor: User, id: number): Promise<{ teams: Team[]; applications: Application[] }> {
    const organization = await this.#requireOrganization(id)
    this.#require(actor, 'shared.delete_organization', 'organization', id)
    const teams = this.#model.teams.filter((t) => t.organizationId === id)
    this.#requireUnnamed(actor, this.#configured.namesOrganization(organization.name) || teams.some((t) => this.#configured.namesTeam(organization.name, t.name)))
    return this.#change('organization', async (tx, announce) => {
      // Its applications go with it (a cascade), and the tokens they issued with them. Only superusers manage
      // applications (src/api/applications.ts), so only they delete an organization that has any: its admins would
      // otherwise delete, and end the tokens of, clients they may not touch one by one.
      const applications = await tx.applications.inOrganization(id)
      if (applications.length && !actor.isSuperuser) throw new PermissionDenied(HAS_APPLICATIONS)
      const teamsGone = (await tx.access.deleteOrganization(id)) ?? notFound('organization')
      await endApplicationTokens(tx, announce, applications.map((application) => application.clientId))
      return { teams: teamsGone, applications }
    })
  }

  async createTeam(actor: User, input: { name: string; organizationId: number; description?: string | undefined }): Promise<Team> {
    const organization = await this.#store.access.findOrganization(input.organizationId)
    if (!organization) throw new ValidationFailed({ organization: [pkDoesNotExist(input.organizationId)] })
    this.#require(actor, 'shared.add_team', 'organization', organization.id)
    try {
      return await this.#change('team', (tx) => tx.access.createTeam(input))
    } catch (error) {
      // The organization deleted since it was found (by another request or process): as if it had been before.
      if (error instanceof ForeignKeyViolation) throw new ValidationFailed({ organization: [pkDoesNotExist(input.organizationId)] })
      throw error
    }
  }

  async updateTeam(actor: User, id: number, changes: { name?: string | undefined; description?: string | undefined; organizationId?: number | undefined }): Promise<Changed<Team>> {
    const team = await this.#requireTeam(id)
    this.#require(actor, 'shared.change_team', 'team', id)
    if (changes.organizationId !== undefined && changes.organizationId !== team.organizationId) {
      throw new ValidationFailed({ organization: ['A team stays in the organization it was created in: its roles and members belong to it.'] })
    }
    if (changes.name !== undefined && changes.name !== team.name) {
      this.#requireUnnamed(actor, this.#namesTeam(team))
      // Taking a name the configuration uses is creating that team, which its organization's admins may
      // (`add_team`), not a team admin: a rule naming a team alone would otherwise admit any team admin's members.
      if (this.#configured.namesTeam(this.#model.organization(team.organizationId)?.name ?? '', changes.name)) {
        this.#require(actor, 'shared.add_team', 'organization', team.organizationId, NAME_IN_CONFIGURATION)
      }
    }
    // Only what the store changes: the organization, checked above, is a column no update writes.
    const { name, description } = changes
    return this.#change('team', async (tx) => (await tx.access.updateTeam(id, { name, description })) ?? notFound('team'))
  }

  async deleteTeam(actor: User, id: number): Promise<void> {
    const team = await this.#requireTeam(id)
    this.#require(actor, 'shared.delete_team', 'team', id)
    this.#requireUnnamed(actor, this.#namesTeam(team))
    await this.#change('team', async (tx) => (await tx.access.deleteTeam(id)) || notFound('team'))
  }

  async createRoleDefinition(actor: User, input: { name: string; description?: string | undefined; contentType?: string | null | undefined; permissions: string[] }): Promise<RoleDefinition> {
    requireSuperuser(actor)
    const { contentType, permissions } = readRoleDefinition(input.contentType ?? null, input.permissions)
    checkRolePermissions(contentType, permissions)
    return this.#change('role_definition', (tx) => tx.access.createRoleDefinition({ ...input, contentType, permissions }))
  }

  /**
   * Changes a custom role definition; its permissions are checked as they will be after the change. Its type
   * changes only while no one holds it: an assignment names an organization or team by id, and would otherwise
   * come to name the other kind of object with that id.
   */
  async updateRoleDefinition(actor: User, id: number, changes: { name?: string | undefined; description?: string | undefined; contentType?: string | null | undefined; permissions?: string[] | undefined }): Promise<Changed<RoleDefinition>> {
    requireSuperuser(actor)
    const role = await this.#requireMutableRole(id)
    const given = readRoleDefinition(changes.contentType === undefined ? role.contentType : changes.contentType, changes.permissions ?? role.permissions)
    checkRolePermissions(given.contentType, given.permissions)
    const typeChanges = given.contentType !== role.contentType
    return this.#change('role_definition', async (tx) => {
      const update = { name: changes.name, description: changes.description, contentType: given.contentType, permissions: changes.permissions === undefined ? undefined : given.permissions }
      const updated = (await tx.access.updateRoleDefinition(id, update)) ?? notFound('role definition')
      // Counted after the update, which holds the role's row: an assignment under way (findRoleDefinitionToAssign)
      // either committed before, and is counted, or waits and then sees the new type.
      if (typeChanges && await isAssigned(tx, id)) {
        throw new ValidationFailed({ content_type: ['The type of a role definition cannot change while it is assigned: remove its assignments first.'] })
      }
      return updated
    })
  }

  async deleteRoleDefinition(actor: User, id: number): Promise<void> {
    requireSuperuser(actor)
    await this.#requireMutableRole(id)
    await this.#change('role_definition', async (tx) => (await tx.access.deleteRoleDefinition(id)) || notFound('role definition'))
  }

  /**
   * Grants a role to a user or a team. The caller must be able to change the object (`change_organization` or
   * `change_team`, as django-ansible-base asks) and hold every permission the role gives on it; platform-wide roles
   * only superusers grant. A team holds roles only in its own organization, given by those who see it. Granting
   * Platform Auditor sets the account's auditor flag in the same transaction: the role and the flag are one thing.
   */
  /**
   * Gives a role; one already held is answered with its assignment and `created: false`, as the platform's
   * give_permission returns the existing one, so that nothing is announced or audited twice.
   */
  async assign(actor: User, kind: Actor, input: AssignmentInput): Promise<GivenRole> {
    const [given] = await this.assignAll(actor, kind, [input])
    return given!
  }

  /**
   * Gives several roles at once, all or none: each is checked as `assign` checks it before any is given, and all are
   * given in one transaction, so one that fails there (a user deleted meanwhile) leaves none of the others given.
   */
  async assignAll(actor: User, kind: Actor, inputs: readonly AssignmentInput[]): Promise<GivenRole[]> {
    const checked: CheckedAssignment[] = []
    for (const input of inputs) checked.push(await this.#checkAssignment(actor, kind, input))
    return this.#bus.change((tx, announce) => this.#give(tx, announce, kind, checked))
  }

  /**
   * Checks, as `assign` does, roles the caller gives to a user who is being created or changed: the grants are then
   * given with `giveToUser` in that change's own transaction, so the account and its roles commit together or not at
   * all. The user is not looked up: the caller's change is what makes or holds them.
   */
  async checkUserGrants(actor: User, grants: readonly Grant[]): Promise<CheckedGrant[]> {
    const checked: CheckedGrant[] = []
    for (const grant of grants) checked.push(await this.#checkGrant(actor, grant))
    return checked
  }

  /** Gives grants `checkUserGrants` checked to the user, in the caller's transaction; news of them is announced with it. */
  async giveToUser(tx: Repositories, announce: Announce, userId: number, grants: readonly CheckedGrant[]): Promise<GivenRole[]> {
    const checked = grants.map(({ role, object }) => ({ role, given: { roleDefinitionId: role.id, actor: 'user' as const, actorId: userId, objectType: object.type, objectId: object.id } }))
    return this.#give(tx, announce, 'user', checked)
  }

  /**
   * Makes the teams an import names (`users import --groups-to-teams`) that the organization does not have yet, and
   * makes each user a member of theirs, as associating them with teams/{id}/users/ gives Team Member: in the import's
   * own transaction, so that its accounts, teams and memberships commit together or not at all. Only the command line
   * asks, which may do what a superuser may. A membership held already is answered with `created` false.
   */
  async joinTeams(tx: Repositories, announce: Announce, organizationId: number, memberships: readonly { userId: number; teams: readonly string[] }[]): Promise<{ created: Team[]; given: GivenRole[] }> {
    const member = await tx.access.findRoleDefinitionByName(TEAM_MEMBER)
    if (!member) throw new Error(`the managed role ${TEAM_MEMBER} is missing`)
    const teams = new Map<string, Team>()
    const created: Team[] = []
    for (const name of new Set(memberships.flatMap((membership) => membership.teams))) {
      let team = await tx.access.findTeamByName(organizationId, name)
      if (!team) created.push(team = await tx.access.createTeam({ name, organizationId }))
      teams.set(name, team)
    }
    const given: GivenRole[] = []
    for (const { userId, teams: names } of memberships) {
      for (const name of names) given.push(await tx.access.assign({ roleDefinitionId: member.id, actor: 'user', actorId: userId, objectType: 'team', objectId: teams.get(name)!.id }))
    }
    if (created.length) announce(ACCESS_TOPIC, 'team')
    announceAssignments(announce, 'user', given.filter((result) => result.created).map((result) => result.assignment))
    return { created, given }
  }

  async #give(tx: Repositories, announce: Announce, kind: Actor, checked: readonly CheckedAssignment[]): Promise<GivenRole[]> {
    const results: GivenRole[] = []
    for (const { role, given } of checked) {
      // The object was read as the role's type said before this transaction; a type changed since would leave the
      // assignment naming an object of the other kind.
      const current = await tx.access.findRoleDefinitionToAssign(role.id)
      if (!current) throw new ValidationFailed({ role_definition: [pkDoesNotExist(role.id)] })
      if (current.contentType !== role.contentType) throw new ValidationFailed({ role_definition: ['The role definition\'s type changed meanwhile: give it again.'] })
      // The one given it, held as the insert's foreign key would, but refused in the platform's words rather than a 500.
      if (!(await tx.access.lockObjectToAssign(kind, given.actorId))) throw new AssigneeMissing(kind, given.actorId)
      const result = await tx.access.assign(given)
      // Checked once the assignment is written, under a lock that keeps the object until this commits: one deleted
      // before (or by another process meanwhile) is refused here, and one deleted after takes the assignment with it.
      if (given.objectType !== 'platform' && !(await tx.access.lockObjectToAssign(given.objectType, given.objectId))) {
        throw new AssignedObjectMissing(given.objectId)
      }
      results.push(result)
      if (result.created && kind === 'user' && role.name === PLATFORM_AUDITOR) await setAuditorFlag(tx, announce, given.actorId, true)
    }
    announceAssignments(announce, kind, results.filter((result) => result.created).map((result) => result.assignment))
    return results
  }

  /** What `assign` checks before it gives a role: the one it is given to, then the grant itself (#checkGrant). */
  async #checkAssignment(actor: User, kind: Actor, input: AssignmentInput): Promise<CheckedAssignment> {
    const target = kind === 'user' ? await this.#store.users.findById(input.actorId) : await this.#store.access.findTeam(input.actorId)
    if (!target) throw new ValidationFailed({ [kind]: [pkDoesNotExist(input.actorId)] })
    const { role, object } = await this.#checkGrant(actor, input)
    if (kind === 'team') {
      if (object.type === 'platform') throw new ValidationFailed({ role_definition: ['Platform-wide roles are given to users, not teams.'] })
      // Only to a team the giver sees, as the platform takes the team from those the caller may view: a team admin
      // would otherwise make the members of any team of the organization members of theirs.
      this.#require(actor, 'shared.view_team', 'team', target.id)
      const organizationOfObject = object.type === 'organization' ? object.id : (await this.#requireTeam(object.id)).organizationId
      if (organizationOfObject !== (target as Team).organizationId) {
        throw new ValidationFailed({ team: ['A team can only hold roles in its own organization.'] })
      }
    }
    return { role, given: { roleDefinitionId: role.id, actor: kind, actorId: input.actorId, objectType: object.type, objectId: object.id } }
  }

  /** The role, the object it is given on, and the caller's rights to give it there. */
  async #checkGrant(actor: User, grant: Grant): Promise<CheckedGrant> {
    const role = await this.#store.access.findRoleDefinition(grant.roleDefinitionId)
    if (!role) throw new ValidationFailed({ role_definition: [pkDoesNotExist(grant.roleDefinitionId)] })
    const object = await this.#objectOf(role, grant.objectId)
    this.#requireChange(actor, object)
    this.#requireHeld(actor, role, object)
    return { role, object }
  }

  async unassign(actor: User, kind: Actor, id: number): Promise<void> {
    await this.unassignAll(actor, kind, [id])
  }

  /** Takes several assignments back at once, all or none, each checked as `unassign` checks it before any is taken. */
  async unassignAll(actor: User, kind: Actor, ids: readonly number[]): Promise<void> {
    const checked: { id: number; assignment: RoleAssignment; role: RoleDefinition | undefined }[] = []
    for (const id of ids) {
      const assignment = await this.#store.access.findAssignment(kind, id)
      if (!assignment) notFound('role assignment')
      const object = { type: assignment.objectType, id: assignment.objectId }
      this.#requireChange(actor, object)
      const role = this.#model.roleDefinition(assignment.roleDefinitionId) ?? await this.#store.access.findRoleDefinition(assignment.roleDefinitionId)
      if (role) this.#requireHeld(actor, role, object)
      checked.push({ id, assignment, role })
    }
    await this.#bus.change(async (tx, announce) => {
      for (const { id, assignment, role } of checked) {
        if (!(await tx.access.unassign(kind, id))) notFound('role assignment')
        if (kind === 'user' && role?.name === PLATFORM_AUDITOR) await setAuditorFlag(tx, announce, assignment.actorId, false)
      }
      announceAssignments(announce, kind, checked.map(({ assignment }) => assignment))
    })
  }

  /**
   * Sets a user's roles from a directory or SSO mapping (src/access/mappings.ts): grants the `wanted` ones of
   * `mapped`, revokes the others of `mapped`, leaves every other grant alone. Returns whether anything changed; a
   * change also announces the user, so every process drops the credentials it verified for them.
   */
  async applyMapped(userId: number, mapped: readonly MappedGrant[], wanted: readonly MappedGrant[]): Promise<MappedChanges> {
    const unchanged: MappedChanges = { granted: [], revoked: [], skipped: [] }
    if (!mapped.length) return unchanged
    const current = await this.#heldOn(userId, mapped)
    const held = new Set(current.map((a) => grantKey({ roleDefinitionId: a.roleDefinitionId, objectType: a.objectType, objectId: a.objectId })))
    const wantedKeys = new Set(wanted.map(grantKey))
    const toGrant = wanted.filter((g) => !held.has(grantKey(g)))
    const toRevoke = mapped.filter((g) => !wantedKeys.has(grantKey(g)) && held.has(grantKey(g)))
    if (!toGrant.length && !toRevoke.length) return unchanged
    return this.#bus.change(async (tx, announce) => {
      const granted: RoleAssignment[] = []
      const revoked: RoleAssignment[] = []
      const skipped: MappedGrant[] = []
      for (const g of toGrant) {
        const given = await tx.access.assign({ actor: 'user', actorId: userId, roleDefinitionId: g.roleDefinitionId, objectType: g.objectType, objectId: g.objectId })
        // As #give checks the API's assignments: once written, under the lock that keeps the object until this
        // commits. One deleted since the snapshot named it is skipped, not refused, so the sign-in goes on without it.
        if (g.objectType !== 'platform' && !(await tx.access.lockObjectToAssign(g.objectType, g.objectId))) {
          await tx.access.unassignUser(userId, g.roleDefinitionId, g.objectType, g.objectId)
          skipped.push(g)
          continue
        }
        if (given.created) granted.push(given.assignment)
      }
      for (const g of toRevoke) {
        if (await tx.access.unassignUser(userId, g.roleDefinitionId, g.objectType, g.objectId)) revoked.push(current.find((a) => grantKey(a) === grantKey(g))!)
      }
      announce(ACCESS_TOPIC, accessUserKey(userId))
      announce(USER_TOPIC, String(userId))
      return { granted, revoked, skipped }
    })
  }

  /**
   * Every role the user holds on the objects `mapped` names, page by page: a user may hold any number of roles
   * elsewhere, and a mapped one read past a fixed limit would never be revoked.
   */
  async #heldOn(userId: number, mapped: readonly MappedGrant[]): Promise<RoleAssignment[]> {
    const onObjects = {
      organizations: mapped.filter((g) => g.objectType === 'organization').map((g) => g.objectId),
      teams: mapped.filter((g) => g.objectType === 'team').map((g) => g.objectId),
      platform: mapped.some((g) => g.objectType === 'platform'),
    }
    const held: RoleAssignment[] = []
    for (;;) {
      const { results } = await this.#store.access.listAssignments('user', { offset: held.length, limit: HELD_PAGE, actorId: userId, onObjects })
      held.push(...results)
      if (results.length < HELD_PAGE) return held
    }
  }

  async #change<T>(what: string, work: (tx: Repositories, announce: Announce) => Promise<T>): Promise<T> {
    try {
      return await this.#bus.change(async (tx, announce) => {
        const result = await work(tx, announce)
        announce(ACCESS_TOPIC, what)
        return result
      })
    } catch (error) {
      if (error instanceof UniqueViolation) throw duplicateName(what)
      throw error
    }
  }

  async #objectOf(role: RoleDefinition, objectId: number | null | undefined): Promise<{ type: ObjectType; id: number }> {
    if (role.contentType === null) {
      // django-ansible-base's words (BaseAssignmentSerializer, ansible_base/rbac/api/serializers.py), as both below.
      if (objectId !== undefined && objectId !== null) throw new ValidationFailed({ object_id: ['System role does not allow for object assignment'] })
      return { type: 'platform', id: 0 }
    }
    const type = OBJECT_TYPE_OF[role.contentType as ContentType]
    if (objectId === undefined || objectId === null) throw new ValidationFailed({ object_id: ['Object must be specified for this role assignment'] })
    const exists = type === 'team' ? await this.#store.access.findTeam(objectId) : await this.#store.access.findOrganization(objectId)
    if (!exists) throw new AssignedObjectMissing(objectId)
    return { type, id: objectId }
  }

  #requireChange(actor: User, object: { type: ObjectType; id: number }): void {
    if (object.type === 'platform') return requireSuperuser(actor)
    this.#require(actor, object.type === 'team' ? 'shared.change_team' : 'shared.change_organization', object.type, object.id)
  }

  /**
   * Only a role the caller could hold gives or takes: every permission of it, on the object. Without this, a custom
   * role with `change_organization` alone would let its holder give themselves Organization Admin (and with it
   * `delete_organization`), or take that role from the organization's real admins.
   */
  #requireHeld(actor: User, role: RoleDefinition, object: { type: ObjectType; id: number }): void {
    this.#requirePermissions(actor, role, object)
    // Membership of a team also gives every role the team passes on (its own, and those of the teams it is a member
    // of): a team admin adding members to a team that holds Organization Admin would otherwise make anyone,
    // themselves included, an organization admin.
    if (object.type === 'team' && role.permissions.includes('shared.member_team')) {
      for (const passed of this.#model.heldByTeam(object.id)) this.#requirePermissions(actor, passed.role, { type: passed.objectType, id: passed.objectId })
    }
  }

  #requirePermissions(actor: User, role: RoleDefinition, object: { type: ObjectType; id: number }): void {
    if (object.type === 'platform') return requireSuperuser(actor)
    for (const permission of role.permissions as Permission[]) this.#require(actor, permission, object.type, object.id)
  }

  #namesTeam(team: Team): boolean {
    return this.#configured.namesTeam(this.#model.organization(team.organizationId)?.name ?? '', team.name)
  }

  /**
   * Renaming or deleting an organization or team the configuration names takes it out of what the rules and
   * mappings mean (a deny rule escaped, a mapping that no longer revokes): superusers only, who answer for the
   * configuration. Renaming into such a name is as creating one, which admins may.
   */
  #requireUnnamed(actor: User, named: boolean): void {
    if (named && !actor.isSuperuser) {
      throw new PermissionDenied('Access rules or membership mappings in the configuration name this; only a superuser may rename or delete it.')
    }
  }

  #require(actor: User, permission: Permission, type: 'organization' | 'team', id: number, why?: string): void {
    if (!this.#model.can(actor, permission, type, id)) throw new PermissionDenied(why)
  }

  async #requireOrganization(id: number): Promise<Organization> {
    return (await this.#store.access.findOrganization(id)) ?? notFound('organization')
  }

  async #requireTeam(id: number): Promise<Team> {
    return (await this.#store.access.findTeam(id)) ?? notFound('team')
  }

  async #requireMutableRole(id: number): Promise<RoleDefinition> {
    const role = (await this.#store.access.findRoleDefinition(id)) ?? notFound('role definition')
    if (role.managed) throw new ManagedRole()
    return role
  }
}

/** The configuration's names, as sets to look up: organizations, teams of an organization, and teams named alone. */
class NamesInConfiguration {
  readonly #organizations = new Set<string>()
  readonly #teams = new Set<string>()
  readonly #teamsAlone = new Set<string>()

  constructor(names: readonly ConfiguredName[]) {
    for (const name of names) {
      if (name.organization !== undefined) this.#organizations.add(name.organization)
      if (name.team === undefined) continue
      if (name.organization === undefined) this.#teamsAlone.add(name.team)
      else this.#teams.add(teamKey(name.organization, name.team))
    }
  }

  /** Named itself, or as the organization of a team or a role's scope. */
  namesOrganization(name: string): boolean {
    return this.#organizations.has(name)
  }

  namesTeam(organization: string, team: string): boolean {
    return this.#teamsAlone.has(team) || this.#teams.has(teamKey(organization, team))
  }
}

/** The user's role assignments a mapping made and ended at one sign-in. */
export interface MappedChanges {
  readonly granted: readonly RoleAssignment[]
  readonly revoked: readonly RoleAssignment[]
  /** Wanted grants whose organization or team was deleted since the mapping named it: not given. */
  readonly skipped: readonly MappedGrant[]
}

/** A role a mapping may grant: one role definition on one organization or team. */
export interface MappedGrant {
  roleDefinitionId: number
  objectType: ObjectType
  objectId: number
}

/**
 * Users or teams named one by one in the news of a change of assignments (`accessUserKey`, `accessTeamKey`): each
 * process reads their own assignments again. A change of more holders' is news for everyone, and every process
 * reloads everything.
 */
const MAX_HOLDER_EVENTS = 100

/**
 * The news of assignments given or taken: each holder's, when few enough; otherwise a reload of everything. A team's
 * news has each process work out again what the team passes on, and the access of its members and of the members of
 * the teams that are members of it.
 */
function announceAssignments(announce: Announce, kind: Actor, changed: readonly RoleAssignment[]): void {
  if (!changed.length) return
  const holders = new Set(changed.map((assignment) => assignment.actorId))
  const key = kind === 'user' ? accessUserKey : accessTeamKey
  if (holders.size <= MAX_HOLDER_EVENTS) for (const id of holders) announce(ACCESS_TOPIC, key(id))
  else announce(ACCESS_TOPIC, `${kind}_assignment`)
}

/** Assignments read at a time by applyMapped. */
const HELD_PAGE = 1000

function grantKey(grant: MappedGrant): string {
  return `${grant.roleDefinitionId}:${grant.objectType}:${grant.objectId}`
}

/**
 * A duplicate name, answered as the platform's serializers do: a team by the UniqueTogetherValidator of its
 * `unique_together` (organization, name); an organization or role definition by the UniqueValidator Django REST
 * framework builds from Django's `'%(model_name)s with this %(field_label)s already exists.'`, filled with the
 * model's verbose name as it is, in lower case (Django's own model validation would capitalize it; DRF does not).
 */
function duplicateName(what: string): ValidationFailed {
  if (what === 'team') return new ValidationFailed({ non_field_errors: ['The fields organization, name must make a unique set.'] })
  const model = what === 'organization' ? 'organization' : 'role definition'
  return new ValidationFailed({ name: [`${model} with this name already exists.`] })
}

function requireSuperuser(actor: User, why?: string): void {
  if (!actor.isSuperuser) throw new PermissionDenied(why)
}

const HAS_APPLICATIONS = 'This organization has OAuth2 applications, which only superusers manage; a superuser must delete them (or the organization) first.'

const NAME_IN_CONFIGURATION = 'Access rules or membership mappings in the configuration use this name; only those who may create one of that name may rename to it.'

function notFound(what: string): never {
  throw new NotFound(`No such ${what}.`)
}

/**
 * A role definition's type and permissions as the platform's fields read them (any prefix, or none), in the
 * platform's spelling and without repeats; 400 naming each field that names something unknown, as its
 * relational fields answer.
 */
function readRoleDefinition(contentType: string | null, permissions: readonly string[]): { contentType: ContentType | null; permissions: Permission[] } {
  const problems: Record<string, string[]> = {}
  const type = contentType === null ? null : contentTypeNamed(contentType)
  if (type === undefined) problems.content_type = [pkDoesNotExist(contentType!)]
  const unknown = permissions.filter((p) => permissionNamed(p) === undefined)
  if (unknown.length) problems.permissions = unknown.map(pkDoesNotExist)
  if (Object.keys(problems).length) throw new ValidationFailed(problems)
  return { contentType: type!, permissions: inPlatformOrder([...new Set(permissions.map((p) => permissionNamed(p)!))]) }
}

function checkRolePermissions(contentType: ContentType | null, permissions: readonly Permission[]): void {
  const problem = rolePermissionProblem(contentType, permissions)
  if (problem) throw new ValidationFailed({ permissions: [problem] })
}

async function isAssigned(tx: Repositories, roleDefinitionId: number): Promise<boolean> {
  for (const actor of ['user', 'team'] as const) {
    if ((await tx.access.listAssignments(actor, { offset: 0, limit: 1, roleDefinitionId })).count) return true
  }
  return false
}

async function setAuditorFlag(tx: Repositories, announce: Announce, userId: number, value: boolean): Promise<void> {
  await tx.users.update(userId, { isSystemAuditor: value })
  announce(USER_TOPIC, String(userId))
}

/**
 * Runs in every account change's transaction (Accounts.onChange): when a directory or SSO mapping sets or clears
 * `is_system_auditor`, the Platform Auditor assignment follows, so the flag and the role never disagree.
 */
export async function keepAuditorRoleWithFlag(tx: Repositories, user: User): Promise<void> {
  const auditor = await tx.access.findRoleDefinitionByName(PLATFORM_AUDITOR)
  if (!auditor) return
  if (user.isSystemAuditor) await tx.access.assign({ roleDefinitionId: auditor.id, actor: 'user', actorId: user.id, objectType: 'platform', objectId: 0 })
  else await tx.access.unassignUser(user.id, auditor.id, 'platform', 0)
}
