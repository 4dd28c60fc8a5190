import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { countListedUsers, MAX_IMPORT_USERS, parseImportFile, readImportBytes, readImportFile } from '../../src/directory/account-import.ts'
import { migratedDataDir, repoRoot, runCli, tempDir } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/** `check` against a new SQLite data directory and a new PostgreSQL database, both migrated, with a directory for files. */
function onSqliteAndPostgres(title: string, check: (storage: string[], dir: string) => Promise<void>): void {
  for (const kind of ['SQLite', 'PostgreSQL'] as const) {
    it(`${title}, on ${kind}`, async () => {
      const dir = tempDir()
      const database = kind === 'PostgreSQL' ? await createTestDatabase() : undefined
      try {
        const storage = database ? ['--database', database.url] : ['--data-dir', join(dir, 'data')]
        const migrated = await runCli(['migrate', ...storage])
        assert.equal(migrated.code, 0, migrated.stderr)
        await check(storage, dir)
      } finally {
        await database?.drop()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }
}

/** `users list --json`: each account's username with the fields named. */
async function accounts(storage: string[], ...fields: string[]): Promise<Record<string, unknown[]>> {
  const listed = await runCli(['users', 'list', '--json', ...storage])
  assert.equal(listed.code, 0, listed.stderr)
  return Object.fromEntries((JSON.parse(listed.stdout) as Record<string, unknown>[]).map((user) => [user.username, fields.map((field) => user[field])]))
}

describe('gatehouse users import of names and addresses the API refuses', () => {
  onSqliteAndPostgres('refuses the file, naming each user and field, and imports nothing; trims as the API does', async (storage, dir) => {
    const file = join(dir, 'realm.json')
    const ok = { username: 'ann', firstName: '  Ann ', lastName: 'Smith', email: ' ann@example.org ' }
    writeFileSync(file, JSON.stringify({ realm: 'old', users: [
      ok,
      { username: 'long', firstName: 'a'.repeat(151) },
      { username: 'mail', email: 'not an address' },
      { username: 'bidi', lastName: 'x\u202ey' },
      { username: 'nul', firstName: 'a\u0000b' },
      { username: 'longmail', email: `${'a'.repeat(250)}@example.org` },
      { username: 'lone', lastName: 'x\ud800y' },
    ] }))
    const refused = await runCli(['users', 'import', file, ...storage])
    assert.equal(refused.code, 2, refused.stderr)
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
    assert.match(refused.stderr, /^gatehouse: .*realm\.json: nothing was imported: users\[1\] \(long\) has "firstName" that Gatehouse refuses: Ensure this field has no more than 150 characters\.; /)
    assert.match(refused.stderr, /users\[2\] \(mail\) has "email" that Gatehouse refuses: Enter a valid email address\./)
    assert.match(refused.stderr, /users\[3\] \(bidi\) has "lastName" that Gatehouse refuses: Remove the bidirectional formatting characters/)
    assert.match(refused.stderr, /users\[4\] \(nul\) has a NUL character in "firstName"/)
    assert.match(refused.stderr, /users\[5\] \(longmail\) has "email" that Gatehouse refuses: /)
    assert.match(refused.stderr, /users\[6\] \(lone\) has a lone surrogate \(\\ud800 to \\udfff\) in "lastName", which is not Unicode/)
    assert.doesNotMatch(refused.stderr, /users\[0\]/)
    assert.deepEqual(await accounts(storage), {}, 'nothing was imported')

    writeFileSync(file, JSON.stringify([{ username: 'ann', first_name: ' Ann ', email: ' ann@example.org ' }, { username: 'bob', last_name: 'b'.repeat(151) }]))
    const platform = await runCli(['users', 'import', file, ...storage])
    assert.equal(platform.code, 2, platform.stderr)
    assert.match(platform.stderr, /: nothing was imported: users\[1\] \(bob\) has "last_name" that Gatehouse refuses: Ensure this field has no more than 150 characters\.\n$/)

    writeFileSync(file, JSON.stringify({ realm: 'old', users: [ok] }))
    const imported = await runCli(['users', 'import', file, ...storage])
    assert.equal(imported.code, 0, imported.stderr)
    assert.deepEqual(await accounts(storage, 'first_name', 'last_name', 'email'), { ann: ['Ann', 'Smith', 'ann@example.org'] })
  })
})

describe('gatehouse users import of a file in another encoding than UTF-8', () => {
  onSqliteAndPostgres('refuses a Latin-1 or UTF-16 file, importing nothing, and reads one with a byte-order mark', async (storage, dir) => {
    const file = join(dir, 'users.json')
    const latin1 = Buffer.from(JSON.stringify([{ username: 'ann', first_name: 'Zoë', email: 'ann@example.org' }]), 'latin1')
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify([{ username: 'bob' }]), 'utf16le')])
    for (const [bytes, said] of [[latin1, ''], [utf16, ' (it is UTF-16)']] as const) {
      writeFileSync(file, bytes)
      const refused = await runCli(['users', 'import', file, ...storage])
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stderr, `gatehouse: ${file}: nothing was imported: the file is not UTF-8${said}, as JSON is; convert it to UTF-8 first\n`)
      assert.deepEqual(await accounts(storage), {}, 'nothing was imported')
    }
    writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify([{ username: 'ann', first_name: 'Zoë' }]), 'utf8')]))
    const imported = await runCli(['users', 'import', file, ...storage])
    assert.equal(imported.code, 0, imported.stderr)
    assert.deepEqual(await accounts(storage, 'first_name'), { ann: ['Zoë'] })
  })
})

