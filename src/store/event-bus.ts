import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'kysely'
import type pg from 'pg'
import type { Store } from './store.ts'

type Listener = (key: string) => void | Promise<void>

const CHANNEL = 'gatehouse_events'
/** Identity values can commit out of order on PostgreSQL; re-reading a short window behind the newest catches late ones. */
const LOOK_BACK = 50
/** A process that has not said it is alive for this long is no longer waited for. */
const ALIVE_MS = 5000
/** The longest a publisher waits for other processes to confirm they have read its event. */
const ACK_WAIT_MS = 1000
const RESOLVED = Promise.resolve()

/** What /readyz reports of the bus (src/health/readiness.ts). */
export interface EventBusHealth {
  readonly running: boolean
  /** PostgreSQL: whether the LISTEN connection is up; undefined on SQLite, which has none. */
  readonly listening: boolean | undefined
  /** When the event log was last read successfully (the poll reads it every interval even without news). */
  readonly lastReadAt: number | undefined
  readonly intervalMs: number
}

/**
 * Tells every gateway process sharing the database that something it may have cached changed (a user
 * disabled, a token revoked, a setting saved), so "revoked" means refused on the very next request anywhere,
 * while the request path itself stays in memory:
 * - SQLite: each request costs one `PRAGMA data_version`, which moves only when another process committed.
 * - PostgreSQL: LISTEN/NOTIFY pushes news to every process, and a publisher returns only once every live
 *   process has confirmed it read the event (bounded by ACK_WAIT_MS), so its caller's next request cannot
 *   overtake the news. The request path costs nothing.
 * A timer re-reads the log as a safety net, keeps this process's heartbeat and prunes old entries.
 */
export class EventBus {
  readonly #store: Store
  readonly #listeners = new Map<string, Listener[]>()
  readonly #seen = new Set<number>()
  readonly #processId = randomUUID()
  #lastId = 0
  #dataVersion: number | undefined
  #syncing: Promise<void> | undefined
  #again = false
  #timer: NodeJS.Timeout | undefined
  #client: pg.PoolClient | undefined
  #registered = false
  /** The data_version check the requests of this event-loop turn wait for. */
  #versionCheck: Promise<void> | undefined
  #intervalMs = 1000
  #listening = false
  #lastReadAt: number | undefined

  constructor(store: Store) {
    this.#store = store
  }

  get #postgres(): boolean {
    return this.#store.database.dialect === 'postgres'
  }

  get health(): EventBusHealth {
    return {
      running: this.#timer !== undefined,
      listening: this.#postgres ? this.#listening : undefined,
      lastReadAt: this.#lastReadAt,
      intervalMs: this.#intervalMs,
    }
  }

  async start(intervalMs = 1000): Promise<void> {
    this.#intervalMs = intervalMs
    this.#lastId = await this.#store.events.latestId()
    this.#lastReadAt = Date.now()
    this.#dataVersion = this.#store.database.dataVersion()
    if (this.#postgres) {
      this.#client = await this.#store.database.listenClient()
      this.#client!.on('notification', () => void this.sync().catch(() => {}))
      const lost = () => {
        this.#listening = false
      }
      this.#client!.on('error', lost)
      this.#client!.on('end', lost)
      await this.#client!.query(`LISTEN ${CHANNEL}`)
      this.#listening = true
      await this.#store.events.heartbeat(this.#processId, this.#lastId)
      this.#registered = true
    }
    let ticks = 0
    this.#timer = setInterval(() => {
      void this.sync().catch(() => {})
      if (this.#registered && ++ticks % Math.max(1, Math.round(1000 / intervalMs)) === 0) {
        void this.#store.events.heartbeat(this.#processId, this.#lastId).catch(() => {})
      }
      if (ticks % 3600 === 0) void this.#store.events.pruneBefore(Date.now() - 3600_000).catch(() => {})
    }, intervalMs)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#syncing
    if (this.#registered) {
      this.#registered = false
      await this.#store.events.leave(this.#processId).catch(() => {})
    }
    if (this.#client) {
      this.#listening = false
      this.#client.removeAllListeners('notification')
      this.#client.release(true)
      this.#client = undefined
    }
  }

  on(topic: string, listener: Listener): void {
    const list = this.#listeners.get(topic) ?? []
    list.push(listener)
    this.#listeners.set(topic, list)
  }

  /** Records a change; this process's listeners run before it returns, and other processes have read it or will on their next request. */
  async publish(topic: string, key: string): Promise<void> {
    const id = await this.#store.events.append(topic, key)
    this.#seen.add(id)
    await this.#dispatch(topic, key)
    if (this.#postgres) {
      await sql`select pg_notify(${CHANNEL}, ${String(id)})`.execute(this.#store.database.db)
      await this.#waitForReaders(id)
    } else {
      this.#dataVersion = this.#store.database.dataVersion()
    }
  }

  /**
   * Cheap enough for every request: reads the log only when another process may have written to it.
   * On SQLite the `PRAGMA data_version` (two file-lock system calls) is shared by every request that asks
   * before it runs: it runs once per turn of the event loop, after the requests read in that turn, so it
   * still sees every commit made before any of them arrived. PostgreSQL pushes news instead.
   */
  freshen(): Promise<void> {
    if (this.#postgres) return this.#syncing ?? RESOLVED
    this.#versionCheck ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.#versionCheck = undefined
      return this.#checkVersion()
    })
    return this.#versionCheck
  }

  async #checkVersion(): Promise<void> {
    const version = this.#store.database.dataVersion()
    if (version !== this.#dataVersion) {
      this.#dataVersion = version
      await this.sync()
    } else if (this.#syncing) {
      await this.#syncing
    }
  }

  /** Reads news now; a request made while a read is running gets one more read after it. */
  sync(): Promise<void> {
    if (this.#syncing) {
      this.#again = true
      return this.#syncing
    }
    this.#syncing = (async () => {
      do {
        this.#again = false
        await this.#readNews()
      } while (this.#again)
    })().finally(() => {
      this.#syncing = undefined
    })
    return this.#syncing
  }

  async #readNews(): Promise<void> {
    const events = await this.#store.events.after(Math.max(0, this.#lastId - LOOK_BACK))
    const before = this.#lastId
    for (const event of events) {
      this.#lastId = Math.max(this.#lastId, event.id)
      if (this.#seen.has(event.id)) continue
      this.#seen.add(event.id)
      await this.#dispatch(event.topic, event.key)
    }
    this.#lastReadAt = Date.now()
    for (const id of this.#seen) if (id < this.#lastId - LOOK_BACK) this.#seen.delete(id)
    if (this.#registered && this.#lastId !== before) await this.#store.events.heartbeat(this.#processId, this.#lastId)
  }

  async #waitForReaders(id: number): Promise<void> {
    const deadline = Date.now() + ACK_WAIT_MS
    while (Date.now() < deadline) {
      if ((await this.#store.events.lagging(id, Date.now() - ALIVE_MS, this.#processId)) === 0) return
      await sleep(3)
    }
  }

  async #dispatch(topic: string, key: string): Promise<void> {
    for (const listener of this.#listeners.get(topic) ?? []) await listener(key)
  }
}
