import type { EventBus } from '../store/event-bus.ts'
import type { Repositories, Store } from '../store/store.ts'
import { defaultSettings, settingNames, settingsSchema, type Settings } from './definitions.ts'
import { SETTINGS_TOPIC } from '../store/topics.ts'
import { oneReloadAtATime } from '../store/one-reload-at-a-time.ts'


/**
 * The current settings, held in memory so the request path reads a field and nothing else.
 * Saving writes an event in the same transaction; every process (this one at once) reloads from the database.
 * As everything else read from the database (`auth.max_stale_seconds`), they are also read again every `maxStaleMs`:
 * a safety net for news that never arrived, so that no process keeps, say, basic auth on for good after it was
 * switched off. A read that fails keeps what the process has.
 */
export class RuntimeSettings {
  #current: Settings = defaultSettings
  #unreadable: readonly UnreadableSetting[] = []
  readonly #unreadableListeners: ((found: readonly UnreadableSetting[]) => void)[] = []
  readonly #store: Store
  readonly #bus: EventBus
  readonly #listeners: ((settings: Settings) => void)[] = []
  readonly #maxStaleMs: number | undefined
  #refresher: NodeJS.Timeout | undefined
  readonly #reload = oneReloadAtATime(async () => this.#readOnce())
  /** Errors of reloads the news of a change asked for: one a change meets happened after its commit (`#change`). */
  readonly #reloadFailures = new WeakSet<object>()

  constructor(store: Store, bus: EventBus, options: { maxStaleMs?: number } = {}) {
    this.#store = store
    this.#bus = bus
    this.#maxStaleMs = options.maxStaleMs
    bus.on(SETTINGS_TOPIC, () => this.reload().catch((error: unknown) => {
      if (isObject(error)) this.#reloadFailures.add(error)
      throw error
    }))
    bus.onMissed(() => this.reload())
  }

