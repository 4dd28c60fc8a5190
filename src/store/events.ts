import type { Kysely } from 'kysely'
import type { RawBuilder } from 'kysely'
import { databaseNow } from './database-clock.ts'
import { sql } from './kysely.ts'
import type { DialectName } from './migrations/helpers.ts'
import type { Tables } from './schema.ts'

/** The most given-up ids one notification names (a few hundred characters); any beyond are waited out. */
const MAX_ABANDONED = 500

/** The PostgreSQL NOTIFY channel on which the id of each new event is announced. */
export const EVENT_CHANNEL = 'gatehouse_events'

export interface StoredEvent {
  id: number
  topic: string
  key: string
  /** When the change was committed (epoch ms): how late a process reads it is the bus's lag. */
  createdAt: number
}

/**
 * An append-only log of "this changed" notices (a user disabled, a token revoked, a setting saved).
 * Every gateway process sharing the database reads it to drop what it cached; see src/store/event-bus.ts.
 */
export class EventLog {
  readonly #db: Kysely<Tables>
  /**
   * The database's clock in epoch ms: which processes are alive is judged by it alone, as processes on several
   * machines may disagree on the time (one a minute behind would never be waited for, one ahead counted long dead).
   */
  readonly #now: RawBuilder<number>

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#now = databaseNow(dialect)
  }

  /** Stamped with the database's time (or `at`), as the prune judges age by it. */
  async append(topic: string, key: string, at?: number): Promise<number> {
    return (await this.appendStamped(topic, key, at)).id
  }

  /** As `append`, with the time it was stamped with. */
  async appendStamped(topic: string, key: string, at?: number): Promise<{ id: number; createdAt: number }> {
    const row = await this.#db.insertInto('events').values({ topic, key, created_at: at ?? this.#now }).returning(['id', 'created_at']).executeTakeFirstOrThrow()
    return { id: Number(row.id), createdAt: Number(row.created_at) }
  }

  /** The database's time now (epoch ms). */
  async databaseTime(): Promise<number> {
    const { rows } = await sql<{ now: number }>`select ${this.#now} as now`.execute(this.#db)
    return Number(rows[0]!.now)
  }

  /**
   * PostgreSQL: tells every listening process that events up to `id` exist; within a transaction, at its commit.
   * `abandoned`: ids a transaction took and gave up (rolled back, retried), which no event will ever hold: readers stop
   * waiting for them (src/store/event-bus.ts). A payload holds 8,000 bytes: at most MAX_ABANDONED are named.
   */
  async notify(id: number, abandoned: readonly number[] = []): Promise<void> {
    const payload = abandoned.length ? `${id} ${abandoned.slice(0, MAX_ABANDONED).join(',')}` : String(id)
    await sql`select pg_notify(${EVENT_CHANNEL}, ${payload})`.execute(this.#db)
  }

  async after(id: number, limit = 1000): Promise<StoredEvent[]> {
    const rows = await this.#db.selectFrom('events').select(['id', 'topic', 'key', 'created_at']).where('id', '>', id).orderBy('id').limit(limit).execute()
    return rows.map(storedEvent)
  }

  /** Those of `ids` the log holds, in order. */
  async withIds(ids: number[]): Promise<StoredEvent[]> {
    if (!ids.length) return []
    const rows = await this.#db.selectFrom('events').select(['id', 'topic', 'key', 'created_at']).where('id', 'in', ids).orderBy('id').execute()
    return rows.map(storedEvent)
  }

  /** The oldest event still in the log (0 when it is empty): a reader behind it lost news to a prune. */
  async oldestId(): Promise<number> {
    const row = await this.#db.selectFrom('events').select((eb) => eb.fn.min('id').as('id')).executeTakeFirst()
    return Number(row?.id ?? 0)
  }

  async latestId(): Promise<number> {
    const row = await this.#db.selectFrom('events').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst()
    return Number(row?.id ?? 0)
  }

  /** Registers or refreshes a reading process and how far it has read, at the database's time, which it answers. */
  async heartbeat(processId: string, lastEventId: number): Promise<number> {
    const row = await this.#db.insertInto('gateway_processes').values({ id: processId, heartbeat_at: this.#now, last_event_id: lastEventId })
      .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: this.#now, last_event_id: lastEventId }))
      .returning('heartbeat_at').executeTakeFirstOrThrow()
    return Number(row.heartbeat_at)
  }

  async leave(processId: string): Promise<void> {
    await this.#db.deleteFrom('gateway_processes').where('id', '=', processId).execute()
  }

  /** How many live processes (heartbeat within the last `aliveMs`) other than `except` have not yet read event `id`. */
  async lagging(id: number, aliveMs: number, except: string): Promise<number> {
    const row = await this.#db.selectFrom('gateway_processes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('heartbeat_at', '>', this.#since(aliveMs)).where('last_event_id', '<', id).where('id', '!=', except)
      .executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /** How many processes other than `except` said they were alive within the last `aliveMs`. */
  async othersAlive(aliveMs: number, except: string): Promise<number> {
    const row = await this.#db.selectFrom('gateway_processes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('heartbeat_at', '>', this.#since(aliveMs)).where('id', '!=', except)
      .executeTakeFirstOrThrow()
    return Number(row.n)
  }

  #since(ms: number): RawBuilder<number> {
    return sql<number>`${this.#now} - ${ms}`
  }

  /**
   * Deletes events, and processes not heard from, older than `maxAgeMs` by the database's clock; never the newest
   * event: a reader that had not read the pruned events then still finds an event past them, behind the oldest one
   * left, and knows it missed news (EventBus flushes).
   */
  async prune(maxAgeMs: number): Promise<void> {
    await this.#db.deleteFrom('gateway_processes').where('heartbeat_at', '<', this.#since(maxAgeMs)).execute()
    const latest = await this.latestId()
    await this.#db.deleteFrom('events').where('created_at', '<', this.#since(maxAgeMs)).where('id', '<', latest).execute()
  }
}

function storedEvent(row: { id: number | string | bigint; topic: string; key: string; created_at: number | string | bigint }): StoredEvent {
  return { id: Number(row.id), topic: row.topic, key: row.key, createdAt: Number(row.created_at) }
}
