import type { Kysely, Selectable } from 'kysely'
import type { LoginFailuresTable, Tables } from './schema.ts'

/** Failed password checks for one username, and until when further checks are refused. */
export interface LoginFailures {
  username: string
  /** Failures in a row since the last success, reset or clear. */
  failures: number
  lastFailureAt: number
  lockedUntil: number | null
}

/**
 * Failed password checks by username, shared by every process on the database. What counts as a failure and
 * when a username locks is decided in src/auth/lockout.ts; this only keeps the numbers, atomically.
 */
export class LoginFailureRepository {
  readonly #db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.#db = db
  }

  async find(username: string): Promise<LoginFailures | undefined> {
    const row = await this.#db.selectFrom('login_failures').selectAll().where('username', '=', username).executeTakeFirst()
    return row && toLoginFailures(row)
  }

  /**
   * Counts one more failure in a single statement, so failures recorded at once by several processes all count.
   * A count whose last failure came before `forgetBefore` starts again at 1.
   */
  async recordFailure(username: string, now: number, forgetBefore: number): Promise<LoginFailures> {
    const row = await this.#db.insertInto('login_failures')
      .values({ username, failures: 1, last_failure_at: now, locked_until: null })
      .onConflict((oc) => oc.column('username').doUpdateSet((eb) => ({
        failures: eb.case()
          .when('login_failures.last_failure_at', '<', forgetBefore).then(eb.lit(1))
          .else(eb('login_failures.failures', '+', eb.lit(1)))
          .end(),
        last_failure_at: now,
      })))
      .returningAll()
      .executeTakeFirstOrThrow()
    return toLoginFailures(row)
  }

  async lock(username: string, until: number): Promise<void> {
    await this.#db.updateTable('login_failures').set({ locked_until: until }).where('username', '=', username).execute()
  }

  /** Forgets a username's failures and lock; answers whether there was anything to forget. */
  async clear(username: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('login_failures').where('username', '=', username).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  /** Deletes records whose last failure came before `before` and that hold no lock at `now`; returns how many. */
  async deleteStale(before: number, now: number): Promise<number> {
    const result = await this.#db.deleteFrom('login_failures')
      .where('last_failure_at', '<', before)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
      .executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}

function toLoginFailures(row: Selectable<LoginFailuresTable>): LoginFailures {
  return {
    username: row.username,
    failures: Number(row.failures),
    lastFailureAt: Number(row.last_failure_at),
    lockedUntil: row.locked_until === null ? null : Number(row.locked_until),
  }
}
