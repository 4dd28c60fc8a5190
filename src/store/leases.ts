import type { Kysely } from 'kysely'
import { databaseNow } from './database-clock.ts'
import { sql } from './kysely.ts'
import type { DialectName } from './migrations/helpers.ts'
import type { Tables } from './schema.ts'

/**
 * Which one of the processes on the database does a periodic job (the directory account check), until when. A lease
 * is taken with one statement, an insert whose update on conflict applies only for its holder or once it has
 * expired: of processes taking it at once, on SQLite or PostgreSQL, exactly one gets it. A holder that dies keeps it
 * until it expires; one that stops gives it up. When it expires is the database's clock's to say (database-clock.ts):
 * by each process's own, one whose clock ran ahead of the holder's would take the lease while the holder still ran.
 */
export class LeaseRepository {
  readonly #db: Kysely<Tables>
  readonly #dialect: DialectName

  constructor(db: Kysely<Tables>, dialect: DialectName) {
    this.#db = db
    this.#dialect = dialect
  }

  /** Takes or renews the lease `name` for `holder` for `durationMs` from now; false while another holds it unexpired. */
  async take(name: string, holder: string, durationMs: number): Promise<boolean> {
    const now = databaseNow(this.#dialect)
    const expiresAt = sql<number>`${now} + ${Math.ceil(durationMs)}`
    const row = await this.#db.insertInto('leases')
      .values({ name, holder, expires_at: expiresAt })
      .onConflict((oc) => oc.column('name')
        .doUpdateSet({ holder, expires_at: expiresAt })
        .where((eb) => eb.or([eb('leases.holder', '=', holder), eb('leases.expires_at', '<=', now)])))
      .returning('holder')
      .executeTakeFirst()
    return row !== undefined
  }

  /** Gives the lease up, when `holder` has it, so that another process takes it at once. */
  async release(name: string, holder: string): Promise<void> {
    await this.#db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute()
  }
}
