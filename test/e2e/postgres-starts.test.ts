import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import pg from 'pg'
import { openStore } from '../../src/store/store.ts'
import { json, startGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** The advisory lock Kysely's migrator holds on PostgreSQL while it migrates (its PostgresAdapter's). */
const MIGRATION_LOCK = '3853314791062309107'
const NEWER = '999_of_a_newer_version'

/**
 * Gateway processes starting on a PostgreSQL database that another process is migrating at that moment.
 */
describe('a gateway starting while another process migrates its PostgreSQL database', () => {
  it('waits for a newer version\'s migrations to end, then serves beside them, instead of failing on the tables they lock', async () => {
    const database = await createTestDatabase()
    const newer = new pg.Client({ connectionString: database.url })
    try {
      await (await openStore({ url: database.url, dataDir: '' })).close()
      // What a newer version does as it migrates: Kysely's lock, then one transaction that changes tables this
      // version reads at its start (users: the first superuser) and records its migration.
      await newer.connect()
      await newer.query(`select pg_advisory_lock(${MIGRATION_LOCK})`)
      await newer.query('begin')
      await newer.query('lock table users in access exclusive mode')
      await newer.query(`insert into kysely_migration (name, timestamp) values ('${NEWER}', '2030-01-01T00:00:00.000Z')`)
      let startedAt = Infinity
      const starting = startGateway({ databaseUrl: database.url }).then((gw) => {
        startedAt = performance.now()
        return gw
      })
      // Longer than storage.timeouts.query_seconds (2 s), which a start's queries would otherwise fail after.
      await sleep(3_000)
      const committedAt = performance.now()
      await newer.query('commit')
      await newer.query(`select pg_advisory_unlock(${MIGRATION_LOCK})`)
      const gw = await starting
      try {
        assert.ok(startedAt >= committedAt, 'it started once the migrations were committed')
        const ready = await json(await gw.fetch('/readyz'))
        assert.equal(ready.status, 'UP', JSON.stringify(ready))
        assert.deepEqual(ready.checks.find((check: { name: string }) => check.name === 'migrations').data.newer, [NEWER])
      } finally {
        await gw.close()
      }
    } finally {
      await newer.end()
      await database.drop()
    }
  })

  it('takes the migrations it would have applied as done when a newer version applied them while it waited for the lock', async () => {
    const database = await createTestDatabase()
    const newer = new pg.Client({ connectionString: database.url })
    const location = { url: database.url, dataDir: '' }
    try {
      await (await openStore(location)).close()
      // A database this version has one migration still to apply to (027 undone), which a newer version applies first.
      await newer.connect()
      await newer.query('alter table tokens drop column parent_access_token, drop column parent_grant_id, drop column parent_realm, drop column parent_issued_at')
      await newer.query(`delete from kysely_migration where name = '027_token_access_token_parents'`)
      await newer.query(`select pg_advisory_lock(${MIGRATION_LOCK})`)
      await newer.query('begin')
      await newer.query('alter table tokens add column parent_access_token text, add column parent_grant_id text, add column parent_realm text, add column parent_issued_at bigint')
      await newer.query(`insert into kysely_migration (name, timestamp) values ('027_token_access_token_parents', '2030-01-01T00:00:00.000Z'), ('${NEWER}', '2030-01-01T00:00:00.000Z')`)
      const opening = openStore(location)
      await sleep(1_500)
      await newer.query('commit')
      await newer.query(`select pg_advisory_unlock(${MIGRATION_LOCK})`)
      const store = await opening
      try {
        assert.deepEqual(await store.database.migrationStatus().then(({ pending, unknown }) => ({ pending, unknown })), { pending: [], unknown: [NEWER] })
      } finally {
        await store.close()
      }
    } finally {
      await newer.end()
      await database.drop()
    }
  })
})
