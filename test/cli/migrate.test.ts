import assert from 'node:assert/strict'
import { chmodSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { migrationNames } from '../../src/store/migrations/index.ts'
import { openStore } from '../../src/store/store.ts'
import { sql } from '../../src/store/kysely.ts'
import { AS_ANOTHER_USER, migratedDataDir, runCli, spawnGateway, tempDir } from '../helpers/gateway.ts'
import { createTestDatabase, POSTGRES_ADMIN_URL } from '../helpers/postgres.ts'

const FUTURE = '999_from_a_later_version'

describe('bin/gatehouse migrate --status', () => {
  it('shows what an upgrade would apply on SQLite without changing anything, nor making a database where none is', async () => {
    const dir = tempDir()
    try {
      const data = join(dir, 'data')
      const before = await runCli(['migrate', '--status', '--data-dir', data])
      assert.equal(before.code, 0, before.stderr)
      assert.match(before.stdout, /^database: sqlite:.*gatehouse\.sqlite \(none yet\)$/m)
      assert.match(before.stdout, /^applied: 0$/m)
      assert.match(before.stdout, new RegExp(`^pending: ${migrationNames.join(', ')}$`, 'm'))
      assert.equal(existsSync(join(data, 'gatehouse.sqlite')), false, 'no database was made')

      assert.equal((await runCli(['migrate', '--data-dir', data])).code, 0)
      const store = await openStore({ dataDir: data })
      await sql`insert into kysely_migration (name, timestamp) values (${FUTURE}, '2030-01-01T00:00:00.000Z')`.execute(store.database.db)
      await store.close()

      const after = await runCli(['migrate', '--status', '--data-dir', data])
      assert.equal(after.code, 0, after.stderr)
      assert.match(after.stdout, new RegExp(`^applied: ${migrationNames.length + 1}$`, 'm'))
      assert.match(after.stdout, /^pending: none$/m)
      assert.match(after.stdout, new RegExp(`^from a newer version: ${FUTURE}$`, 'm'))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('shows the pending migrations of a PostgreSQL database without creating a table in it', async () => {
    const database = await createTestDatabase()
    try {
      const status = await runCli(['migrate', '--status', '--database', database.url])
      assert.equal(status.code, 0, status.stderr)
      assert.match(status.stdout, /^applied: 0$/m)
      assert.match(status.stdout, new RegExp(`^pending: ${migrationNames.join(', ')}$`, 'm'))
      const client = new pg.Client({ connectionString: database.url })
      await client.connect()
      const { rows } = await client.query(`select count(*)::int as tables from information_schema.tables where table_schema = 'public'`)
      await client.end()
      assert.equal(rows[0].tables, 0)

      assert.equal((await runCli(['migrate', '--database', database.url])).code, 0)
      const after = await runCli(['migrate', '--status', '--database', database.url])
      assert.match(after.stdout, new RegExp(`^applied: ${migrationNames.length}$`, 'm'))
      assert.match(after.stdout, /^pending: none$/m)
    } finally {
      await database.drop()
    }
  })
  it('names the database it cannot read the status of, and why, as migrate itself does', async () => {
    const missing = new URL(POSTGRES_ADMIN_URL)
    missing.pathname = '/gatehouse_no_such_database'
    const unreachable = new URL(POSTGRES_ADMIN_URL)
    unreachable.port = '1'
    for (const url of [missing, unreachable]) {
      const status = await runCli(['migrate', '--status'], { env: { GATEHOUSE_DATABASE_URL: url.toString() } })
      const migrate = await runCli(['migrate'], { env: { GATEHOUSE_DATABASE_URL: url.toString() } })
      // A database the server does not have is a mistake in the URL (2); one that does not answer may come back (1).
      assert.equal(status.code, url === missing ? 2 : 1, status.stderr)
      assert.match(status.stderr, /^gatehouse: the database postgres:\/\/\S+ cannot be used: /)
      assert.equal(status.stderr, migrate.stderr)
    }
  })

  it('says it may not look into a data directory, as migrate itself does, rather than that it holds no database yet', async () => {
    // Permissions bind everyone but root: as root, the commands run as nobody.
    const dir = tempDir()
    try {
      chmodSync(dir, 0o755)
      const data = await migratedDataDir(dir)
      chmodSync(data, 0o300)
      const status = await runCli(['migrate', '--status', '--data-dir', data], AS_ANOTHER_USER)
      const migrate = await runCli(['migrate', '--data-dir', data], AS_ANOTHER_USER)
      const usersList = await runCli(['users', 'list', '--data-dir', data], AS_ANOTHER_USER)
      for (const result of [status, migrate, usersList]) {
        assert.equal(result.code, 2, result.stderr)
        assert.equal(result.stderr, `gatehouse: the data directory ${data} cannot be used: permission denied (it must be readable and writable)\n`)
      }
      assert.equal(status.stdout, '', 'no "(none yet)", no migrations listed as pending')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('bin/gatehouse migrate on SQLite', () => {
  it('makes the data directory and the database it creates readable by their owner only: they hold the signing keys', async () => {
    const dir = tempDir()
    try {
      const data = join(dir, 'data')
      const migrated = await runCli(['migrate', '--data-dir', data])
      assert.equal(migrated.code, 0, migrated.stderr)
      assert.equal(statSync(data).mode & 0o777, 0o700)
      const files = readdirSync(data)
      assert.ok(files.includes('gatehouse.sqlite'), files.join())
      for (const file of files) assert.equal(statSync(join(data, file)).mode & 0o777, 0o600, file)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('bin/gatehouse migrate on PostgreSQL', () => {
  it('migrates one database once when several processes start on it at the same time', async () => {
    const database = await createTestDatabase()
    try {
      const results = await Promise.all(Array.from({ length: 4 }, () => runCli(['migrate', '--database', database.url])))
      assert.deepEqual(results.map((r) => r.code), [0, 0, 0, 0], results.map((r) => r.stderr).join(''))
      assert.equal(results.filter((r) => /applied: 001_core/.test(r.stdout)).length, 1, 'one process applied them; the others found them applied')
      assert.equal(results.filter((r) => /^up to date/.test(r.stdout)).length, 3)
    } finally {
      await database.drop()
    }
  })

  it('waits for a table another session holds without holding up its readers meanwhile, and migrates once it is free', async () => {
    const database = await createTestDatabase()
    const holder = new pg.Client({ connectionString: database.url })
    const reader = new pg.Client({ connectionString: database.url, statement_timeout: 3_000 })
    try {
      assert.equal((await runCli(['migrate', '--database', database.url])).code, 0)
      await holder.connect()
      await reader.connect()
      // Migration 027 undone, so that it is pending again: it alters `tokens`.
      await holder.query('alter table tokens drop column parent_access_token, drop column parent_grant_id, drop column parent_realm, drop column parent_issued_at')
      await holder.query(`delete from kysely_migration where name = '027_token_access_token_parents'`)
      // A long transaction reading the table (a pg_dump): the migration's ALTER TABLE must wait for it.
      await holder.query('begin')
      await holder.query('lock table tokens in access share mode')
      const migrating = runCli(['migrate', '--database', database.url])
      await sleep(1_500)
      for (let i = 0; i < 3; i++) {
        const started = performance.now()
        await reader.query('select count(*) from tokens')
        assert.ok(performance.now() - started < 1_500, `a read of the table waited ${Math.round(performance.now() - started)} ms behind the migration`)
        await sleep(300)
      }
      await holder.query('commit')
      const migrated = await migrating
      assert.equal(migrated.code, 0, migrated.stderr)
      assert.match(migrated.stdout, /027_token_access_token_parents/)
    } finally {
      await holder.end()
      await reader.end()
      await database.drop()
    }
  })
})

describe('a version older than the database', () => {
  async function addMigrationOfNewerVersion(storage: Parameters<typeof openStore>[0]): Promise<void> {
    const store = await openStore(storage)
    await sql`insert into kysely_migration (name, timestamp) values (${FUTURE}, '2030-01-01T00:00:00.000Z')`.execute(store.database.db)
    await store.close()
  }

  async function assertServesBesideNewerVersion(storageArgs: string[]): Promise<void> {
    const migrated = await runCli(['migrate', ...storageArgs])
    assert.equal(migrated.code, 0, migrated.stderr)
    assert.match(migrated.stdout, /^up to date/)
    assert.equal(migrated.stderr, `gatehouse: warning: the database also has migrations of a newer version: ${FUTURE}\n`)
    const gateway = await spawnGateway(storageArgs)
    try {
      const ready = await fetch(gateway.url + '/readyz')
      assert.equal(ready.status, 200)
      const migrations = (await ready.json() as { checks: { name: string; status: string; data: Record<string, unknown> }[] }).checks.find((c) => c.name === 'migrations')
      assert.deepEqual(migrations?.data.newer, [FUTURE])
      assert.match(gateway.output(), new RegExp(`"newer":\\["${FUTURE}"\\].*database has migrations of a newer version`))
    } finally {
      await gateway.stop()
    }
  }

  it('starts on a SQLite database a newer version migrated (a restart during a rolling upgrade, a rollback), and says so', async () => {
    const dir = tempDir()
    try {
      assert.equal((await runCli(['migrate', '--data-dir', dir])).code, 0)
      await addMigrationOfNewerVersion({ dataDir: dir })
      await assertServesBesideNewerVersion(['--data-dir', dir])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('starts on a PostgreSQL database a newer version migrated, and says so', async () => {
    const database = await createTestDatabase()
    try {
      assert.equal((await runCli(['migrate', '--database', database.url])).code, 0)
      await addMigrationOfNewerVersion({ url: database.url, dataDir: '' })
      await assertServesBesideNewerVersion(['--database', database.url])
    } finally {
      await database.drop()
    }
  })
})
