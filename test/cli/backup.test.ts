import assert from 'node:assert/strict'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFileSync, spawn } from 'node:child_process'
import { DatabaseSync } from 'node:sqlite'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { ADMIN_PASSWORD, adminAuth, AS_ANOTHER_USER, basic, migratedDataDir, repoRoot, runCli, spawnGateway, tempDir } from '../helpers/gateway.ts'
import { onSmallFileSystem } from '../helpers/small-file-system.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** A port free now, so the restored gateway answers at the same public URL: the tokens' issuer. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

const TOKEN_URL = '/realms/platform/protocol/openid-connect/token'

async function passwordGrant(url: string): Promise<{ access_token: string; refresh_token: string }> {
  const response = await fetch(url + TOKEN_URL, {
    method: 'POST',
    body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', scope: 'openid', username: 'admin', password: ADMIN_PASSWORD }),
  })
  assert.equal(response.status, 200)
  return await response.json() as { access_token: string; refresh_token: string }
}

/**
 * Issues an OIDC token pair and a personal token on a gateway over `original`, takes a backup while writes go on,
 * restores it, and checks a gateway over the restored copy, at the same public URL (the tokens' issuer), takes them.
 */
async function assertRestoredBackupKeepsTokens(steps: { original: string[]; backUp(): Promise<void>; restore(): Promise<string[]> }): Promise<void> {
  const port = String(await freePort())
  let gateway = await spawnGateway(['--demo', ...steps.original, '--port', port])
  try {
    const tokens = await passwordGrant(gateway.url)
    const created = await fetch(gateway.url + '/api/gateway/v1/tokens/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(created.status, 201)
    const personalToken = (await created.json() as { token: string }).token

    // Writes go on while the copy is taken: it must be a consistent snapshot all the same.
    let writing = true
    const writes = (async () => {
      while (writing) await passwordGrant(gateway.url)
    })()
    try {
      await steps.backUp()
    } finally {
      writing = false
      await writes
    }
    await gateway.stop()

    gateway = await spawnGateway(['--demo', ...await steps.restore(), '--port', port])
    const userinfo = await fetch(gateway.url + '/realms/platform/protocol/openid-connect/userinfo', { headers: { authorization: `Bearer ${tokens.access_token}` } })
    assert.equal(userinfo.status, 200, 'an access token issued before the backup is still valid: the signing keys came back')
    const refreshed = await fetch(gateway.url + TOKEN_URL, {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
    })
    assert.equal(refreshed.status, 200, 'and so is its refresh token: ' + await refreshed.clone().text())
    const me = await fetch(gateway.url + '/api/gateway/v1/me/', { headers: { authorization: `Bearer ${personalToken}` } })
    assert.equal(me.status, 200, 'the personal token came back')
    const signedIn = await fetch(gateway.url + '/api/gateway/v1/me/', { headers: { authorization: basic('admin', ADMIN_PASSWORD) } })
    assert.equal(signedIn.status, 200)
  } finally {
    await gateway.stop()
  }
}

/** The record of its migrations that another application migrating with Kysely, as Gatehouse does, keeps. */
const ANOTHER_APPLICATIONS_MIGRATIONS = `create table kysely_migration (name varchar(255) primary key, timestamp varchar(255));
insert into kysely_migration values ('2024_01_init', '2024-01-01')`

/** Opens a SQLite file (making it if need be), hands it to `change` and closes it. */
function withDatabase(file: string, change: (db: DatabaseSync) => void): void {
  const db = new DatabaseSync(file)
  try {
    change(db)
  } finally {
    db.close()
  }
}

function run(command: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }))
  })
}

/**
 * Another process holding the database (a WAL one) so that no reader gets in: the backup's copy waits for it, up to
 * the query timeout, which gives a test the time to interrupt it. Ended by `release`.
 */