describe('gatehouse users import of a file listing more users than one import takes', () => {
  it('refuses more than 1,000,000 users at once, before reading them, as a list or a realm export, and names only the first hundred problems of a file', async () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'users.json')
      const storage = ['--data-dir', join(dir, 'data')]
      const entries = '{},'.repeat(MAX_IMPORT_USERS)
      const refusal = `gatehouse: ${file}: nothing was imported: the file lists more than 1,000,000 users, the most one import takes; split it\n`
      for (const text of [`[${entries}{}]`, `{"realm": "big", "users": [${entries}{}]}`, `{"count": 1000001, "results": [${entries}{}]}`]) {
        writeFileSync(file, text)
        const refused = await runCli(['users', 'import', file, ...storage])
        assert.equal(refused.code, 2)
        assert.ok(refused.stderr === refusal, refused.stderr.slice(0, 300))
      }
      writeFileSync(file, `[${entries.slice(0, -1)}]`)
      const read = await runCli(['users', 'import', file, ...storage])
      assert.equal(read.code, 2)
      assert.ok(read.stderr.length < 10_000, `${read.stderr.length} characters`)
      assert.match(read.stderr, /: nothing was imported: users\[0\] has no "username"; users\[1\] has no "username"; .*; users\[99\] has no "username"; and 999,900 more problems\n$/)
      assert.doesNotMatch(read.stderr, /users\[100\]/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('counts the entries as JSON.parse reads them, whatever their strings hold', () => {
    const entries = [{ username: 'a,b', first_name: '[{"x": ["],' }, 'x\\",[', [1, [2, 3]], { users: [1, 2, 3] }, 5, null]
    const listed = (text: string) => countListedUsers(Buffer.from(text), MAX_IMPORT_USERS)
    for (const file of [entries, { users: entries }, { results: entries }, { realm: 'users', roles: { realm: [1, 2, 3, 4, 5, 6, 7, 8] }, users: entries }]) {
      assert.equal(listed(JSON.stringify(file, null, 2)), 6, JSON.stringify(file))
    }
    assert.equal(listed('{"us\\u0065rs": [1, 2, 3]}'), 3, 'a key spelt with escapes')
    assert.equal(listed('{"groups": [1, 2, 3], "users": [4]}'), 1)
    assert.equal(listed('\ufeff[ ]'), 0)
    assert.equal(listed('{"users": []}'), 0)
    assert.equal(countListedUsers(Buffer.from('[1, 2, 3, 4, 5]'), 2), 3, 'counting stops past the most')
  })
})

describe('gatehouse users import of a large file', () => {
  it('refuses it whole for one problem at its end, naming it, and imports every account with its hash and an audit entry once it is fixed', async () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'users.json')
      const data = await migratedDataDir(dir)
      const users = Array.from({ length: 5000 }, (_, i) => ({
        username: `user${i}`, email: `user${i}@example.org`, first_name: `First${i}`, last_name: `Last${i}`,
        password: `pbkdf2_sha256$600000$salt${i}$${createHash('sha256').update(`hash of ${i}`).digest('base64')}`,
      }))
      writeFileSync(file, JSON.stringify([...users.slice(0, -1), { ...users.at(-1), email: 'not an address' }]))
      const refused = await runCli(['users', 'import', file, '--data-dir', data])
      assert.equal(refused.code, 2, refused.stderr)
      assert.match(refused.stderr, /: nothing was imported: users\[4999\] \(user4999\) has "email" that Gatehouse refuses: Enter a valid email address\.\n$/)

      writeFileSync(file, JSON.stringify(users))
      const imported = await runCli(['users', 'import', file, '--data-dir', data])
      assert.equal(imported.code, 0, imported.stderr)
      assert.match(imported.stdout, /^5000 users in the list of the platform's users: 5000 created, 0 updated, 0 skipped\n/)
      const db = new DatabaseSync(join(data, 'gatehouse.sqlite'), { readOnly: true })
      try {
        const rows = db.prepare("SELECT username, email, first_name, last_name, password_hash FROM users WHERE username LIKE 'user%' ORDER BY id").all()
        assert.deepEqual(rows.map((row) => ({ ...row })), users.map(({ password, ...user }) => ({ ...user, password_hash: password })))
        const audited = db.prepare("SELECT count(DISTINCT object_id) AS count FROM audit_entries WHERE operation = 'create' AND content_type = 'user'").get()
        assert.equal(audited!.count, 5000, 'an entry for each account created')
      } finally {
        db.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('reading a file\'s entries one at a time from its bytes', () => {
  it('reads what parsing the whole file reads, whatever its spacing, repeated keys or strings hold, and JSON.parse\'s words for what is not JSON', () => {
    const user = (name: string) => ({ username: name, email: `${name}@example.org`, firstName: 'a,b]}', lastName: '"[{\\', groups: ['/a'] })
    const files = [
      JSON.stringify([user('ann'), user('bob')]), JSON.stringify([user('ann'), user('bob')], null, 3), ' \n[ ]\r\n', '\ufeff[{"username": "ann"}]',
      JSON.stringify({ realm: 'r', groups: [{ name: 'a' }], users: [user('ann')] }, null, '\t'),
      '{"users": [{"username": "old"}], "realm": {"users": [1]}, "us\\u0065rs" : [{"username": "new"}] }',
      '{"users": 5, "results": [{"username": "ann"}]}', '{"users": [], "results": [{"username": "ann"}]}', '{"results": {"users": []}}', '{"x": [}',
      '{"count": 2, "results": [{"username": "ann"}, {"username": "ANN"}, 5]}', '[{"username": "ann"},]', '[,]', '[{"username": "ann"}] x', '[1}',
      '{"groups": [{"name": "a"}, }], "users": []}', '{"users": [{"username": "ann"}], "users": [}', '"users"', '', '{"users"}', '{"a" "users": []}',
    ]
    for (const text of files) {
      for (const groupsToTeams of [false, true]) {
        const bytes = Buffer.from(text)
        const read = readImportBytes({ size: bytes.length, read: (start, length) => bytes.subarray(start, start + length) }, { groupsToTeams })
        assert.deepEqual(read, readImportFile(parseImportFile(text.replace(/^\ufeff/, '')), { groupsToTeams }), text)
      }
    }
  })
})

describe('reading a file\'s entries from a source that refuses a read', () => {
  it('throws its refusal on from whichever read it refuses, never reading the file another way', () => {
    class Refused extends Error {}
    const bytes = Buffer.from(JSON.stringify({ realm: 'r', groups: [{ name: 'a' }], users: [{ username: 'ann', groups: ['/a'] }, { username: 'bob' }] }))
    const source = (refused: number) => {
      let reads = 0
      return {
        size: bytes.length,
        read: (start: number, length: number) => {
          if (++reads === refused) throw new Refused()
          return bytes.subarray(start, start + length)
        },
      }
    }
    let reads = 0
    readImportBytes({ size: bytes.length, read: (start, length) => (reads++, bytes.subarray(start, start + length)) }, { groupsToTeams: true })
    assert.ok(reads > 10, `${reads} reads`)
    for (let refused = 1; refused <= reads; refused++) {
      assert.throws(() => readImportBytes(source(refused), { groupsToTeams: true }), Refused, `read ${refused} of ${reads}`)
    }
  })
})

describe('gatehouse users import of a realm export much larger than its accounts', () => {
  it('reads it within a heap a fraction of the file\'s size, holding its accounts and not the file, and imports it once its one problem is fixed', async () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'realm.json')
      const data = await migratedDataDir(dir)
      // Each user with 4 KB of attributes Gatehouse has no place for: 50 MB of file for 12,000 small accounts. Parsed
      // whole, the file's text and its entries alone are twice the heap the import is given.
      const users = Array.from({ length: 12_000 }, (_, i) => ({
        username: `user${i}`, email: `user${i}@example.org`, firstName: `First${i}`,
        attributes: { notes: [`${i} `.padEnd(4000, 'x')] },
      }))
      const realm = (listed: unknown[]) => JSON.stringify({ realm: 'old', roles: { realm: [{ name: 'offline_access' }] }, users: listed, clients: [{ clientId: 'app' }] }, null, 1)
      const heap = { env: { NODE_OPTIONS: '--max-old-space-size=64' } }
      writeFileSync(file, realm([...users.slice(0, -1), { ...users.at(-1), email: 'not an address' }]))
      const refused = await runCli(['users', 'import', file, '--data-dir', data], heap)
      assert.equal(refused.code, 2, refused.stderr.slice(0, 2000))
      assert.match(refused.stderr, /: nothing was imported: users\[11999\] \(user11999\) has "email" that Gatehouse refuses: Enter a valid email address\.\n$/)

      writeFileSync(file, realm(users))
      const imported = await runCli(['users', 'import', file, '--data-dir', data], heap)
      assert.equal(imported.code, 0, imported.stderr.slice(0, 2000))
      assert.match(imported.stdout, /^12000 users in the Keycloak realm export: 12000 created, 0 updated, 0 skipped\nwithout a password .*\nnot imported, as Gatehouse has no place for them: attributes of 12000 users\n$/)
      const db = new DatabaseSync(join(data, 'gatehouse.sqlite'), { readOnly: true })
      try {
        const rows = db.prepare("SELECT username, email, first_name FROM users WHERE username LIKE 'user%' ORDER BY id").all()
        assert.deepEqual(rows.map((row) => ({ ...row })), users.map(({ username, email, firstName }) => ({ username, email, first_name: firstName })))
      } finally {
        db.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse users import of a realm export with a million other members', () => {
  it('checks each as it meets it, within a heap that holding them by their keys exceeded', async () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'realm.json')
      const data = await migratedDataDir(dir)
      const members = Array.from({ length: 1_000_000 }, (_, i) => `"k${i.toString(36)}":0`)
      writeFileSync(file, `{${members.join(',')},"users":[{"username":"alice"}]}`)
      const imported = await runCli(['users', 'import', file, '--data-dir', data], { env: { NODE_OPTIONS: '--max-old-space-size=32' } })
      assert.equal(imported.code, 0, imported.stderr.slice(0, 2000))
      assert.match(imported.stdout, /^1 users in the Keycloak realm export: 1 created, 0 updated, 0 skipped\n/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse users import of many accounts', () => {
  it('holds the accounts it created, until their audit entries are written, within a heap their database copies exceeded, each entry as the database has the account', async () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'users.json')
      const data = await migratedDataDir(dir)
      const users = Array.from({ length: 50_000 }, (_, i) => ({
        username: `user${i}`, email: `user${i}@example.org`, first_name: `First${i}`, last_name: `Last${i}`, is_active: i % 2 === 0,
        password: `pbkdf2_sha256$600000$salt${i}$${createHash('sha256').update(`hash of ${i}`).digest('base64')}`,
      }))
      writeFileSync(file, JSON.stringify(users))
      const imported = await runCli(['users', 'import', file, '--data-dir', data], { env: { NODE_OPTIONS: '--max-old-space-size=54' } })
      assert.equal(imported.code, 0, imported.stderr.slice(0, 2000))
      assert.match(imported.stdout, /^50000 users in the list of the platform's users: 50000 created, 0 updated, 0 skipped\n/)
      const db = new DatabaseSync(join(data, 'gatehouse.sqlite'), { readOnly: true })
      try {
        const rows = db.prepare(`SELECT u.id, u.username, u.email, u.first_name, u.last_name, u.is_active, u.created_at, u.modified_at, a.changes FROM users u
          JOIN audit_entries a ON a.content_type = 'user' AND a.operation = 'create' AND a.object_id = CAST(u.id AS TEXT) WHERE u.username LIKE 'user%' ORDER BY u.id`).all()
        assert.equal(rows.length, 50_000)
        for (const row of [rows[0]!, rows[1]!, rows.at(-1)!]) {
          const added = JSON.parse(row.changes as string).added_fields
          assert.equal(row.created_at, row.modified_at)
          assert.deepEqual(added, {
            id: row.id, type: 'user', created_by: null, modified_by: null, username: row.username, email: row.email, first_name: row.first_name,
            last_name: row.last_name, password: '$encrypted$', is_superuser: false, is_active: row.is_active === 1, source: 'local', external: false,
            is_system_auditor: false, is_platform_auditor: false, groups: [], created: new Date(row.created_at as number).toISOString(),
          })
        }
      } finally {
        db.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse users import, several at once', () => {
  it('imports the accounts once, the other runs skipping them as a later run would, on PostgreSQL', async () => {
    const dir = tempDir()
    const database = await createTestDatabase()
    try {
      const storage = ['--database', database.url]
      assert.equal((await runCli(['migrate', ...storage])).code, 0)
      const file = join(dir, 'users.json')
      writeFileSync(file, JSON.stringify(Array.from({ length: 400 }, (_, i) => ({ username: `user${i}`, email: `user${i}@example.org` }))))
      const runs = await Promise.all(Array.from({ length: 4 }, () => runCli(['users', 'import', file, ...storage])))
      for (const run of runs) assert.equal(run.code, 0, run.stderr)
      const counts = runs.map((run) => /: (\d+) created, 0 updated, (\d+) skipped$/m.exec(run.stdout)!.slice(1).map(Number))
      assert.deepEqual(counts.map(([created]) => created).reduce((a, b) => a! + b!, 0), 400, 'each account created once')
      for (const [created, skipped] of counts) assert.equal(created! + skipped!, 400)
      assert.equal(Object.keys(await accounts(storage)).length, 400)
    } finally {
      await database.drop()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('waits for another transaction that holds what it must write past the lock timeout, on PostgreSQL', async () => {
    // Another import of many accounts holds the names it inserts until it commits, for longer than a statement may
    // wait for a lock (storage.timeouts: 1.6 s by default). Held here as a lock on the whole table, for 4 s.
    const dir = tempDir()
    const database = await createTestDatabase()
    const holder = new pg.Client({ connectionString: database.url })
    try {
      const storage = ['--database', database.url]
      assert.equal((await runCli(['migrate', ...storage])).code, 0)
      const file = join(dir, 'users.json')
      writeFileSync(file, JSON.stringify([{ username: 'ann', email: 'ann@example.org' }, { username: 'bob' }]))
      await holder.connect()
      await holder.query('BEGIN')
      await holder.query('LOCK TABLE users IN SHARE MODE')
      const started = Date.now()
      const run = runCli(['users', 'import', file, ...storage])
      await sleep(4_000)
      await holder.query('COMMIT')
      const { code, stdout, stderr } = await run
      assert.equal(code, 0, stderr)
      assert.ok(Date.now() - started >= 4_000)
      assert.match(stderr, /users\.json: waiting for another client of the database that holds accounts or teams it must write \(another import\?\)\n/)
      assert.match(stdout, /: 2 created, 0 updated, 0 skipped$/m)
      assert.deepEqual(Object.keys(await accounts(storage)).sort(), ['ann', 'bob'])
    } finally {
      await holder.end()
      await database.drop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse errors quoting text from elsewhere', () => {
  it('writes a control character of a username in a file, or an argument, as its escape, never to the terminal as it is', async () => {
    const dir = tempDir()
    try {
      const storage = ['--data-dir', join(dir, 'data')]
      assert.equal((await runCli(['migrate', ...storage])).code, 0)
      const file = join(dir, 'users.json')
      writeFileSync(file, JSON.stringify([{ username: 'ann\u001b[2J\u001b]0;owned\u0007' }]))
      const imported = await runCli(['users', 'import', file, ...storage])
      assert.equal(imported.code, 2)
      assert.match(imported.stderr, /users\[0\] \(ann\\u001b\[2J\\u001b\]0;owned\\u0007\)/)
      const cases = [
        [['users', 'disable', 'x\u001b[31m', ...storage], 'gatehouse: no such user: x\\u001b[31m\n'],
        [['x\u001b[31m'], "gatehouse: unknown command 'x\\u001b[31m'\n"],
      ] as const
      for (const [args, said] of cases) {
        const result = await runCli([...args])
        assert.equal(result.code, 2)
        assert.equal(result.stderr, said)
      }
      const unlocked = await runCli(['users', 'unlock', '\u001b]0;owned\u0007', ...storage])
      assert.equal(unlocked.code, 0, unlocked.stderr)
      assert.equal(unlocked.stdout, '\\u001b]0;owned\\u0007 had no failed logins\n')
      for (const result of [imported, unlocked]) assert.doesNotMatch(result.stderr + result.stdout, /[\u0000-\u0009\u000b-\u001f]/)
      // The problems of a configuration file stay one a line.
      const config = join(dir, 'gatehouse.yaml')
      writeFileSync(config, 'server: {port: x}\nstorage: {nope: 1}\n')
      const invalid = await runCli(['users', 'list', '--config', config])
      assert.equal(invalid.code, 2)
      assert.match(invalid.stderr, /^gatehouse: .*gatehouse\.yaml: 2 problems\n {2}- server\.port: .*\n {2}- storage: .*\n$/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse users import of usernames Gatehouse refuses', () => {
  it('lists them with the file\'s other problems, before opening the database, and imports nothing', async () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'users.json')
      writeFileSync(file, JSON.stringify([
        { username: 'bad name' },
        { username: 'carol', password: 'bcrypt$$2b$12$abcdefghijklmnopqrstuv' },
        { username: 'x'.repeat(151) },
        { username: 'fine' },
      ]))
      // Nothing answers on port 1: the file's problems are said all the same, as they were found first.
      const refused = await runCli(['users', 'import', file, '--database', 'postgres://gatehouse@127.0.0.1:1/gatehouse'])
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
      assert.match(refused.stderr, /: nothing was imported: users\[0\] \(bad name\) has a username Gatehouse refuses: Enter a valid username: .*; users\[1\] \(carol\) has a bcrypt password hash.*; users\[2\] \(x{151}\) has a username Gatehouse refuses: Ensure this field has no more than 150 characters\.\n$/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse users import of a name kept for realm clients\' service accounts', () => {
  onSqliteAndPostgres('refuses a user named service-account-*, in any case, as the API does, and leaves a Keycloak client\'s own out', async (storage, dir) => {
    const file = join(dir, 'realm.json')
    const client = { username: 'service-account-reports', serviceAccountClientId: 'reports' }
    writeFileSync(file, JSON.stringify({ realm: 'old', users: [client, { username: 'Service-Account-Web' }, { username: 'ann' }] }))
    const refused = await runCli(['users', 'import', file, ...storage])
    assert.equal(refused.code, 2, refused.stderr)
    assert.match(refused.stderr, /: nothing was imported: users\[1\] \(Service-Account-Web\) has a username Gatehouse refuses: Usernames starting with "service-account-" are kept for the service accounts of OpenID Connect clients\.\n$/)
    assert.deepEqual(await accounts(storage), {})
    writeFileSync(file, JSON.stringify([{ username: 'service-account-web' }]))
    assert.equal((await runCli(['users', 'import', file, ...storage])).code, 2)
    writeFileSync(file, JSON.stringify({ realm: 'old', users: [client, { username: 'ann' }] }))
    const imported = await runCli(['users', 'import', file, ...storage])
    assert.equal(imported.code, 0, imported.stderr)
    assert.deepEqual(Object.keys(await accounts(storage)), ['ann'])
  })
})

describe('gatehouse users import --groups-to-teams, naming the teams it made', () => {
  it('refuses a group path holding a C1 control or a bidirectional override, which no team\'s name may hold, writing it as its escape', async () => {
    const dir = tempDir()
    try {
      const data = join(dir, 'data')
      assert.equal((await runCli(['migrate', '--data-dir', data])).code, 0)
      const sqlite = new DatabaseSync(join(data, 'gatehouse.sqlite'))
      sqlite.prepare('insert into organizations (name, created_at, modified_at) values (?, 0, 0)').run('Acme')
      sqlite.close()
      const file = join(dir, 'realm.json')
      const group = (name: string, id: string) => ({ id, name, path: `/${name}`, subGroups: [] })
      writeFileSync(file, JSON.stringify({ realm: 'old', groups: [group('a\u202eb', '1'), group('c\u009b2Jd', '2')], users: [{ username: 'gus', groups: ['/a\u202eb', '/c\u009b2Jd'] }] }))
      const imported = await runCli(['users', 'import', file, '--groups-to-teams', 'Acme', '--data-dir', data])
      assert.equal(imported.code, 2, imported.stderr)
      assert.match(imported.stderr, /users\[0\] \(gus\) is in the group "\/a\\u202eb", whose path no team's name can be/)
      assert.doesNotMatch(imported.stdout + imported.stderr, /[\u0080-\u009f\u202a-\u202e]/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse users import of a file changed while it is read', () => {
  it('imports nothing when a stretch it reads again is not as it was checked, though the file is put back before the import ends', async () => {
    const dir = tempDir()
    try {
      const file = join(dir, 'users.json')
      const data = await migratedDataDir(dir)
      const before = Object.keys(await accounts(['--data-dir', data]))
      const refusal = `gatehouse: ${file}: nothing was imported: the file changed while it was read; run the import again once it is written\n`
      // Changed from the first read that takes in its first changed byte (test/fixtures/change-file-while-read.mjs).
      const importChanged = (change: { at: number; bytes: string; length: number; reads?: number }) => runCli(['users', 'import', file, '--data-dir', data], {
        env: {
          NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${join(repoRoot, 'test/fixtures/change-file-while-read.mjs')}`,
          CHANGE_WHILE_READ: JSON.stringify({ file, ...change }),
        },
      })
      const small = `${JSON.stringify([{ username: 'user0' }, { username: 'user1' }])}\n`
      // 3 MB: its last user in another stretch than its first, however the file is read.
      const large = `${JSON.stringify({ realm: 'old', users: Array.from({ length: 750 }, (_, i) => ({ username: `user${i}`, attributes: { notes: ['x'.repeat(4000)] } })) })}\n`
      const changes = [
        { text: small, change: { at: small.indexOf('user0'), bytes: 'XSER0', length: small.length }, what: 'a username changed in place' },
        { text: large, change: { at: large.indexOf('user749'), bytes: 'XSER749', length: large.length }, what: 'a username near the end changed in place' },
        { text: small, change: { at: small.length, bytes: '  ', length: small.length + 2 }, what: 'longer' },
        // Put back only after the reader's next read too, which finds the end of the file.
        { text: small, change: { at: small.length - 1, bytes: '', length: small.length - 1, reads: 2 }, what: 'shorter' },
      ]
      for (const { text, change, what } of changes) {
        writeFileSync(file, text)
        const refused = await importChanged(change)
        assert.equal(refused.stderr, refusal, what)
        assert.equal(refused.code, 2, what)
        assert.equal(readFileSync(file, 'utf8'), text, `${what}: put back`)
        assert.deepEqual(Object.keys(await accounts(['--data-dir', data])), before, `${what}: nothing was imported`)
      }
      // Changed to what it was: the file read is the file checked.
      writeFileSync(file, small)
      const imported = await importChanged({ at: small.indexOf('user0'), bytes: 'user0', length: small.length })
      assert.equal(imported.code, 0, imported.stderr)
      assert.deepEqual(Object.keys(await accounts(['--data-dir', data])), [...before, 'user0', 'user1'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
