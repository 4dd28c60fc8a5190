import type { Kysely } from 'kysely'
import type { Tables } from './schema.ts'

/**
 * Which directory entry each LDAP account was made for (migration 024_ldap_entries): its stable identifier, not its
 * name, which a directory may give to another person once the first one's entry is gone.
 */
export class LdapEntryRepository {
  readonly #db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.#db = db
  }

  /**
   * The entry the account was made for: the one recorded, or else `entryId`, recorded now. Of two logins recording
   * at once, both get the one that was stored first.
   */
  async claim(userId: number, entryId: string, now = Date.now()): Promise<string> {
    await this.#db.insertInto('ldap_entries').values({ user_id: userId, entry_id: entryId, created_at: now })
      .onConflict((c) => c.column('user_id').doNothing()).execute()
    const row = await this.#db.selectFrom('ldap_entries').select('entry_id').where('user_id', '=', userId).executeTakeFirstOrThrow()
    return row.entry_id
  }

  /** Forgets the entries of these accounts (all: every account's), which then claim one anew; returns how many. */
  async forget(userIds?: readonly number[]): Promise<number> {
    if (userIds?.length === 0) return 0
    let query = this.#db.deleteFrom('ldap_entries')
    if (userIds) query = query.where('user_id', 'in', userIds)
    return Number((await query.executeTakeFirst()).numDeletedRows)
  }

  /** The entries recorded for these accounts, by account id; an account without one is left out. */
  async entriesOf(userIds: readonly number[]): Promise<Map<number, string>> {
    if (!userIds.length) return new Map()
    const rows = await this.#db.selectFrom('ldap_entries').select(['user_id', 'entry_id']).where('user_id', 'in', userIds).execute()
    return new Map(rows.map((row) => [Number(row.user_id), row.entry_id]))
  }
}
