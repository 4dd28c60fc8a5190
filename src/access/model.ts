import { setImmediate as nextTurn } from 'node:timers/promises'
import { isDeepStrictEqual } from 'node:util'
import type { EventBus } from '../store/event-bus.ts'
import { ACCESS_TOPIC, accessTeam, accessUser, USER_TOPIC } from '../store/topics.ts'
import { AssignmentsFingerprint, type AccessRecords, type Actor, type ObjectType, type Organization, type RoleAssignment, type RoleDefinition, type Team } from '../store/access.ts'
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

/**
 * A username as rules compare it: in any letter case, as accounts' names are unique (src/directory/accounts.ts) and
 * realm logins find them (`Alice` is `alice`). Usernames are ASCII (USERNAME_PATTERN), so no locale folds otherwise.
 */
export function usernameKey(username: string): string {
  return username.toLowerCase()
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
 * assignments again and work out anew only what rests on them; news naming one team (`accessTeamKey`), that team's,
 * and anew what it passes on and its members' access; any other news, or news lost, the whole snapshot.
 * Memberships follow django-ansible-base: a user is in a team while they hold a role with `member_team` on it,
 * in an organization while they hold one with `member_organization` on it, directly or through a team; a team
 * passes the roles it holds to its members.
 */
export class AccessModel {
  readonly #store: Store
  #namedInRules: ReadonlySet<string>
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
   * Users and teams named by news (`#toRead`) have their own assignments read again, one read at a time, and applied to
   * the snapshot held at once, even while a whole read builds the next one: that one reads them again before it is
   * swapped in (`#newsDuringWholeRead`), so a role taken away stays taken.
   */
  readonly #readNamed = oneReloadAtATime(async () => {
    const named = { user: [...this.#toRead.user], team: [...this.#toRead.team] }
    this.#toRead.user.clear()
    this.#toRead.team.clear()
    if (!named.user.length && !named.team.length) return
    this.#beingRead = named
    try {
      await this.#readHolders(named)
    } catch (error) {
      for (const actor of ACTORS) for (const id of named[actor]) this.#toRead[actor].add(id)
      throw error
    } finally {
      this.#beingRead = { user: [], team: [] }
    }
  })
  /** Users and teams named by news since the whole read under way began: read again into its snapshot before the swap. */
  #newsDuringWholeRead: Named<Set<number>> | undefined
  #forced = false
  readonly #toRead: Named<Set<number>> = { user: new Set(), team: new Set() }
  #beingRead: Named<readonly number[]> = { user: [], team: [] }
  readonly #listeners: ((users?: readonly number[]) => void)[] = []
  #refresher: NodeJS.Timeout | undefined

  /** `namedInRules`: the usernames access rules name, as src/access/rules.ts usernamesInRules writes them. */
  constructor(store: Store, bus: EventBus, namedInRules: ReadonlySet<string>) {
    this.#store = store
    this.#namedInRules = namedInRules
    bus.on(ACCESS_TOPIC, (key) => {
      const userId = accessUser(key)
      if (userId !== undefined) return this.reloadUsers([userId])
      const teamId = accessTeam(key)
      return teamId === undefined ? this.reload() : this.reloadTeams([teamId])
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
    // A user's or team's read under way would be found missing from what is held, and everything read again for it.
    await this.#readNamed().catch(() => {})
    if (!(await this.#assignmentsHeldAreCurrent())) return false
    return isDeepStrictEqual(await this.#store.access.loadObjects(), this.#snapshot.records)
  }

  /** Whether the assignments' fingerprint in the database is that of the assignments held (the database's taken first). */
  async #assignmentsHeldAreCurrent(): Promise<boolean> {
    const fingerprint = await this.#store.access.assignmentsFingerprint()
    return fingerprint === heldFingerprint(this.#snapshot)
  }

  /**
   * Runs in every process after each reload, with the users whose roles alone changed (theirs, or their teams'; none
   * named: anyone's may have): drop whatever was derived from their memberships.
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
    return this.#readAgain('user', userIds)
  }

  /**
   * Reads these teams' own assignments again, and nothing else, and works out anew what rests on them: what they pass
   * on, and to every team that is a member of one of them; their members' access.
   */
  reloadTeams(teamIds: readonly number[]): Promise<void> {
    return this.#readAgain('team', teamIds)
  }

  #readAgain(actor: Actor, ids: readonly number[]): Promise<void> {
    const valid = ids.filter((id) => Number.isSafeInteger(id) && id > 0)
    if (!valid.length) return Promise.resolve()
    for (const id of valid) {
      this.#toRead[actor].add(id)
      this.#newsDuringWholeRead?.[actor].add(id)
    }
    return this.#readNamed()
  }

  /**
   * Reads the snapshot again every `everyMs` as well, as everything else read from the database is
   * (`auth.max_stale_seconds`): a change whose news this process never read is applied within that long, where it
   * would otherwise hold until the next change of access anywhere. An unchanged snapshot changes nothing.
   */
  start(everyMs: number): void {
    if (this.#refresher) return
    this.#refresher = setInterval(() => {
      // Users and teams whose read failed are read again too.
      this.#readNamed().catch(() => {})
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
   * Whether an access rule names the username, in any letter case: its account is then changed by superusers only,
   * and made by them only (an organization admin's `Alice` would hold the name of the rules' `alice`).
   */
  namedInRules(username: string): boolean {
    return this.#namedInRules.has(usernameKey(username))
  }

  /** The usernames the access rules name, once a reload of the configuration replaced the services' rules. */
  useNamesInRules(names: ReadonlySet<string>): void {
    this.#namedInRules = names
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
    if (target.isSuperuser || this.namedInRules(target.username)) return false
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
   * Builds a new snapshot, in slices, other work running between them, and swaps it in, in one go: from the assignments
   * held when they are the database's (a role definition, organization or team changed: none of them re-read), else from
   * every assignment read again, page by page. The users and teams named by news meanwhile, or whose news is being read,
   * are read again into it before the swap.
   */
  async #readAll(): Promise<void> {
    const news = this.#newsDuringWholeRead = {
      user: new Set([...this.#toRead.user, ...this.#beingRead.user]),
      team: new Set([...this.#toRead.team, ...this.#beingRead.team]),
    }
    try {
      const records = await this.#store.access.loadObjects()
      const next = await this.#fromHeld(records) ?? await this.#readAssignments(records)
      await inSlices([...next.ownByTeam.keys()], (teamId) => next.byTeam.set(teamId,
        teamsReached(next.teams, [teamId], next.ownByTeam).flatMap((t) => next.ownByTeam.get(t.id) ?? [])))
      await inSlices(next.direct, ([userId, own]) => {
        for (const organizationId of organizationsJoined(next, own)) addMember(next.members, organizationId, userId)
        for (const teamId of teamsMadeMemberOf(own)) addMember(next.teamMembers, teamId, userId)
      })
      while (news.user.size || news.team.size) {
        const named = { user: [...news.user], team: [...news.team] }
        news.user.clear()
        news.team.clear()
        // A role definition made after the objects were read: its own news asks for another whole read.
        if ((await setHolders(next, named, await this.#assignmentsOf(named))).leftOut) this.#forced = true
      }
      this.#snapshot = next
    } finally {
      this.#newsDuringWholeRead = undefined
    }
    for (const listener of this.#listeners) listener()
  }

  /**
   * A snapshot of these organizations, teams and role definitions with the assignments held, when those are the
   * database's: what a role definition's permissions changed asks for. Reading all 200,000 assignments again for it took
   * two to eleven seconds. None when an assignment held names a role definition left out, or no longer there.
   */
  async #fromHeld(records: Omit<AccessRecords, 'assignments'>): Promise<Snapshot | undefined> {
    if (this.#snapshot.leftOut || !(await this.#assignmentsHeldAreCurrent())) return undefined
    return rebuiltFrom(this.#snapshot, records)
  }

  /** A snapshot of these organizations, teams and role definitions with every assignment read again, page by page. */
  async #readAssignments(records: Omit<AccessRecords, 'assignments'>): Promise<Snapshot> {
    const next = emptySnapshot(records)
    for await (const page of this.#store.access.assignmentPages(ASSIGNMENTS_PER_PAGE)) {
      // Each map filled in a turn of its own: one of 200,000 entries grows in one step of some 30 ms.
      await inSlices(page, (assignment) => addAssignmentId(next, assignment))
      await nextTurn()
      await inSlices(page, (assignment) => addHeldRole(next, assignment))
      await nextTurn()
    }
    return next
  }

  /**
   * Reads the users' and teams' own assignments again and works out anew what rests on them: the users' roles, what
   * the teams pass on, the organizations the users and the teams' members are members of. A role no longer held is
   * then gone, however many others are. One naming a role definition this process has not read yet (news of it still
   * to come) is left out, and the whole snapshot read again.
   */
  async #readHolders(named: Named<readonly number[]>): Promise<void> {
    const snapshot = this.#snapshot
    const read = await this.#assignmentsOf(named)
    // A whole read swapped in meanwhile read these users and teams after their news: this read may be older than its.
    if (this.#snapshot !== snapshot) return
    const { users, leftOut } = await setHolders(snapshot, named, read)
    for (const listener of this.#listeners) listener(users)
    // Not waited for: a whole read may be waiting for this one (`#heldIsCurrent`), and neither would ever end. Until it
    // is swapped in, the role left out is not held.
    if (leftOut) this.reload().catch(() => {})
  }

  async #assignmentsOf(named: Named<readonly number[]>): Promise<Named<RoleAssignment[]>> {
    return { user: await this.#store.access.assignmentsOfUsers(named.user), team: await this.#store.access.assignmentsOfTeams(named.team) }
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

/** What holds assignments: users, and teams (whose members hold what they hold). */
const ACTORS = ['user', 'team'] as const satisfies readonly Actor[]

/** Something for users and something for teams. */
type Named<T> = Record<Actor, T>

/** The ids of one kind of holder's assignments, by holder id (one as a number, several as an array), and their fingerprint. */
interface HeldIds {
  byHolder: Map<number, number | number[]>
  /** Kept up as each holder's assignments are replaced. */
  fingerprint: AssignmentsFingerprint
}

/**
 * One snapshot of access, as read and worked out from what was read. What each assignment costs is kept small: both
 * snapshots are in memory while the next is built, and the garbage collector's pauses, each held in one turn of the
 * event loop, grew with them (70 ms at 200,000 assignments, each held as its row and a role object of its own).
 */
interface Snapshot {
  records: Omit<AccessRecords, 'assignments'>
  /** The ids of the users' own assignments, and of the teams'. */
  assignmentIds: Named<HeldIds>
  /** Whether an assignment read names a role definition the snapshot does not hold: left out of `direct` or `ownByTeam`. */
  leftOut: boolean
  /** Each role held on one object, by `heldRoleKey`: one object for all its holders. */
  heldRoles: Map<string, HeldRole>
  /** Each held role alone in a list (frozen): what every holder of that one role, and no other, shares. */
  heldAlone: Map<HeldRole, readonly HeldRole[]>
  /**
   * Each user's access, worked out when first asked for (`#accessOf`): working it out for every user at each reload
   * (100,000 users) took some three seconds of the process's one thread.
   */
  byUser: Map<number, UserAccess>
  /** The roles each user holds directly, by user id. */
  direct: Map<number, readonly HeldRole[]>
  /** The roles each team holds itself, by team id. */
  ownByTeam: Map<number, readonly HeldRole[]>
  /** The members of each organization, directly or through a team, by organization id. */
  members: Map<number, Set<number>>
  /** The users each team is given to directly (a role with member_team on it), by team id: whom its news reaches. */
  teamMembers: Map<number, Set<number>>
  /** Every role a member of the team holds through it: its own, and those of the teams it is a member of. */
  byTeam: Map<number, readonly HeldRole[]>
  teams: Map<number, Team>
  organizations: Map<number, Organization>
  roles: Map<number, RoleDefinition>
}

function emptySnapshot(records: Omit<AccessRecords, 'assignments'>): Snapshot {
  return {
    records,
    assignmentIds: { user: emptyIds(), team: emptyIds() },
    leftOut: false,
    heldRoles: new Map(),
    heldAlone: new Map(),
    byUser: new Map(),
    direct: new Map(),
    ownByTeam: new Map(),
    members: new Map(),
    teamMembers: new Map(),
    byTeam: new Map(),
    teams: new Map(records.teams.map((t) => [t.id, t])),
    organizations: new Map(records.organizations.map((o) => [o.id, o])),
    roles: new Map(records.roleDefinitions.map((r) => [r.id, r])),
  }
}

function emptyIds(): HeldIds {
  return { byHolder: new Map(), fingerprint: new AssignmentsFingerprint() }
}

/** `assignmentsFingerprint` of the assignments the snapshot holds. */
function heldFingerprint(snapshot: Snapshot): string {
  return ACTORS.map((actor) => {
    const { byHolder, fingerprint } = snapshot.assignmentIds[actor]
    return fingerprint.value(() => allIds(byHolder))
  }).join('/')
}

function* allIds(byHolder: Map<number, number | number[]>): Iterable<number> {
  for (const ids of byHolder.values()) {
    if (typeof ids === 'number') yield ids
    else yield* ids
  }
}

/** One assignment read by a whole read, added to the ids and the fingerprint of the snapshot it builds. */
function addAssignmentId(snapshot: Snapshot, assignment: RoleAssignment): void {
  const { id, actorId } = assignment
  const { byHolder, fingerprint } = snapshot.assignmentIds[assignment.actor]
  const ids = byHolder.get(actorId)
  if (typeof ids === 'object') ids.push(id)
  else byHolder.set(actorId, ids === undefined ? id : [ids, id])
  fingerprint.add(id)
}

/** The role one assignment read by a whole read gives, added to the snapshot it builds. */
function addHeldRole(snapshot: Snapshot, assignment: RoleAssignment): void {
  const { actorId } = assignment
  const held = heldRole(snapshot, assignment.roleDefinitionId, assignment.objectType, assignment.objectId)
  if (!held) {
    snapshot.leftOut = true
    return
  }
  const byActor = assignment.actor === 'user' ? snapshot.direct : snapshot.ownByTeam
  const own = byActor.get(actorId)
  // A list of one is shared (frozen); a longer one is the actor's own while the snapshot is built.
  if (own === undefined) byActor.set(actorId, heldAlone(snapshot, held))
  else if (own.length === 1) byActor.set(actorId, [own[0]!, held])
  else (own as HeldRole[]).push(held)
}

/**
 * Puts the teams' and the users' own assignments as read in place of those held, and what rests on them, the teams'
 * first (a user's organizations are worked out from what their teams pass on). Answers the users whose access may
 * have changed (those named, and the members of the teams reaching a team named), and whether an assignment names a
 * role definition the snapshot does not hold (left out).
 */
async function setHolders(snapshot: Snapshot, named: Named<readonly number[]>, read: Named<readonly RoleAssignment[]>): Promise<{ users: number[]; leftOut: boolean }> {
  const teams = named.team.length ? await setTeams(snapshot, named.team, read.team) : { members: [], leftOut: false }
  let leftOut = teams.leftOut
  for (const [userId, assignments] of byHolder(named.user, read.user)) leftOut = setUser(snapshot, userId, assignments) || leftOut
  return { users: [...new Set([...named.user, ...teams.members])], leftOut }
}

/** The assignments read, by their holder, each holder named with none too. */
function byHolder(ids: readonly number[], read: readonly RoleAssignment[]): Map<number, RoleAssignment[]> {
  const byId = new Map<number, RoleAssignment[]>(ids.map((id) => [id, []]))
  for (const assignment of read) byId.get(assignment.actorId)?.push(assignment)
  return byId
}

/**
 * Puts a holder's assignments as read in place of those held: their ids and the fingerprint, and the roles they give
 * (`own`, by holder id). Answers whether an assignment was left out: it names a role definition the snapshot does not
 * hold.
 */
function setOwn(snapshot: Snapshot, actor: Actor, holderId: number, assignments: readonly RoleAssignment[]): boolean {
  const { byHolder: ids, fingerprint } = snapshot.assignmentIds[actor]
  const before = ids.get(holderId)
  if (typeof before === 'number') fingerprint.remove(before)
  else for (const id of before ?? []) fingerprint.remove(id)
  for (const assignment of assignments) fingerprint.add(assignment.id)
  if (assignments.length) ids.set(holderId, assignments.length === 1 ? assignments[0]!.id : assignments.map((a) => a.id))
  else ids.delete(holderId)
  const held = assignments.map((a) => heldRole(snapshot, a.roleDefinitionId, a.objectType, a.objectId)).filter((h): h is HeldRole => h !== undefined)
  const leftOut = held.length < assignments.length
  snapshot.leftOut ||= leftOut
  const own = actor === 'user' ? snapshot.direct : snapshot.ownByTeam
  if (held.length) own.set(holderId, held.length === 1 ? heldAlone(snapshot, held[0]!) : held)
  else own.delete(holderId)
  return leftOut
}

/** Answers whether an assignment was left out: it names a role definition the snapshot does not hold. */
function setUser(snapshot: Snapshot, userId: number, assignments: readonly RoleAssignment[]): boolean {
  for (const teamId of teamsMadeMemberOf(snapshot.direct.get(userId) ?? [])) snapshot.teamMembers.get(teamId)?.delete(userId)
  const leftOut = setOwn(snapshot, 'user', userId, assignments)
  const held = snapshot.direct.get(userId) ?? []
  for (const teamId of teamsMadeMemberOf(held)) addMember(snapshot.teamMembers, teamId, userId)
  for (const members of snapshot.members.values()) members.delete(userId)
  for (const organizationId of organizationsJoined(snapshot, held)) addMember(snapshot.members, organizationId, userId)
  snapshot.byUser.delete(userId)
  return leftOut
}

/**
 * Puts the teams' own assignments as read in place of those held, and works out anew what rests on them: what every
 * team reaching one of them passes on, and for the members of those teams, the organizations that passes on
 * membership of, and their access. The members' own roles, and everyone else's access, are left as they are. Answers
 * the members, and whether an assignment was left out.
 */
async function setTeams(snapshot: Snapshot, teamIds: readonly number[], read: readonly RoleAssignment[]): Promise<{ members: number[]; leftOut: boolean }> {
  const named = new Set(teamIds)
  // Which teams reach one named does not change with what those named hold: a path to the nearest ends before it.
  const passing = [...new Set([...snapshot.ownByTeam.keys(), ...teamIds])]
    .filter((teamId) => teamsReached(snapshot.teams, [teamId], snapshot.ownByTeam).some((t) => named.has(t.id)))
  const organizationsPassed = () => passing.flatMap((teamId) => organizationsMadeMemberOf(snapshot, snapshot.byTeam.get(teamId) ?? []))
  const organizations = new Set(organizationsPassed())
  let leftOut = false
  for (const [teamId, assignments] of byHolder(teamIds, read)) leftOut = setOwn(snapshot, 'team', teamId, assignments) || leftOut
  for (const teamId of passing) {
    if (snapshot.ownByTeam.has(teamId)) snapshot.byTeam.set(teamId, teamsReached(snapshot.teams, [teamId], snapshot.ownByTeam).flatMap((t) => snapshot.ownByTeam.get(t.id) ?? []))
    else snapshot.byTeam.delete(teamId)
  }
  for (const organizationId of organizationsPassed()) organizations.add(organizationId)
  const members = new Set(passing.flatMap((teamId) => [...snapshot.teamMembers.get(teamId) ?? []]))
  // In slices: a team may have any number of members.
  await inSlices(members, (userId) => {
    const joined = new Set(organizationsJoined(snapshot, snapshot.direct.get(userId) ?? []))
    for (const organizationId of organizations) {
      if (joined.has(organizationId)) addMember(snapshot.members, organizationId, userId)
      else snapshot.members.get(organizationId)?.delete(userId)
    }
    snapshot.byUser.delete(userId)
  })
  return { members: [...members], leftOut }
}

/**
 * `held` with these organizations, teams and role definitions, its assignments as they are: none read again, in
 * slices. None when one names a role definition left out, or one no longer there.
 */
async function rebuiltFrom(held: Snapshot, records: Omit<AccessRecords, 'assignments'>): Promise<Snapshot | undefined> {
  const next = emptySnapshot(records)
  const moved = new Map<HeldRole, HeldRole | undefined>()
  const move = (list: readonly HeldRole[]): readonly HeldRole[] => {
    const roles = list.map((h) => {
      if (!moved.has(h)) moved.set(h, heldRole(next, h.role.id, h.objectType, h.objectId))
      return moved.get(h)
    })
    if (roles.some((h) => h === undefined)) next.leftOut = true
    return roles.length === 1 && roles[0] ? heldAlone(next, roles[0]) : roles.filter((h): h is HeldRole => h !== undefined)
  }
  // The ids' lists are never changed once built (a holder's change puts a new one in place): the two snapshots share
  // them. One map filled after the other: a map of 200,000 entries grows in one step of some 30 ms, two at once in one turn.
  for (const actor of ACTORS) {
    const into = next.assignmentIds[actor]
    await inSlices(held.assignmentIds[actor].byHolder, ([holderId, ids]) => {
      into.byHolder.set(holderId, ids)
      if (typeof ids === 'number') into.fingerprint.add(ids)
      else for (const id of ids) into.fingerprint.add(id)
    })
  }
  await inSlices(held.direct, ([userId, own]) => next.direct.set(userId, move(own)))
  for (const [teamId, own] of held.ownByTeam) next.ownByTeam.set(teamId, move(own))
  return held.leftOut || next.leftOut ? undefined : next
}

/** The role definition on this object, one object for all its holders; none when the snapshot does not hold it. */
function heldRole(snapshot: Snapshot, roleDefinitionId: number, objectType: ObjectType, objectId: number): HeldRole | undefined {
  const key = `${roleDefinitionId}\u0000${objectType}\u0000${objectId}`
  let held = snapshot.heldRoles.get(key)
  if (held) return held
  const role = snapshot.roles.get(roleDefinitionId)
  if (!role) return undefined
  held = Object.freeze({ role, objectType, objectId })
  snapshot.heldRoles.set(key, held)
  return held
}

function heldAlone(snapshot: Snapshot, held: HeldRole): readonly HeldRole[] {
  let list = snapshot.heldAlone.get(held)
  if (!list) snapshot.heldAlone.set(held, list = Object.freeze([held]))
  return list
}

/**
 * The organizations a user holding `own` is a member of: those they hold member_organization on, and those the
 * teams they are a member of (with the teams those are members of: `byTeam`) hold it on.
 */
function organizationsJoined(snapshot: Snapshot, own: readonly HeldRole[]): number[] {
  return [
    ...organizationsMadeMemberOf(snapshot, own),
    ...teamsMadeMemberOf(own).flatMap((teamId) => snapshot.teams.has(teamId) ? organizationsMadeMemberOf(snapshot, snapshot.byTeam.get(teamId) ?? []) : []),
  ]
}

/** The organizations these roles make their holder a member of themselves: those they hold member_organization on. */
function organizationsMadeMemberOf(snapshot: Snapshot, held: readonly HeldRole[]): number[] {
  return held
    .filter((h) => h.objectType === 'organization' && h.role.permissions.includes('shared.member_organization') && snapshot.organizations.has(h.objectId))
    .map((h) => h.objectId)
}

/** Adds a user to the members of an organization or a team (`groupId`), in `members`. */
function addMember(members: Map<number, Set<number>>, groupId: number, userId: number): void {
  let memberIds = members.get(groupId)
  if (!memberIds) members.set(groupId, memberIds = new Set())
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