async function holdDatabase(file: string): Promise<{ release(): Promise<void> }> {
  const script = `const { DatabaseSync } = require('node:sqlite')
const db = new DatabaseSync(${JSON.stringify(file)})
db.exec('PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; DELETE FROM settings WHERE 0')
console.log('held')
setTimeout(() => {}, 120000)`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  await once(child.stdout!, 'data')
  return { release: async () => { child.kill('SIGKILL'); await exited } }
}

/** `backup FILE` started while the database is held, once its partial copy is there: its process and that file's name. */
async function backupUnderWay(dir: string, target: string) {
  const config = join(dir, 'slow.yaml')
  writeFileSync(config, 'storage:\n  timeouts:\n    query_seconds: 60\n')
  const child = spawn(join(repoRoot, 'bin/gatehouse'), ['backup', target, '--config', config, '--data-dir', join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const partial = `${target}.partial-${child.pid}`
  for (let i = 0; i < 400 && !existsSync(partial) && child.exitCode === null; i++) await sleep(50)
  assert.ok(existsSync(partial), `the partial copy is made first: ${stderr}`)
  return { child, partial, exited, stderr: () => stderr }
}

describe('bin/gatehouse backup', () => {
  it('copies a running SQLite database into a file that, restored, keeps the signing keys, tokens and accounts', async () => {
    const dir = tempDir()
    const backupFile = join(dir, 'gatehouse-backup.sqlite')
    try {
      await assertRestoredBackupKeepsTokens({
        original: ['--data-dir', join(dir, 'data')],
        async backUp() {
          const backup = await runCli(['backup', backupFile, '--data-dir', join(dir, 'data')])
          assert.equal(backup.code, 0, backup.stderr)
          assert.match(backup.stdout, /^backed up sqlite:.* to .*gatehouse-backup\.sqlite/)
          assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('gatehouse-backup')), ['gatehouse-backup.sqlite'], 'no partial file is left beside it')
          assert.equal(statSync(backupFile).mode & 0o777, 0o600, 'readable by its owner only, as the database')
        },
        async restore() {
          // In place of the database it was taken of, whose WAL holds the writes made after the copy.
          const restored = await runCli(['restore', backupFile, '--data-dir', join(dir, 'data')])
          assert.equal(restored.code, 0, restored.stderr)
          assert.match(restored.stdout, /^restored .*gatehouse-backup\.sqlite to sqlite:.*gatehouse\.sqlite\n$/)
          const kept = readdirSync(join(dir, 'data')).filter((name) => name.includes('.before-restore-'))
          assert.equal(kept.length, 1, `the replaced database is kept aside whole, its WAL folded into it: ${kept}`)
          assert.deepEqual(readdirSync(join(dir, 'data')).filter((name) => /^gatehouse\.sqlite-(wal|shm)$/.test(name)), [], 'no WAL of the old database is laid over the restored one')
          assert.equal(statSync(join(dir, 'data', 'gatehouse.sqlite')).mode & 0o777, 0o600)
          return ['--data-dir', join(dir, 'data')]
        },
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('documents a PostgreSQL backup (pg_dump, pg_restore) that, restored, keeps the signing keys and tokens', async () => {
    const dir = tempDir()
    const original = await createTestDatabase()
    const restored = await createTestDatabase()
    const dump = join(dir, 'gatehouse.dump')
    try {
      await assertRestoredBackupKeepsTokens({
        original: ['--database', original.url],
        async backUp() {
          const dumped = await run('pg_dump', ['--format=custom', `--file=${dump}`, original.url])
          assert.equal(dumped.code, 0, dumped.stderr)
        },
        async restore() {
          const loaded = await run('pg_restore', ['--no-owner', `--dbname=${restored.url}`, dump])
          assert.equal(loaded.code, 0, loaded.stderr)
          return ['--database', restored.url]
        },
      })
    } finally {
      await original.drop()
      await restored.drop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses, in one line with exit 2 and without writing anything, what it cannot back up', async () => {
    const dir = tempDir()
    const database = await createTestDatabase()
    try {
      assert.equal((await runCli(['migrate', '--data-dir', join(dir, 'data')])).code, 0)
      const existing = join(dir, 'existing.sqlite')
      writeFileSync(existing, 'keep me')
      const dangling = join(dir, 'dangling.sqlite')
      symlinkSync(join(dir, 'nowhere'), dangling)
      // SQLite opens an empty file as an empty database: its copy would be no backup.
      mkdirSync(join(dir, 'zero'))
      writeFileSync(join(dir, 'zero', 'gatehouse.sqlite'), '')
      mkdirSync(join(dir, 'foreign'))
      withDatabase(join(dir, 'foreign', 'gatehouse.sqlite'), (db) => db.exec(ANOTHER_APPLICATIONS_MIGRATIONS))
      const cases: [string[], RegExp][] = [
        [['backup', existing, '--data-dir', join(dir, 'data')], /^gatehouse: .*existing\.sqlite already exists/],
        [['backup', dangling, '--data-dir', join(dir, 'data')], /^gatehouse: .*dangling\.sqlite already exists/],
        [['backup', join(dir, 'no-such-dir', 'b.sqlite'), '--data-dir', join(dir, 'data')], /^gatehouse: .*no-such-dir.* does not exist/],
        [['backup', join(existing, 'b.sqlite'), '--data-dir', join(dir, 'data')], /^gatehouse: .*existing\.sqlite is not a directory$/m],
        [['backup', join(dir, 'b.sqlite'), '--data-dir', join(dir, 'empty')], /^gatehouse: no database to back up in .*empty/],
        [['backup', join(dir, 'b.sqlite'), '--data-dir', join(dir, 'zero')], /^gatehouse: the data directory .*zero cannot be used: it holds no database \(gatehouse\.sqlite .*no migrations table\)$/m],
        [['backup', join(dir, 'b.sqlite'), '--data-dir', join(dir, 'foreign')], /^gatehouse: the data directory .*foreign cannot be used: it holds no database \(gatehouse\.sqlite .*lacks .*001_core\)$/m],
        [['backup', join(dir, 'b.sqlite'), '--database', database.url], /^gatehouse: backup copies the SQLite database; back up PostgreSQL with pg_dump/],
        [['backup', '--data-dir', join(dir, 'data')], /^gatehouse: missing required argument 'file'/],
        // A trailing slash means a directory, which path resolution would drop (a file `new` written instead).
        [['backup', `${join(dir, 'new')}/`, '--data-dir', join(dir, 'data')], /^gatehouse: .*new\/ names a directory; name the backup's file/],
        [['backup', join(dir, 'a'.repeat(300)), '--data-dir', join(dir, 'data')], /^gatehouse: .*a{300} cannot be a backup's file: its name is too long$/m],
      ]
      for (const [args, reason] of cases) {
        const result = await runCli(args)
        assert.equal(result.code, 2, args.join(' ') + result.stderr)
        assert.match(result.stderr, reason)
        assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      }
      assert.equal(existsSync(join(dir, 'b.sqlite')), false)
      assert.equal(existsSync(join(dir, 'new')), false)
      assert.equal(existsSync(join(dir, 'empty', 'gatehouse.sqlite')), false, 'no empty database was made where none was')
      assert.deepEqual(readdirSync(join(dir, 'zero')), ['gatehouse.sqlite'])
      assert.equal(statSync(join(dir, 'zero', 'gatehouse.sqlite')).size, 0, 'the empty file stays empty')
    } finally {
      await database.drop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('says, with exit 2, that it may not read a data directory or database it may not read', async () => {
    // Permissions bind everyone but root: as root, the backups run as nobody.
    const dir = tempDir()
    try {
      chmodSync(dir, 0o777)
      const data = await migratedDataDir(dir)
      const file = join(data, 'gatehouse.sqlite')
      const backUp = (name: string) => runCli(['backup', join(dir, name), '--data-dir', data], AS_ANOTHER_USER)

      chmodSync(data, 0o300)
      const sealed = await backUp('sealed.sqlite')
      assert.equal(sealed.code, 2, sealed.stderr)
      assert.equal(sealed.stderr, `gatehouse: the data directory ${data} cannot be used: permission denied (it must be readable)\n`, 'not "no database to back up"')

      chmodSync(data, 0o755)
      chmodSync(file, 0o200)
      const unreadable = await backUp('unreadable.sqlite')
      assert.equal(unreadable.code, 2, unreadable.stderr)
      assert.equal(unreadable.stderr, `gatehouse: the data directory ${data} cannot be used: permission denied on gatehouse.sqlite (it must be readable)\n`, 'not a backup that could not be written')
      assert.deepEqual(readdirSync(dir).sort(), ['data'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`removes its partial copy when ${signal} interrupts it, says so, and ends by that signal`, async () => {
      const dir = tempDir()
      try {
        assert.equal((await runCli(['migrate', '--data-dir', join(dir, 'data')])).code, 0)
        const held = await holdDatabase(join(dir, 'data', 'gatehouse.sqlite'))
        try {
          const target = join(dir, 'b.sqlite')
          const backup = await backupUnderWay(dir, target)
          assert.equal(statSync(backup.partial).mode & 0o777, 0o600, 'readable by its owner only from the start, as restore\'s copy of a backup (the same code)')
          // Its journal too, which SQLite writes beside the copy while it makes it.
          writeFileSync(`${backup.partial}-journal`, 'journal')
          backup.child.kill(signal)
          const [code, endedBy] = await backup.exited
          assert.deepEqual([code, endedBy], [null, signal], backup.stderr())
          assert.match(backup.stderr(), new RegExp(`^gatehouse: backup interrupted by ${signal}: .*b\\.sqlite was not written; its partial copy .*b\\.sqlite\\.partial-${backup.child.pid} was removed\n$`))
          assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('b.sqlite')), [], 'no partial copy, no backup')
        } finally {
          await held.release()
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }

  it('refuses, with exit 2 and changing nothing, when a directory has the name of a partial copy beside the target', async () => {
    const dir = tempDir()
    try {
      assert.equal((await runCli(['migrate', '--data-dir', join(dir, 'data')])).code, 0)
      const gonePid = async () => {
        const child = spawn('true')
        await once(child, 'exit')
        return child.pid!
      }
      const staleFile = join(dir, `b.sqlite.partial-${await gonePid()}`)
      writeFileSync(staleFile, 'left by a killed backup')
      const inTheWay = join(dir, `b.sqlite.partial-${await gonePid()}`)
      mkdirSync(inTheWay)
      const refused = await runCli(['backup', join(dir, 'b.sqlite'), '--data-dir', join(dir, 'data')])
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
      assert.ok(refused.stderr.startsWith(`gatehouse: ${inTheWay} is in the way: `), refused.stderr)
      assert.doesNotMatch(refused.stderr, /EISDIR/)
      assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('b.sqlite')).sort(), [staleFile, inTheWay].map((path) => path.slice(dir.length + 1)).sort())
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses, with exit 2 and the same words, a backup to a file another backup to it wrote meanwhile, as one to a file there before', async () => {
    const dir = tempDir()
    try {
      assert.equal((await runCli(['migrate', '--data-dir', join(dir, 'data')])).code, 0)
      const target = join(dir, 'b.sqlite')
      const held = await holdDatabase(join(dir, 'data', 'gatehouse.sqlite'))
      const runs = []
      try {
        // Both have found no file there, and wait to copy the database.
        runs.push(await backupUnderWay(dir, target), await backupUnderWay(dir, target))
      } finally {
        await held.release()
      }
      const ended = await Promise.all(runs.map(async (run) => {
        if (run.child.exitCode === null) await once(run.child, 'close')
        else if (!run.child.stderr!.closed) await once(run.child.stderr!, 'close')
        return { code: run.child.exitCode, stderr: run.stderr() }
      }))
      const refusal = `gatehouse: ${target} already exists; name a new file\n`
      assert.deepEqual(ended.map((run) => run.code).sort(), [0, 2], JSON.stringify(ended))
      assert.equal(ended.find((run) => run.code === 2)!.stderr, refusal)
      const again = await runCli(['backup', target, '--data-dir', join(dir, 'data')])
      assert.deepEqual([again.code, again.stderr], [2, refusal])
      assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('b.sqlite')), ['b.sqlite'], 'no partial copy is left')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('removes the partial copy a killed backup left (SIGKILL) when it next runs, and says so', async () => {
    const dir = tempDir()
    try {
      assert.equal((await runCli(['migrate', '--data-dir', join(dir, 'data')])).code, 0)
      const target = join(dir, 'b.sqlite')
      const held = await holdDatabase(join(dir, 'data', 'gatehouse.sqlite'))
      let killed
      try {
        killed = await backupUnderWay(dir, target)
        killed.child.kill('SIGKILL')
        await killed.exited
      } finally {
        await held.release()
      }
      assert.ok(existsSync(killed.partial), 'nothing runs after SIGKILL: the partial copy stays')
      // SQLite's journal of the copy, as a run killed while it wrote leaves it.
      writeFileSync(`${killed.partial}-journal`, 'journal')
      const next = await runCli(['backup', target, '--data-dir', join(dir, 'data')])
      assert.equal(next.code, 0, next.stderr)
      assert.match(next.stdout, /^backed up sqlite:/)
      assert.deepEqual(next.stderr.split('\n').sort(), ['', ...[killed.partial, `${killed.partial}-journal`].map((path) => `gatehouse: removed ${path}, left by a backup that did not finish (process ${killed.child.pid} is gone)`)].sort())
      assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('b.sqlite')), ['b.sqlite'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('says the backup could not be written, and why, when the disk it goes to is full, and leaves no file there', async (t) => {
    const dir = tempDir()
    try {
      await onSmallFileSystem(t, '64k', async (full) => {
        assert.equal((await runCli(['migrate', '--data-dir', join(dir, 'data')])).code, 0)
        const result = await runCli(['backup', join(full, 'b.sqlite'), '--data-dir', join(dir, 'data')])
        assert.equal(result.code, 1, result.stderr)
        assert.match(result.stderr, /^gatehouse: the backup to .*b\.sqlite was not written: .*full.*; its partial copy .*b\.sqlite\.partial-\d+ was removed$/m)
        assert.doesNotMatch(result.stderr, /try again shortly/)
        assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
        assert.deepEqual(readdirSync(full), [])
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('bin/gatehouse restore', () => {
  it('removes the copy a killed restore (SIGKILL) left, and its journal, when it next runs, and says so', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    const backupFile = join(dir, 'backup.sqlite')
    try {
      assert.equal((await runCli(['migrate', '--data-dir', data])).code, 0)
      assert.equal((await runCli(['backup', backupFile, '--data-dir', data])).code, 0)
      const gone = spawn('true')
      await once(gone, 'exit')
      const copy = join(data, `gatehouse.sqlite.restoring-${gone.pid}`)
      copyFileSync(backupFile, copy)
      writeFileSync(`${copy}-journal`, 'journal')
      const next = await runCli(['restore', backupFile, '--data-dir', data])
      assert.equal(next.code, 0, next.stderr)
      for (const path of [copy, `${copy}-journal`]) {
        assert.ok(next.stderr.includes(`gatehouse: removed ${path}, left by a restore that did not finish (process ${gone.pid} is gone)\n`), next.stderr)
      }
      assert.deepEqual(readdirSync(data).filter((name) => name.includes('.restoring-')), [])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })


  it('waits for every process serving the database to stop, and puts back a backup that then serves without the later writes', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    const backupFile = join(dir, 'backup.sqlite')
    let gateway = await spawnGateway(['--demo', '--data-dir', data])
    try {
      assert.equal((await runCli(['backup', backupFile, '--data-dir', data])).code, 0)
      const later = await runCli(['users', 'create', 'after-backup', '--data-dir', data])
      assert.equal(later.code, 0, later.stderr)
      const refused = await runCli(['restore', backupFile, '--data-dir', data])
      assert.equal(refused.code, 2)
      assert.match(refused.stderr, /^gatehouse: 1 gateway process is serving sqlite:.*; stop it first/)
      assert.equal(readdirSync(data).some((name) => name.includes('before-restore')), false, 'nothing was moved')
      await gateway.stop()
      const restored = await runCli(['restore', backupFile, '--data-dir', data])
      assert.equal(restored.code, 0, restored.stderr)
      assert.match(restored.stderr, /the database it replaced is kept as .*gatehouse\.sqlite\.before-restore-/)
      // The writes made after the backup, which were in the old database's WAL when its server stopped, are kept too.
      const [keptName] = readdirSync(data).filter((name) => name.includes('.before-restore-'))
      const kept = new DatabaseSync(join(data, keptName!), { readOnly: true })
      try {
        assert.ok(kept.prepare(`select 1 from users where username = 'after-backup'`).get(), 'the replaced database keeps what was written after the backup')
      } finally {
        kept.close()
      }
      gateway = await spawnGateway(['--demo', '--data-dir', data])
      const users = await fetch(gateway.url + '/api/gateway/v1/users/?username=after-backup', { headers: adminAuth })
      assert.equal((await users.json() as { count: number }).count, 0, 'the account made after the backup is gone')
    } finally {
      await gateway.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('restores a copy taken with its WAL beside it (a stopped server\'s files copied by hand), writes in the WAL included', async () => {
    const dir = tempDir()
    try {
      assert.equal((await runCli(['migrate', '--data-dir', join(dir, 'source')])).code, 0)
      // A connection that stays open keeps its writes in the WAL while the files are copied.
      const open = new DatabaseSync(join(dir, 'source', 'gatehouse.sqlite'))
      open.exec('PRAGMA wal_autocheckpoint = 0')
      open.prepare(`insert into users (username, password_hash, email, first_name, last_name, is_superuser, is_system_auditor, is_active, created_at, modified_at) values ('only-in-wal', '', '', '', '', 0, 0, 1, 0, 0)`).run()
      mkdirSync(join(dir, 'copied'))
      for (const suffix of ['', '-wal']) copyFileSync(join(dir, 'source', `gatehouse.sqlite${suffix}`), join(dir, 'copied', `gatehouse.sqlite${suffix}`))
      open.close()
      const restored = await runCli(['restore', join(dir, 'copied', 'gatehouse.sqlite'), '--data-dir', join(dir, 'data')])
      assert.equal(restored.code, 0, restored.stderr)
      const listed = await runCli(['users', 'list', '--data-dir', join(dir, 'data')])
      assert.match(listed.stdout, /only-in-wal/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('says the backup could not be copied, with exit 1 and changing nothing, when writing its copy fails', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    const backupFile = join(dir, 'backup.sqlite')
    try {
      assert.equal((await runCli(['migrate', '--data-dir', data])).code, 0)
      assert.equal((await runCli(['backup', backupFile, '--data-dir', data])).code, 0)
      const database = readFileSync(join(data, 'gatehouse.sqlite'))
      // A limit on the size of the files the process writes (ulimit -f, in blocks of 512 or 1024 bytes), far below the
      // backup's: its copy fails as on a full disk, without root or a small file system to fill.
      assert.ok(statSync(backupFile).size > 64 * 1024)
      const result = await run('sh', ['-c', 'ulimit -f 64 && exec "$0" "$@"', join(repoRoot, 'bin/gatehouse'), 'restore', backupFile, '--data-dir', data])
      assert.equal(result.code, 1, result.stderr)
      assert.match(result.stderr, /^gatehouse: the backup could not be copied into .*data \(.+\); nothing was changed\n$/)
      assert.deepEqual(readdirSync(data).filter((name) => /\.(restoring|before-restore)-/.test(name)), [], 'no copy is left, and the database is not set aside')
      assert.deepEqual(readFileSync(join(data, 'gatehouse.sqlite')), database)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('restores a backup of an older version, which lacks the latest migrations, and of a newer one, warning of its migrations', async () => {
    const dir = tempDir()
    try {
      assert.equal((await runCli(['migrate', '--data-dir', join(dir, 'source')])).code, 0)
      const older = join(dir, 'older.sqlite')
      const newer = join(dir, 'newer.sqlite')
      for (const file of [older, newer]) assert.equal((await runCli(['backup', file, '--data-dir', join(dir, 'source')])).code, 0)
      withDatabase(older, (db) => db.exec(`delete from kysely_migration where name = (select max(name) from kysely_migration)`))
      withDatabase(newer, (db) => db.exec(`insert into kysely_migration values ('999_later', '2030-01-01')`))
      const fromOlder = await runCli(['restore', older, '--data-dir', join(dir, 'older')])
      assert.equal(fromOlder.code, 0, fromOlder.stderr)
      assert.equal(fromOlder.stderr, '')
      const fromNewer = await runCli(['restore', newer, '--data-dir', join(dir, 'newer')])
      assert.equal(fromNewer.code, 0, fromNewer.stderr)
      assert.equal(fromNewer.stderr, 'gatehouse: warning: the backup has migrations of a newer version: 999_later\n')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('says, with exit 2, that a data directory cannot be made, where none can be (in /proc) or it may not', { timeout: 30_000 }, async () => {
    // Permissions bind everyone but root: as root, the restores run as nobody.
    const dir = tempDir()
    try {
      chmodSync(dir, 0o755)
      const data = await migratedDataDir(dir)
      assert.equal((await runCli(['backup', join(dir, 'b.sqlite'), '--data-dir', data])).code, 0)
      chmodSync(join(dir, 'b.sqlite'), 0o644)
      chmodSync(dir, 0o555)
      const cases: [string, { uid?: number; gid?: number }, string][] = [
        // Node's recursive mkdir tries again for ever where the kernel says ENOENT under a parent that exists.
        ['/proc/gatehouse-data', {}, 'no directory can be made there'],
        [join(dir, 'not-mine'), AS_ANOTHER_USER, 'permission denied'],
      ]
      for (const [where, as, reason] of cases) {
        const result = await runCli(['restore', join(dir, 'b.sqlite'), '--data-dir', where], as)
        assert.equal(result.code, 2, result.stderr)
        assert.equal(result.stderr, `gatehouse: the data directory ${where} cannot be used: ${reason}\n`)
      }
    } finally {
      chmodSync(dir, 0o755)
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses, in one line with exit 2 and changing nothing, what is no backup of Gatehouse, and PostgreSQL', async () => {
    const dir = tempDir()
    const data = join(dir, 'data')
    try {
      assert.equal((await runCli(['migrate', '--data-dir', data])).code, 0)
      const before = readdirSync(data).sort()
      const text = join(dir, 'text.sqlite')
      writeFileSync(text, 'not a database at all, but long enough to look like one '.repeat(100))
      const foreign = join(dir, 'foreign.sqlite')
      execFileSync(process.execPath, ['-e', `new (require('node:sqlite').DatabaseSync)(${JSON.stringify(foreign)}).exec('create table t (x)')`])
      const truncated = join(dir, 'truncated.sqlite')
      assert.equal((await runCli(['backup', join(dir, 'whole.sqlite'), '--data-dir', data])).code, 0)
      const whole = readFileSync(join(dir, 'whole.sqlite'))
      writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length / 2)))
      const foreignMigrations = join(dir, 'foreign-migrations.sqlite')
      withDatabase(foreignMigrations, (db) => db.exec(ANOTHER_APPLICATIONS_MIGRATIONS))
      // Migrations this version does not know, without one it does: Kysely's Migrator refuses such a database.
      const diverged = join(dir, 'diverged.sqlite')
      copyFileSync(join(dir, 'whole.sqlite'), diverged)
      withDatabase(diverged, (db) => db.exec(`delete from kysely_migration where name = '010_access'; insert into kysely_migration values ('999_elsewhere', '2026-01-01')`))
      const cases: [string[], RegExp][] = [
        [['restore', join(dir, 'missing.sqlite'), '--data-dir', data], /missing\.sqlite does not exist/],
        [['restore', dir, '--data-dir', data], /is not a regular file/],
        [['restore', text, '--data-dir', data], /text\.sqlite is not a SQLite database Gatehouse can restore/],
        [['restore', foreign, '--data-dir', data], /foreign\.sqlite is a SQLite database, but not one of Gatehouse/],
        [['restore', foreignMigrations, '--data-dir', data], /foreign-migrations\.sqlite is a SQLite database, but not one of Gatehouse \(.*lacks .*001_core/],
        [['restore', diverged, '--data-dir', data], /diverged\.sqlite is a SQLite database, but not one of Gatehouse \(.*999_elsewhere.*010_access/],
        [['restore', truncated, '--data-dir', data], /truncated\.sqlite (is damaged|is not a SQLite database Gatehouse can restore)/],
        [['restore', join(dir, 'whole.sqlite'), '--database', 'postgres://postgres@127.0.0.1:5432/test'], /restore PostgreSQL with pg_restore/],
        [['restore', join(dir, 'whole.sqlite'), '--data-dir', text], /^gatehouse: the data directory .*text\.sqlite cannot be used: it is a file, not a directory$/m],
      ]
      for (const [args, reason] of cases) {
        const result = await runCli(args)
        assert.equal(result.code, 2, args.join(' ') + result.stderr)
        assert.match(result.stderr, reason)
        assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      }
      // A backup this user may not read, or that lies in a directory it may not look into, is not one that is no
      // database: as root, the restores run as nobody, whom permissions bind.
      chmodSync(dir, 0o755)
      const unreadable = join(dir, 'unreadable.sqlite')
      copyFileSync(join(dir, 'whole.sqlite'), unreadable)
      chmodSync(unreadable, 0o200)
      const sealed = join(dir, 'sealed')
      mkdirSync(sealed, { mode: 0o700 })
      copyFileSync(join(dir, 'whole.sqlite'), join(sealed, 'b.sqlite'))
      chmodSync(join(sealed, 'b.sqlite'), 0o644)
      chmodSync(sealed, 0o300)
      for (const backup of [unreadable, join(sealed, 'b.sqlite')]) {
        const result = await runCli(['restore', backup, '--data-dir', join(dir, 'elsewhere')], AS_ANOTHER_USER)
        assert.equal(result.code, 2, result.stderr)
        assert.equal(result.stderr, `gatehouse: ${backup} cannot be read: permission denied\n`)
      }
      assert.equal(existsSync(join(dir, 'elsewhere')), false)
      assert.deepEqual(readdirSync(data).sort(), before, 'nothing in the data directory changed')
      // What this version cannot serve, a newer one's database (a migration renamed) is still Gatehouse's, and backs up.
      const newer = join(dir, 'newer')
      mkdirSync(newer, { mode: 0o700 })
      copyFileSync(diverged, join(newer, 'gatehouse.sqlite'))
      const backedUp = await runCli(['backup', join(dir, 'newer-backup.sqlite'), '--data-dir', newer])
      assert.equal(backedUp.code, 0, backedUp.stderr)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
