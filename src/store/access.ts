import type { Kysely, Selectable, SelectQueryBuilder } from 'kysely'
import { anyOf, type FilterFields, type ListFilter, listPage, NO_FILTER, oneOf } from './list-filter.ts'
import { sql } from './kysely.ts'
import type { DialectName } from './migrations/helpers.ts'
import type { RoleDefinitionsTable, Tables } from './schema.ts'

export interface Organization {
  id: number
  name: string
  description: string
  created: number
  modified: number
}

export interface Team extends Organization {
  organizationId: number
}

export interface RoleDefinition {
  id: number
  name: string
  description: string
  /** `shared.organization`, `shared.team`, or null for a role on the whole platform. */
  contentType: string | null
  permissions: string[]
  managed: boolean
  created: number
  modified: number
}

export type ObjectType = 'organization' | 'team' | 'platform'

/** A row an update changed: as it was, read under the update's lock of it, and as it is. */
export interface Changed<T> {
  readonly before: T
  readonly after: T
}
export type Actor = 'user' | 'team'

export interface RoleAssignment {
  id: number
  roleDefinitionId: number
  actor: Actor
  /** The user's or the team's id, as `actor` says. */
  actorId: number
  objectType: ObjectType
  /** 0 for `platform`. */
  objectId: number
  created: number
}

export interface ListQuery {
  offset: number
  limit: number
  /** The API's filters, search and order (src/store/list-filter.ts). */
  filter?: ListFilter | undefined
}

export interface AssignmentQuery extends ListQuery {
  actorId?: number | undefined
  roleDefinitionId?: number | undefined
  objectType?: ObjectType | undefined
  objectId?: number | undefined
  /** Only assignments on these objects (one caller's view); absent: all. */
  onObjects?: { organizations: Iterable<number>; teams: Iterable<number>; platform: boolean } | undefined
}

/** A list restricted to what one caller may see: only these ids; absent, all. */
export interface VisibleQuery extends ListQuery {
  ids?: Iterable<number> | undefined
}

const common = {
  id: { column: 'id', type: 'integer' },
  name: { column: 'name', type: 'text', searched: true },
  description: { column: 'description', type: 'text', searched: true },
  created: { column: 'created_at', type: 'time' },
  modified: { column: 'modified_at', type: 'time' },
} as const

/** What each list can be filtered, searched and ordered on, by the API's field names. */
export const organizationFilterFields: FilterFields = Object.freeze({ ...common })
export const teamFilterFields: FilterFields = Object.freeze({ ...common, organization: { column: 'organization_id', type: 'integer' } })
export const roleDefinitionFilterFields: FilterFields = Object.freeze({
  ...common,
  managed: { column: 'managed', type: 'boolean' },
  content_type: { column: 'content_type', type: 'text' },
})
/**
 * The names an assignment's holder is known by, as their related lookups name them: `user__username`,
 * `user__first_name`, `user__last_name` (the platform's web interface sorts an access tab by them), `team__name`.
 * Each is a column of the joined list (listAssignments), under the lookup's own name.
 */
const HOLDER_NAMES = { user: { table: 'users', columns: ['username', 'first_name', 'last_name'] }, team: { table: 'teams', columns: ['name'] } } as const
const holderNameFields = (actor: Actor): string[] => HOLDER_NAMES[actor].columns.map((column) => `${actor}__${column}`)

/**
 * `content_type` holds `organization`, `team` or `platform`; the API maps the platform's `shared.team` to it. Of the
 * related objects' fields, only the names the platform's clients filter and order by (its web interface's access tab,
 * and its clients leaving out roles by name): every other related lookup is unbounded joins a client would choose.
 */
const PLATFORM_WIDE = Object.freeze({ column: 'object_type', equals: 'platform' })

