import { sql } from '../kysely.ts'
import type { GatehouseMigration } from './helpers.ts'

/**
 * Usernames unique without regard to case in the database itself, so that two creations (or renames) at once cannot
 * both pass the check that refuses a name differing only in case from another's (src/directory/accounts.ts): the
 * second write fails as a taken name. Usernames are ASCII, which both backends' lower() fold alike.
 *
 * A database from an earlier version may hold such pairs; they keep working. Every account of a pair but the oldest
 * (the lowest id) is left out of the index, whose entries of the others still refuse any new variant of their names.
 * Then 019's plain index stays, for the lookups of the names left out; otherwise the unique index replaces it.
 */
export const usernameUniqueCase: GatehouseMigration = {
  async up(db) {
    const { rows } = await sql<{ id: number | string }>`
      select id from users where exists (select 1 from users as older where lower(older.username) = lower(users.username) and older.id < users.id)
      order by id`.execute(db)
    const leftOut = rows.map((row) => Number(row.id))
    const index = db.schema.createIndex('users_username_case').on('users').unique().expression(sql`lower(username)`)
    if (leftOut.length === 0) {
      await index.execute()
      await db.schema.dropIndex('users_username_lower').execute()
      return
    }
    // Literal ids: an index's definition takes no parameters.
    await index.where(sql.ref('id'), 'not in', sql.raw(`(${leftOut.join(', ')})`)).execute()
  },
}
