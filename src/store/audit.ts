import type { Kysely, Selectable, SelectQueryBuilder } from 'kysely'
import { sql } from './kysely.ts'
import { deleteInBatches } from './deletion-batches.ts'
import { type FilterFields, type ListFilter, listPage, NO_FILTER } from './list-filter.ts'
import type { DialectName } from './migrations/helpers.ts'
import type { AuditEntriesTable, Tables } from './schema.ts'

/**
 * What an entry is to the count bound: a `sign_in` (a login, a failed one, a logout, a lockout, the trail's count of
 * dropped ones, and the session a login started or a logout ended), or a `change` (anything else: what an account,
 * an administrator, the CLI or Gatehouse itself changed, or was refused). The bound deletes sign-ins first.
 */
export type AuditKind = 'sign_in' | 'change'

/** The order in which the count bound deletes the oldest entries: every sign-in before any change. */
const PRUNED_FIRST: readonly AuditKind[] = ['sign_in', 'change']

/** One audit entry as stored; `changes` is parsed JSON (see src/audit/changes.ts for its shape). */
export interface AuditEntry {
  id: number
  created: number
  operation: string
  contentType: string
  objectId: string | null
  objectName: string | null
  actorId: number | null
  actorUsername: string | null
  sourceAddress: string | null
  authMethod: string | null
  code: string | null
  realm: string | null
  changes: unknown
  kind: AuditKind
}

export type NewAuditEntry = Omit<AuditEntry, 'id'>

/** What the audit trail can be filtered, searched and ordered on, by the activity stream's field names. */
export const auditFilterFields: FilterFields = Object.freeze({
  id: { column: 'id', type: 'integer' },
  created: { column: 'created_at', type: 'time' },
  operation: { column: 'operation', type: 'text' },
  content_type: { column: 'content_type', type: 'text' },
  object_id: { column: 'object_id', type: 'text' },
  object_name: { column: 'object_name', type: 'text', searched: true },
  created_by: { column: 'actor_id', type: 'integer' },
  created_by__username: { column: 'actor_username', type: 'text', searched: true },
  source_address: { column: 'source_address', type: 'text', searched: true },
  auth_method: { column: 'auth_method', type: 'text' },
  code: { column: 'code', type: 'text' },
  realm: { column: 'realm', type: 'text' },
  // Not a field of the platform's: its stream has changes only.
  kind: { column: 'kind', type: 'text' },
  // JSON text: as the platform's JSONField, a case-insensitive match in the whole of it (its key paths are not taken).
  changes: { column: 'changes', type: 'text', lookups: ['icontains', 'isnull'] },
  // The platform's (dis)associations name a second object; Gatehouse's entries never do.
  related_content_type: { column: null, type: 'text' },
  related_content_type__model: { column: null, type: 'text' },
  related_object_id: { column: null, type: 'text' },
  related_field_name: { column: null, type: 'text' },
})

/** The audit trail's storage: batched inserts, filtered pages, and pruning by age and by count. */
export class AuditRepository {
  readonly #db: Kysely<Tables>
  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  async insertMany(entries: readonly NewAuditEntry[]): Promise<void> {
    if (!entries.length) return
    await this.#db.insertInto('audit_entries').values(entries.map(toRow)).execute()
  }

