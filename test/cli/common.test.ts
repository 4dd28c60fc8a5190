import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, afterEach, describe, it } from 'node:test'
import { withApp } from '../../src/cli/actions.ts'
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
      // An empty configuration file name ran on the built-in defaults, or failed part-way through serve's start.
      { args: ['users', 'list'], env: { GATEHOUSE_CONFIG: '' }, named: 'GATEHOUSE_CONFIG' },
      { args: ['serve', '--config', ''], named: '--config' },
    ]
    for (const { args, env, named } of cases) {
      const ran = await runCli(args, { env })
      assert.equal(ran.code, 2, ran.stderr)
      assert.equal(ran.stderr, `gatehouse: ${named} is empty; give a value, or leave it out\n`, named)
    }
  })
})

describe('a data directory and a database URL given together', () => {
  const dirs: string[] = []
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })
  it('is refused naming both, rather than the URL silently winning over the directory', async () => {
    const url = 'postgres://postgres@127.0.0.1:1/none'
    const cases: { args: string[]; env?: Record<string, string>; says: string }[] = [
      { args: ['users', 'list', '--data-dir', 'd1'], env: { GATEHOUSE_DATABASE_URL: url }, says: '--data-dir names the SQLite database and GATEHOUSE_DATABASE_URL a PostgreSQL one; give one of them' },
      { args: ['backup', 'b.sqlite', '--data-dir', 'd1', '--database', url], says: '--data-dir names the SQLite database and --database a PostgreSQL one; give one of them' },
    ]
    for (const { args, env, says } of cases) {
      const ran = await runCli(args, { env })
      assert.equal(ran.code, 2, ran.stderr)
      assert.equal(ran.stderr, `gatehouse: ${says}\n`)
    }
    const dir = tempDir()
    dirs.push(dir)
    const file = join(dir, 'gatehouse.yaml')
    writeFileSync(file, `storage:\n  database: ${url}\n`)
    const fromFile = await runCli(['users', 'list', '--config', file, '--data-dir', dir])
    assert.equal(fromFile.code, 2, fromFile.stderr)
    assert.match(fromFile.stderr, /storage\.database a PostgreSQL one; give one of them/)
  })

  it('names --data-dir in the hint to create the tables of a SQLite file that has none', async () => {
    const dir = tempDir()
    dirs.push(dir)
    writeFileSync(join(dir, 'gatehouse.sqlite'), '')
    const ran = await runCli(['users', 'list', '--data-dir', dir])
    assert.equal(ran.code, 2, ran.stderr)
    assert.match(ran.stderr, new RegExp(`create them with: gatehouse migrate --data-dir ${dir} \\(serve creates them too\\)`))
  })
})

describe('a command\'s list for people', () => {
  it('prints a table of 200,000 rows, its columns as wide as the widest cell (a table of users as import makes them)', async () => {
    const { printList } = await import('../../src/cli/common.ts')
    const written: string[] = []
    const write = process.stdout.write
    process.stdout.write = ((chunk: string) => {
      written.push(chunk)
      return true
    }) as typeof process.stdout.write
    try {
      const items = Array.from({ length: 200_000 }, (_, i) => ({ id: i, name: `user-${i}` }))
      printList(items, false, ['ID', 'USERNAME', 'NOTE'], (item) => [String(item.id), item.name, 'x'], (item) => item)
    } finally {
      process.stdout.write = write
    }
    assert.equal(written.length, 200_001)
    assert.equal(written[0], `${'ID'.padEnd(6)}  ${'USERNAME'.padEnd(11)}  NOTE\n`)
    assert.equal(written.at(-1), '199999  user-199999  x\n')
  })
})
