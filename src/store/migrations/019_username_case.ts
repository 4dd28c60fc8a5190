import { sql } from '../kysely.ts'
import type { GatehouseMigration } from './helpers.ts'

/**
 * Usernames are looked up without regard to case: a realm login in another case, and the check that refuses a new
 * name differing only in case from another account's (src/store/users.ts findCaseVariant). Not unique: a database from
 * an earlier version may already hold such pairs, and they keep working.
 */
export const usernameCase: GatehouseMigration = {
  async up(db) {
    await db.schema.createIndex('users_username_lower').on('users').expression(sql`lower(username)`).execute()
  },
}
