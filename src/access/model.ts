import { setImmediate as nextTurn } from 'node:timers/promises'
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
  /**
   * What requests read. A whole reload builds the next snapshot aside, letting other work run as it goes, and swaps it
   * in at once: built in place, in one turn of the event loop, it held every request of the process for seconds
   * (200,000 assignments).
   */
  #snapshot = emptySnapshot({ organizations: [], teams: [], roleDefinitions: [] })
  /**
   * Every whole read of the snapshot, one at a time: the periodic safety net's (`start`) too, so that a read begun
   * before a change can never be applied after the reload that change's news asked for. A reload asked for
   * (`#forced`) reads the whole snapshot; the safety net only when the database's assignments' fingerprint differs
   * from that of the assignments held, or the organizations, teams or role definitions from those held: with a role
   * for each of 100,000 users, reading every assignment took one to two seconds, while every request waited. A read
   * that fails is asked for again, so the next one (news, or the safety net) makes it.
   */
  readonly #readWhole = oneReloadAtATime(async () => {
    const forced = this.#forced
    this.#forced = false
    try {
      if (forced || !(await this.#heldIsCurrent())) await this.#readAll()
    } catch (error) {
      this.#forced ||= forced
      throw error
    }
  })
  /**
   * Users named by news (`#usersToRead`) have their own assignments read again, one read at a time, and applied to the
   * snapshot held at once, even while a whole read builds the next one: that one reads them again before it is
   * swapped in (`#newsDuringWholeRead`), so a role taken away stays taken.
   */
  readonly #readNamedUsers = oneReloadAtATime(async () => {
    const users = [...this.#usersToRead]
    this.#usersToRead.clear()
    if (!users.length) return
    try {
      await this.#readUsers(users)
    } catch (error) {
      for (const user of users) this.#usersToRead.add(user)
      throw error
    }
  })
  /** Users named by news since the whole read under way began: read again into its snapshot before the swap. */
  #newsDuringWholeRead: Set<number> | undefined
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
    // A user's read under way would be found missing from what is held, and everything read again for it.
    await this.#readNamedUsers().catch(() => {})
    const fingerprint = await this.#store.access.assignmentsFingerprint()
    const held = this.#snapshot
    held.heldFingerprint ??= assignmentsFingerprintOf([...held.userAssignments.values()].flat(), held.teamAssignments)
    if (fingerprint !== held.heldFingerprint) return false
    return isDeepStrictEqual(await this.#store.access.loadObjects(), held.records)
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
    return this.#readWhole()
  }

  /** Reads these users' own assignments again, and nothing else, as `reload` reads everything. */
  reloadUsers(userIds: readonly number[]): Promise<void> {
    const valid = userIds.filter((userId) => Number.isSafeInteger(userId) && userId > 0)
    if (!valid.length) return Promise.resolve()
    for (const userId of valid) {
      this.#usersToRead.add(userId)
      this.#newsDuringWholeRead?.add(userId)
    }
    return this.#readNamedUsers()
  }

  /**
   * Reads the snapshot again every `everyMs` as well, as everything else read from the database is
   * (`auth.max_stale_seconds`): a change whose news this process never read is applied within that long, where it
   * would otherwise hold until the next change of access anywhere. An unchanged snapshot changes nothing.
   */
  start(everyMs: number): void {
    if (this.#refresher) return
    this.#refresher = setInterval(() => {
      // Users whose read failed are read again too.
      this.#readNamedUsers().catch(() => {})
      this.#readWhole().catch(() => {})
    }, everyMs)
    this.#refresher.unref()
  }

  stop(): void {
    clearInterval(this.#refresher)
    this.#refresher = undefined
  }

  get organizations(): readonly Organization[] {
    return this.#snapshot.records.organizations
  }

  get teams(): readonly Team[] {
    return this.#snapshot.records.teams
  }

  get roleDefinitions(): readonly RoleDefinition[] {
    return this.#snapshot.records.roleDefinitions
  }

  /** The names rules can refer to. */
  names(): KnownNames {
    const { records, organizations } = this.#snapshot
    return {
      roles: new Set(records.roleDefinitions.map((r) => r.name)),
      teams: new Set(records.teams.map((t) => t.name)),
      teamKeys: new Set(records.teams.map((t) => teamKey(organizations.get(t.organizationId)?.name ?? '', t.name))),
      organizations: new Set(records.organizations.map((o) => o.name)),
    }
  }

  team(id: number): Team | undefined {
    return this.#snapshot.teams.get(id)
  }

  organization(id: number): Organization | undefined {
    return this.#snapshot.organizations.get(id)
  }

  roleDefinition(id: number): RoleDefinition | undefined {
    return this.#snapshot.roles.get(id)
  }

  roleDefinitionNamed(name: string): RoleDefinition | undefined {
    return this.#snapshot.records.roleDefinitions.find((role) => role.name === name)
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
    const { records } = this.#snapshot
    const organizations = new Set(records.organizations.filter((o) => this.can(user, 'shared.view_organization', 'organization', o.id)).map((o) => o.id))
    const teams = new Set(records.teams.filter((t) => this.can(user, 'shared.view_team', 'team', t.id)).map((t) => t.id))
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
      ? new Set(records.organizations.map((o) => o.id))
      : new Set(held.filter((h) => h.objectType === 'organization').map((h) => h.objectId))
    const teamsThroughOrganizations = new Set(held.filter((h) => h.objectType === 'organization' && onTeams(h)).map((h) => h.objectId))
    const assignedTeams = new Set(records.teams
      .filter((t) => platformWide.some(onTeams) || teamsThroughOrganizations.has(t.organizationId)
        || held.some((h) => h.objectType === 'team' && h.objectId === t.id))
      .map((t) => t.id))
    return { organizations, teams, users, assignments: { organizations: assignedOrganizations, teams: assignedTeams, platform: platformWide.length > 0 } }
  }

  *#membersOf(organizations: ReadonlySet<number>): Iterable<number> {
    const { members } = this.#snapshot
    for (const organizationId of organizations) yield* members.get(organizationId) ?? []
  }

  /** The roles a team passes to its members: its own, and those of every team it is a member of, however deep. */
  heldByTeam(teamId: number): readonly HeldRole[] {
    return this.#snapshot.byTeam.get(teamId) ?? []
  }

  /**
   * Whether the user may do what `permission` names on an organization or team. Superusers may do anything; a
   * role on an organization covers its teams; a platform-wide role covers everything.
   */
  can(user: User, permission: Permission, objectType: 'organization' | 'team', objectId: number): boolean {
    if (user.isSuperuser) return true
    const team = objectType === 'team' ? this.#snapshot.teams.get(objectId) : undefined
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
    const onTheirs = (h: HeldRole) => (h.objectType === 'organization' ? theirs(h.objectId) : h.objectType === 'team' && theirs(this.#snapshot.teams.get(h.objectId)?.organizationId))
    return access.held.every((h) => onTheirs(h) && h.role.permissions.every((p) => this.can(caller, p as Permission, h.objectType as 'organization' | 'team', h.objectId)))
  }

  /** Whether the user holds `permission` anywhere (superusers always): what a form offering an action asks. */
  canSomewhere(user: User, permission: Permission): boolean {
    return user.isSuperuser || this.of(user).held.some((h) => h.role.permissions.includes(permission))
  }

  #accessOf(userId: number): UserAccess {
    // Worked out from, and kept in, the snapshot held now: one swapped in meanwhile starts with none kept.
    const snapshot = this.#snapshot
    const known = snapshot.byUser.get(userId)
    if (known) return known
    const access = accessFrom(snapshot, userId)
    if (access !== NOBODY) snapshot.byUser.set(userId, access)
    return access
  }

  /**
   * Reads every assignment, page by page, into a new snapshot, and works out what rests on them in slices, other work
   * running between them; the users named by news meanwhile are read again into it; then it is swapped in, in one go.
   */
  async #readAll(): Promise<void> {
    const news = this.#newsDuringWholeRead = new Set()
    try {
      const next = emptySnapshot(await this.#store.access.loadObjects())
      for await (const page of this.#store.access.assignmentPages(ASSIGNMENTS_PER_PAGE)) {
        await inSlices(page, (assignment) => addAssignment(next, assignment))
        await nextTurn()
      }
      await inSlices([...next.ownByTeam.keys()], (teamId) => next.byTeam.set(teamId,
        teamsReached(next.teams, [teamId], next.ownByTeam).flatMap((t) => next.ownByTeam.get(t.id) ?? [])))
      await inSlices(next.direct, ([userId, own]) => {
        for (const organizationId of organizationsJoined(next, own)) addMember(next.members, organizationId, userId)
      })
      while (news.size) {
        const users = [...news]
        news.clear()
        // A role definition made after the objects were read: its own news asks for another whole read.
        if (setUsers(next, users, await this.#store.access.assignmentsOfUsers(users))) this.#forced = true
      }
      this.#snapshot = next
    } finally {
      this.#newsDuringWholeRead = undefined
    }
    for (const listener of this.#listeners) listener()
  }

  /**
   * Reads the users' own assignments again and works out anew what rests on them: their roles, the organizations
   * they are members of. A role no longer held is then gone, however many others are. One naming a role definition
   * this process has not read yet (news of it still to come) is left out, and the whole snapshot read again.
   */
  async #readUsers(userIds: readonly number[]): Promise<void> {
    const snapshot = this.#snapshot
    const read = await this.#store.access.assignmentsOfUsers(userIds)
    // A whole read swapped in meanwhile read these users after their news: this read may be older than its.
    if (this.#snapshot !== snapshot) return
    const unknownRole = setUsers(snapshot, userIds, read)
    for (const listener of this.#listeners) listener(userIds)
    if (unknownRole) await this.reload()
  }
}

/**
 * Assignments a whole read asks for in one query. SQLite reads on the event loop, a query's rows in one turn: some
 * 25 ms for 10,000 rows on a busy two-core machine; a smaller page keeps each turn short on both backends.
 */
const ASSIGNMENTS_PER_PAGE = 2_000

/** How long one slice of a whole read's work runs before letting other work run. */
const SLICE_MS = 10

/** Runs `work` on each item, letting other work run after every SLICE_MS of it. */
async function inSlices<T>(items: Iterable<T>, work: (item: T) => void): Promise<void> {
  let sliceEnds = performance.now() + SLICE_MS
  let done = 0
  for (const item of items) {
    work(item)
    if (++done % 64 === 0 && performance.now() >= sliceEnds) {
      await nextTurn()
      sliceEnds = performance.now() + SLICE_MS
    }
  }
}

/** One snapshot of access, as read and worked out from what was read. */
interface Snapshot {
  records: Omit<AccessRecords, 'assignments'>
  /** The assignments held, as read: each user's own, by user id, and the teams'. */
  userAssignments: Map<number, readonly RoleAssignment[]>
  teamAssignments: RoleAssignment[]
  /** `assignmentsFingerprintOf` the assignments held, worked out when the safety net first asks after a change. */
  heldFingerprint: string | undefined
  /**
   * Each user's access, worked out when first asked for (`#accessOf`): working it out for every user at each reload
   * (100,000 users) took some three seconds of the process's one thread.
   */
  byUser: Map<number, UserAccess>
  /** The roles each user holds directly, by user id. */
  direct: Map<number, readonly HeldRole[]>
  /** The roles each team holds itself, by team id. */
  ownByTeam: Map<number, HeldRole[]>
  /** The members of each organization, directly or through a team, by organization id. */
  members: Map<number, Set<number>>
  /** Every role a member of the team holds through it: its own, and those of the teams it is a member of. */
  byTeam: Map<number, readonly HeldRole[]>
  teams: Map<number, Team>
  organizations: Map<number, Organization>
  roles: Map<number, RoleDefinition>
}

function emptySnapshot(records: Omit<AccessRecords, 'assignments'>): Snapshot {
  return {
    records,
    userAssignments: new Map(),
    teamAssignments: [],
    heldFingerprint: undefined,
    byUser: new Map(),
    direct: new Map(),
    ownByTeam: new Map(),
    members: new Map(),
    byTeam: new Map(),
    teams: new Map(records.teams.map((t) => [t.id, t])),
    organizations: new Map(records.organizations.map((o) => [o.id, o])),
    roles: new Map(records.roleDefinitions.map((r) => [r.id, r])),
  }
}

/** One assignment read by a whole read, added to the snapshot it builds. */
function addAssignment(snapshot: Snapshot, assignment: RoleAssignment): void {
  if (assignment.actor === 'user') pushTo(snapshot.userAssignments as Map<number, RoleAssignment[]>, assignment.actorId, assignment)
  else snapshot.teamAssignments.push(assignment)
  const held = heldRole(snapshot, assignment)
  if (held) pushTo((assignment.actor === 'user' ? snapshot.direct : snapshot.ownByTeam) as Map<number, HeldRole[]>, assignment.actorId, held)
}

/**
 * Puts the users' own assignments as read (`read`) in place of those held, and what rests on them; answers whether
 * one names a role definition the snapshot does not hold (left out).
 */
function setUsers(snapshot: Snapshot, userIds: readonly number[], read: readonly RoleAssignment[]): boolean {
  const byUser = new Map<number, RoleAssignment[]>(userIds.map((userId) => [userId, []]))
  for (const assignment of read) byUser.get(assignment.actorId)?.push(assignment)
  for (const [userId, assignments] of byUser) setUser(snapshot, userId, assignments)
  snapshot.heldFingerprint = undefined
  return read.some((assignment) => !snapshot.roles.has(assignment.roleDefinitionId))
}

function setUser(snapshot: Snapshot, userId: number, assignments: readonly RoleAssignment[]): void {
  const held = assignments.map((a) => heldRole(snapshot, a)).filter((h): h is HeldRole => h !== undefined)
  if (assignments.length) snapshot.userAssignments.set(userId, assignments)
  else snapshot.userAssignments.delete(userId)
  if (held.length) snapshot.direct.set(userId, held)
  else snapshot.direct.delete(userId)
  for (const members of snapshot.members.values()) members.delete(userId)
  for (const organizationId of organizationsJoined(snapshot, held)) addMember(snapshot.members, organizationId, userId)
  snapshot.byUser.delete(userId)
}

function heldRole(snapshot: Snapshot, assignment: RoleAssignment): HeldRole | undefined {
  const role = snapshot.roles.get(assignment.roleDefinitionId)
  return role && { role, objectType: assignment.objectType, objectId: assignment.objectId }
}

/**
 * The organizations a user holding `own` is a member of: those they hold member_organization on, and those the
 * teams they are a member of (with the teams those are members of: `byTeam`) hold it on.
 */
function organizationsJoined(snapshot: Snapshot, own: readonly HeldRole[]): number[] {
  const organizationsOf = (held: readonly HeldRole[]) => held
    .filter((h) => h.objectType === 'organization' && h.role.permissions.includes('shared.member_organization') && snapshot.organizations.has(h.objectId))
    .map((h) => h.objectId)
  return [...organizationsOf(own), ...teamsMadeMemberOf(own).flatMap((teamId) => snapshot.teams.has(teamId) ? organizationsOf(snapshot.byTeam.get(teamId) ?? []) : [])]
}

function addMember(members: Map<number, Set<number>>, organizationId: number, userId: number): void {
  let memberIds = members.get(organizationId)
  if (!memberIds) members.set(organizationId, memberIds = new Set())
  memberIds.add(userId)
}

/** Where a held role is, by name; none for a platform-wide role. */
function roleKeyOf(snapshot: Snapshot, held: HeldRole): string[] {
  if (held.objectType === 'organization') {
    const organization = snapshot.organizations.get(held.objectId)
    return organization ? [roleKey(held.role.name, organization.name)] : []
  }
  if (held.objectType !== 'team') return []
  const team = snapshot.teams.get(held.objectId)
  const organization = team && snapshot.organizations.get(team.organizationId)
  return team && organization ? [roleKey(held.role.name, organization.name, team.name)] : []
}

/** The user's access as the snapshot has it. */
function accessFrom(snapshot: Snapshot, userId: number): UserAccess {
  const own = snapshot.direct.get(userId)
  if (!own) return NOBODY
  const { ownByTeam, organizations: byId } = snapshot
  const uniqueTeams = teamsReached(snapshot.teams, teamsMadeMemberOf(own), ownByTeam)
  const held = [...own, ...uniqueTeams.flatMap((t) => ownByTeam.get(t.id) ?? [])]
  const organizations = held.filter((h) => h.objectType === 'organization' && h.role.permissions.includes('shared.member_organization'))
    .map((h) => byId.get(h.objectId)).filter((o): o is Organization => o !== undefined)
  const uniqueOrganizations = [...new Map(organizations.map((o) => [o.id, o])).values()]
  const groups = [
    ...uniqueOrganizations.map((o) => groupPath(o.name)),
    ...uniqueTeams.flatMap((t) => teamGroupPath(byId.get(t.organizationId)?.name ?? '', t.name)),
  ].sort()
  const teamKeys = uniqueTeams.map((t) => teamKey(byId.get(t.organizationId)?.name ?? '', t.name))
  return freezeAccess(uniqueTeams, teamKeys, uniqueOrganizations, held, groups, held.flatMap((h) => roleKeyOf(snapshot, h)))
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
