import { sql, type Kysely } from 'kysely'
import type { DialectName } from './migrations/helpers.ts'
import type { Tables } from './schema.ts'

/** Run-time settings as JSON values by key; what a key means and allows is defined in src/settings/. */
export class SettingsRepository {
  readonly #db: Kysely<Tables>
  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  async all(): Promise<Record<string, unknown>> {
    const rows = await this.#db.selectFrom('settings').select(['key', 'value']).execute()
    return Object.fromEntries(rows.map((r) => [r.key, JSON.parse(r.value)]))
  }

  /**
   * All settings, read in a transaction that is about to change them: on PostgreSQL it first waits for every other
   * transaction that called this to end, and holds them off until this one ends (an advisory lock), so that what
   * each change reads as "before" is what the one before it wrote. SQLite's writers are alone already.
   */
  async allForChange(): Promise<Record<string, unknown>> {
    if (this.#dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext('settings'))`.execute(this.#db)
    return this.all()
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
