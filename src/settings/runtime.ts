import { ValidationFailed } from '../errors.ts'
import type { EventBus } from '../store/event-bus.ts'
import type { Store } from '../store/store.ts'
import { defaultSettings, settingsSchema, type Settings } from './definitions.ts'
import { SETTINGS_TOPIC } from '../store/topics.ts'


/**
 * The current settings, held in memory so the request path reads a field and nothing else.
 * Saving writes an event in the same transaction; every process (this one at once) reloads from the database.
 */
export class RuntimeSettings {
  #current: Settings = defaultSettings
  readonly #store: Store
  readonly #bus: EventBus
  readonly #listeners: ((settings: Settings) => void)[] = []

  constructor(store: Store, bus: EventBus) {
    this.#store = store
    this.#bus = bus
    bus.on(SETTINGS_TOPIC, () => this.reload())
  }

  get current(): Settings {
    return this.#current
  }

  onChange(listener: (settings: Settings) => void): void {
    this.#listeners.push(listener)
  }

  async reload(): Promise<void> {
    const stored = await this.#store.settings.all()
    const known = Object.fromEntries(Object.entries(stored).filter(([key]) => key in settingsSchema.shape))
    const parsed = settingsSchema.safeParse(known)
    this.#current = Object.freeze(parsed.success ? parsed.data : defaultSettings)
    for (const listener of this.#listeners) listener(this.#current)
  }

  /** Validates a partial update (all problems at once, by field) and saves it; nothing is saved if any is wrong. */
  async update(patch: unknown): Promise<Settings> {
    if (!patch || typeof patch !== 'object' || Array.isArray(patch)) {
      throw new ValidationFailed({ non_field_errors: ['Expected a JSON object of settings.'] })
    }
    const result = settingsSchema.partial().strict().safeParse(patch)
    if (!result.success) {
      const fields: Record<string, string[]> = {}
      for (const issue of result.error.issues) {
        if (issue.code === 'unrecognized_keys') {
          for (const key of issue.keys) (fields[key] ??= []).push('Unknown setting.')
        } else {
          const key = String(issue.path[0] ?? 'non_field_errors')
          ;(fields[key] ??= []).push(issue.message)
        }
      }
      throw new ValidationFailed(fields)
    }
    // Only the settings the request names: zod fills in the defaults of the others, which are not changes.
    const changes = Object.fromEntries(Object.entries(result.data).filter(([key, v]) => v !== undefined && Object.hasOwn(patch, key)))
    if (Object.keys(changes).length) {
      await this.#bus.change(async (tx, announce) => {
        await tx.settings.put(changes)
        // Every process reloads all settings whatever the key says; it only has to fit the event log's column.
        announce(SETTINGS_TOPIC, Object.keys(changes).join(',').slice(0, 200))
      })
    }
    return this.#current
  }
}
