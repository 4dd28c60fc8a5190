import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import pg from 'pg'
import { migrationNames } from '../../src/store/migrations/index.ts'
import { openStore } from '../../src/store/store.ts'
import { json, spawnGateway, startGateway, type GatewayProcess } from '../helpers/gateway.ts'
import { at } from '../helpers/session.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** The advisory lock Kysely's migrator holds on PostgreSQL while it migrates (its PostgresAdapter's). */
const MIGRATION_LOCK = '3853314791062309107'
const NEWER = '999_of_a_newer_version'

/** Waits until `check` holds, asking every 100 ms, for at most `withinMs`. */
async function eventually(what: string, check: () => Promise<boolean>, withinMs: number): Promise<void> {
  const deadline = performance.now() + withinMs
  while (!await check()) {
    if (performance.now() > deadline) assert.fail(`${what}: not within ${withinMs} ms`)
    await sleep(100)
  }
}

describe('gateway processes started at the same instant on an empty PostgreSQL database', () => {
  it('all serve, on a database migrated once, with one first superuser and the demo\'s organizations made once', async () => {
    const database = await createTestDatabase()
    const args = ['--demo', '--database', database.url]
    // Five processes starting at once on a machine that may be busy: more time than one start is given.
    const spawn = (more: string[]) => spawnGateway([...more, ...args], {}, { startMs: 60_000 })
    const started = await Promise.allSettled([spawn([]), spawn([]), spawn([]), spawn(['--workers', '2'])])
    const gateways = started.flatMap((s) => s.status === 'fulfilled' ? [s.value] : [])
    const db = new pg.Client({ connectionString: database.url })
    try {
      assert.deepEqual(started.map((s) => s.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'], started.map((s) => s.status === 'rejected' ? String(s.reason) : '').join('\n'))
      for (const gw of gateways as GatewayProcess[]) {
        // A process reads the realms' keys once it listens, and is not ready until it has (`realm_keys: unread`): on
        // a busy machine that read may still be under way.
        let last = ''
        await eventually(`${gw.url} ready`, async () => {
          const ready = await at(gw.url).fetch('/readyz')
          last = await ready.text()
          return ready.status === 200
        }, 15_000).catch((error: Error) => assert.fail(`${error.message}; last answered ${last}`))
        assert.doesNotMatch(gw.output(), /"level":(50|60)/, 'no error logged')
      }
      await db.connect()
      const count = async (query: string) => Number((await db.query(query)).rows[0].count)
      assert.equal(await count('select count(*) from kysely_migration'), migrationNames.length)
      assert.equal(await count('select count(*) from users'), 1)
      assert.equal(await count(`select count(*) from users where username = 'admin' and is_superuser`), 1)
      const organizations = (await db.query('select name from organizations order by name')).rows.map((row) => row.name)
      assert.ok(organizations.length > 0, 'the demo configuration names organizations')
      assert.deepEqual(organizations, [...new Set(organizations)], 'each made once')
    } finally {
      await db.end()
      await Promise.all(gateways.map((gw) => gw.stop()))
      await database.drop()
    }
  })
})

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

describe('a gateway starting while another process holds the migrations\' lock and does not let go (a hung migration)', () => {
  it('says at once that it waits and for which server process, and a start killed meanwhile leaves no statement waiting on the server', async () => {
    const database = await createTestDatabase()
    const holder = new pg.Client({ connectionString: database.url })
    const db = new pg.Client({ connectionString: database.url })
    await holder.connect()
    await db.connect()
    const holderPid = (await holder.query('select pg_backend_pid() as pid')).rows[0].pid
    await holder.query(`select pg_advisory_lock(${MIGRATION_LOCK})`)
    // What else is connected to the database than the two clients here: the waiting start's connections.
    const others = async () => Number((await db.query('select count(*) from pg_stat_activity where datname = current_database() and pid <> all($1)', [[holderPid, (await db.query('select pg_backend_pid() as pid')).rows[0].pid]])).rows[0].count)
    const child = spawn(join(import.meta.dirname, '../../bin/gatehouse'), ['serve', '--port', '0', '--database', database.url], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const exited = new Promise((resolve) => child.once('exit', resolve))
    let gw: GatewayProcess | undefined
    try {
      await eventually('the start says it waits', async () => output.includes('waiting for another process\'s migrations'), 15_000)
      assert.match(output, new RegExp(`server process ${holderPid} holds their lock`), output)
      assert.doesNotMatch(output, /Gatehouse listening/)
      // A service manager giving up on the start: the process is killed, and its connections end with it.
      child.kill('SIGKILL')
      await exited
      await eventually('nothing of the killed start is left on the server', async () => await others() === 0, 5_000)
      // The next start serves once the lock is let go.
      const starting = spawnGateway(['--database', database.url], {}, { startMs: 60_000 })
      await sleep(1_000)
      await holder.query(`select pg_advisory_unlock(${MIGRATION_LOCK})`)
      gw = await starting
      const ready = await at(gw.url).fetch('/readyz')
      assert.equal(ready.status, 200, await ready.text())
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await gw?.stop()
      await holder.end()
      await db.end()
      await database.drop()
    }
  })
})