  /** Starts reading the settings again every `maxStaleMs` (nothing without it). */
  start(): void {
    if (this.#maxStaleMs === undefined || this.#refresher) return
    this.#refresher = setInterval(() => this.reload().catch(() => {}), this.#maxStaleMs)
    this.#refresher.unref()
  }

  stop(): void {
    clearInterval(this.#refresher)
    this.#refresher = undefined
  }

  get current(): Settings {
    return this.#current
  }

  onChange(listener: (settings: Settings) => void): void {
    this.#listeners.push(listener)
  }

  /**
   * Tells `listener` of the stored settings this version cannot read: at once of those found so far (at start, before
   * anything could listen), then of each that a reload finds newly so. One that stays unreadable is told of once.
   */
  onUnreadable(listener: (found: readonly UnreadableSetting[]) => void): void {
    this.#unreadableListeners.push(listener)
    if (this.#unreadable.length) listener(this.#unreadable)
  }

  /**
   * Reads the settings again; a reload asked for while one runs gets one more after it (as src/access/model.ts does).
   * Two at once could end in either order, and one that read before a change and ended after it would put the
   * settings before it back until the next periodic reload.
   */
  reload(): Promise<void> {
    return this.#reload()
  }

  async #readOnce(): Promise<void> {
    const { loaded, unreadable } = readable(await this.#store.settings.all(), this.#current)
    const known = new Set(this.#unreadable.map(problemKey))
    const found = unreadable.filter((problem) => !known.has(problemKey(problem)))
    this.#unreadable = unreadable
    if (found.length) for (const listener of this.#unreadableListeners) listener(found)
    // The same settings read again change nothing, and tell no one (the listeners drop caches).
    if (JSON.stringify(loaded) === JSON.stringify(this.#current)) return
    this.#current = Object.freeze(loaded)
    for (const listener of this.#listeners) listener(this.#current)
  }

  /**
   * Reverts settings to their defaults: every process applies it at once. Every one stored is deleted, also one stored
   * with the default's value (which a later default would otherwise not reach), but only those stored with another
   * value are changes; the answer is the settings before and after, as the change's own transaction read and wrote them.
   */
  reset(names: readonly (keyof Settings)[]): Promise<SettingsChange> {
    return this.#change((stored) => {
      const reverted = names.filter((name) => name in stored && !sameValue(stored[name], defaultSettings[name]))
      return Object.fromEntries(reverted.map((name) => [name, defaultSettings[name]])) as Partial<Settings>
    }, (tx, _changed, stored) => tx.settings.delete(names.filter((name) => name in stored)), (stored) => names.some((name) => name in stored))
  }

  /**
   * Saves a change already checked (`changesSchema`): every process applies it at once. Only values other than the
   * stored ones (the default, for a setting never saved) are written; the answer is the settings before and after, as
   * the change's own transaction read and wrote them.
   */
  update(patch: Partial<Settings>): Promise<SettingsChange> {
    return this.#change((stored) => {
      const stays = (name: string, value: unknown) => sameValue(name in stored ? stored[name] : defaultSettings[name as keyof Settings], value)
      return Object.fromEntries(Object.entries(patch ?? {}).filter(([name, value]) => value !== undefined && !stays(name, value))) as Partial<Settings>
    }, (tx, changed) => tx.settings.put(Object.fromEntries(changed.map((name) => [name, patch[name]]))))
  }

  /**
   * Reads the stored settings in the transaction that changes them (taking turns with every other change, on every
   * process), so that before and after are this change's own and not what the process last loaded, and writes only
   * when `changes` (what differs from the stored settings) names any. A reload of this process that fails after the
   * commit does not undo the answer: the change is saved, and the next read of the log applies it here.
   */
  async #change(
    changesOf: (stored: Record<string, unknown>) => Partial<Settings>,
    write: (tx: Repositories, changed: (keyof Settings)[], stored: Record<string, unknown>) => Promise<void>,
    writesWithoutChanges: (stored: Record<string, unknown>) => boolean = () => false,
  ): Promise<SettingsChange> {
    let outcome: SettingsChange | undefined
    try {
      return await this.#bus.change(async (tx, announce) => {
        outcome = undefined
        const stored = await tx.settings.allForChange()
        const before = readable(stored, this.#current).loaded
        const changes = changesOf(stored)
        const changed = Object.keys(changes) as (keyof Settings)[]
        const result: SettingsChange = { before, after: Object.freeze({ ...before, ...changes }), changed }
        if (changed.length || writesWithoutChanges(stored)) await write(tx, changed, stored)
        // Every process reloads all settings whatever the key says; it only has to fit the event log's column.
        if (changed.length) announce(SETTINGS_TOPIC, changed.join(',').slice(0, 200))
        outcome = result
        return result
      })
    } catch (error) {
      // This process's reload runs only once the change has committed.
      if (outcome && isObject(error) && this.#reloadFailures.has(error)) return outcome
      throw error
    }
  }
}

/** A change of settings: the settings before and after it as its own transaction read and wrote them, and which it changed. */
export interface SettingsChange {
  readonly before: Settings
  readonly after: Settings
  /** The settings it wrote (none when every value was the stored one already). */
  readonly changed: readonly (keyof Settings)[]
}

const sameValue = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)
const isObject = (value: unknown): value is object => (typeof value === 'object' && value !== null) || typeof value === 'function'

/** A stored setting this version cannot read: its name, why (never its value), and what is used in its place. */
export interface UnreadableSetting {
  readonly name: keyof Settings
  readonly reason: string
  /** The default, or (a later read) the value the process had before, when that was another. */
  readonly using: 'default' | 'previous'
}

const problemKey = (problem: UnreadableSetting): string => `${problem.name}\n${problem.reason}`

/**
 * The stored settings this version can read, each on its own: a value it cannot (another version's, with a wider
 * range) keeps what the process has, rather than taking every other setting back to its default with it (basic auth
 * switched off would be on again). Names it does not know are left out.
 */
function readable(stored: Record<string, unknown>, current: Settings): { loaded: Settings; unreadable: UnreadableSetting[] } {
  const loaded: Record<string, unknown> = { ...defaultSettings }
  const unreadable: UnreadableSetting[] = []
  for (const name of settingNames) {
    if (!(name in stored)) continue
    // At start and after each change: too rarely for zod's compiled fast path to pay for its making (src/config/load.ts).
    const parsed = settingsSchema.shape[name].safeParse(stored[name], { jitless: true })
    if (parsed.success) {
      loaded[name] = parsed.data
    } else {
      loaded[name] = current[name]
      // zod's own words name the type or the bound it expected, never the value it got.
      const reason = parsed.error.issues.map((issue) => issue.message).join('; ')
      unreadable.push({ name, reason, using: current[name] === defaultSettings[name] ? 'default' : 'previous' })
    }
  }
  return { loaded: loaded as Settings, unreadable }
}
