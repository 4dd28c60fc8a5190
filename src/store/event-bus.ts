import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import { DatabaseClock } from './database-clock.ts'
import { EVENT_CHANNEL, type StoredEvent } from './events.ts'
import type { Repositories, Store } from './store.ts'
import type { Topic } from './topics.ts'

type Listener = (key: string) => void | Promise<void>

/** Records, inside a change's transaction, the news every process must hear of it. */
export type Announce = (topic: Topic, key: string) => void

/** What must change along with news under a topic, in the same transaction: given the keys announced (EventBus `cascade`). */
export type Cascade = (tx: Repositories, keys: readonly string[], announce: Announce) => Promise<void>

/** Identity values can commit out of order on PostgreSQL; re-reading a short window behind the newest catches late ones. */
const LOOK_BACK = 50
/**
 * How long an id read past without its event is looked for again (PostgreSQL). A transaction takes its events' ids
 * before its commit, so one that commits late (a slow commit, much news) lands behind ids other processes have read,
 * maybe further back than LOOK_BACK; an id no commit will ever use (a rolled-back transaction's) is given up then.
 */
const HOLE_WAIT_MS = 300_000
/**
 * How long such an id holds back what this process tells publishers it has read (`#readThrough`). A publisher waits
 * until every process has read its event's id; a process that read past the id before the event committed has not,
 * although its newest id is beyond it. Its commit follows its ids within milliseconds; an id older than this is most
 * likely one no commit will use, and would only hold every publisher to ACK_WAIT_MS.
 */
const HOLE_CONFIRM_MS = 2000
/** The most such ids looked for; the oldest are given up first. */
const MAX_HOLES = 10_000
/** The most events read at once; a full batch is followed by another read at once. */
const BATCH = 1000
/** A process that has not said it is alive for this long is no longer waited for. */
const ALIVE_MS = 5000
/** How often a process says it is alive (and counts the others that do). */
const HEARTBEAT_MS = 1000
/** The longest a publisher waits for other processes to confirm they have read its event. */
const ACK_WAIT_MS = 1000
/**
 * The publisher asks whether the others have confirmed every ACK_CHECK_FIRST_MS for its first ACK_QUICK_CHECKS
 * checks (a process that reads the news confirms within a check or two), then after waits that double up to
 * ACK_CHECK_MAX_MS: at one pace throughout, a process alive but stalled cost about 300 queries per change.
 */
const ACK_CHECK_FIRST_MS = 3
const ACK_QUICK_CHECKS = 3
const ACK_CHECK_MAX_MS = 100
/**
 * The longest a request waits, on PostgreSQL, for a read of the log that is under way (news just pushed). Only
 * a wait, never a condition: the publisher's own wait for confirmations is what makes a change visible everywhere.
 */
const READ_WAIT_MS = 200
/** The LISTEN connection is reopened after a delay that doubles from the first to the last. */
const RECONNECT_FIRST_MS = 100
const RECONNECT_MAX_MS = 5000
export const DEFAULT_MAX_STALE_MS = 30_000
const RESOLVED = Promise.resolve()

export interface EventBusOptions {
  /** `auth.max_stale_seconds` in ms: how long what this process read may be trusted without a read of the log since. */
  maxStaleMs?: number
}

/** What a readiness check needs to know of the bus; reading it costs nothing. */
export interface EventBusStatus {
  /** Started and not stopped: the log is being read. */
  running: boolean
  /** News arrives as it happens: PostgreSQL's LISTEN connection is up; always true on SQLite once started. */
  listening: boolean
  /** How long ago the last complete read of the log began (everything committed before it has been seen), ms. */
  sinceReadMs: number | undefined
  /** Whether cached credentials may be trusted: the log was read within `maxStaleMs`. */
  fresh: boolean
  /**
   * Since when (wall clock, ms) this process's heartbeat, a write once a second, has failed each time: a database
   * that answers reads and refuses writes (a full disk, a read-only file system, a PostgreSQL standby).
   */
  writesFailingSince: number | undefined
}

