import { isDeepStrictEqual } from 'node:util'
import type { EventBus } from '../store/event-bus.ts'
import { ACCESS_TOPIC, accessUser, USER_TOPIC } from '../store/topics.ts'
import { assignmentsFingerprintOf, type AccessRecords, type ObjectType, type Organization, type RoleAssignment, type RoleDefinition, type Team } from '../store/access.ts'
import type { Store } from '../store/store.ts'
import type { User } from '../store/users.ts'
import { PLATFORM_AUDITOR, type Permission } from './permissions.ts'
import { oneReloadAtATime } from '../store/one-reload-at-a-time.ts'


/** A role a user holds on one object, directly or through a team. */
export interface HeldRole {
  role: RoleDefinition
  objectType: ObjectType
  objectId: number
}

/** Who a user is in access control's terms: what the rules engine matches and the identity token carries. */
export interface UserAccess {
  readonly teams: readonly Team[]
  readonly organizations: readonly Organization[]
  /** Names of the role definitions held anywhere, sorted. */
  readonly roles: readonly string[]
  readonly teamNames: ReadonlySet<string>
  /** Each team as `teamKey(organization, team)`: what a rule naming the organization too matches. */
  readonly teamKeys: ReadonlySet<string>
  readonly organizationNames: ReadonlySet<string>
  readonly roleNames: ReadonlySet<string>
  /** Each role held on an organization or team as `roleKey(role, organization, team)`: what a rule naming where matches. */
  readonly roleKeys: ReadonlySet<string>
  readonly held: readonly HeldRole[]
  /** Organizations and teams as group paths, `/Organization` and `/Organization/Team` (a `/` in a name as `~/`), sorted. */
  readonly groups: readonly string[]
}

/** The organizations, teams, users (besides superusers) and role assignments' objects one user may see. */
export interface Visibility {
  readonly organizations: ReadonlySet<number>
  readonly teams: ReadonlySet<number>
  /**
   * Themselves and the members of the organizations they see; superusers show to everyone. Undefined: every user
   * (an organization admin).
   */
  readonly users: ReadonlySet<number> | undefined
  readonly assignments: { readonly organizations: ReadonlySet<number>; readonly teams: ReadonlySet<number>; readonly platform: boolean }
}

/** The names rules can refer to, as they are now: role definitions, teams alone, teams of organizations, organizations. */
export interface KnownNames {
  readonly roles: ReadonlySet<string>
  readonly teams: ReadonlySet<string>
  readonly teamKeys: ReadonlySet<string>
  readonly organizations: ReadonlySet<string>
}

/** A team in an organization, as UserAccess.teamKeys holds it: names cannot hold NUL (src/store/database.ts refuses it). */
export function teamKey(organization: string, team: string): string {
  return `${organization}\u0000${team}`
}

/** A role held on an organization, or on a team of it, as UserAccess.roleKeys holds it. */
export function roleKey(role: string, organization: string, team?: string): string {
  return team === undefined ? `${role}\u0000${organization}` : `${role}\u0000${teamKey(organization, team)}`
}

const NOBODY: UserAccess = freezeAccess([], [], [], [], [], [])

/**
 * Organizations, teams, roles and assignments, held in memory as one snapshot, so the request path reads
 * a map and nothing else. Every change writes the `access` event in its transaction (src/access/admin.ts). News
 * naming one user (`accessUserKey`), and any change of an account, has every process read that user's own
 * assignments again and work out anew only what rests on them; any other news, or news lost, the whole snapshot.
 * Memberships follow django-ansible-base: a user is in a team while they hold a role with `member_team` on it,
 * in an organization while they hold one with `member_organization` on it, directly or through a team; a team
 * passes the roles it holds to its members.
 */
