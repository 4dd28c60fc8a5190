import type { Kysely } from 'kysely'
import type { Tables } from './schema.ts'

/** Run-time settings as JSON values by key; what a key means and allows is defined in src/settings/. */
export class SettingsRepository {
  readonly #db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.#db = db
  }

  async all(): Promise<Record<string, unknown>> {
    const rows = await this.#db.selectFrom('settings').select(['key', 'value']).execute()
    return Object.fromEntries(rows.map((r) => [r.key, JSON.parse(r.value)]))
  }

  /** Forgets settings, so they take their defaults again. */
  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length) await this.#db.deleteFrom('settings').where('key', 'in', [...keys]).execute()
  }

  /** Saves several settings; all or none when called on a transaction (Store.transaction), as the settings API does. */
  async put(values: Record<string, unknown>, now = Date.now()): Promise<void> {
    for (const [key, value] of Object.entries(values)) {
      const json = JSON.stringify(value)
      await this.#db.insertInto('settings').values({ key, value: json, modified_at: now })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value: json, modified_at: now }))
        .execute()
    }
  }
}
