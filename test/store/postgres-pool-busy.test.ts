import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DatabaseUnavailable } from '../../src/errors.ts'
import { Database, type OutageReport } from '../../src/store/database.ts'
import { sql } from '../../src/store/kysely.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

describe('a PostgreSQL pool whose every connection is in use', () => {
  it('refuses what waited the connect timeout for one as unavailable, without calling the busy database unreachable or reporting an outage', async () => {
    const database = await createTestDatabase()
    const db = await Database.open({ url: database.url, dataDir: '', poolConnections: 1, timeouts: { connectMs: 200, queryMs: 5_000 } })
    const reports: OutageReport[] = []
    db.onOutage((report) => reports.push(report))
    try {
      await sql`select 1`.execute(db.db)
      // The pool's one connection answers a long query; the next one waits for it, past the connect timeout.
      const long = sql`select pg_sleep(1)`.execute(db.db)
      const waited = await sql`select 1`.execute(db.db).then(() => undefined, (error: unknown) => error)
      assert.ok(waited instanceof DatabaseUnavailable, String(waited))
      assert.equal(db.status().reachable, true, 'the database answers the connection the pool holds')
      await long
      assert.deepEqual(reports, [], 'no outage reported')
    } finally {
      await db.close()
      await database.drop()
    }
  })
})