export class AccessModel {
  readonly #store: Store
  readonly #namedInRules: ReadonlySet<string>
  #records: Omit<AccessRecords, 'assignments'> = { organizations: [], teams: [], roleDefinitions: [] }
  /** The assignments held, as read: each user's own, by user id, and the teams'. */
  #userAssignments = new Map<number, readonly RoleAssignment[]>()
  #teamAssignments: readonly RoleAssignment[] = []
  /** `assignmentsFingerprintOf` the assignments held, worked out when the safety net first asks after a change. */
  #heldFingerprint: string | undefined
  /**
   * Each user's access, worked out when first asked for (`#accessOf`) and kept until the next reload: working it out
   * for every user at each reload (100,000 users) took some three seconds of the process's one thread, and every
   * change of access anywhere asks every process to reload.
   */
  #byUser = new Map<number, UserAccess>()
  /** The roles each user holds directly, by user id. */
  #direct = new Map<number, readonly HeldRole[]>()
  /** The roles each team holds itself, by team id. */
  #ownByTeam = new Map<number, readonly HeldRole[]>()
  /** The members of each organization, directly or through a team, by organization id. */
  #members = new Map<number, Set<number>>()
  /** Every role a member of the team holds through it: its own, and those of the teams it is a member of. */
  #byTeam = new Map<number, readonly HeldRole[]>()
  #teams = new Map<number, Team>()
  #organizations = new Map<number, Organization>()
  #roles = new Map<number, RoleDefinition>()
  /**
   * Every read of the snapshot, one at a time: the periodic safety net's (`start`) too, so that a read begun before a
   * change can never be applied after the reload that change's news asked for. A reload asked for (`#forced`) reads
   * the whole snapshot; else users named by news (`#usersToRead`) have their own assignments read again, and nothing
   * else. The safety net reads the whole snapshot only when the database's assignments' fingerprint differs from
   * that of the assignments held, or the organizations, teams or role definitions from those held: with a role for
   * each of 100,000 users, reading every assignment took one to two seconds of the process's one thread, while every
   * request waited. A read that fails is asked for again, so the next one (news, or the safety net) makes it.
   */
  readonly #read = oneReloadAtATime(async () => {
    const forced = this.#forced
    const users = [...this.#usersToRead]
    this.#forced = false
    this.#usersToRead.clear()
    try {
      if (forced) await this.#readAll()
      else if (users.length) await this.#readUsers(users)
      else if (!(await this.#heldIsCurrent())) await this.#readAll()
    } catch (error) {
      this.#forced ||= forced
      for (const user of users) this.#usersToRead.add(user)
      throw error
    }
  })
  #forced = false
  readonly #usersToRead = new Set<number>()
  readonly #listeners: ((users?: readonly number[]) => void)[] = []
  #refresher: NodeJS.Timeout | undefined

  /** `namedInRules`: the usernames access rules name (src/access/rules.ts usernamesInRules). */
  constructor(store: Store, bus: EventBus, namedInRules: ReadonlySet<string>) {
    this.#store = store
    this.#namedInRules = namedInRules
    bus.on(ACCESS_TOPIC, (key) => {
      const userId = accessUser(key)
      return userId === undefined ? this.reload() : this.reloadUsers([userId])
    })
    // An account deleted takes its assignments with it, and one whose auditor flag changed gains or loses the Platform
    // Auditor role in the same transaction (keepAuditorRoleWithFlag): neither is news of access of its own.
    bus.on(USER_TOPIC, (key) => (key === 'all' ? undefined : this.reloadUsers([Number(key)])))
    bus.onMissed(() => this.reload())
  }

  /**
   * Whether what is held is what the database holds: the assignments' fingerprints match (the database's taken first:
   * a change committed after it changes the next one), and the organizations, teams and role definitions.
   */
  async #heldIsCurrent(): Promise<boolean> {
    const fingerprint = await this.#store.access.assignmentsFingerprint()
    this.#heldFingerprint ??= assignmentsFingerprintOf([...this.#userAssignments.values()].flat(), this.#teamAssignments)
    if (fingerprint !== this.#heldFingerprint) return false
    return isDeepStrictEqual(await this.#store.access.loadObjects(), this.#records)
  }

  /**
   * Runs in every process after each reload, with the users whose roles alone changed (none named: anyone's may
   * have): drop whatever was derived from their memberships.
   */
  onReload(listener: (users?: readonly number[]) => void): void {
    this.#listeners.push(listener)
  }

  /** Reads the snapshot again; a reload asked for while one runs gets one more after it, so none misses a change. */
  reload(): Promise<void> {
    this.#forced = true
    return this.#read()
  }

  /** Reads these users' own assignments again, and nothing else, as `reload` reads everything. */
  reloadUsers(userIds: readonly number[]): Promise<void> {
    const valid = userIds.filter((userId) => Number.isSafeInteger(userId) && userId > 0)
    if (!valid.length) return Promise.resolve()
    for (const userId of valid) this.#usersToRead.add(userId)
    return this.#read()
  }

  /**
   * Reads the snapshot again every `everyMs` as well, as everything else read from the database is
   * (`auth.max_stale_seconds`): a change whose news this process never read is applied within that long, where it
   * would otherwise hold until the next change of access anywhere. An unchanged snapshot changes nothing.
   */
  start(everyMs: number): void {
    if (this.#refresher) return
    this.#refresher = setInterval(() => this.#read().catch(() => {}), everyMs)
    this.#refresher.unref()
  }

  stop(): void {
    clearInterval(this.#refresher)
    this.#refresher = undefined
  }

  get organizations(): readonly Organization[] {
    return this.#records.organizations
  }

  get teams(): readonly Team[] {
    return this.#records.teams
  }

  get roleDefinitions(): readonly RoleDefinition[] {
    return this.#records.roleDefinitions
  }

  /** The names rules can refer to. */
  names(): KnownNames {
    return {
      roles: new Set(this.#records.roleDefinitions.map((r) => r.name)),
      teams: new Set(this.#records.teams.map((t) => t.name)),
      teamKeys: new Set(this.#records.teams.map((t) => teamKey(this.#organizations.get(t.organizationId)?.name ?? '', t.name))),
      organizations: new Set(this.#records.organizations.map((o) => o.name)),
    }
  }

  team(id: number): Team | undefined {
    return this.#teams.get(id)
  }

  organization(id: number): Organization | undefined {
    return this.#organizations.get(id)
  }

  roleDefinition(id: number): RoleDefinition | undefined {
    return this.#roles.get(id)
  }

  roleDefinitionNamed(name: string): RoleDefinition | undefined {
    return this.#records.roleDefinitions.find((role) => role.name === name)
  }

  /**
   * The user's teams, organizations and roles. The Platform Auditor role and the account's `is_system_auditor`
   * flag are one thing (src/access/admin.ts keeps them together); the flag is what is read here.
   */
  of(user: User): UserAccess {
    const access = this.#accessOf(user.id)
    if (user.isSystemAuditor === access.roleNames.has(PLATFORM_AUDITOR)) return access
    const auditor = this.roleDefinitionNamed(PLATFORM_AUDITOR)
    const held = user.isSystemAuditor
      ? [...access.held, ...(auditor ? [{ role: auditor, objectType: 'platform' as const, objectId: 0 }] : [])]
      : access.held.filter((h) => h.role.name !== PLATFORM_AUDITOR)
    return freezeAccess(access.teams, access.teamKeys, access.organizations, held, access.groups, access.roleKeys)
  }

  /**
   * What the user may see of organizations, teams, users and role assignments, as django-ansible-base shows them
   * (access_qs, visible_users, visible_items); undefined for everything (superusers and auditors).
   */
  visibleTo(user: User): Visibility | undefined {
    if (user.isSuperuser || user.isSystemAuditor) return undefined
    const held = this.of(user).held
    const organizations = new Set(this.#records.organizations.filter((o) => this.can(user, 'shared.view_organization', 'organization', o.id)).map((o) => o.id))
    const teams = new Set(this.#records.teams.filter((t) => this.can(user, 'shared.view_team', 'team', t.id)).map((t) => t.id))
    // Organization and team admins see every user, to add them (ORG_ADMINS_CAN_SEE_ALL_USERS, which AWX turns on
    // by default, and here for team admins too: they add members by name).
    const seesAllUsers = this.canSomewhere(user, 'shared.change_organization') || this.canSomewhere(user, 'shared.change_team')
    const users = seesAllUsers ? undefined : new Set([user.id, ...this.#membersOf(organizations)])
    // An assignment shows to whoever holds any permission on its object: a role on it, or on its organization
    // with a team permission; a platform-wide role, on every object of its permissions' models. Platform-wide
    // assignments show to holders of one.
    const onTeams = (h: HeldRole) => h.role.permissions.some((p) => p.endsWith('_team'))
    const onOrganizations = (h: HeldRole) => h.role.permissions.some((p) => p.endsWith('_organization'))
    const platformWide = held.filter((h) => h.objectType === 'platform')
    const assignedOrganizations = platformWide.some(onOrganizations)
      ? new Set(this.#records.organizations.map((o) => o.id))
      : new Set(held.filter((h) => h.objectType === 'organization').map((h) => h.objectId))
    const teamsThroughOrganizations = new Set(held.filter((h) => h.objectType === 'organization' && onTeams(h)).map((h) => h.objectId))
    const assignedTeams = new Set(this.#records.teams
      .filter((t) => platformWide.some(onTeams) || teamsThroughOrganizations.has(t.organizationId)
        || held.some((h) => h.objectType === 'team' && h.objectId === t.id))
      .map((t) => t.id))
    return { organizations, teams, users, assignments: { organizations: assignedOrganizations, teams: assignedTeams, platform: platformWide.length > 0 } }
  }

  *#membersOf(organizations: ReadonlySet<number>): Iterable<number> {
    for (const organizationId of organizations) yield* this.#members.get(organizationId) ?? []
  }

  /** The roles a team passes to its members: its own, and those of every team it is a member of, however deep. */
  heldByTeam(teamId: number): readonly HeldRole[] {
    return this.#byTeam.get(teamId) ?? []
  }

  /**
   * Whether the user may do what `permission` names on an organization or team. Superusers may do anything; a
   * role on an organization covers its teams; a platform-wide role covers everything.
   */
  can(user: User, permission: Permission, objectType: 'organization' | 'team', objectId: number): boolean {
    if (user.isSuperuser) return true
    const team = objectType === 'team' ? this.#teams.get(objectId) : undefined
    return this.of(user).held.some((h) => h.role.permissions.includes(permission) && (
      h.objectType === 'platform'
      || (h.objectType === objectType && h.objectId === objectId)
      || (team !== undefined && h.objectType === 'organization' && h.objectId === team.organizationId)))
  }

  /**
   * Whether `caller` may change or delete another user's record, as django-ansible-base's can_change_user decides
   * (ansible_base/rbac/policies.py): superusers anyone; no one else a superuser, nor a user in no organization; an
   * organization admin (`change_organization`) a user whose organizations are all theirs. Stricter than there: every
   * role the user holds must be on those organizations or their teams, and the caller must hold each of its
   * permissions there too (as AccessAdmin asks of whoever gives a role), so taking over the account (a new password)
   * gives the caller nothing they could not give themselves: a custom role with `change_organization` alone does not
   * reach an Organization Admin. A platform-wide role (Platform Auditor) never is, nor a user an access rule names
   * by username: what the rule lets them reach, no role the caller holds gave them.
   * The caller's own record is not judged here (src/api/me.ts has its rules).
   */
  canChangeUser(caller: User, target: User): boolean {
    if (caller.isSuperuser) return true
    if (target.isSuperuser || this.#namedInRules.has(target.username)) return false
    const access = this.of(target)
    if (!access.organizations.length) return false
    const theirs = (organizationId: number | undefined) => organizationId !== undefined && this.can(caller, 'shared.change_organization', 'organization', organizationId)
    const onTheirs = (h: HeldRole) => (h.objectType === 'organization' ? theirs(h.objectId) : h.objectType === 'team' && theirs(this.#teams.get(h.objectId)?.organizationId))
    return access.held.every((h) => onTheirs(h) && h.role.permissions.every((p) => this.can(caller, p as Permission, h.objectType as 'organization' | 'team', h.objectId)))
  }

  /** Whether the user holds `permission` anywhere (superusers always): what a form offering an action asks. */
  canSomewhere(user: User, permission: Permission): boolean {
    return user.isSuperuser || this.of(user).held.some((h) => h.role.permissions.includes(permission))
  }

  /** Where a held role is, by name; none for a platform-wide role. */
  #roleKeyOf(held: HeldRole): string[] {
    if (held.objectType === 'organization') {
      const organization = this.#organizations.get(held.objectId)
      return organization ? [roleKey(held.role.name, organization.name)] : []
    }
    if (held.objectType !== 'team') return []
    const team = this.#teams.get(held.objectId)
    const organization = team && this.#organizations.get(team.organizationId)
    return team && organization ? [roleKey(held.role.name, organization.name, team.name)] : []
  }

  #accessOf(userId: number): UserAccess {
    const known = this.#byUser.get(userId)
    if (known) return known
    const own = this.#direct.get(userId)
    if (!own) return NOBODY
    const ownByTeam = this.#ownByTeam
    const uniqueTeams = teamsReached(this.#teams, teamsMadeMemberOf(own), ownByTeam)
    const held = [...own, ...uniqueTeams.flatMap((t) => ownByTeam.get(t.id) ?? [])]
    const organizations = held.filter((h) => h.objectType === 'organization' && h.role.permissions.includes('shared.member_organization'))
      .map((h) => this.#organizations.get(h.objectId)).filter((o): o is Organization => o !== undefined)
    const uniqueOrganizations = [...new Map(organizations.map((o) => [o.id, o])).values()]
    const groups = [
      ...uniqueOrganizations.map((o) => groupPath(o.name)),
      ...uniqueTeams.flatMap((t) => teamGroupPath(this.#organizations.get(t.organizationId)?.name ?? '', t.name)),
    ].sort()
    const teamKeys = uniqueTeams.map((t) => teamKey(this.#organizations.get(t.organizationId)?.name ?? '', t.name))
    const access = freezeAccess(uniqueTeams, teamKeys, uniqueOrganizations, held, groups, held.flatMap((h) => this.#roleKeyOf(h)))
    this.#byUser.set(userId, access)
    return access
  }

  async #readAll(): Promise<void> {
    this.#apply(await this.#store.access.loadAll())
  }

  /**
   * Reads the users' own assignments again and works out anew what rests on them: their roles, the organizations
   * they are members of. A role no longer held is then gone, however many others are. One naming a role definition
   * this process has not read yet (news of it still to come) has the whole snapshot read instead.
   */
  async #readUsers(userIds: readonly number[]): Promise<void> {
    const read = await this.#store.access.assignmentsOfUsers(userIds)
    if (read.some((assignment) => !this.#roles.has(assignment.roleDefinitionId))) return this.#readAll()
    const byUser = new Map<number, RoleAssignment[]>(userIds.map((userId) => [userId, []]))
    for (const assignment of read) byUser.get(assignment.actorId)?.push(assignment)
    for (const [userId, assignments] of byUser) this.#setUser(userId, assignments)
    this.#heldFingerprint = undefined
    for (const listener of this.#listeners) listener(userIds)
  }

  #setUser(userId: number, assignments: readonly RoleAssignment[]): void {
    const held = assignments.map((a) => this.#heldRole(a)).filter((h): h is HeldRole => h !== undefined)
    if (assignments.length) this.#userAssignments.set(userId, assignments)
    else this.#userAssignments.delete(userId)
    if (held.length) this.#direct.set(userId, held)
    else this.#direct.delete(userId)
    for (const members of this.#members.values()) members.delete(userId)
    for (const organizationId of this.#organizationsJoined(held, this.#byTeam)) this.#addMember(this.#members, organizationId, userId)
    this.#byUser.delete(userId)
  }

  #heldRole(assignment: RoleAssignment): HeldRole | undefined {
    const role = this.#roles.get(assignment.roleDefinitionId)
    return role && { role, objectType: assignment.objectType, objectId: assignment.objectId }
  }

  /**
   * The organizations a user holding `own` is a member of: those they hold member_organization on, and those the
   * teams they are a member of (with the teams those are members of: `byTeam`) hold it on.
   */
  #organizationsJoined(own: readonly HeldRole[], byTeam: ReadonlyMap<number, readonly HeldRole[]>): number[] {
    const organizationsOf = (held: readonly HeldRole[]) => held
      .filter((h) => h.objectType === 'organization' && h.role.permissions.includes('shared.member_organization') && this.#organizations.has(h.objectId))
      .map((h) => h.objectId)
    return [...organizationsOf(own), ...teamsMadeMemberOf(own).flatMap((teamId) => this.#teams.has(teamId) ? organizationsOf(byTeam.get(teamId) ?? []) : [])]
  }

  #addMember(members: Map<number, Set<number>>, organizationId: number, userId: number): void {
    let memberIds = members.get(organizationId)
    if (!memberIds) members.set(organizationId, memberIds = new Set())
    memberIds.add(userId)
  }

  #apply(records: AccessRecords): void {
    this.#teams = new Map(records.teams.map((t) => [t.id, t]))
    this.#organizations = new Map(records.organizations.map((o) => [o.id, o]))
    this.#roles = new Map(records.roleDefinitions.map((r) => [r.id, r]))
    const userAssignments = new Map<number, RoleAssignment[]>()
    const teamAssignments: RoleAssignment[] = []
    const direct = new Map<number, HeldRole[]>()
    const ownByTeam = new Map<number, HeldRole[]>()
    for (const assignment of records.assignments) {
      if (assignment.actor === 'user') pushTo(userAssignments, assignment.actorId, assignment)
      else teamAssignments.push(assignment)
      const held = this.#heldRole(assignment)
      if (held) pushTo(assignment.actor === 'user' ? direct : ownByTeam, assignment.actorId, held)
    }
    const teamsFrom = (teamIds: readonly number[]) => teamsReached(this.#teams, teamIds, ownByTeam)
    const byTeam = new Map([...ownByTeam.keys()].map((teamId) => [teamId, teamsFrom([teamId]).flatMap((t) => ownByTeam.get(t.id) ?? [])]))
    const members = new Map<number, Set<number>>()
    for (const [userId, own] of direct) {
      for (const organizationId of this.#organizationsJoined(own, byTeam)) this.#addMember(members, organizationId, userId)
    }
    const { organizations, teams, roleDefinitions } = records
    this.#records = { organizations, teams, roleDefinitions }
    this.#userAssignments = userAssignments
    this.#teamAssignments = teamAssignments
    this.#heldFingerprint = undefined
    this.#direct = direct
    this.#ownByTeam = ownByTeam
    this.#members = members
    this.#byUser = new Map()
    this.#byTeam = byTeam
    for (const listener of this.#listeners) listener()
  }
}

/**
 * A Keycloak full group path, `/Organization` or `/Organization/Team`, with each `/` inside a name escaped as `~/`, as
 * Keycloak writes paths with its escaping of slashes on (KeycloakModelUtils.buildGroupPath). Unescaped, an organization
 * its admin renamed `Platform/Automation` would give its members the path of Platform's team Automation.
 */
function groupPath(...names: string[]): string {
  return names.map((name) => `/${name.replaceAll('/', '~/')}`).join('')
}

/**
 * A team's group path, or none when its organization's name ends in `~`: its `~` and the separator would read as an
 * escaped slash, the path of another organization (`Target~` and Ops give `/Target~/Ops`, the organization
 * `Target/Ops`). The API refuses such names (src/api/organizations.ts); one made otherwise gives its teams no path.
 */
function teamGroupPath(organization: string, team: string): string[] {
  return organization.endsWith('~') ? [] : [groupPath(organization, team)]
}

function pushTo<T>(map: Map<number, T[]>, key: number, value: T): void {
  const list = map.get(key)
  if (list) list.push(value)
  else map.set(key, [value])
}

/** The teams these roles make their holder a member of: those they hold a role with member_team on. */
function teamsMadeMemberOf(held: readonly HeldRole[]): number[] {
  return held.filter((h) => h.objectType === 'team' && h.role.permissions.includes('shared.member_team')).map((h) => h.objectId)
}

/**
 * The teams `teamIds` name, and the teams those are members of, however deep (django-ansible-base's team
 * parents), nearest first: each once, so teams that are members of each other end the walk.
 */
function teamsReached(teams: ReadonlyMap<number, Team>, teamIds: readonly number[], ownByTeam: ReadonlyMap<number, readonly HeldRole[]>): Team[] {
  const found = new Map<number, Team>()
  const waiting = [...teamIds]
  for (let next = 0; next < waiting.length; next++) {
    const team = teams.get(waiting[next]!)
    if (!team || found.has(team.id)) continue
    found.set(team.id, team)
    waiting.push(...teamsMadeMemberOf(ownByTeam.get(team.id) ?? []))
  }
  return [...found.values()]
}

/** Teams and organizations as Keycloak group paths, and the role names, for realm access tokens (src/oidc/claims.ts). */
export function keycloakMemberships(access: UserAccess): { groups: string[]; roles: string[] } {
  return { groups: [...access.groups], roles: [...access.roles] }
}

function freezeAccess(teams: readonly Team[], teamKeys: Iterable<string>, organizations: readonly Organization[], held: readonly HeldRole[], groups: readonly string[], roleKeys: Iterable<string>): UserAccess {
  const roles = [...new Set(held.map((h) => h.role.name))].sort()
  return Object.freeze({
    teams: Object.freeze([...teams]),
    organizations: Object.freeze([...organizations]),
    roles: Object.freeze(roles),
    teamNames: new Set(teams.map((t) => t.name)),
    teamKeys: new Set(teamKeys),
    organizationNames: new Set(organizations.map((o) => o.name)),
    roleNames: new Set(roles),
    roleKeys: new Set(roleKeys),
    held: Object.freeze([...held]),
    groups: Object.freeze([...groups]),
  })
}
