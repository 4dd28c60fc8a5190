import type { Compilable } from 'kysely'
import { sql } from '../../src/store/kysely.ts'
import type { Store } from '../../src/store/store.ts'

/**
 * The plan the store's database makes for `query`, as text, to find an index's name in. Sequential scans are ruled
 * out on PostgreSQL, which would rather read a test's small table whole.
 */
export async function queryPlan(store: Store, query: Compilable): Promise<string> {
  const { db, dialect } = store.database
  const compiled = query.compile()
  return db.connection().execute(async (connection) => {
    if (dialect === 'postgres') await sql`SET enable_seqscan = off`.execute(connection)
    try {
      const explained = { ...compiled, sql: `${dialect === 'postgres' ? 'EXPLAIN' : 'EXPLAIN QUERY PLAN'} ${compiled.sql}` }
      const { rows } = await connection.executeQuery<Record<string, string>>(explained)
      return rows.map((row) => row['QUERY PLAN'] ?? row.detail).join('\n')
    } finally {
      if (dialect === 'postgres') await sql`RESET enable_seqscan`.execute(connection)
    }
  })
}
