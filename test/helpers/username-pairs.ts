import { sql } from '../../src/store/kysely.ts'
import { usernameUniqueCase } from '../../src/store/migrations/021_username_unique_case.ts'
import type { Store } from '../../src/store/store.ts'

/**
 * Runs `make` on the database as a version before migration 021 had it (accounts may be made whose names differ only
 * in case), then indexes it as 021 indexes a database that holds such pairs.
 */
export async function asAnEarlierVersion<T>(store: Store, make: () => Promise<T>): Promise<T> {
  const { db, dialect } = store.database
  await db.schema.dropIndex('users_username_case').execute()
  await db.schema.createIndex('users_username_lower').ifNotExists().on('users').expression(sql`lower(username)`).execute()
  const made = await make()
  await usernameUniqueCase.up(db, dialect)
  return made
}
