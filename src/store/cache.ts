import type { Topic } from './topics.ts'

/**
 * The one in-memory cache type of the request path: accounts, sessions, personal tokens, verified OIDC access
 * tokens and their revocations, identity JWTs and verified basic credentials all sit in one of these, so each
 * gets the same bound, eviction, age limit and race guard.
 *
 * - **Bounded**: at most `maxEntries`; the oldest entry goes first (a Map keeps insertion order).
 * - **Aged**: an entry is served for `maxAgeMs` after it was stored (for what came from the database: the bus's
 *   `maxStaleMs`, the safety net for news that never arrived), and never past its own `expiresAt`. Ages are read on
 *   the monotonic clock, whatever clock the caller's `now` is (this machine's or the database's): a step of the
 *   wall clock (an NTP correction, a virtual machine resumed) neither keeps an entry past its age nor drops it early.
 *   `expiresAt` is a time of the caller's clock, compared with its `now`.
 * - **Invalidated by event topic**: `follow` subscribes to a topic of the event bus (src/store/topics.ts), whose
 *   keys name one entry, `user:<id>` (everything of that user) or `all`.
 * - **Race-guarded**: a value read before an invalidation must not be remembered after it, or a revoked session
 *   could be cached again by a read that started just before its revocation. Every invalidation moves a
 *   generation; `load` (or `set` with the stamp taken before reading) only stores when the generation has not moved.
 */
export interface CacheOptions<V> {
  readonly maxEntries: number
  /** How long an entry is served after it was stored; read on every lookup, so it may follow a setting. 0: never store. */
  readonly maxAgeMs: number | (() => number)
  /** The entry's own end (a session's expiry, a JWT's renewal time): it is never served from then on. */
  readonly expiresAt?: (value: V) => number
  /** The user an entry belongs to, for `forgetUser` and `user:<id>` events. */
  readonly userOf?: (value: V) => number
  /** Concurrent loads of one key in one generation share one `loader` call (an argon2id verification, say). */
  readonly shareLoads?: boolean
  /**
   * With `shareLoads`: an entry used within this long of its maximum age is served, and loaded again meanwhile (one
   * shared load), so that steady traffic never waits for a costly load. A load that fails leaves the entry to end
   * at its maximum age, as it would have; none is ever served past it.
   */
  readonly refreshAheadMs?: number
  /** Called when an entry still fresh or not is dropped to stay within `maxEntries` (what it stood for is then forgotten). */
  readonly onEvicted?: () => void
  /** The monotonic clock ages are read on, in ms; performance.now() unless a test steps its own. */
  readonly clock?: () => number
}

interface Entry<V> {
  readonly value: V
  /** By the monotonic clock (`CacheOptions.clock`). */
  readonly storedAt: number
}

/** Subscribes to an event topic; the event bus (src/store/event-bus.ts) is one. */
export interface TopicSource {
  on(topic: Topic, listener: (key: string) => void | Promise<void>): void
  /** Called when news may have been missed (see EventBus.onMissed): every entry must go. */
  onMissed?(listener: () => void | Promise<void>): void
}

/**
 * Lookups a cache answered from memory and those it had to read, as two plain numbers: counting costs an increment
 * on the request path, and /metrics reads them when scraped (gatehouse_cache_lookups_total).
 */
export class CacheStats {
  hits = 0
  misses = 0
}

export class BoundedCache<K, V> {
  readonly stats = new CacheStats()
  readonly #options: CacheOptions<V>
  readonly #clock: () => number
  readonly #entries = new Map<K, Entry<V>>()
  readonly #byUser = new Map<number, Set<K>>()
  readonly #loading = new Map<K, { load: Promise<V | undefined>; generation: number; waiters: LoadWaiters }>()
  #generation = 0

  constructor(options: CacheOptions<V>) {
    this.#options = options
    this.#clock = options.clock ?? (() => performance.now())
  }

  get size(): number {
    return this.#entries.size
  }

  /** The value while it is fresh; a stale one is dropped. `now`: the time `expiresAt` is compared with. */
  get(key: K, now = Date.now()): V | undefined {
    const entry = this.#entries.get(key)
    if (entry && this.#clock() - entry.storedAt < this.#maxAgeMs() && (this.#options.expiresAt?.(entry.value) ?? Infinity) > now) {
      this.stats.hits++
      return entry.value
    }
    this.stats.misses++
    if (entry) this.#delete(key, entry)
    return undefined
  }

  /** Taken before a read whose result `set` may store: `set` refuses it if anything was invalidated meanwhile. */
  stamp(): number {
    return this.#generation
  }

  /**
   * Stores a value, aged from now; with the `stamp` taken before it was read, only while nothing was invalidated
   * since. (`load` ages what it stores from before its read.)
   */
  set(key: K, value: V, stamp = this.#generation): void {
    this.#store(key, value, stamp, this.#clock())
  }

  #store(key: K, value: V, stamp: number, storedAt: number): void {
    if (stamp !== this.#generation || this.#maxAgeMs() <= 0) return
    const previous = this.#entries.get(key)
    if (previous) this.#delete(key, previous)
    if (this.#entries.size >= this.#options.maxEntries) {
      const [oldestKey, oldest] = this.#entries.entries().next().value!
      this.#delete(oldestKey, oldest)
      this.#options.onEvicted?.()
    }
    this.#entries.set(key, { value, storedAt })
    const userId = this.#options.userOf?.(value)
    if (userId === undefined) return
    let keys = this.#byUser.get(userId)
    if (!keys) this.#byUser.set(userId, (keys = new Set()))
    keys.add(key)
  }