/**
 * Tells every gateway process sharing the database that something it may have cached changed (a user
 * disabled, a token revoked, a setting saved), so "revoked" means refused on the very next request anywhere,
 * while the request path itself stays in memory:
 * - A change and its news are written in one transaction (`change`), so no crash can keep one from the other.
 * - SQLite: each turn of the event loop that brings requests reads the WAL index's header (one `pread`), and only
 *   when that changed `PRAGMA data_version`, which moves only when another process committed (sqlite-driver.ts).
 * - PostgreSQL: LISTEN/NOTIFY pushes news to every process, and a publisher returns only once every live
 *   process has confirmed it read the event (bounded by ACK_WAIT_MS), so its caller's next request cannot
 *   overtake the news. The request path costs nothing. A lost LISTEN connection is reopened with backoff, and
 *   the log read again once it is.
 * A timer re-reads the log as a safety net (and as proof that the database still answers: see `fresh`), keeps
 * this process's heartbeat and prunes old entries.
 */
export class EventBus {
  readonly maxStaleMs: number
  /** What credentials are stamped with (their time of issue), to compare with not-befores the database stamped. */
  readonly clock: DatabaseClock
  readonly #store: Store
  readonly #listeners = new Map<string, Listener[]>()
  readonly #cascades = new Map<Topic, Cascade[]>()
  readonly #readListeners: ((lagMs: number) => void)[] = []
  readonly #missedListeners: (() => void | Promise<void>)[] = []
  readonly #appliedListeners: (() => void)[] = []
  readonly #seen = new Set<number>()
  /** Whether `readFromHere` took the position this process reads on from, before it loaded its caches. */
  #positioned = false
  /** PostgreSQL: ids read past that no committed event held, and when each was first found missing (HOLE_WAIT_MS). */
  readonly #holes = new Map<number, number>()
  /** PostgreSQL: ids publishers said they gave up, never to be looked for (the newest MAX_HOLES). */
  readonly #abandoned = new Set<number>()
  readonly #processId = randomUUID()
  #lastId = 0
  /** What this process last told publishers it has read through (`#readThrough`). */
  #confirmed = 0
  #dataVersion: number | undefined
  #syncing: Promise<void> | undefined
  /** The current read, or READ_WAIT_MS, whichever ends first: what requests wait for on PostgreSQL. */
  #syncWait: Promise<void> | undefined
  #again = false
  /**
   * When the last complete read of the log began, by the monotonic clock (performance.now()), as every time this
   * class keeps to measure how long since: a step of the wall clock (NTP, a virtual machine resumed) must neither
   * stretch how long cached credentials are trusted nor hold back what publishers are told.
   */
  #readAt: number | undefined
  #started = false
  #stopped = false
  readonly #timers: NodeJS.Timeout[] = []
  #client: pg.Client | undefined
  #reconnectTimer: NodeJS.Timeout | undefined
  #reconnectMs = RECONNECT_FIRST_MS
  #registered = false
  /** Other live processes on the database, as last counted; 1 until counted, or when counting fails (see `otherProcesses`). */
  #others = 1
  /** Wall clock, ms: the first of the heartbeats that failed in a row (status().writesFailingSince). */
  #heartbeatFailingSince: number | undefined
  /** The check the requests of this event-loop turn wait for: SQLite's data_version, or a read while LISTEN is down. */
  #turnCheck: Promise<void> | undefined

  constructor(store: Store, options: EventBusOptions = {}) {
    this.#store = store
    this.maxStaleMs = options.maxStaleMs ?? DEFAULT_MAX_STALE_MS
    this.clock = new DatabaseClock(store.database.dialect)
  }

