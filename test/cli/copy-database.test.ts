import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import pg from 'pg'
import { call, createOrgAndTeam, grant, userId } from '../helpers/access.ts'
import { basic, migratedDataDir, repoRoot, runCli, spawnGateway, tempDir } from '../helpers/gateway.ts'
import { freePort } from '../helpers/free-port.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { at } from '../helpers/session.ts'

const ALICE_PASSWORD = 'alice-password-long'
const TOKEN_URL = '/realms/platform/protocol/openid-connect/token'

/** `copy-database` from the SQLite data directory `data` into the PostgreSQL database `url`, given as the environment gives it. */
function copyToPostgres(data: string, url: string) {
  return runCli(['copy-database', '--data-dir', data], { env: { GATEHOUSE_COPY_TO_DATABASE_URL: url } })
}

/** The tables of a PostgreSQL database's public schema, each with its number of rows. */
async function rowCounts(url: string): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ tablename: string }>(`select tablename from pg_tables where schemaname = 'public' order by tablename`)
    const counts: Record<string, number> = {}
    for (const { tablename } of rows) counts[tablename] = Number((await client.query(`select count(*) as n from "${tablename}"`)).rows[0].n)
    return counts
  } finally {
    await client.end()
  }
}

/** A migrated SQLite data directory holding the account alice, and a fresh PostgreSQL database, for `body`; both removed after. */
async function withSourceAndTarget(body: (data: string, url: string) => Promise<void>): Promise<void> {
  const dir = tempDir()
  const database = await createTestDatabase()
  try {
    const data = await migratedDataDir(dir)
    assert.equal((await runCli(['users', 'create', 'alice', '--data-dir', data])).code, 0)
    await body(data, database.url)
  } finally {
    await database.drop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The copy's summary: each table's rows, as its table prints them. */
function copiedRows(stdout: string): Record<string, number> {
  return Object.fromEntries([...stdout.matchAll(/^([a-z0-9_]+)\s+(\d+)$/gm)].map((match) => [match[1]!, Number(match[2])]))
}

/**
 * A migrated SQLite data directory in `dir` holding a token that names no account: kept with the foreign keys off,
 * refused by every target's part way through the copy (tokens come after users).
 */
async function sourceNoCopyAccepts(dir: string): Promise<string> {
  const data = await migratedDataDir(dir)
  const sqlite = new DatabaseSync(join(data, 'gatehouse.sqlite'), { enableForeignKeyConstraints: false })
  sqlite.prepare(`insert into tokens (user_id, token_hash, scope, created_at, modified_at, expires_at) values (999, 'hash', 'read', 0, 0, 0)`).run()
  sqlite.close()
  return data
}

describe('copy-database', () => {
  it('moves a SQLite deployment to PostgreSQL, where its passwords, tokens, realm keys, roles and activity stream work on, and new rows get new ids', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    const database = await createTestDatabase()
    const port = String(await freePort())
    let gateway = await spawnGateway(['--demo', '--data-dir', data, '--port', port])
    try {
      let gw = at(gateway.url)
      assert.equal((await call(gw, 'POST', 'users/', { username: 'alice', password: ALICE_PASSWORD })).status, 201)
      const alice = { authorization: basic('alice', ALICE_PASSWORD) }
      const token = await call(gw, 'POST', 'tokens/', {}, alice)
      assert.equal(token.status, 201)
      const { organization, team } = await createOrgAndTeam(gw, 'Copied Research', 'Analysts')
      assert.equal((await grant(gw, 'alice', 'Team Member', team)).status, 201)
      const application = await call(gw, 'POST', 'applications/', { name: 'reporter', organization, client_type: 'confidential', authorization_grant_type: 'password' })
      assert.equal(application.status, 201)
      assert.equal((await call(gw, 'PATCH', 'settings/', { session_cookie_age: 1200 })).status, 200)
      const signedIn = await fetch(gateway.url + TOKEN_URL, {
        method: 'POST',
        body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', scope: 'openid', username: 'alice', password: ALICE_PASSWORD }),
      })
      assert.equal(signedIn.status, 200)
      const realmTokens = await signedIn.json() as { access_token: string; refresh_token: string }
      const activity = (await call(gw, 'GET', 'activitystream/?order_by=id&page_size=200')).body.results as { id: number }[]
      assert.ok(activity.length >= 5, 'the activity stream has entries to carry over')

      // Copied while the gateway serves: from one snapshot of the file.
      const copied = await copyToPostgres(data, database.url)
      assert.equal(copied.code, 0, copied.stderr)
      const rows = copiedRows(copied.stdout)
      for (const table of ['users', 'tokens', 'organizations', 'teams', 'role_user_assignments', 'oauth2_applications', 'signing_keys', 'oidc_records', 'audit_entries', 'settings']) {
        assert.ok(rows[table]! > 0, `${table} was copied: ${copied.stdout}`)
      }
      const inTarget = await rowCounts(database.url)
      for (const [table, count] of Object.entries(rows)) assert.equal(inTarget[table], count, `${table} holds what the summary says`)
      await gateway.stop()

      gateway = await spawnGateway(['--demo', '--port', port], { GATEHOUSE_DATABASE_URL: database.url })
      gw = at(gateway.url)
      assert.equal((await call(gw, 'GET', 'me/', undefined, alice)).status, 200, 'the password hash came over')
      assert.equal((await call(gw, 'GET', 'me/', undefined, { authorization: `Bearer ${token.body.token}` })).status, 200, 'the personal token came over')
      const userinfo = await fetch(gateway.url + '/realms/platform/protocol/openid-connect/userinfo', { headers: { authorization: `Bearer ${realmTokens.access_token}` } })
      assert.equal(userinfo.status, 200, 'an access token signed before the move verifies: the realm keys and grants came over')
      const refreshed = await fetch(gateway.url + TOKEN_URL, {
        method: 'POST',
        body: new URLSearchParams({ client_id: 'end-users', grant_type: 'refresh_token', refresh_token: realmTokens.refresh_token }),
      })
      assert.equal(refreshed.status, 200)
      const applicationGrant = await fetch(gateway.url + '/o/token/', {
        method: 'POST',
        headers: { authorization: basic(application.body.client_id, application.body.client_secret) },
        body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: ALICE_PASSWORD, scope: 'read' }),
      })
      assert.equal(applicationGrant.status, 201, 'the application and its secret came over')
      assert.equal((await call(gw, 'GET', 'settings/all/')).body.SESSION_COOKIE_AGE, 1200, 'the settings came over')
      const assignments = await call(gw, 'GET', `role_user_assignments/?user=${await userId(gw, 'alice')}`)
      assert.deepEqual(assignments.body.results.map((a: { object_id: string }) => Number(a.object_id)), [team])

      const after = (await call(gw, 'GET', 'activitystream/?order_by=id&page_size=200')).body.results as { id: number }[]
      assert.deepEqual(after.slice(0, activity.length), activity, 'the activity stream holds the same entries')
      const bob = await call(gw, 'POST', 'users/', { username: 'bob', password: 'bob-password-long' })
      assert.equal(bob.status, 201, 'a new account gets an id after the copied ones')
      assert.ok(bob.body.id > await userId(gw, 'alice'))
      const another = await call(gw, 'POST', 'tokens/', {}, alice)
      assert.ok(another.body.id > token.body.id)

      // And back: the same code copies PostgreSQL into a SQLite data directory.
      await gateway.stop()
      const back = join(dir, 'back')
      const reversed = await runCli(['copy-database', '--to-data-dir', back], { env: { GATEHOUSE_DATABASE_URL: database.url } })
      assert.equal(reversed.code, 0, reversed.stderr)
      assert.deepEqual(copiedRows(reversed.stdout), Object.fromEntries(Object.entries(await rowCounts(database.url)).filter(([table]) => table in rows)))
      gateway = await spawnGateway(['--demo', '--data-dir', back, '--port', port])
      assert.equal((await call(at(gateway.url), 'GET', 'me/', undefined, { authorization: `Bearer ${token.body.token}` })).status, 200)
      const carol = await call(at(gateway.url), 'POST', 'users/', { username: 'carol', password: 'carol-password-long' })
      assert.ok(carol.body.id > bob.body.id)
    } finally {
      await gateway.stop()
      await database.drop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a target that holds data, changing nothing, and never prints the target\'s password', () => withSourceAndTarget(async (data, url) => {
    assert.equal((await copyToPostgres(data, url)).code, 0)
    const before = await rowCounts(url)
    assert.equal((await runCli(['users', 'create', 'bob', '--data-dir', data])).code, 0)
    const withPassword = new URL(url)
    withPassword.password = 'never-shown'
    const refused = await copyToPostgres(data, withPassword.toString())
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /holds Gatehouse data already \(.*users: 1/)
    assert.doesNotMatch(refused.stdout + refused.stderr, /never-shown/)
    assert.match(refused.stderr, /:\*\*\*@/)
    assert.deepEqual(await rowCounts(url), before)
  }))

  it('copies into a target a command has only looked at (users list), whose first run made its identity key: the source\'s takes its place', () => withSourceAndTarget(async (data, url) => {
    assert.equal((await runCli(['migrate', '--database', url])).code, 0)
    const looked = await runCli(['users', 'list', '--database', url])
    assert.equal(looked.code, 0, looked.stderr)
    assert.equal((await rowCounts(url)).signing_keys, 1)
    const copied = await copyToPostgres(data, url)
    assert.equal(copied.code, 0, copied.stderr)
    const sqlite = new DatabaseSync(join(data, 'gatehouse.sqlite'), { readOnly: true })
    try {
      const kids = (rows: unknown[]) => rows.map((row) => (row as { kid: string }).kid).sort()
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      try {
        assert.deepEqual(kids((await client.query('select kid from signing_keys')).rows), kids(sqlite.prepare('select kid from signing_keys').all()))
      } finally {
        await client.end()
      }
    } finally {
      sqlite.close()
    }
  }))

  it('leaves the target empty when it refuses a row part way through the copy', () => withSourceAndTarget(async (data, url) => {
    // SQLite keeps a text longer than its column's varchar(8); PostgreSQL refuses it. Tokens come after users.
    const sqlite = new DatabaseSync(join(data, 'gatehouse.sqlite'))
    sqlite.prepare(`insert into tokens (user_id, token_hash, scope, created_at, modified_at, expires_at) values (1, 'hash', 'far-too-long', 0, 0, 0)`).run()
    sqlite.close()
    const failed = await copyToPostgres(data, url)
    assert.equal(failed.code, 1)
    assert.match(failed.stderr, /nothing of it was kept: value too long/)
    assert.deepEqual(await rowCounts(url), {}, 'not even the migrations stayed: they ran in the copy\'s transaction')
  }))

  it('removes what it made in a SQLite data directory when the copy fails, and nothing that was there before', async () => {
    const dir = tempDir()
    try {
      const data = await sourceNoCopyAccepts(dir)

      const made = join(dir, 'new', 'deeper')
      const intoNew = await runCli(['copy-database', '--data-dir', data, '--to-data-dir', made])
      assert.equal(intoNew.code, 1)
      assert.match(intoNew.stderr, /nothing of it was kept: FOREIGN KEY constraint failed/)
      assert.equal(existsSync(join(dir, 'new')), false, 'the directories the copy made are gone')

      const existing = join(dir, 'existing')
      mkdirSync(existing)
      writeFileSync(join(existing, 'notes.txt'), 'kept')
      const intoExisting = await runCli(['copy-database', '--data-dir', data, '--to-data-dir', existing])
      assert.equal(intoExisting.code, 1)
      assert.deepEqual(readdirSync(existing), ['notes.txt'], 'only the database files the copy made are gone')
      assert.equal(readFileSync(join(existing, 'notes.txt'), 'utf8'), 'kept')

      const again = await runCli(['copy-database', '--data-dir', data, '--to-data-dir', existing])
      assert.equal(again.code, 1, 'the same command runs again, and fails for the same reason')
      assert.match(again.stderr, /FOREIGN KEY constraint failed/)

      const underAFile = await runCli(['copy-database', '--data-dir', data, '--to-data-dir', join(existing, 'notes.txt', 'data')])
      assert.equal(underAFile.code, 2)
      assert.match(underAFile.stderr, /^gatehouse: the data directory .* cannot be used: a part of its path is a file, not a directory\n$/)
      assert.equal(readFileSync(join(existing, 'notes.txt'), 'utf8'), 'kept')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('removes what it made in a SQLite data directory when it is interrupted part way, and says so', async () => {
    const dir = tempDir()
    try {
      const data = await migratedDataDir(dir)
      // Enough rows that the copy is still going when its target's file appears.
      const sqlite = new DatabaseSync(join(data, 'gatehouse.sqlite'))
      sqlite.exec(`with recursive n(i) as (select 1 union all select i + 1 from n where i < 200000)
        insert into audit_entries (created_at, operation, content_type) select 0, 'create', 'user' from n`)
      sqlite.close()
      const made = join(dir, 'new')
      const child = spawn(join(repoRoot, 'bin/gatehouse'), ['copy-database', '--data-dir', data, '--to-data-dir', made], { stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (chunk) => (stderr += chunk))
      const ended = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)))
      while (!existsSync(join(made, 'gatehouse.sqlite'))) await delay(20)
      child.kill('SIGINT')
      assert.equal(await ended, 'SIGINT')
      assert.match(stderr, /^gatehouse: the copy into sqlite:.* was interrupted \(SIGINT\), and nothing of it was kept\n$/)
      assert.equal(existsSync(made), false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('leaves a SQLite target only migrated as it was when the copy fails', async () => {
    const dir = tempDir()
    try {
      const data = await sourceNoCopyAccepts(dir)
      const target = join(dir, 'target')
      assert.equal((await runCli(['migrate', '--data-dir', target])).code, 0)
      const failed = await runCli(['copy-database', '--data-dir', data, '--to-data-dir', target])
      assert.equal(failed.code, 1)
      assert.ok(existsSync(join(target, 'gatehouse.sqlite')), 'the database that was there before stays')
      const migrated = new DatabaseSync(join(target, 'gatehouse.sqlite'), { readOnly: true })
      assert.equal((migrated.prepare('select count(*) as n from kysely_migration').get() as { n: number }).n > 0, true)
      migrated.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('gives its statements no time limit of the configuration\'s, and the one --statement-timeout sets', () => withSourceAndTarget(async (data, url) => {
    assert.equal((await runCli(['migrate', '--database', url])).code, 0)
    // Each account the copy writes takes 1.2 s on the target: longer than any request's query may.
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query(`alter table users add constraint slow_to_write check (pg_sleep(1.2) is not null)`)
    await client.end()
    const config = join(data, '..', 'quick.yaml')
    writeFileSync(config, 'storage:\n  timeouts:\n    query_seconds: 0.1\n')
    const copy = (...args: string[]) => runCli(['copy-database', '--config', config, '--data-dir', data, ...args], { env: { GATEHOUSE_COPY_TO_DATABASE_URL: url } })

    const bounded = await copy('--statement-timeout', '1')
    assert.equal(bounded.code, 1)
    assert.match(bounded.stderr, /^gatehouse: the copy into .* failed, and nothing of it was kept: [^\n]*timeout[^\n]*\n$/)
    assert.equal((await rowCounts(url)).users, 0)

    const copied = await copy()
    assert.equal(copied.code, 0, copied.stderr)
    assert.equal(copiedRows(copied.stdout).users, 1)
  }))

  it('names the database that does not answer, the source or the target, in one line, making nothing', async () => {
    const dir = tempDir()
    try {
      const port = await freePort()
      const source = await runCli(['copy-database', '--database', `postgres://gatehouse@127.0.0.1:${port}/gone`, '--to-data-dir', join(dir, 'copy')])
      assert.equal(source.code, 1)
      assert.match(source.stderr, new RegExp(`^gatehouse: the database postgres://gatehouse@127.0.0.1:${port}/gone cannot be used: [^\\n]*ECONNREFUSED[^\\n]*\\n$`))
      assert.equal(existsSync(join(dir, 'copy')), false)

      const data = await migratedDataDir(dir)
      const target = await runCli(['copy-database', '--data-dir', data], { env: { GATEHOUSE_COPY_TO_DATABASE_URL: `postgres://gatehouse@127.0.0.1:${port}/gone` } })
      assert.equal(target.code, 1)
      assert.match(target.stderr, new RegExp(`^gatehouse: the copy into postgres://gatehouse@127.0.0.1:${port}/gone failed, and nothing of it was kept: [^\\n]*ECONNREFUSED[^\\n]*\\n$`))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a source with migrations this version does not know', async () => {
    const dir = tempDir()
    const data = await migratedDataDir(dir)
    try {
      const sqlite = new DatabaseSync(join(data, 'gatehouse.sqlite'))
      sqlite.prepare(`insert into kysely_migration (name, timestamp) values ('999_from_the_future', '2030-01-01')`).run()
      sqlite.close()
      const refused = await runCli(['copy-database', '--data-dir', data, '--to-data-dir', join(dir, 'copy')])
      assert.equal(refused.code, 2)
      assert.match(refused.stderr, /migrations this version does not know \(999_from_the_future\)/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
