import { sql, type Kysely, type Selectable } from 'kysely'
import { deleteInBatches } from './deletion-batches.ts'
import type { LoginAddressFailuresTable, LoginFailuresTable, Tables } from './schema.ts'

/** Failed password checks for one username, and until when further checks are refused. */
export interface LoginFailures {
  username: string
  /** Failures in a row since the last success, reset or clear. */
  failures: number
  lastFailureAt: number
  lockedUntil: number | null
}

/** Failed password checks from one client address, for any usernames. */
export interface AddressFailures {
  address: string
  /** When the address's current counting window began (at its first failure after the previous window). */
  windowStart: number
  /** Failures in that window. */
  failures: number
  lastFailureAt: number
}

/**
 * Failed password checks by username and by client address, shared by every process on the database. What counts
 * as a failure, when a username locks and when an address is throttled is decided in src/directory/lockout.ts; this
 * only keeps the numbers, atomically.
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

  /**
   * Deletes records whose last failure came before `before` and that hold no lock at `now`, a batch at a time
   * (deleteInBatches: anyone may try a made-up name, so a spray over distinct names leaves a row each); returns how many.
   */
  async deleteStale(before: number, now: number): Promise<number> {
    return deleteInBatches(async (limit) => {
      const stale = this.#db.selectFrom('login_failures').select('username')
        .where('last_failure_at', '<', before)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
        .limit(limit)
      const result = await this.#db.deleteFrom('login_failures').where('username', 'in', stale).executeTakeFirst()
      return Number(result.numDeletedRows)
    })
  }

  /**
   * A username's record and an address's, each if asked for and kept: with both asked for, in one statement (a
   * password check reads both before it starts).
   */
  async findBoth(username: string | undefined, address: string | undefined): Promise<[LoginFailures | undefined, AddressFailures | undefined]> {
    if (username === undefined || address === undefined) {
      return Promise.all([username === undefined ? undefined : this.find(username), address === undefined ? undefined : this.findAddress(address)])
    }
    const { rows } = await sql<{ kind: string; key: string; failures: number | string; last_failure_at: number | string; locked_until: number | string | null; window_start: number | string | null }>`
      select 'user' as kind, username as key, failures, last_failure_at, locked_until, null as window_start from login_failures where username = ${username}
      union all
      select 'address' as kind, address as key, failures, last_failure_at, null as locked_until, window_start from login_address_failures where address = ${address}`.execute(this.#db)
    const user = rows.find((row) => row.kind === 'user')
    const place = rows.find((row) => row.kind === 'address')
    return [
      user && toLoginFailures({ username: user.key, failures: user.failures, last_failure_at: user.last_failure_at, locked_until: user.locked_until } as Selectable<LoginFailuresTable>),
      place && toAddressFailures({ address: place.key, failures: place.failures, last_failure_at: place.last_failure_at, window_start: place.window_start } as Selectable<LoginAddressFailuresTable>),
    ]
  }

  async findAddress(address: string): Promise<AddressFailures | undefined> {
    const row = await this.#db.selectFrom('login_address_failures').selectAll().where('address', '=', address).executeTakeFirst()
    return row && toAddressFailures(row)
  }

  /**
   * Counts one more failure from an address in a single statement. A window that began at or before
   * `windowStartedBy` is over: the count starts again at 1 in a window beginning now.
   */
  async recordAddressFailure(address: string, now: number, windowStartedBy: number): Promise<AddressFailures> {
    const row = await this.#db.insertInto('login_address_failures')
      .values({ address, window_start: now, failures: 1, last_failure_at: now })
      .onConflict((oc) => oc.column('address').doUpdateSet((eb) => {
        const windowOver = eb('login_address_failures.window_start', '<=', windowStartedBy)
        return {
          window_start: eb.case().when(windowOver).then(eb.lit(now)).else(eb.ref('login_address_failures.window_start')).end(),
          failures: eb.case().when(windowOver).then(eb.lit(1)).else(eb('login_address_failures.failures', '+', eb.lit(1))).end(),
          last_failure_at: now,
        }
      }))
      .returningAll()
      .executeTakeFirstOrThrow()
    return toAddressFailures(row)
  }

  /** Forgets an address's failures, ending its throttling; answers whether there was anything to forget. */
  async clearAddress(address: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('login_address_failures').where('address', '=', address).executeTakeFirst()
    return Number(result.numDeletedRows) > 0
  }

  /** Deletes the records of addresses whose last failure came before `before`, a batch at a time; returns how many. */
  async deleteStaleAddresses(before: number): Promise<number> {
    return deleteInBatches(async (limit) => {
      const stale = this.#db.selectFrom('login_address_failures').select('address').where('last_failure_at', '<', before).limit(limit)
      const result = await this.#db.deleteFrom('login_address_failures').where('address', 'in', stale).executeTakeFirst()
      return Number(result.numDeletedRows)
    })
  }
}

function toAddressFailures(row: Selectable<LoginAddressFailuresTable>): AddressFailures {
  return {
    address: row.address,
    windowStart: Number(row.window_start),
    failures: Number(row.failures),
    lastFailureAt: Number(row.last_failure_at),
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