  get #postgres(): boolean {
    return this.#store.database.dialect === 'postgres'
  }

  /**
   * Takes the news announced so far as read, before this process loads what it caches from the database: news
   * committed while it loads, which what it loaded may or may not show, is then read and applied when it starts
   * (`start`), before it serves anyone. Without this, start takes the log as read from the moment it starts, and a
   * change committed in between (a role taken away while the access model was being read) would never reach this
   * process's caches.
   */
  async readFromHere(): Promise<void> {
    await this.#readFromNow()
    this.#positioned = true
  }

  async start(intervalMs = 1000): Promise<void> {
    const startedAt = performance.now()
    const positioned = this.#positioned
    if (!positioned) await this.#readFromNow()
    this.#dataVersion = this.#store.database.dataVersion()
    this.#readAt = startedAt
    this.#started = true
    await this.#heartbeat()
    this.#registered = true
    if (this.#postgres) await this.#listen().catch(() => this.#scheduleReconnect())
    this.#every(HEARTBEAT_MS, () => this.#heartbeat())
    this.#every(intervalMs, () => this.sync())
    this.#every(3600_000, () => this.#store.events.prune(3600_000))
    // What was announced since the position was taken: applied now, before the first request.
    if (positioned) await this.sync()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    for (const timer of this.#timers.splice(0)) clearInterval(timer)
    clearTimeout(this.#reconnectTimer)
    await this.#syncing?.catch(() => {})
    if (this.#registered) {
      this.#registered = false
      await this.#store.events.leave(this.#processId).catch(() => {})
    }
    const client = this.#client
    this.#client = undefined
    if (client) {
      client.removeAllListeners('notification')
      await this.#store.database.endClient(client)
    }
  }

  /** Reads the database's time for `clock`, in a process that does not start the bus (a CLI command) or cannot wait for its heartbeat. */
  async readClock(): Promise<void> {
    this.clock.measured(await this.#store.events.databaseTime())
  }

  on(topic: Topic, listener: Listener): void {
    const list = this.#listeners.get(topic) ?? []
    list.push(listener)
    this.#listeners.set(topic, list)
  }

  /**
   * Has `cascade` run inside every change that announces news under `topic`, after the change's own work, with the
   * keys it announced there: whatever must end with what the news names ends in the same transaction, wherever the
   * change was made, and what it announces is written along. It sees the change's own news, not other cascades'.
   */
  cascade(topic: Topic, cascade: Cascade): void {
    this.#cascades.set(topic, [...this.#cascades.get(topic) ?? [], cascade])
  }

  /**
   * Applies a change and writes the news of it in one transaction: `work` writes through `tx` (and nothing else:
   * see Store.transaction) and calls `announce` for each event. Once committed, this process's listeners run
   * before this returns, and other processes have read the news (PostgreSQL: confirmed, within ACK_WAIT_MS) or
   * will before their next request (SQLite). A process that crashes at any point leaves both or neither.
   */
  async change<T>(work: (tx: Repositories, announce: Announce) => Promise<T>): Promise<T> {
    const news: { topic: string; key: string }[] = []
    const ids: number[] = []
    // Ids an attempt took and gave up (a deadlock's retry): other processes are told, so they do not wait for them.
    const abandoned: number[] = []
    let stampedAt = 0
    let result: T
    try {
      result = await this.#store.transaction(async (tx) => {
        news.length = 0
        const announce: Announce = (topic, key) => void news.push({ topic, key })
        const result = await work(tx, announce)
        if (this.#cascades.size && news.length) await this.#cascade(tx, [...news], announce)
        abandoned.push(...ids)
        ids.length = 0
        for (const { topic, key } of news) {
          const { id, createdAt } = await tx.events.appendStamped(topic, key)
          ids.push(id)
          stampedAt = createdAt
        }
        if (this.#postgres && ids.length) await tx.events.notify(ids.at(-1)!, abandoned)
        return result
      })
    } catch (error) {
      abandoned.push(...ids)
      if (this.#postgres && abandoned.length) {
        this.#abandon(abandoned)
        await this.#store.events.notify(0, abandoned).catch(() => {})
      }
      throw error
    }
    if (abandoned.length) this.#abandon(abandoned)
    if (!ids.length) return result
    // Later than what the change stamped in the database (a not-before): what this process issues next is not before it.
    this.clock.observed(stampedAt)
    for (const id of ids) this.#seen.add(id)
    try {
      for (const { topic, key } of news) await this.#dispatch(topic, key)
    } catch (error) {
      // Committed but not yet applied here: the next read of the log applies it.
      for (const id of ids) this.#seen.delete(id)
      throw error
    }
    if (this.#postgres) await this.#waitForReaders(Math.max(...ids))
    return result
  }

  async #cascade(tx: Repositories, news: readonly { topic: string; key: string }[], announce: Announce): Promise<void> {
    for (const [topic, cascades] of this.#cascades) {
      const keys = news.filter((item) => item.topic === topic).map((item) => item.key)
      if (keys.length) for (const cascade of cascades) await cascade(tx, keys, announce)
    }
  }

  /** A change that is nothing but news (`change` with no writes of its own). */
  async publish(topic: Topic, key: string): Promise<void> {
    await this.change(async (_tx, announce) => announce(topic, key))
  }

  /**
   * Cheap enough for every request. SQLite: reads the log only when another process may have written to it;
   * the check (`PRAGMA data_version`, read only when the WAL index's header changed: one `pread` otherwise) is shared
   * by every request that asks before it runs:
   * it runs once per turn of the event loop, after the requests read in that turn, so it still sees every commit
   * made before any of them arrived. PostgreSQL pushes news instead: a request waits only for a read already
   * under way, and at most READ_WAIT_MS (while LISTEN is down, for a read of its turn's own, as long at most).
   * Whether what it then has may be trusted is `fresh()`.
   */
  freshen(): Promise<void> {
    // Without LISTEN nothing is pushed, and a publisher stops waiting for this process after ACK_WAIT_MS: until it
    // listens again, the requests of each turn read the log themselves, as on SQLite.
    if (this.#postgres && (this.#client !== undefined || !this.#started || this.#stopped)) return this.#syncWait ?? RESOLVED
    this.#turnCheck ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.#turnCheck = undefined
      return this.#postgres ? this.#readUnpushed() : this.#checkVersion()
    })
    return this.#turnCheck
  }

  /**
   * Whether this process has read the log recently enough (within `maxStaleMs`) to trust what it cached:
   * verified credentials, accounts, sessions, tokens. When it cannot reach the database it cannot learn of
   * revocations; past that bound it must refuse to answer from memory.
   */
  fresh(now = performance.now()): boolean {
    return this.#readAt !== undefined && now - this.#readAt <= this.maxStaleMs
  }

  /**
   * Called when this process finds that news it had not read is gone from the log (pruned while it was stopped or
   * far behind, or by a process whose clock runs ahead): whatever it cached from the database must be dropped or
   * read again, as any of it may have changed. Runs before the events read with it are applied.
   */
  onMissed(listener: () => void | Promise<void>): void {
    this.#missedListeners.push(listener)
  }

  /**
   * Called once this process has applied news (its own or another process's: every listener of the event has run), or
   * dropped its caches for news it missed: what rests on many cached things at once (open WebSockets) looks again.
   */
  onApplied(listener: () => void): void {
    this.#appliedListeners.push(listener)
  }

  /** Called for each event another process wrote, with how long after its commit this process read it. */
  onRead(listener: (lagMs: number) => void): void {
    this.#readListeners.push(listener)
  }

  status(now = performance.now()): EventBusStatus {
    return {
      running: this.#started && !this.#stopped,
      listening: this.#started && !this.#stopped && (!this.#postgres || this.#client !== undefined),
      sinceReadMs: this.#readAt === undefined ? undefined : Math.max(0, now - this.#readAt),
      fresh: this.fresh(now),
      writesFailingSince: this.#heartbeatFailingSince,
    }
  }

  /** A read of the log begun after the requests of this turn arrived, waited for READ_WAIT_MS at most. */
  #readUnpushed(): Promise<void> {
    return Promise.race([this.sync().catch(() => {}), sleep(READ_WAIT_MS, undefined, { ref: false })])
  }

  async #checkVersion(): Promise<void> {
    const checkedAt = performance.now()
    const version = this.#store.database.dataVersion()
    if (version !== this.#dataVersion) {
      await this.sync()
      // Only once read: a failed read must leave the next check seeing news still to read.
      this.#dataVersion = version
    } else if (this.#syncing) {
      await this.#syncing
    } else if (this.#started) {
      this.#readAt = Math.max(this.#readAt ?? 0, checkedAt)
    }
  }

  /** Reads news now; a request made while a read is running gets one more read after it. */
  sync(): Promise<void> {
    if (this.#syncing) {
      this.#again = true
      return this.#syncing
    }
    const syncing = (async () => {
      do {
        this.#again = false
        await this.#readNews()
      } while (this.#again)
    })().finally(() => {
      this.#syncing = undefined
      this.#syncWait = undefined
    })
    this.#syncing = syncing
    this.#syncWait = Promise.race([syncing.catch(() => {}), sleep(READ_WAIT_MS, undefined, { ref: false })])
    return syncing
  }

  /**
   * Takes what the log holds now as read. What was announced before is in whatever this process reads from now on:
   * those events are taken as seen, or the look-back of its next read would apply them again, after requests it
   * already served (a revocation of every token, say, would drop the last-use times recorded since).
   */
  async #readFromNow(): Promise<void> {
    this.#lastId = await this.#store.events.latestId()
    this.#seen.clear()
    this.#holes.clear()
    for (const event of await this.#store.events.after(Math.max(0, this.#lastId - LOOK_BACK), BATCH)) {
      if (event.id <= this.#lastId) this.#seen.add(event.id)
    }
  }

  async #readNews(): Promise<void> {
    const startedAt = performance.now()
    const events = await this.#store.events.after(Math.max(0, this.#lastId - LOOK_BACK), BATCH)
    const before = this.#lastId
    // The last event read is always in the log (a prune keeps the newest): gone, the log went back in time (a backup
    // restored, a failover that lost commits) and hands out the ids read before again. Whatever was cached may be
    // wrong, and the log is read on from where it now ends.
    if (before > 0 && !events.some((event) => event.id >= before)) {
      await this.#missed()
      await this.#readFromNow()
      if (this.#registered && this.#postgres) await this.#confirmRead()
      this.#again = true
      return
    }
    // A hole right after what was read is usually ids no commit used (rolled back, or still to commit on PostgreSQL);
    // it is news lost only when no event older than it is left: a prune took what this process had not read.
    const next = events.find((event) => event.id > before)
    if (next && next.id > before + 1 && (await this.#store.events.oldestId()) > before + 1) await this.#missed()
    const late = await this.#store.events.withIds([...this.#holes.keys()])
    for (const event of [...late, ...events]) {
      if (!this.#seen.has(event.id)) {
        // A listener that fails (its own read failed) stops the read here; the next one starts again from this event.
        await this.#dispatch(event.topic, event.key)
        this.#seen.add(event.id)
        this.clock.observed(event.createdAt)
        for (const listener of this.#readListeners) listener(Date.now() - event.createdAt)
      }
      this.#lastId = Math.max(this.#lastId, event.id)
    }
    for (const id of this.#seen) if (id < this.#lastId - LOOK_BACK) this.#seen.delete(id)
    if (this.#postgres) this.#noteHoles(before, [...late, ...events], startedAt)
    if (events.length === BATCH) this.#again = true
    else if (this.#started) this.#readAt = Math.max(this.#readAt ?? 0, startedAt)
    if (this.#registered && this.#postgres && this.#readThrough(performance.now()) !== this.#confirmed) await this.#confirmRead()
  }

  /** Ids a publisher gave up (`notify`'s payload after the id): no event will hold them, so nothing waits for them. */
  #forgetAbandoned(payload: string | undefined): void {
    const given = payload?.split(' ')[1]
    if (given) this.#abandon(given.split(',').map(Number))
  }

  /** Remembered for a while (a reader may come to the hole after the news of it), and no longer missing. */
  #abandon(ids: readonly number[]): void {
    for (const id of ids) {
      this.#holes.delete(id)
      this.#abandoned.add(id)
    }
    for (const id of this.#abandoned) {
      if (this.#abandoned.size <= MAX_HOLES) break
      this.#abandoned.delete(id)
    }
  }

  /**
   * The newest id up to which this process has read every event that will be: its newest, or short of the oldest id
   * still missing within HOLE_CONFIRM_MS (a transaction that took it still to commit). What publishers wait for.
   */
  #readThrough(now: number): number {
    let through = this.#lastId
    for (const [id, since] of this.#holes) if (id <= through && now - since <= HOLE_CONFIRM_MS) through = id - 1
    return through
  }

  async #confirmRead(): Promise<number> {
    const through = this.#readThrough(performance.now())
    const heartbeatAt = await this.#store.events.heartbeat(this.#processId, through)
    this.#confirmed = through
    return heartbeatAt
  }

  /**
   * Keeps the ids after `before`, up to what is now read, that no event read held, to be looked for at the next reads
   * as long as HOLE_WAIT_MS: the events of a transaction still to commit. Forgets those found, and those given up.
   */
  #noteHoles(before: number, read: StoredEvent[], now: number): void {
    for (const event of read) this.#holes.delete(event.id)
    const held = new Set(read.map((event) => event.id))
    for (let id = Math.max(before + 1, this.#lastId - MAX_HOLES); id < this.#lastId; id++) if (!held.has(id) && !this.#holes.has(id) && !this.#abandoned.has(id)) this.#holes.set(id, now)
    for (const [id, since] of this.#holes) {
      if (now - since <= HOLE_WAIT_MS && this.#holes.size <= MAX_HOLES) break
      this.#holes.delete(id)
    }
  }

  /**
   * How many other gateway processes use the database (each says it is alive every second): what the lockout
   * needs to know before it lets password checks run side by side (src/directory/lockout.ts). Counted at start
   * and with each heartbeat; when the count cannot be had, taken to be at least one, which only costs parallelism.
   */
  get otherProcesses(): number {
    return this.#others
  }

  async #heartbeat(): Promise<void> {
    try {
      let heartbeatAt: number
      try {
        heartbeatAt = await this.#confirmRead()
      } catch (error) {
        this.#heartbeatFailingSince ??= Date.now()
        throw error
      }
      this.#heartbeatFailingSince = undefined
      this.clock.measured(heartbeatAt)
      this.#others = await this.#store.events.othersAlive(ALIVE_MS, this.#processId)
    } catch (error) {
      this.#others = Math.max(this.#others, 1)
      throw error
    }
  }

  /** Best effort: the change is committed whatever happens here, so a failure only ends the wait. */
  async #waitForReaders(id: number): Promise<void> {
    const deadline = performance.now() + ACK_WAIT_MS
    try {
      for (let check = 0; performance.now() < deadline; check++) {
        if ((await this.#store.events.lagging(id, ALIVE_MS, this.#processId)) === 0) return
        await sleep(Math.min(ACK_CHECK_FIRST_MS * 2 ** Math.max(0, check + 1 - ACK_QUICK_CHECKS), ACK_CHECK_MAX_MS))
      }
    } catch {
      // The database went away after the commit; processes that cannot read the news stop trusting their caches (fresh()).
    }
  }

  async #missed(): Promise<void> {
    for (const listener of this.#missedListeners) await listener()
    for (const listener of this.#appliedListeners) listener()
  }

  async #dispatch(topic: string, key: string): Promise<void> {
    for (const listener of this.#listeners.get(topic) ?? []) await listener(key)
    for (const listener of this.#appliedListeners) listener()
  }

  /** Opens the LISTEN connection, then reads the log: whatever was announced while nobody listened is in it. */
  async #listen(): Promise<void> {
    const client = (await this.#store.database.listenClient())!
    const lost = () => this.#lost(client)
    client.on('error', lost)
    client.on('end', lost)
    client.on('notification', (message) => {
      this.#forgetAbandoned(message.payload)
      void this.sync().catch(() => {})
    })
    try {
      await client.query(`LISTEN ${EVENT_CHANNEL}`)
    } catch (error) {
      client.removeAllListeners('notification')
      await client.end().catch(() => {})
      throw error
    }
    if (this.#stopped) {
      await client.end().catch(() => {})
      return
    }
    this.#client = client
    this.#reconnectMs = RECONNECT_FIRST_MS
    void this.sync().catch(() => {})
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return
    this.#client = undefined
    client.removeAllListeners('notification')
    void client.end().catch(() => {})
    this.#scheduleReconnect()
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#reconnectTimer) return
    const delay = this.#reconnectMs
    this.#reconnectMs = Math.min(this.#reconnectMs * 2, RECONNECT_MAX_MS)
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      this.#listen().catch(() => this.#scheduleReconnect())
    }, delay)
    this.#reconnectTimer.unref()
  }

  /** Runs `task` every `ms`, skipping a turn while the previous run (stuck on a slow database, say) still runs. */
  #every(ms: number, task: () => Promise<unknown>): void {
    let running = false
    const timer = setInterval(() => {
      if (running) return
      running = true
      void task().catch(() => {}).finally(() => {
        running = false
      })
    }, ms)
    timer.unref()
    this.#timers.push(timer)
  }
}
