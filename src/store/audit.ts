import type { Kysely, Selectable } from 'kysely'
import type { AuditEntriesTable, Tables } from './schema.ts'

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
}

export type NewAuditEntry = Omit<AuditEntry, 'id'>

/** What a list may be narrowed by; every field is an exact match except the time range. */
export interface AuditFilter {
  id?: number | undefined
  operation?: string[] | undefined
  contentType?: string | undefined
  objectId?: string | undefined
  objectName?: string | undefined
  actorId?: number | undefined
  actorUsername?: string | undefined
  sourceAddress?: string | undefined
  authMethod?: string | undefined
  code?: string | undefined
  realm?: string | undefined
  createdFrom?: number | undefined
  createdTo?: number | undefined
}

/** The audit trail's storage: batched inserts, filtered pages, and pruning by age and by count. */
export class AuditRepository {
  readonly #db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.#db = db
  }

  async insertMany(entries: readonly NewAuditEntry[]): Promise<void> {
    if (!entries.length) return
    await this.#db.insertInto('audit_entries').values(entries.map(toRow)).execute()
  }

  async list(filter: AuditFilter, page: { offset: number; limit: number; newestFirst: boolean }): Promise<{ count: number; entries: AuditEntry[] }> {
    const narrowed = this.#filtered(filter)
    const [total, rows] = await Promise.all([
      narrowed.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
      narrowed.selectAll().orderBy('id', page.newestFirst ? 'desc' : 'asc').offset(page.offset).limit(page.limit).execute(),
    ])
    return { count: Number(total.n), entries: rows.map(toEntry) }
  }

  async count(): Promise<number> {
    const row = await this.#db.selectFrom('audit_entries').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /** Deletes entries created before `time`, and all but the newest `keep`; answers how many went. */
  async prune(time: number, keep: number): Promise<number> {
    const old = await this.#db.deleteFrom('audit_entries').where('created_at', '<', time).executeTakeFirst()
    const cutoff = await this.#db.selectFrom('audit_entries').select('id').orderBy('id', 'desc').offset(keep).limit(1).executeTakeFirst()
    const surplus = cutoff ? await this.#db.deleteFrom('audit_entries').where('id', '<=', cutoff.id).executeTakeFirst() : undefined
    return Number(old.numDeletedRows) + Number(surplus?.numDeletedRows ?? 0)
  }

  #filtered(filter: AuditFilter) {
    let query = this.#db.selectFrom('audit_entries')
    if (filter.id !== undefined) query = query.where('id', '=', filter.id)
    if (filter.operation?.length) query = query.where('operation', 'in', filter.operation)
    if (filter.contentType !== undefined) query = query.where('content_type', '=', filter.contentType)
    if (filter.objectId !== undefined) query = query.where('object_id', '=', filter.objectId)
    if (filter.objectName !== undefined) query = query.where('object_name', '=', filter.objectName)
    if (filter.actorId !== undefined) query = query.where('actor_id', '=', filter.actorId)
    if (filter.actorUsername !== undefined) query = query.where('actor_username', '=', filter.actorUsername)
    if (filter.sourceAddress !== undefined) query = query.where('source_address', '=', filter.sourceAddress)
    if (filter.authMethod !== undefined) query = query.where('auth_method', '=', filter.authMethod)
    if (filter.code !== undefined) query = query.where('code', '=', filter.code)
    if (filter.realm !== undefined) query = query.where('realm', '=', filter.realm)
    if (filter.createdFrom !== undefined) query = query.where('created_at', '>=', filter.createdFrom)
    if (filter.createdTo !== undefined) query = query.where('created_at', '<=', filter.createdTo)
    return query
  }
}

function toRow(entry: NewAuditEntry) {
  return {
    created_at: entry.created,
    operation: entry.operation,
    content_type: entry.contentType,
    object_id: entry.objectId,
    object_name: entry.objectName?.slice(0, 200) ?? null,
    actor_id: entry.actorId,
    actor_username: entry.actorUsername?.slice(0, 150) ?? null,
    source_address: entry.sourceAddress?.slice(0, 64) ?? null,
    auth_method: entry.authMethod,
    code: entry.code,
    realm: entry.realm,
    changes: entry.changes === undefined || entry.changes === null ? null : JSON.stringify(entry.changes),
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
  }
}