  /**
   * The fresh value, or what `loader` reads (undefined: nothing to remember), stored unless an invalidation came
   * while it read, and aged from before it read. `now`: the time `expiresAt` is compared with. Errors of `loader` pass through and store nothing. `callerGone`: the signal that the caller's
   * client went away, asked for only when the value must be loaded; the loader's own signal aborts only once every
   * caller sharing the load has gone (a load in the background never).
   */
  async load(key: K, loader: (signal: AbortSignal) => Promise<V | undefined>, now = Date.now(), callerGone?: () => AbortSignal): Promise<V | undefined> {
    const hit = this.get(key, now)
    if (hit !== undefined) {
      if (this.#refreshDue(key)) this.#sharedLoad(key, loader, undefined).catch(() => {})
      return hit
    }
    return this.#sharedLoad(key, loader, callerGone?.())
  }

  /** Whether a fresh entry has come within `refreshAheadMs` of its maximum age (a load under way is shared, not repeated). */
  #refreshDue(key: K): boolean {
    const { refreshAheadMs, shareLoads } = this.#options
    return !!refreshAheadMs && !!shareLoads && this.#clock() - this.#entries.get(key)!.storedAt >= this.#maxAgeMs() - refreshAheadMs
  }

  /** What is loaded is stored as of the load's start, so an entry lives its maximum age from before it was read. */
  #sharedLoad(key: K, loader: (signal: AbortSignal) => Promise<V | undefined>, signal: AbortSignal | undefined): Promise<V | undefined> {
    const stamp = this.#generation
    const startedAt = this.#clock()
    const shared = this.#options.shareLoads ? this.#loading.get(key) : undefined
    // A load every caller of which has gone is being dropped: a caller still there starts one of its own.
    if (shared?.generation === stamp && !shared.waiters.signal.aborted) {
      shared.waiters.join(signal)
      return shared.load
    }
    const waiters = new LoadWaiters()
    waiters.join(signal)
    const load = loader(waiters.signal).then((value) => {
      if (value !== undefined) this.#store(key, value, stamp, startedAt)
      return value
    })
    if (!this.#options.shareLoads) return load.finally(() => waiters.release())
    const settled = load.finally(() => {
      waiters.release()
      if (this.#loading.get(key)?.load === settled) this.#loading.delete(key)
    })
    this.#loading.set(key, { load: settled, generation: stamp, waiters })
    return settled
  }

  forget(key: K): void {
    this.#generation++
    const entry = this.#entries.get(key)
    if (entry) this.#delete(key, entry)
  }

  forgetWhere(matches: (value: V, key: K) => boolean): void {
    this.#generation++
    for (const [key, entry] of this.#entries) if (matches(entry.value, key)) this.#delete(key, entry)
  }

  forgetUser(userId: number): void {
    this.#generation++
    for (const key of this.#byUser.get(userId) ?? []) this.#entries.delete(key)
    this.#byUser.delete(userId)
  }

  clear(): void {
    this.#generation++
    this.#entries.clear()
    this.#byUser.clear()
  }

  /**
   * Invalidates on every event of `topic`: `all` clears, `user:<id>` forgets the user's entries, any other key the
   * entry stored under `keyOf(eventKey)` (by default the event's key itself).
   */
  follow(topics: TopicSource, topic: Topic, keyOf: (eventKey: string) => K = (eventKey) => eventKey as K): void {
    topics.on(topic, (eventKey) => this.#onEvent(eventKey, () => this.forget(keyOf(eventKey))))
    topics.onMissed?.(() => this.clear())
  }

  /** As `follow`, for topics whose keys name entries by something other than their cache key (a token's id). */
  followWhere(topics: TopicSource, topic: Topic, names: (eventKey: string, value: V) => boolean): void {
    topics.on(topic, (eventKey) => this.#onEvent(eventKey, () => this.forgetWhere((value) => names(eventKey, value))))
    topics.onMissed?.(() => this.clear())
  }

  #onEvent(eventKey: string, forgetNamed: () => void): void {
    if (eventKey === 'all') this.clear()
    else if (eventKey.startsWith('user:')) this.forgetUser(Number(eventKey.slice('user:'.length)))
    else forgetNamed()
  }

  #maxAgeMs(): number {
    const { maxAgeMs } = this.#options
    return typeof maxAgeMs === 'number' ? maxAgeMs : maxAgeMs()
  }

  #delete(key: K, entry: Entry<V>): void {
    this.#entries.delete(key)
    const userId = this.#options.userOf?.(entry.value)
    if (userId !== undefined) this.#byUser.get(userId)?.delete(key)
  }
}

/**
 * The callers of one load: its signal aborts once each of them has gone, and never while one that cannot go (a
 * caller without a signal, such as a refresh in the background) shares it.
 */
class LoadWaiters {
  readonly #controller = new AbortController()
  readonly #joined: AbortSignal[] = []
  #present = 0
  #lasting = false
  readonly #leave = (): void => {
    if (--this.#present === 0 && !this.#lasting) this.#controller.abort()
  }

  get signal(): AbortSignal {
    return this.#controller.signal
  }

  join(signal: AbortSignal | undefined): void {
    if (!signal) {
      this.#lasting = true
      return
    }
    this.#present++
    if (signal.aborted) return this.#leave()
    this.#joined.push(signal)
    signal.addEventListener('abort', this.#leave, { once: true })
  }

  /** The load is over: the callers' signals keep no hold on it. */
  release(): void {
    for (const signal of this.#joined) signal.removeEventListener('abort', this.#leave)
    this.#joined.length = 0
  }
}