export function assignmentFilterFields(actor: Actor): FilterFields {
  return Object.freeze({
    id: { column: 'id', type: 'integer' },
    role_definition: { column: 'role_definition_id', type: 'integer' },
    role_definition__name: { column: 'role_definition__name', type: 'text' },
    [actor]: { column: `${actor}_id`, type: 'integer' },
    ...Object.fromEntries(holderNameFields(actor).map((field) => [field, { column: field, type: 'text' }])),
    // A platform-wide assignment's, kept as `platform` and 0, are null as shown (`Platform Auditor`): a script
    // deleting the assignments on objects (`object_id__isnull=false`) must not find it.
    object_id: { column: 'object_id', type: 'text', storedAsInteger: true, nullWhere: PLATFORM_WIDE },
    // A foreign key on the platform: no text lookups of its name (src/api/roles.ts reads the platform's names).
    content_type: { column: 'object_type', type: 'text', lookups: ['exact', 'iexact', 'in', 'isnull'], nullWhere: PLATFORM_WIDE },
    created: { column: 'created_at', type: 'time' },
  })
}

/** Assignments read in one query by `loadAll`: well within a query's time limit, however many there are. */
const ASSIGNMENTS_PER_READ = 10_000

/** Users or teams whose assignments `assignmentsOfUsers` or `assignmentsOfTeams` reads in one query. */
const HOLDERS_PER_READ = 500

/**
 * `assignmentsFingerprint` of a set of assignments held in memory, kept up as they are added and removed: equal to the
 * database's while they are the same set. Worked out anew over every assignment after each change, it held the event
 * loop some 45 ms with 200,000 of them. The sum is exact, as the database's is: a Number while it stays a safe
 * integer, what would go beyond carried into a BigInt.
 */
export class AssignmentsFingerprint {
  #count = 0
  /** The highest id; undefined once that assignment is removed, until worked out again from every id held. */
  #last: number | undefined = 0
  #sum = 0
  #carried = 0n

