import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { after, afterEach, describe, it } from 'node:test'
import { withApp } from '../../src/cli/common.ts'
import { Database } from '../../src/store/database.ts'
import { openStore } from '../../src/store/store.ts'
import { runCli, tempDir } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** Counts the connections to a database that are opened (Database.open) while `work` runs. */
async function opensDuring(work: () => Promise<unknown>): Promise<number> {
  const open = Database.open
  let opens = 0
  Database.open = (...args: Parameters<typeof open>) => {
    opens++
    return open.apply(Database, args)
  }
  try {
    await work()
  } finally {
    Database.open = open
  }
  return opens
}

describe('a command\'s database', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup()
  })
  after(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup()
  })

  it('is opened once on PostgreSQL: the check that it has tables uses the connection the command then works with', async () => {
    const database = await createTestDatabase()
    cleanups.push(() => database.drop())
    await (await openStore({ url: database.url, dataDir: '.' })).close()
    let settings: unknown
    const opens = await opensDuring(() => withApp({ database: database.url }, async (app) => (settings = await app.store.settings.all())))
    assert.equal(typeof settings, 'object', 'the command ran')
    assert.equal(opens, 1)
  })

  it('is opened once on SQLite', async () => {
    const dataDir = tempDir()
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    await (await openStore({ dataDir })).close()
    let settings: unknown
    const opens = await opensDuring(() => withApp({ dataDir }, async (app) => (settings = await app.store.settings.all())))
    assert.equal(typeof settings, 'object', 'the command ran')
    assert.equal(opens, 1)
  })
})

describe('an empty storage option', () => {
  it('is refused naming the variable or option it came from, as neither the configuration nor --database', async () => {
    const cases: { args: string[]; env?: Record<string, string>; named: string }[] = [
      { args: ['users', 'list'], env: { GATEHOUSE_DATABASE_URL: '' }, named: 'GATEHOUSE_DATABASE_URL' },
      { args: ['users', 'list'], env: { GATEHOUSE_DATA_DIR: '' }, named: 'GATEHOUSE_DATA_DIR' },
      { args: ['users', 'list', '--data-dir', ''], named: '--data-dir' },
      { args: ['migrate', '--database', ''], named: '--database' },
    ]
    for (const { args, env, named } of cases) {
      const ran = await runCli(args, { env })
      assert.equal(ran.code, 2, ran.stderr)
      assert.equal(ran.stderr, `gatehouse: ${named} is empty; give a value, or leave it out\n`, named)
    }
  })
})
