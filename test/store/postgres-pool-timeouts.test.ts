import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import pg from 'pg'
import { DatabaseLockHeld, DatabaseUnavailable } from '../../src/errors.ts'
import { Database } from '../../src/store/database.ts'
import { sql } from '../../src/store/kysely.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

describe('a PostgreSQL pool after a statement the server gave up', () => {
  it('hands out the same connection again after a statement timeout, in a transaction or not, and after a lock timeout', async () => {
    const database = await createTestDatabase()
    // One connection, so that the next query gets it again if it is kept; the server's statement timeout runs out
    // a little before the client's query timeout (0.8 s of 1 s), and its lock timeout before that.
    const db = await Database.open({ url: database.url, dataDir: '', poolConnections: 1, timeouts: { connectMs: 2_000, queryMs: 1_000 } })
    const holder = new pg.Client({ connectionString: database.url })
    try {
      const backend = async () => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db.db)).rows[0]!.pid
      const first = await backend()

      const slow = await sql`select pg_sleep(5)`.execute(db.db).then(() => undefined, (error: unknown) => error)
      assert.ok(slow instanceof DatabaseUnavailable, String(slow))
      assert.equal((slow.cause as { code?: unknown }).code, '57014', 'the server ended it (statement_timeout)')
      assert.equal(await backend(), first, 'the same server process answers the next query')

      const inTransaction = await db.db.transaction().execute((trx) => sql`select pg_sleep(5)`.execute(trx)).then(() => undefined, (error: unknown) => error)
      assert.ok(inTransaction instanceof DatabaseUnavailable, String(inTransaction))
      // Inside the transaction still, this would fail (25P02), or begin before this statement.
      const { rows } = await sql<{ pid: number; own: boolean }>`select pg_backend_pid() as pid, transaction_timestamp() = statement_timestamp() as own`.execute(db.db)
      assert.deepEqual(rows[0], { pid: first, own: true }, 'the same server process, out of the transaction rolled back')

      await sql`create table held (id int primary key)`.execute(db.db)
      await holder.connect()
      await holder.query('begin')
      await holder.query('lock table held in access exclusive mode')
      const waited = await sql`select * from held`.execute(db.db).then(() => undefined, (error: unknown) => error)
      assert.ok(waited instanceof DatabaseLockHeld, String(waited))
      await holder.query('rollback')
      assert.equal(await backend(), first, 'the same server process answers after a lock wait given up')
      assert.deepEqual(db.poolStatus(), { total: 1, idle: 1, waiting: 0 })
    } finally {
      await holder.end().catch(() => {})
      await db.close()
      await database.drop()
    }
  })
})
