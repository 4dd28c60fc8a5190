import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import pg from 'pg'
import { demoConfigFile } from '../../src/config/load.ts'
import { runCli, tempDir } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** Commands that read or change what a database holds, none of which should make one where none is. */
const COMMANDS: [string[], string?][] = [
  [['users', 'list']],
  [['users', 'create', 'alice', '--password-stdin'], 'alice-long-password-1\n'],
  [['users', 'disable', 'alice']],
  [['tokens', 'list']],
  [['keys', 'rotate', '--identity']],
  [['realms', 'logout-all', 'platform', '--config', demoConfigFile]],
  [['access', 'check', 'alice', 'GET', '/api/controller/v2/hosts/']],
  [['ldap', 'forget-entries']],
]

async function tablesIn(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ table_name: string }>("select table_name from information_schema.tables where table_schema = 'public'")
    return rows.map((row) => row.table_name)
  } finally {
    await client.end()
  }
}

describe('bin/gatehouse where there is no database', () => {
  it('refuses a data directory that does not exist, naming it and how to create it, and makes none', async () => {
    const dir = tempDir()
    try {
      const typo = join(dir, 'dtaa')
      for (const [args, input] of COMMANDS) {
        const result = await runCli([...args, '--data-dir', typo], { input: input ?? '' })
        assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
        assert.equal(result.stdout, '', args.join(' '))
        assert.equal(result.stderr, `gatehouse: the data directory ${typo} cannot be used: it does not exist; `
          + `create it and its database with: gatehouse migrate --data-dir ${typo} (serve creates them too)\n`, args.join(' '))
        assert.equal(existsSync(typo), false, `${args.join(' ')} made no directory`)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a data directory without a database, and a database file without tables, changing neither', async () => {
    const dir = tempDir()
    try {
      const empty = join(dir, 'empty')
      mkdirSync(empty)
      const blank = join(dir, 'blank')
      mkdirSync(blank)
      writeFileSync(join(blank, 'gatehouse.sqlite'), '')
      for (const [args, input] of COMMANDS) {
        const none = await runCli([...args, '--data-dir', empty], { input: input ?? '' })
        assert.equal(none.code, 2, `${args.join(' ')}: ${none.stderr}`)
        assert.equal(none.stderr, `gatehouse: the data directory ${empty} cannot be used: it holds no database (gatehouse.sqlite); `
          + `create one with: gatehouse migrate --data-dir ${empty} (serve creates one too)\n`, args.join(' '))
        assert.deepEqual(readdirSync(empty), [], `${args.join(' ')} made no file`)

        const noTables = await runCli([...args, '--data-dir', blank], { input: input ?? '' })
        assert.equal(noTables.code, 2, `${args.join(' ')}: ${noTables.stderr}`)
        assert.match(noTables.stderr, /^gatehouse: the database sqlite:.*blank\/gatehouse\.sqlite has no Gatehouse tables; create them with: gatehouse migrate --data-dir .*blank \(serve creates them too\)\n$/, args.join(' '))
        assert.equal(statSync(join(blank, 'gatehouse.sqlite')).size, 0, `${args.join(' ')} created no table`)
      }

      assert.equal((await runCli(['migrate', '--data-dir', empty])).code, 0, 'migrate makes one')
      const listed = await runCli(['users', 'list', '--data-dir', empty])
      assert.equal(listed.code, 0, listed.stderr)
      assert.equal((await runCli(['migrate', '--data-dir', blank])).code, 0, 'and makes the tables in an empty file')
      assert.equal((await runCli(['users', 'list', '--data-dir', blank])).code, 0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses a PostgreSQL database without Gatehouse tables, and creates none', async () => {
    const database = await createTestDatabase()
    try {
      for (const [args, input] of COMMANDS) {
        const result = await runCli([...args], { input: input ?? '', env: { GATEHOUSE_DATABASE_URL: database.url } })
        assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
        assert.match(result.stderr, /^gatehouse: the database postgres:\/\/.* has no Gatehouse tables; create them with: gatehouse migrate, naming the database as this command did \(serve creates them too\)\n$/, args.join(' '))
      }
      // Given on the command line, the database must be given to migrate too: alone, it would make SQLite's tables in ./data.
      const byOption = await runCli(['users', 'list', '--database', database.url])
      assert.equal(byOption.code, 2, byOption.stderr)
      assert.match(byOption.stderr, /create them with: gatehouse migrate, naming the database as this command did /)
      assert.deepEqual(await tablesIn(database.url), [], 'no table was made')
      assert.equal((await runCli(['migrate'], { env: { GATEHOUSE_DATABASE_URL: database.url } })).code, 0)
      assert.equal((await runCli(['users', 'list'], { env: { GATEHOUSE_DATABASE_URL: database.url } })).code, 0)
    } finally {
      await database.drop()
    }
  })
})
