import { sql } from 'kysely'
import type pg from 'pg'
import type { Store } from './store.ts'

type Listener = (key: string) => void | Promise<void>

const CHANNEL = 'gatehouse_events'
/** Identity values can commit out of order on PostgreSQL; re-reading a short window behind the newest catches late ones. */
const LOOK_BACK = 50

/**
 * Tells every gateway process sharing the database that something it may have cached changed.
 * The request path calls `freshen()`: on SQLite that costs one `PRAGMA data_version` (it moves only when
 * another process committed), on PostgreSQL nothing, because LISTEN/NOTIFY pushes news as it commits.
 * A timer re-reads the log as a safety net and prunes old entries.
 */
export class EventBus {
  readonly #store: Store
  readonly #listeners = new Map<string, Listener[]>()
  readonly #seen = new Set<number>()
  #lastId = 0
  #dataVersion: number | undefined
  #syncing: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #client: pg.PoolClient | undefined

  constructor(store: Store) {
    this.#store = store
  }

  async start(intervalMs = 1000): Promise<void> {
    this.#lastId = await this.#store.events.latestId()
    this.#dataVersion = this.#store.database.dataVersion()
    this.#client = await this.#store.database.listenClient()
    if (this.#client) {
      this.#client.on('notification', () => void this.sync())
      this.#client.on('error', () => {})
      await this.#client.query(`LISTEN ${CHANNEL}`)
    }
    let ticks = 0
    this.#timer = setInterval(() => {
      void this.sync().catch(() => {})
      if (++ticks % 3600 === 0) void this.#store.events.pruneBefore(Date.now() - 3600_000).catch(() => {})
    }, intervalMs)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    if (this.#client) {
      this.#client.removeAllListeners('notification')
      this.#client.release(true)
      this.#client = undefined
    }
    await this.#syncing
  }

  on(topic: string, listener: Listener): void {
    const list = this.#listeners.get(topic) ?? []
    list.push(listener)
    this.#listeners.set(topic, list)
  }

  /** Records a change; this process's listeners run before it returns, other processes' on their next request. */
  async publish(topic: string, key: string): Promise<void> {
    const id = await this.#store.events.append(topic, key)
    this.#seen.add(id)
    if (this.#store.database.dialect === 'postgres') {
      await sql`select pg_notify(${CHANNEL}, ${String(id)})`.execute(this.#store.database.db)
    }
    await this.#dispatch(topic, key)
    this.#dataVersion = this.#store.database.dataVersion()
  }

  /** Cheap enough for every request: reads the log only when another process may have written to it. */
  async freshen(): Promise<void> {
    const version = this.#store.database.dataVersion()
    if (version !== undefined && version !== this.#dataVersion) {
      this.#dataVersion = version
      // A sync already under way may have read the log before that commit: read it again once it is done.
      await this.#syncing?.catch(() => {})
      await this.sync()
    } else if (this.#syncing) {
      await this.#syncing
    }
  }

  sync(): Promise<void> {
    this.#syncing ??= this.#readNews().finally(() => {
      this.#syncing = undefined
    })
    return this.#syncing
  }

  async #readNews(): Promise<void> {
    const events = await this.#store.events.after(Math.max(0, this.#lastId - LOOK_BACK))
    for (const event of events) {
      this.#lastId = Math.max(this.#lastId, event.id)
      if (this.#seen.has(event.id)) continue
      this.#seen.add(event.id)
      await this.#dispatch(event.topic, event.key)
    }
    for (const id of this.#seen) if (id < this.#lastId - LOOK_BACK) this.#seen.delete(id)
  }

  async #dispatch(topic: string, key: string): Promise<void> {
    for (const listener of this.#listeners.get(topic) ?? []) await listener(key)
  }
}
