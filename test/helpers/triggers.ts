import type { Database } from '../../src/store/database.ts'
import { sql } from '../../src/store/kysely.ts'

/** A trigger for `withTrigger`: on each row `operation` touches in `table` for which `condition` holds (SQL over NEW or OLD). */
export interface TestTrigger {
  table: string
  timing: 'BEFORE' | 'AFTER'
  operation: 'INSERT' | 'UPDATE' | 'DELETE'
  condition?: string | undefined
  /** A statement to run in the writing transaction (as another request's write would land there), or `refuse` the write. */
  action: 'refuse' | { statement: string }
}

/**
 * Runs `work` while a trigger does `trigger.action`, on SQLite or PostgreSQL alike, then removes it: a failure, or
 * another process's change, injected in the middle of a request's transaction.
 */
export async function withTrigger(database: Pick<Database, 'db' | 'dialect'>, trigger: TestTrigger, work: () => Promise<void>): Promise<void> {
  const { db, dialect } = database
  const { table, timing, operation, condition } = trigger
  const row = operation === 'DELETE' ? 'OLD' : 'NEW'
  if (dialect === 'sqlite') {
    const action = trigger.action === 'refuse' ? `SELECT RAISE(ABORT, 'refused')` : trigger.action.statement
    await sql.raw(`CREATE TRIGGER test_trigger ${timing} ${operation} ON ${table} ${condition ? `WHEN ${condition}` : ''} BEGIN ${action}; END`).execute(db)
  } else {
    const action = trigger.action === 'refuse' ? `RAISE EXCEPTION 'refused'` : trigger.action.statement
    await sql.raw(`CREATE FUNCTION test_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF ${condition ?? 'true'} THEN ${action}; END IF; RETURN ${row}; END $$`).execute(db)
    await sql.raw(`CREATE TRIGGER test_trigger ${timing} ${operation} ON ${table} FOR EACH ROW EXECUTE FUNCTION test_trigger()`).execute(db)
  }
  try {
    await work()
  } finally {
    if (dialect === 'sqlite') {
      await sql.raw('DROP TRIGGER test_trigger').execute(db)
    } else {
      await sql.raw(`DROP TRIGGER test_trigger ON ${table}`).execute(db)
      await sql.raw('DROP FUNCTION test_trigger()').execute(db)
    }
  }
}