  add(id: number): void {
    this.#count++
    if (this.#last !== undefined && id > this.#last) this.#last = id
    if (this.#sum > Number.MAX_SAFE_INTEGER - id) this.#carry()
    this.#sum += id
  }

  remove(id: number): void {
    this.#count--
    if (id === this.#last) this.#last = undefined
    if (this.#sum < id - Number.MAX_SAFE_INTEGER) this.#carry()
    this.#sum -= id
  }

  /** `allIds` gives every id held: asked for only when the highest was removed. */
  value(allIds: () => Iterable<number>): string {
    if (this.#last === undefined) {
      let last = 0
      for (const id of allIds()) if (id > last) last = id
      this.#last = last
    }
    return fingerprintPart(this.#count, this.#last, this.#carried + BigInt(this.#sum))
  }

  #carry(): void {
    this.#carried += BigInt(this.#sum)
    this.#sum = 0
  }
}

function fingerprintPart(count: unknown, last: unknown, sum: unknown): string {
  return `${count}:${last}:${sum}`
}

/** Everything access control reads at once into memory (src/access/model.ts). */
export interface AccessRecords {
  organizations: Organization[]
  teams: Team[]
  roleDefinitions: RoleDefinition[]
  assignments: RoleAssignment[]
}

/**
 * Organizations, teams, role definitions and role assignments. Rules (who may change what, which team may
 * hold which role) live in src/access/; this layer only reads and writes rows.
 */
export class AccessRepository {
  readonly #db: Kysely<Tables>
  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  /**
   * Everything, the assignments `perRead` at a time: one query for every assignment took longer than
   * `storage.timeouts.query_seconds` (2 s) with 200,000 of them on PostgreSQL, whose timeout counts the rows' reading
   * too, and the change whose reload it was answered 503 although it was made.
   */
  async loadAll(perRead = ASSIGNMENTS_PER_READ): Promise<AccessRecords> {
    const objects = await this.loadObjects()
    const assignments: RoleAssignment[] = []
    for await (const page of this.assignmentPages(perRead)) assignments.push(...page)
    return { ...objects, assignments }
  }

  /**
   * Every role assignment, users' then teams', `perRead` a query in the order of their ids, one page at a time: the
   * caller lets other work run between pages (SQLite reads on the event loop).
   */
  async *assignmentPages(perRead = ASSIGNMENTS_PER_READ): AsyncGenerator<RoleAssignment[]> {
    for (const actor of ['user', 'team'] as const) {
      const table = actor === 'user' ? 'role_user_assignments' as const : 'role_team_assignments' as const
      for (let after = 0; ;) {
        const rows = await this.#db.selectFrom(table as 'role_user_assignments')
          .select(['id', 'role_definition_id', 'object_type', 'object_id', 'created_at', sql<number>`${sql.ref(`${actor}_id`)}`.as('actor_id')])
          .where('id', '>', after).orderBy('id').limit(perRead).execute()
        if (rows.length) yield rows.map((row) => toAssignment(actor, row.actor_id, row))
        if (rows.length < perRead) break
        after = Number(rows.at(-1)!.id)
      }
    }
  }

  /** The organizations, teams and role definitions of `loadAll`, without the assignments: a few rows beside them. */
  async loadObjects(): Promise<Omit<AccessRecords, 'assignments'>> {
    const [organizations, teams, roleDefinitions] = await Promise.all([
      this.#db.selectFrom('organizations').selectAll().orderBy('id').execute(),
      this.#db.selectFrom('teams').selectAll().orderBy('id').execute(),
      this.#db.selectFrom('role_definitions').selectAll().orderBy('id').execute(),
    ])
    return { organizations: organizations.map(toOrganization), teams: teams.map(toTeam), roleDefinitions: roleDefinitions.map(toRoleDefinition) }
  }

  /**
   * What tells the role assignments as they are now from any earlier set of them, without reading them: how many
   * there are, their highest id and the sum of their ids, of users' and teams'. An assignment is never changed, only
   * added (with an id above every earlier one's) or deleted, so every change of the set changes these; the sum too
   * when an assignment committed late, below the highest id, and another was deleted meanwhile.
   */
  async assignmentsFingerprint(): Promise<string> {
    const [users, teams] = await Promise.all((['role_user_assignments', 'role_team_assignments'] as const).map((table) =>
      this.#db.selectFrom(table).select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.max('id').as('last'), eb.fn.sum<number>('id').as('sum')]).executeTakeFirstOrThrow()))
    return [users!, teams!].map((row) => fingerprintPart(row.n, row.last ?? 0, row.sum ?? 0)).join('/')
  }

  /**
   * The users' own role assignments, through the index on their holder (migration 032), `perRead` users a query: what
   * one user's change of roles costs to read, whatever the number of assignments.
   */
  assignmentsOfUsers(userIds: readonly number[], perRead = HOLDERS_PER_READ): Promise<RoleAssignment[]> {
    return this.#assignmentsOf('user', userIds, perRead)
  }

  /** The teams' own role assignments, as `assignmentsOfUsers` reads users': what one team's change of roles costs to read. */
  assignmentsOfTeams(teamIds: readonly number[], perRead = HOLDERS_PER_READ): Promise<RoleAssignment[]> {
    return this.#assignmentsOf('team', teamIds, perRead)
  }

  async #assignmentsOf(actor: Actor, ids: readonly number[], perRead: number): Promise<RoleAssignment[]> {
    const table = actor === 'user' ? 'role_user_assignments' as const : 'role_team_assignments' as const
    const all: RoleAssignment[] = []
    for (let from = 0; from < ids.length; from += perRead) {
      const rows = await this.#db.selectFrom(table as 'role_user_assignments')
        .select(['id', 'role_definition_id', 'object_type', 'object_id', 'created_at', sql<number>`${sql.ref(`${actor}_id`)}`.as('actor_id')])
        .where(sql.ref(`${actor}_id`), 'in', ids.slice(from, from + perRead)).orderBy('id').execute()
      for (const row of rows) all.push(toAssignment(actor, row.actor_id, row))
    }
    return all
  }

  async createOrganization(input: { name: string; description?: string | undefined }, now = Date.now()): Promise<Organization> {
    const row = await this.#db.insertInto('organizations')
      .values({ name: input.name, description: input.description ?? '', created_at: now, modified_at: now })
      .returningAll().executeTakeFirstOrThrow()
    return toOrganization(row)
  }

  async findOrganization(id: number): Promise<Organization | undefined> {
    const row = await this.#db.selectFrom('organizations').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toOrganization(row)
  }

  async listOrganizations(query: VisibleQuery): Promise<{ count: number; results: Organization[] }> {
    let base = this.#db.selectFrom('organizations')
    if (query.ids !== undefined) base = base.where(oneOf(this.#dialect, 'id', query.ids))
    const { count, rows } = await listPage(this.#dialect, base, organizationFilterFields, query.filter ?? NO_FILTER, query)
    return { count, results: rows.map(toOrganization) }
  }

  /** The organization as it was and as it is, or undefined when there is none. */
  async updateOrganization(id: number, changes: { name?: string | undefined; description?: string | undefined }, now = Date.now()): Promise<Changed<Organization> | undefined> {
    const before = await this.#forUpdate(this.#db.selectFrom('organizations').selectAll().where('id', '=', id))
    if (!before) return undefined
    const row = await this.#db.updateTable('organizations').set({ ...definedOnly(changes), modified_at: now }).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
    return { before: toOrganization(before), after: toOrganization(row) }
  }

  /**
   * A row about to be updated, as the update finds it: locked on PostgreSQL until the transaction ends (SQLite's
   * writers are alone), so that two changes at once each record what they changed from, not what both read before.
   */
  #forUpdate<O>(read: SelectQueryBuilder<Tables, keyof Tables, O>): Promise<O | undefined> {
    return (this.#dialect === 'postgres' ? read.forUpdate() : read).executeTakeFirst()
  }

  /**
   * Deletes the organization, its teams (by cascade) and every role granted on either. Its row and its teams' are
   * locked first (on PostgreSQL; SQLite's writers are alone): an assignment under way on one of them
   * (lockObjectToAssign) either committed before, and is deleted here, or waits and then finds the object gone.
   */
  /** Deletes the organization, its teams and every role granted on them; the teams that went with it, or undefined when there was no such organization. */
  async deleteOrganization(id: number): Promise<Team[] | undefined> {
    if (this.#dialect === 'postgres') await this.#db.selectFrom('organizations').select('id').where('id', '=', id).forUpdate().execute()
    const teams = this.#db.selectFrom('teams').selectAll().where('organization_id', '=', id)
    const teamsGoing = (await (this.#dialect === 'postgres' ? teams.forUpdate() : teams).execute()).map(toTeam)
    await this.#deleteAssignmentsOn('organization', [id])
    await this.#deleteAssignmentsOn('team', teamsGoing.map((team) => team.id))
    const result = await this.#db.deleteFrom('organizations').where('id', '=', id).executeTakeFirst()
    return Number(result.numDeletedRows) > 0 ? teamsGoing : undefined
  }

  async createTeam(input: { name: string; organizationId: number; description?: string | undefined }, now = Date.now()): Promise<Team> {
    const row = await this.#db.insertInto('teams')
      .values({ name: input.name, organization_id: input.organizationId, description: input.description ?? '', created_at: now, modified_at: now })
      .returningAll().executeTakeFirstOrThrow()
    return toTeam(row)
  }

  async findTeam(id: number): Promise<Team | undefined> {
    const row = await this.#db.selectFrom('teams').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toTeam(row)
  }

  async findTeamByName(organizationId: number, name: string): Promise<Team | undefined> {
    const row = await this.#db.selectFrom('teams').selectAll().where('organization_id', '=', organizationId).where('name', '=', name).executeTakeFirst()
    return row && toTeam(row)
  }

  async findOrganizationByName(name: string): Promise<Organization | undefined> {
    const row = await this.#db.selectFrom('organizations').selectAll().where('name', '=', name).executeTakeFirst()
    return row && toOrganization(row)
  }

  async listTeams(query: VisibleQuery & { organizationId?: number | undefined }): Promise<{ count: number; results: Team[] }> {
    let base = this.#db.selectFrom('teams')
    if (query.ids !== undefined) base = base.where(oneOf(this.#dialect, 'id', query.ids))
    if (query.organizationId !== undefined) base = base.where('organization_id', '=', query.organizationId)
    const { count, rows } = await listPage(this.#dialect, base, teamFilterFields, query.filter ?? NO_FILTER, query)
    return { count, results: rows.map(toTeam) }
  }

  /** The team as it was and as it is, or undefined when there is none. */
  async updateTeam(id: number, changes: { name?: string | undefined; description?: string | undefined }, now = Date.now()): Promise<Changed<Team> | undefined> {
    const before = await this.#forUpdate(this.#db.selectFrom('teams').selectAll().where('id', '=', id))
    if (!before) return undefined
    const row = await this.#db.updateTable('teams').set({ ...definedOnly(changes), modified_at: now }).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
    return { before: toTeam(before), after: toTeam(row) }
  }

  /** Deletes the team and every role granted on it, its row locked first as deleteOrganization locks its own. */
  async deleteTeam(id: number): Promise<boolean> {
    if (this.#dialect === 'postgres') await this.#db.selectFrom('teams').select('id').where('id', '=', id).forUpdate().execute()
    await this.#deleteAssignmentsOn('team', [id])
    const result = await this.#db.deleteFrom('teams').where('id', '=', id).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  async createRoleDefinition(input: { name: string; description?: string | undefined; contentType: string | null; permissions: string[] }, now = Date.now()): Promise<RoleDefinition> {
    const row = await this.#db.insertInto('role_definitions').values({
      name: input.name, description: input.description ?? '', content_type: input.contentType, permissions: JSON.stringify(input.permissions),
      managed: false, created_at: now, modified_at: now,
    }).returningAll().executeTakeFirstOrThrow()
    return toRoleDefinition(row)
  }

  async findRoleDefinition(id: number): Promise<RoleDefinition | undefined> {
    const row = await this.#db.selectFrom('role_definitions').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toRoleDefinition(row)
  }

  /**
   * Inside a transaction: the role definition as it is, kept from changing until the transaction ends (on
   * PostgreSQL a shared row lock: a change to it waits, and this waits for one under way; on SQLite every write
   * transaction is already alone).
   */
  async findRoleDefinitionToAssign(id: number): Promise<RoleDefinition | undefined> {
    const query = this.#db.selectFrom('role_definitions').selectAll().where('id', '=', id)
    const row = await (this.#dialect === 'postgres' ? query.forShare() : query).executeTakeFirst()
    return row && toRoleDefinition(row)
  }

  async findRoleDefinitionByName(name: string): Promise<RoleDefinition | undefined> {
    const row = await this.#db.selectFrom('role_definitions').selectAll().where('name', '=', name).executeTakeFirst()
    return row && toRoleDefinition(row)
  }

  async listRoleDefinitions(query: ListQuery): Promise<{ count: number; results: RoleDefinition[] }> {
    const base = this.#db.selectFrom('role_definitions')
    const { count, rows } = await listPage(this.#dialect, base, roleDefinitionFilterFields, query.filter ?? NO_FILTER, query)
    return { count, results: rows.map(toRoleDefinition) }
  }

  /** The role definition as it was and as it is, or undefined when there is none. */
  async updateRoleDefinition(id: number, changes: { name?: string | undefined; description?: string | undefined; contentType?: string | null | undefined; permissions?: string[] | undefined }, now = Date.now()): Promise<Changed<RoleDefinition> | undefined> {
    const before = await this.#forUpdate(this.#db.selectFrom('role_definitions').selectAll().where('id', '=', id))
    if (!before) return undefined
    const values = {
      ...definedOnly({ name: changes.name, description: changes.description }),
      ...(changes.contentType === undefined ? {} : { content_type: changes.contentType }),
      modified_at: now,
    }
    const row = await this.#db.updateTable('role_definitions')
      .set(changes.permissions ? { ...values, permissions: JSON.stringify(changes.permissions) } : values)
      .where('id', '=', id).returningAll().executeTakeFirstOrThrow()
    return { before: toRoleDefinition(before), after: toRoleDefinition(row) }
  }

  async deleteRoleDefinition(id: number): Promise<boolean> {
    const result = await this.#db.deleteFrom('role_definitions').where('id', '=', id).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  /**
   * Grants a role; one already held, or given by another transaction at the same moment (the unique constraint
   * decides, and PostgreSQL waits for that transaction to end), is returned as it is, with `created` false.
   */
  async assign(input: Omit<RoleAssignment, 'id' | 'created'>, now = Date.now()): Promise<{ assignment: RoleAssignment; created: boolean }> {
    const existing = await this.findHeldAssignment(input)
    if (existing) return { assignment: existing, created: false }
    const base = { role_definition_id: input.roleDefinitionId, object_type: input.objectType, object_id: input.objectId, created_at: now }
    const inserted = input.actor === 'user'
      ? await this.#db.insertInto('role_user_assignments').values({ ...base, user_id: input.actorId })
        .onConflict((c) => c.columns(['role_definition_id', 'user_id', 'object_type', 'object_id']).doNothing()).returningAll().executeTakeFirst()
        .then((row) => row && toAssignment('user', row.user_id, row))
      : await this.#db.insertInto('role_team_assignments').values({ ...base, team_id: input.actorId })
        .onConflict((c) => c.columns(['role_definition_id', 'team_id', 'object_type', 'object_id']).doNothing()).returningAll().executeTakeFirst()
        .then((row) => row && toAssignment('team', row.team_id, row))
    if (inserted) return { assignment: inserted, created: true }
    // A new statement, so on PostgreSQL it sees the other transaction's row, committed while the insert waited.
    const held = await this.findHeldAssignment(input)
    if (!held) throw new Error('a role assignment refused as held is not there')
    return { assignment: held, created: false }
  }

  /**
   * Inside a transaction: whether the organization or team a role is given on (or the user or team given it) is
   * there, kept there until the transaction ends (on PostgreSQL a key-share row lock: deleteOrganization and deleteTeam wait for it, and this
   * waits for one of them under way; on SQLite every write transaction is already alone). Role assignments name
   * their object by type and id, with no foreign key to keep it.
   */
  async lockObjectToAssign(type: 'organization' | 'team' | 'user', id: number): Promise<boolean> {
    const query = this.#db.selectFrom(type === 'team' ? 'teams' : type === 'user' ? 'users' : 'organizations').select('id').where('id', '=', id)
    return (await (this.#dialect === 'postgres' ? query.forKeyShare() : query).executeTakeFirst()) !== undefined
  }

  async findAssignment(actor: Actor, id: number): Promise<RoleAssignment | undefined> {
    if (actor === 'user') {
      const row = await this.#db.selectFrom('role_user_assignments').selectAll().where('id', '=', id).executeTakeFirst()
      return row && toAssignment('user', row.user_id, row)
    }
    const row = await this.#db.selectFrom('role_team_assignments').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toAssignment('team', row.team_id, row)
  }

  async listAssignments(actor: Actor, query: AssignmentQuery): Promise<{ count: number; results: RoleAssignment[] }> {
    const table = actor === 'user' ? 'role_user_assignments' as const : 'role_team_assignments' as const
    const actorColumn = actor === 'user' ? 'user_id' as const : 'team_id' as const
    let base = namesRelated(query.filter, actor) ? this.#db.selectFrom(this.#withNames(actor).as(table as 'role_user_assignments')) : this.#db.selectFrom(table as 'role_user_assignments')
    if (query.actorId !== undefined) base = base.where(actorColumn as 'user_id', '=', query.actorId)
    if (query.roleDefinitionId !== undefined) base = base.where('role_definition_id', '=', query.roleDefinitionId)
    if (query.objectType !== undefined) base = base.where('object_type', '=', query.objectType)
    if (query.objectId !== undefined) base = base.where('object_id', '=', query.objectId)
    if (query.onObjects !== undefined) {
      const { organizations, teams, platform } = query.onObjects
      base = base.where(anyOf([
        sql<boolean>`(object_type = 'organization' AND ${oneOf(this.#dialect, 'object_id', organizations)})`,
        sql<boolean>`(object_type = 'team' AND ${oneOf(this.#dialect, 'object_id', teams)})`,
        ...(platform ? [sql<boolean>`object_type = 'platform'`] : []),
      ]))
    }
    const { count, rows } = await listPage(this.#dialect, base, assignmentFilterFields(actor), query.filter ?? NO_FILTER, query)
    return { count, results: rows.map((r) => toAssignment(actor, (r as Record<string, unknown>)[actorColumn] as number, r)) }
  }

  /**
   * The assignments with the role's and the holder's names joined in under their lookups' names, to be read under
   * the assignments' own table name, so every filter, the visibility and the order's tiebreaker name its columns as
   * on the table alone. Both are foreign keys (deleted with their row), so the inner joins keep every assignment.
   */
  #withNames(actor: Actor) {
    const table = actor === 'user' ? 'role_user_assignments' as const : 'role_team_assignments' as const
    const holder = HOLDER_NAMES[actor]
    return this.#db.selectFrom(table as 'role_user_assignments')
      .innerJoin('role_definitions', 'role_definitions.id', `${table as 'role_user_assignments'}.role_definition_id`)
      .innerJoin(holder.table as 'users', `${holder.table as 'users'}.id`, `${table as 'role_user_assignments'}.${(actor === 'user' ? 'user_id' : 'team_id') as 'user_id'}`)
      .selectAll(table as 'role_user_assignments')
      .select([
        sql.ref<string>('role_definitions.name').as('role_definition__name'),
        ...holder.columns.map((column) => sql.ref<string>(`${holder.table}.${column}`).as(`${actor}__${column}`)),
      ])
  }

  async unassign(actor: Actor, id: number): Promise<boolean> {
    const table = actor === 'user' ? 'role_user_assignments' as const : 'role_team_assignments' as const
    const result = await this.#db.deleteFrom(table).where('id', '=', id).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  /** Removes a user's grant of one role on one object, if held (a mapping from the directory no longer applies). */
  async unassignUser(userId: number, roleDefinitionId: number, objectType: ObjectType, objectId: number): Promise<boolean> {
    const result = await this.#db.deleteFrom('role_user_assignments').where('user_id', '=', userId)
      .where('role_definition_id', '=', roleDefinitionId).where('object_type', '=', objectType).where('object_id', '=', objectId)
      .executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  /** The assignment giving this role to this actor on this object, if one does. */
  async findHeldAssignment(input: Omit<RoleAssignment, 'id' | 'created'>): Promise<RoleAssignment | undefined> {
    const { results } = await this.listAssignments(input.actor, {
      offset: 0, limit: 1, actorId: input.actorId, roleDefinitionId: input.roleDefinitionId, objectType: input.objectType, objectId: input.objectId,
    })
    return results[0]
  }

  async #deleteAssignmentsOn(objectType: ObjectType, ids: number[]): Promise<void> {
    if (!ids.length) return
    await this.#db.deleteFrom('role_user_assignments').where('object_type', '=', objectType).where('object_id', 'in', ids).execute()
    await this.#db.deleteFrom('role_team_assignments').where('object_type', '=', objectType).where('object_id', 'in', ids).execute()
  }
}

/** Whether a filter names the role's or the holder's name: only then are they joined in (the grants' own lookups never do). */
function namesRelated(filter: ListFilter | undefined, actor: Actor): boolean {
  const related = new Set<string>(['role_definition__name', ...holderNameFields(actor)])
  return filter !== undefined && [...filter.all, ...filter.any, ...filter.order].some(({ field }) => related.has(field))
}

function definedOnly<T extends Record<string, unknown>>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>
}

function toOrganization(row: { id: number; name: string; description: string; created_at: number; modified_at: number }): Organization {
  return { id: Number(row.id), name: row.name, description: row.description, created: Number(row.created_at), modified: Number(row.modified_at) }
}

function toTeam(row: { id: number; name: string; organization_id: number; description: string; created_at: number; modified_at: number }): Team {
  return { ...toOrganization(row), organizationId: Number(row.organization_id) }
}

function toRoleDefinition(row: Selectable<RoleDefinitionsTable>): RoleDefinition {
  return {
    id: Number(row.id),
    name: row.name,
    description: row.description,
    contentType: row.content_type,
    permissions: JSON.parse(row.permissions) as string[],
    managed: Boolean(row.managed),
    created: Number(row.created_at),
    modified: Number(row.modified_at),
  }
}

function toAssignment(actor: Actor, actorId: number, row: { id: number; role_definition_id: number; object_type: string; object_id: number; created_at: number }): RoleAssignment {
  return {
    id: Number(row.id),
    roleDefinitionId: Number(row.role_definition_id),
    actor,
    actorId: Number(actorId),
    objectType: row.object_type as ObjectType,
    objectId: Number(row.object_id),
    created: Number(row.created_at),
  }
}
