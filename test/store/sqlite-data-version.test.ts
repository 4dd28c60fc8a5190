import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, renameSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { NodeSqliteDatabase } from '../../src/store/sqlite-driver.ts'
import { tempDir } from '../helpers/gateway.ts'

/** Three commits of `other` into table `t`, each seen by `database`'s next check. */
function assertSeesCommitsOf(other: DatabaseSync, database: NodeSqliteDatabase): void {
  for (let n = 0; n < 3; n++) {
    const before = database.dataVersion()
    other.exec(`INSERT INTO t VALUES (${n})`)
    assert.notEqual(database.dataVersion(), before, `commit ${n} is seen`)
  }
}

/**
 * The check every turn of the event loop makes for other processes' commits (src/store/event-bus.ts): data_version,
 * read only when the WAL index's header changed.
 */
describe('SQLite data_version, read when the WAL index changed', () => {
  const file = join(tempDir(), 'gatehouse.sqlite')
  let reader: NodeSqliteDatabase
  let writer: DatabaseSync
  let reads = 0

  before(async () => {
    reader = new NodeSqliteDatabase(file, 1000)
    await reader.useWal(1000)
    reader.raw.exec('CREATE TABLE t (n INTEGER)')
    // Counts the statements that read data_version itself.
    const prepare = reader.raw.prepare.bind(reader.raw)
    reader.raw.prepare = ((text: string) => {
      const statement = prepare(text)
      if (text !== 'PRAGMA data_version') return statement
      return { get: () => (reads++, statement.get()) }
    }) as typeof reader.raw.prepare
    writer = new DatabaseSync(file)
  })
  after(() => {
    writer.close()
    reader.close()
  })

  it('moves with every commit of another connection, and reads data_version only then', () => {
    for (let n = 0; n < 200; n++) {
      const before = reader.dataVersion()
      reads = 0
      assert.equal(reader.dataVersion(), before, 'no commit in between')
      assert.equal(reads, 0, 'the header unchanged, data_version is not read')
      writer.prepare('INSERT INTO t VALUES (?)').run(n)
      assert.notEqual(reader.dataVersion(), before, `commit ${n} is seen`)
      assert.equal(reads, 1)
    }
  })

  it('does not move for its own connection\'s commits, as data_version itself', () => {
    const before = reader.dataVersion()
    reader.raw.exec('INSERT INTO t VALUES (-1)')
    assert.equal(reader.dataVersion(), before)
  })

  it('moves with a commit of another process', () => {
    for (let n = 0; n < 3; n++) {
      const before = reader.dataVersion()
      execFileSync(process.execPath, ['-e', `new (require('node:sqlite').DatabaseSync)(${JSON.stringify(file)}).exec('INSERT INTO t VALUES (${1000 + n})')`])
      assert.notEqual(reader.dataVersion(), before, `the other process's commit ${n} is seen`)
    }
  })

  it('sees every commit another process made before it told of it, while that process commits without pause', async () => {
    const script = `const db = new (require('node:sqlite').DatabaseSync)(${JSON.stringify(file)}); db.exec('PRAGMA busy_timeout = 5000')
      const insert = db.prepare('INSERT INTO t VALUES (?)')
      for (let n = 1; n <= 2000; n++) { insert.run(100000 + n); process.stdout.write(n + '\\n') }`
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const highest = reader.raw.prepare('SELECT max(n) AS n FROM t')
    let version = reader.dataVersion()
    let seen = (highest.get() as { n: number }).n
    let told = 0
    let stale = 0
    let pending = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      // What the child wrote here it committed before: a check now must find it.
      const lines = (pending + chunk).split('\n')
      pending = lines.pop()!
      told = Number(lines.at(-1) ?? told)
      const now = reader.dataVersion()
      if (now !== version) {
        version = now
        seen = (highest.get() as { n: number }).n
      }
      if (seen < 100000 + told) stale++
    })
    const [code] = await once(child, 'exit')
    assert.equal(code, 0)
    assert.equal(told, 2000)
    assert.equal(stale, 0, 'a check found no change where a commit had been told of')
  })

  it('reads the WAL index beside the file a symbolic link leads to, as SQLite does, not one left beside the link', async () => {
    const dir = tempDir()
    const real = join(dir, 'volume.sqlite')
    const link = join(dir, 'gatehouse.sqlite')
    symlinkSync(real, link)
    // Another install's leftover, which SQLite never looks at.
    writeFileSync(`${link}-shm`, Buffer.alloc(32_768, 1))
    const linked = new NodeSqliteDatabase(link, 1000)
    const other = new DatabaseSync(real)
    try {
      await linked.useWal(1000)
      linked.raw.exec('CREATE TABLE t (n INTEGER)')
      assertSeesCommitsOf(other, linked)
    } finally {
      other.close()
      linked.close()
    }
  })

  it('keeps reading the WAL index of the file it opened when its symbolic link is pointed elsewhere before the first check', async () => {
    const dir = tempDir()
    const [first, second, link] = [join(dir, 'first.sqlite'), join(dir, 'second.sqlite'), join(dir, 'gatehouse.sqlite')]
    for (const file of [first, second]) {
      const setUp = new DatabaseSync(file)
      setUp.exec('PRAGMA journal_mode = WAL')
      setUp.exec('CREATE TABLE t (n INTEGER)')
      setUp.close()
    }
    symlinkSync(first, link)
    const linked = new NodeSqliteDatabase(link, 1000)
    const keepsSecondOpen = new DatabaseSync(second)
    keepsSecondOpen.prepare('SELECT count(*) FROM t').get()
    const other = new DatabaseSync(first)
    try {
      await linked.useWal(1000)
      unlinkSync(link)
      symlinkSync(second, link)
      assertSeesCommitsOf(other, linked)
    } finally {
      other.close()
      keepsSecondOpen.close()
      linked.close()
    }
  })

  it('leaves the locks held for a connection in place when its -shm file is replaced at its path and another connection opens', { skip: !existsSync('/proc/locks') && 'no /proc/locks' }, async () => {
    const dir = tempDir()
    const file = join(dir, 'gatehouse.sqlite')
    const first = new NodeSqliteDatabase(file, 1000)
    await first.useWal(1000)
    first.raw.exec('CREATE TABLE t (n INTEGER)')
    first.dataVersion()
    const shmInode = statSync(`${file}-shm`).ino
    const locks = () => readFileSync('/proc/locks', 'utf8').split('\n').filter((line) => line.includes(` ${process.pid} `) && line.includes(`:${shmInode} `)).length
    const before = locks()
    assert.ok(before > 0)
    // Moved aside as a restore run beside it would; another process then makes a new one at the path.
    renameSync(`${file}-shm`, join(dir, 'moved-shm'))
    execFileSync(process.execPath, ['-e', `new (require('node:sqlite').DatabaseSync)(${JSON.stringify(file)}).prepare('SELECT count(*) FROM t').get()`])
    const second = new NodeSqliteDatabase(file, 1000)
    try {
      await second.useWal(1000)
      second.dataVersion()
      assert.equal(locks(), before, 'the first connection\'s locks are still held')
    } finally {
      second.close()
      first.close()
    }
  })

  it('reads data_version every time for a database not in WAL mode, whatever -shm file lies beside it', () => {
    const journal = join(tempDir(), 'rollback-journal.sqlite')
    writeFileSync(`${journal}-shm`, Buffer.alloc(32_768, 1))
    const database = new NodeSqliteDatabase(journal, 1000)
    const other = new DatabaseSync(journal)
    try {
      database.raw.exec('CREATE TABLE t (n INTEGER)')
      assertSeesCommitsOf(other, database)
    } finally {
      other.close()
      database.close()
    }
  })

  it('leaves the locks of the process\'s other connections to the file in place when one closes', { skip: !existsSync('/proc/locks') && 'no /proc/locks' }, async () => {
    const shared = join(tempDir(), 'gatehouse.sqlite')
    const first = new NodeSqliteDatabase(shared, 1000)
    await first.useWal(1000)
    const second = new NodeSqliteDatabase(shared, 1000)
    try {
      second.raw.exec('CREATE TABLE t (n INTEGER)')
      first.dataVersion()
      second.dataVersion()
      // SQLite's locks on the -shm file: each connection holds a read lock on it for as long as it is open.
      const shmInode = statSync(`${shared}-shm`).ino
      const locks = () => readFileSync('/proc/locks', 'utf8').split('\n').filter((line) => line.includes(` ${process.pid} `) && line.includes(`:${shmInode} `)).length
      const before = locks()
      assert.ok(before > 0, 'the connections hold locks on the -shm file')
      first.close()
      assert.equal(locks(), before, 'the other connection\'s locks are still held')
    } finally {
      second.close()
    }
  })

  it('reads data_version every time for a database without a WAL index', () => {
    const memory = new NodeSqliteDatabase(':memory:', 1000)
    try {
      const prepare = memory.raw.prepare.bind(memory.raw)
      let memoryReads = 0
      memory.raw.prepare = ((text: string) => {
        const statement = prepare(text)
        return text === 'PRAGMA data_version' ? { get: () => (memoryReads++, statement.get()) } : statement
      }) as typeof memory.raw.prepare
      memory.dataVersion()
      memory.dataVersion()
      assert.equal(memoryReads, 2)
    } finally {
      memory.close()
    }
  })
})
