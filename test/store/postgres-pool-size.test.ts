import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { adminAuth, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase, POSTGRES_ADMIN_URL } from '../helpers/postgres.ts'

describe('storage.pool_connections', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>
  let gw: TestGateway
  let admin: pg.Client
  before(async () => {
    database = await createTestDatabase()
    gw = await startGateway({ config: { storage: { data_dir: tempDir(), database: database.url, pool_connections: 2 } } })
    admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL })
    await admin.connect()
  })
  after(async () => {
    await admin?.end()
    await gw?.close()
    await database?.drop()
  })

  it('bounds the connections a process opens to PostgreSQL, however many requests need one at once', async () => {
    const name = new URL(database.url).pathname.slice(1)
    const open = async () => Number((await admin.query('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [name])).rows[0].n)
    let most = 0
    let sampling = true
    const sampler = (async () => {
      while (sampling) most = Math.max(most, await open())
    })()
    const answers = await Promise.all(Array.from({ length: 60 }, () => gw.fetch('/api/gateway/v1/users/?page_size=200', { headers: adminAuth })))
    sampling = false
    await sampler
    assert.deepEqual([...new Set(answers.map((response) => response.status))], [200])
    await Promise.all(answers.map((response) => response.arrayBuffer()))
    // The pool's two, and the one that listens for other processes' news.
    assert.ok(most <= 3, `${most} connections open at once`)
    assert.ok(most >= 2, `${most} connections: the burst never needed a second one, so it proves nothing`)
  })
})