  /** A page of entries, filtered and ordered (src/store/list-filter.ts); by id, oldest first, unless the filter orders. */
  async list(query: { filter?: ListFilter | undefined; offset: number; limit: number }): Promise<{ count: number; entries: AuditEntry[] }> {
    const filter = query.filter ?? NO_FILTER
    const base = this.#db.selectFrom('audit_entries')
    const { count, rows } = await listPage(this.#dialect, base, auditFilterFields, filter, query)
    return { count, entries: rows.map(toEntry) }
  }

  /**
   * What a page of entries links to, in two queries whatever the page's size: the users named (who acted, and
   * those acted on) that still exist, with their names; and which of the other objects acted on still exist, as
   * `kind:id` (a session while it lasts). Ids are the entries' own, so a kind without a table here is never found.
   */
  async linkedObjects(entries: readonly AuditEntry[], now: number): Promise<LinkedObjects> {
    const userIds = new Set<number>()
    const idsByTable = new Map<ObjectTable, Set<number>>()
    for (const entry of entries) {
      if (entry.actorId !== null) userIds.add(entry.actorId)
      const id = numericId(entry.objectId)
      if (id === undefined) continue
      if (entry.contentType === 'user') userIds.add(id)
      const table = OBJECT_TABLES.get(entry.contentType)
      if (table) idsByTable.set(table, (idsByTable.get(table) ?? new Set()).add(id))
    }
    const [users, objects] = await Promise.all([this.#users([...userIds]), this.#existing(idsByTable, now)])
    return { users, objects }
  }

  async #users(ids: number[]): Promise<LinkedObjects['users']> {
    if (!ids.length) return new Map()
    const rows = await this.#db.selectFrom('users').select(['id', 'username', 'first_name', 'last_name']).where('id', 'in', ids).execute()
    return new Map(rows.map((row) => [Number(row.id), { username: row.username, firstName: row.first_name, lastName: row.last_name }]))
  }

  async #existing(idsByTable: ReadonlyMap<ObjectTable, Set<number>>, now: number): Promise<Set<string>> {
    const selects = [...idsByTable].map(([table, ids]) => {
      const query = this.#db.selectFrom(table).select([sql.lit(table).as('kind'), 'id']).where('id', 'in', [...ids])
      return table === 'sessions' ? query.where('expires_at', '>', now) : query
    })
    if (!selects.length) return new Set()
    const rows = await selects.slice(1).reduce((union, select) => union.unionAll(select), selects[0]!).execute()
    return new Set(rows.map((row) => `${KINDS_BY_TABLE.get(row.kind as ObjectTable)}:${Number(row.id)}`))
  }

  async findById(id: number): Promise<AuditEntry | undefined> {
    const row = await this.#db.selectFrom('audit_entries').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toEntry(row)
  }

  async count(): Promise<number> {
    const row = await this.#db.selectFrom('audit_entries').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /**
   * Deletes entries created before `time`, then, past `keep` entries, the oldest sign-in entries, and the oldest
   * changes only while the changes alone are more than `keep`: a flood of logins cannot push a change out. Each kind
   * is a range of the index on (kind, id), so neither the search for the last entry to go nor a batch reads past the
   * entries kept. A batch at a time (deleteInBatches); answers how many went.
   */
  async prune(time: number, keep: number): Promise<number> {
    let deleted = await this.#deleteInBatches((query) => query.where('created_at', '<', time))
    let surplus = (await this.count()) - keep
    for (const kind of PRUNED_FIRST) {
      if (surplus <= 0) break
      const gone = await this.#deleteOldest(kind, surplus)
      surplus -= gone
      deleted += gone
    }
    return deleted
  }

  /** Deletes the oldest `count` entries of `kind`, or all of them when it has fewer (up to the newest there now). */
  async #deleteOldest(kind: AuditKind, count: number): Promise<number> {
    const ofKind = this.#db.selectFrom('audit_entries').select('id').where('kind', '=', kind)
    const last = await ofKind.orderBy('id').offset(count - 1).limit(1).executeTakeFirst()
      ?? await ofKind.orderBy('id', 'desc').limit(1).executeTakeFirst()
    if (!last) return 0
    return this.#deleteInBatches((query) => query.where('kind', '=', kind).where('id', '<=', last.id))
  }

  #deleteInBatches(which: (query: SelectQueryBuilder<Tables, 'audit_entries', { id: number }>) => SelectQueryBuilder<Tables, 'audit_entries', { id: number }>): Promise<number> {
    return deleteInBatches(async (limit) => {
      const batch = which(this.#db.selectFrom('audit_entries').select('id')).limit(limit)
      return Number((await this.#db.deleteFrom('audit_entries').where('id', 'in', batch).executeTakeFirst()).numDeletedRows)
    })
  }
}

/** The users and objects a page of entries names that still exist (AuditRepository.linkedObjects). */
export interface LinkedObjects {
  users: ReadonlyMap<number, { username: string; firstName: string; lastName: string }>
  /** `kind:id` of each object acted on that still exists, users apart. */
  objects: ReadonlySet<string>
}

type ObjectTable = 'organizations' | 'teams' | 'oauth2_applications' | 'tokens' | 'sessions' | 'role_definitions' | 'role_user_assignments' | 'role_team_assignments'

/** The table of each kind of entry whose objects have their own rows, users apart (they are read with their names). */
const OBJECT_TABLES: ReadonlyMap<string, ObjectTable> = new Map([
  ['organization', 'organizations'],
  ['team', 'teams'],
  ['application', 'oauth2_applications'],
  ['token', 'tokens'],
  ['session', 'sessions'],
  ['role_definition', 'role_definitions'],
  ['role_user_assignment', 'role_user_assignments'],
  ['role_team_assignment', 'role_team_assignments'],
])
const KINDS_BY_TABLE: ReadonlyMap<ObjectTable, string> = new Map([...OBJECT_TABLES].map(([kind, table]) => [table, kind]))

/** An object id that is a row's id; `tokens of user 7`, a key's `kid` or a number no id column holds is none. */
export function numericId(objectId: string | null): number | undefined {
  if (objectId === null || !/^[1-9][0-9]{0,9}$/.test(objectId)) return undefined
  const id = Number(objectId)
  return id <= MAX_ROW_ID ? id : undefined
}

/** The largest id an INTEGER column holds on PostgreSQL: a larger one in a query would be refused, not missed. */
const MAX_ROW_ID = 2 ** 31 - 1

/**
 * The longest object name, actor username and source address an entry keeps: the table's and the JSON lines' alike,
 * as the trail cuts them where it makes the entry (src/audit/trail.ts `entryOf`). A name anyone may send (a failed
 * login's username) cannot make an entry of any size.
 */
export const AUDIT_FIELD_LIMITS = { objectName: 200, actorUsername: 150, sourceAddress: 64 } as const

function toRow(entry: NewAuditEntry) {
  return {
    created_at: entry.created,
    operation: entry.operation,
    content_type: entry.contentType,
    object_id: entry.objectId,
    object_name: entry.objectName?.slice(0, AUDIT_FIELD_LIMITS.objectName) ?? null,
    actor_id: entry.actorId,
    actor_username: entry.actorUsername?.slice(0, AUDIT_FIELD_LIMITS.actorUsername) ?? null,
    source_address: entry.sourceAddress?.slice(0, AUDIT_FIELD_LIMITS.sourceAddress) ?? null,
    auth_method: entry.authMethod,
    code: entry.code,
    realm: entry.realm,
    changes: entry.changes === undefined || entry.changes === null ? null : JSON.stringify(entry.changes),
    kind: entry.kind,
  }
}

function toEntry(row: Selectable<AuditEntriesTable>): AuditEntry {
  return {
    id: Number(row.id),
    created: Number(row.created_at),
    operation: row.operation,
    contentType: row.content_type,
    objectId: row.object_id,
    objectName: row.object_name,
    actorId: row.actor_id === null ? null : Number(row.actor_id),
    actorUsername: row.actor_username,
    sourceAddress: row.source_address,
    authMethod: row.auth_method,
    code: row.code,
    realm: row.realm,
    changes: row.changes === null ? null : JSON.parse(row.changes),
    kind: row.kind === 'sign_in' ? 'sign_in' : 'change',
  }
}
