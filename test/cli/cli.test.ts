import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { Command } from 'commander'
import { gatehouseProgram } from '../../src/cli/program.ts'
import { openStore } from '../../src/store/store.ts'
import { verifyPassword } from '../../src/directory/passwords.ts'
import { demoConfigFile } from '../../src/config/load.ts'
import { AS_ANOTHER_USER, repoRoot, runCli, spawnGateway, tempDir } from '../helpers/gateway.ts'
import { createTestDatabase, POSTGRES_ADMIN_URL } from '../helpers/postgres.ts'
import pg from 'pg'

/** What `config reference` prints, as far as the test walks it. */
interface JsonSchema {
  description?: string
  properties?: Record<string, JsonSchema>
  items?: JsonSchema
  anyOf?: JsonSchema[]
}

/** A data directory with a migrated database, as `migrate` or a first `serve` leaves it: other commands make none. */
async function migratedDir(): Promise<string> {
  const dir = tempDir()
  await (await openStore({ dataDir: dir })).close()
  return dir
}

describe('bin/gatehouse', () => {
  it('creates, lists, re-passwords and disables users in the data directory', async () => {
    const dir = await migratedDir()
    const created = await runCli(['users', 'create', 'erin', '--password-stdin', '--email', 'erin@example.com', '--superuser', '--data-dir', dir], { input: 'erin-password\n' })
    assert.equal(created.code, 0, created.stderr)
    assert.match(created.stdout, /created user erin/)
    assert.doesNotMatch(created.stdout, /erin-password/)

    const listed = await runCli(['users', 'list', '--data-dir', dir])
    assert.equal(listed.code, 0)
    assert.match(listed.stdout, /erin\s+local\s+yes\s+yes\s+erin@example.com/)

    assert.equal((await runCli(['users', 'set-password', 'erin', '--password-stdin', '--data-dir', dir], { input: 'new-password\n' })).code, 0)
    // Another superuser first: the last active one is not disabled (test/cli/users.test.ts).
    assert.equal((await runCli(['users', 'create', 'root', '--superuser', '--data-dir', dir])).code, 0)
    assert.equal((await runCli(['users', 'disable', 'erin', '--data-dir', dir])).code, 0)

    const store = await openStore({ dataDir: dir })
    const erin = await store.users.findByUsername('erin')
    await store.close()
    assert.equal(erin?.isActive, false)
    assert.equal(erin?.isSuperuser, true)
    assert.ok(erin?.passwordHash?.startsWith('$argon2id$'))
    assert.equal(await verifyPassword(erin!.passwordHash!, 'new-password'), true)
  })

  it('lists users and tokens as JSON for scripts, users in the shape of the API', async () => {
    const dir = await migratedDir()
    assert.equal((await runCli(['users', 'create', 'ivan', '--email', 'ivan@example.com', '--data-dir', dir])).code, 0)
    const token = await runCli(['tokens', 'create', '--user', 'ivan', '--scope', 'read', '--description', 'ci job', '--data-dir', dir])
    assert.equal(token.code, 0, token.stderr)
    const users = await runCli(['users', 'list', '--json', '--data-dir', dir])
    assert.equal(users.code, 0, users.stderr)
    const ivan = (JSON.parse(users.stdout) as { username: string; email: string; source: string; is_active: boolean; id: number }[]).find((u) => u.username === 'ivan')
    assert.deepEqual(ivan && { email: ivan.email, source: ivan.source, is_active: ivan.is_active }, { email: 'ivan@example.com', source: 'local', is_active: true })
    const tokens = await runCli(['tokens', 'list', '--user', 'ivan', '--json', '--data-dir', dir])
    assert.equal(tokens.code, 0, tokens.stderr)
    const listed = JSON.parse(tokens.stdout) as { id: number; user: string; user_id: number; scope: string; description: string; expires: string; last_used: string | null }[]
    assert.equal(listed.length, 1)
    assert.deepEqual({ ...listed[0], id: undefined, expires: undefined }, { id: undefined, user: 'ivan', user_id: ivan!.id, scope: 'read', description: 'ci job', expires: undefined, last_used: null })
    assert.ok(Date.parse(listed[0]!.expires) > Date.now())
    assert.doesNotMatch(tokens.stdout, new RegExp(token.stdout.trim()))
  })

  it('prints what others chose (a token\'s description) without the characters that would act on the terminal', async () => {
    const dir = await migratedDir()
    assert.equal((await runCli(['users', 'create', 'jane', '--data-dir', dir])).code, 0)
    // Anyone may describe their own token, through the API, as they like: escape sequences and bidirectional overrides.
    const description = 'ci\u001b]0;owned\u0007\u001b[2J \u202eexe.txt\u009b'
    const store = await openStore({ dataDir: dir })
    try {
      const owner = (await store.users.findByUsername('jane'))!
      await store.tokens.create({ userId: owner.id, tokenHash: 'x'.repeat(64), scope: 'read', description, expires: Date.now() + 60_000 })
    } finally {
      await store.close()
    }
    const table = await runCli(['tokens', 'list', '--data-dir', dir])
    assert.equal(table.code, 0, table.stderr)
    assert.doesNotMatch(table.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/)
    assert.match(table.stdout, /ci\\u001b\]0;owned\\u0007\\u001b\[2J \\u202eexe\.txt\\u009b/)
    // Scripts get it as it is, in JSON's own escapes.
    const json = await runCli(['tokens', 'list', '--json', '--data-dir', dir])
    assert.equal((JSON.parse(json.stdout) as { description: string }[])[0]!.description, description)
  })

  it('refuses an e-mail address the API would refuse, and creates no one', async () => {
    const dir = await migratedDir()
    const refused = await runCli(['users', 'create', 'hana', '--email', 'not-an-address', '--data-dir', dir])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /^gatehouse: .*email: Enter a valid email address\.\n$/)
    assert.doesNotMatch((await runCli(['users', 'list', '--data-dir', dir])).stdout, /hana/)
  })

  it('prints a generated password when none is given', async () => {
    const dir = await migratedDir()
    const created = await runCli(['users', 'create', 'frank', '--data-dir', dir])
    assert.equal(created.code, 0)
    const password = /password: (\S+)/.exec(created.stdout)?.[1]
    assert.ok(password && password.length >= 20)
    const store = await openStore({ dataDir: dir })
    const frank = await store.users.findByUsername('frank')
    await store.close()
    assert.equal(await verifyPassword(frank!.passwordHash!, password), true)
  })

  it('works on PostgreSQL with --database', async () => {
    const database = await createTestDatabase()
    try {
      assert.match((await runCli(['migrate', '--database', database.url])).stdout, /applied: 001_core/)
      assert.equal((await runCli(['users', 'create', 'gina', '--database', database.url])).code, 0)
      assert.match((await runCli(['users', 'list', '--database', database.url])).stdout, /gina/)
      assert.match((await runCli(['migrate', '--database', database.url])).stdout, /up to date/)
    } finally {
      await database.drop()
    }
  })

  it('migrates one SQLite file once when several processes start on it at the same time', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = tempDir()
      const results = await Promise.all(Array.from({ length: 4 }, () => runCli(['migrate', '--data-dir', dir])))
      assert.deepEqual(results.map((r) => r.code), [0, 0, 0, 0], results.map((r) => r.stderr).join(''))
      assert.equal(results.filter((r) => /applied: 001_core/.test(r.stdout)).length, 1, 'one process applied them; the others found them applied')
    }
  })

  it('exits non-zero with a one-line reason on bad arguments', async () => {
    const dir = await migratedDir()
    const notADirectory = join(dir, 'file')
    writeFileSync(notADirectory, '')
    const cases: [string[], RegExp][] = [
      [['users', 'create', 'bad name!', '--data-dir', dir], /username/],
      [['users', 'disable', 'nobody', '--data-dir', dir], /no such user/],
      [['users', 'create'], /missing required argument/],
      [['serve', '--port', 'eighty'], /--port/],
      [['serve', '--nonsense'], /unknown option/],
      // The data directory is a file: were the empty --host taken, serve would stop there instead of listening everywhere.
      [['serve', '--port', '0', '--host', '', '--data-dir', notADirectory], /--host must be an address/],
      [['frobnicate'], /unknown command/],
      [['users', 'list', '--database', 'mysql://x'], /postgres/],
      [['users', 'set-password', 'x', '--data-dir', dir], /--password-stdin/],
      // Shorthand forms of IPv4 that requests never come from: 1.2.3 would clear 1.2.0.3, 127.1 would clear 127.0.0.1.
      [['users', 'unthrottle', '1.2.3', '--data-dir', dir], /not an IP address: 1\.2\.3/],
      [['users', 'unthrottle', '127.1', '--data-dir', dir], /not an IP address: 127\.1/],
      [['users', 'unthrottle', '0x7f.0.0.1', '--data-dir', dir], /not an IP address: 0x7f\.0\.0\.1/],
    ]
    for (const [args, reason] of cases) {
      const result = await runCli(args)
      assert.notEqual(result.code, 0, args.join(' '))
      assert.match(result.stderr, reason, args.join(' '))
      assert.equal(result.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${result.stderr}`)
    }
  })

  it('keeps the suggestion for a mistyped command or option in its one line, prefixed like every other message', async () => {
    const cases: [string[], string][] = [
      [['users', 'crate', 'x'], "gatehouse: unknown command 'crate' (did you mean create?)\n"],
      [['serve', '--prot', '8080'], "gatehouse: unknown option '--prot' (did you mean --port?)\n"],
      [['tokens', 'create'], "gatehouse: required option '--user <name>' not specified\n"],
    ]
    for (const [args, message] of cases) {
      const result = await runCli(args)
      assert.equal(result.code, 2, args.join(' '))
      assert.equal(result.stderr, message, args.join(' '))
    }
  })

  it('shows the whole list of subcommands for a command group named alone, with exit status 2', async () => {
    for (const [group, subcommands] of [['users', ['create', 'set-password', 'unthrottle']], ['tokens', ['create', 'list', 'revoke']], ['config', ['check', 'reference']]] as const) {
      const result = await runCli([group])
      assert.equal(result.code, 2, group)
      assert.equal(result.stdout, '', group)
      for (const name of subcommands) assert.match(result.stderr, new RegExp(`^  ${name} `, 'm'), `${group}: ${result.stderr}`)
    }
  })

  it('refuses a data directory or a database file it may not read and write, naming it', async () => {
    // Permissions bind everyone but root: as root, the commands run as nobody.
    const dir = tempDir()
    chmodSync(dir, 0o755)
    const readOnlyDir = join(dir, 'read-only')
    assert.equal((await runCli(['migrate', '--data-dir', readOnlyDir])).code, 0)
    chmodSync(readOnlyDir, 0o555)
    const withFile = join(dir, 'with-file')
    assert.equal((await runCli(['migrate', '--data-dir', withFile])).code, 0)
    for (const name of readdirSync(withFile)) {
      if (AS_ANOTHER_USER.uid !== undefined) chownSync(join(withFile, name), AS_ANOTHER_USER.uid, AS_ANOTHER_USER.gid!)
      chmodSync(join(withFile, name), 0o444)
    }
    if (AS_ANOTHER_USER.uid !== undefined) chownSync(withFile, AS_ANOTHER_USER.uid, AS_ANOTHER_USER.gid!)
    const readOnly = await runCli(['users', 'list', '--data-dir', readOnlyDir], AS_ANOTHER_USER)
    assert.equal(readOnly.code, 2)
    assert.equal(readOnly.stderr, `gatehouse: the data directory ${readOnlyDir} cannot be used: permission denied (it must be readable and writable)\n`)
    const readOnlyFile = await runCli(['users', 'list', '--data-dir', withFile], AS_ANOTHER_USER)
    assert.equal(readOnlyFile.code, 2)
    assert.equal(readOnlyFile.stderr, `gatehouse: the data directory ${withFile} cannot be used: permission denied on gatehouse.sqlite (it must be readable and writable)\n`)
  })

  it('refuses a data directory, or a database file, that other users may write to or that another user owns', async () => {
    const dir = tempDir()
    const cases: [string, (data: string) => void, RegExp][] = [
      ['world-writable', (data) => chmodSync(data, 0o777), /other users may write to it \(mode 777\); chmod go-w it/],
      ['group-writable', (data) => chmodSync(data, 0o770), /other users may write to it \(mode 770\)/],
      ['writable file', (data) => chmodSync(join(data, 'gatehouse.sqlite'), 0o666), /other users may write to gatehouse\.sqlite \(mode 666\)/],
    ]
    if (process.geteuid?.() === 0) cases.push(['owned by another user', (data) => chownSync(data, 65534, 65534), /it belongs to user 65534, not to the user running Gatehouse \(0\)/])
    for (const [name, spoil, reason] of cases) {
      const data = join(dir, name.replaceAll(' ', '-'))
      assert.equal((await runCli(['migrate', '--data-dir', data])).code, 0)
      spoil(data)
      for (const command of [['users', 'list'], ['serve', '--port', '0']]) {
        const result = await runCli([...command, '--data-dir', data])
        assert.equal(result.code, 2, `${name}: ${command[0]}: ${result.stderr}`)
        assert.match(result.stderr, new RegExp(`^gatehouse: the data directory ${data} cannot be used: ${reason.source}`), name)
      }
    }
  })

  it('refuses a password on standard input that is not UTF-8, holds NUL, a second line or a control character, or starts with a byte-order mark, and creates no one', async () => {
    const dir = await migratedDir()
    const inputs: [string, Buffer, RegExp][] = [
      ['latin-1', Buffer.concat([Buffer.from('long-enough-pass'), Buffer.from([0xe9])]), /not UTF-8/],
      ['nul', Buffer.from('long-enough\u0000pass'), /Null characters are not allowed/],
      ['blank-line', Buffer.from('long-enough-pass\n\n'), /more than one line/],
      ['two-lines', Buffer.from('long-enough-pass\nsecond-line'), /more than one line/],
      ['carriage-return', Buffer.from('long-enough-pass\r'), /more than one line/],
      ['escape', Buffer.from('long-enough\u001b[31mpass'), /control character/],
      ['bom', Buffer.from('\ufefflong-enough-pass\n'), /byte-order mark/],
    ]
    for (const [name, input, reason] of inputs) {
      const result = await runCli(['users', 'create', name, '--password-stdin', '--data-dir', dir], { input })
      assert.equal(result.code, 2, `${name}: ${result.stderr}`)
      assert.match(result.stderr, reason, name)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    }
    assert.doesNotMatch((await runCli(['users', 'list', '--data-dir', dir])).stdout, /latin-1|nul|blank-line|two-lines|carriage-return|escape|bom/)
  })

  it('stops reading a password on standard input once it is longer than any password may be, and creates no one', async () => {
    const dir = await migratedDir()
    const child = spawn(join(repoRoot, 'bin/gatehouse'), ['users', 'create', 'endless', '--password-stdin', '--data-dir', dir], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const exited = once(child, 'close')
    // 64 MiB, far more than a pipe holds: a reader that keeps reading takes it all, one that stops refuses the rest.
    const chunk = Buffer.alloc(1 << 20, 'a')
    let written = 0
    child.stdin.on('error', () => {})
    while (written < 64 && child.exitCode === null && child.stdin.writable) {
      if (!child.stdin.write(chunk)) await Promise.race([once(child.stdin, 'drain').catch(() => undefined), exited])
      written++
    }
    child.stdin.end()
    const [code] = await exited
    assert.equal(code, 2, stderr)
    assert.match(stderr, /no more than 1024 characters/)
    assert.ok(written < 64, `it read all ${written} MiB`)
    assert.doesNotMatch((await runCli(['users', 'list', '--data-dir', dir])).stdout, /endless/)
  })

  it('says why a database that refuses writes (a read-only standby) cannot be used, in one line, not only to try again', async () => {
    const database = await createTestDatabase()
    const name = new URL(database.url).pathname.slice(1)
    const setReadOnly = async (on: boolean) => {
      const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL })
      await admin.connect()
      await admin.query(`ALTER DATABASE ${name} SET default_transaction_read_only = ${on ? 'on' : 'off'}`)
      await admin.end()
    }
    const env = { GATEHOUSE_DATABASE_URL: database.url }
    try {
      assert.equal((await runCli(['migrate'], { env })).code, 0)
      assert.equal((await runCli(['users', 'create', 'bob', '--password-stdin'], { input: 'bob-long-password-1', env })).code, 0)
      await setReadOnly(true)
      for (const command of [['users', 'disable', 'bob'], ['serve', '--port', '0', '--log-format', 'json', '--log-level', 'warn']]) {
        const result = await runCli(command, { env })
        assert.equal(result.code, 1, command.join(' ') + result.stderr)
        assert.match(result.stderr, /^gatehouse: .*read-only transaction/, command.join(' '))
        assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      }
    } finally {
      await setReadOnly(false)
      await database.drop()
    }
  })

  it('exits non-zero, saying so, when a change it made could not be written to the audit trail', async () => {
    const database = await createTestDatabase()
    const env = { GATEHOUSE_DATABASE_URL: database.url }
    const client = new pg.Client({ connectionString: database.url })
    try {
      assert.equal((await runCli(['migrate'], { env })).code, 0)
      await client.connect()
      // The trail's table refuses every row, as a table of a full tablespace or a revoked grant would.
      await client.query(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$;
        CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION refuse_audit()`)
      const result = await runCli(['users', 'create', 'bob', '--password-stdin'], { input: 'bob-long-password-1', env })
      assert.equal(result.code, 1, result.stdout + result.stderr)
      assert.match(result.stdout, /^created user bob/, 'the change itself was made, and said')
      assert.match(result.stderr, /^gatehouse: .*audit trail.*audit refused/)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      assert.equal((await runCli(['users', 'list'], { env })).code, 0, 'a command that changes nothing records nothing')
    } finally {
      await client.end()
      await database.drop()
    }
  })

  it('names the database it cannot use, without its password, and why', async () => {
    for (const command of [['users', 'list'], ['migrate'], ['tokens', 'list']]) {
      const result = await runCli([...command, '--database', 'postgres://gatehouse:secret@127.0.0.1:1/gatehouse'])
      assert.equal(result.code, 1, command.join(' '))
      const [warning, ...rest] = result.stderr.split(/(?<=\n)/)
      assert.match(warning!, /^gatehouse: warning: a password given in --database is readable by every user of this machine .*GATEHOUSE_DATABASE_URL/, command.join(' '))
      assert.equal(rest.join(''), 'gatehouse: the database postgres://gatehouse:***@127.0.0.1:1/gatehouse cannot be used: connect ECONNREFUSED 127.0.0.1:1\n', command.join(' '))
    }
  })

  it('exits 2 for a database URL the server refuses as written (no such database, no such role), 1 for one that does not answer', async () => {
    const noSuchDatabase = new URL(POSTGRES_ADMIN_URL)
    noSuchDatabase.pathname = '/gatehouse_no_such_database'
    const noSuchRole = new URL(POSTGRES_ADMIN_URL)
    noSuchRole.username = 'gatehouse_no_such_role'
    noSuchRole.password = ''
    for (const url of [noSuchDatabase.href, noSuchRole.href]) {
      for (const command of [['users', 'list'], ['migrate']]) {
        const result = await runCli(command, { env: { GATEHOUSE_DATABASE_URL: url } })
        assert.equal(result.code, 2, `${command.join(' ')} ${url}: ${result.stderr}`)
        // No such role, or (where the server asks for a password) a login refused: 28000, 28P01.
        assert.match(result.stderr, /^gatehouse: the database postgres:\/\/\S+ cannot be used: .*(does not exist|authentication failed)/)
      }
    }
    assert.equal((await runCli(['users', 'list'], { env: { GATEHOUSE_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/test' } })).code, 1)
  })

  it('does not warn of a password in GATEHOUSE_DATABASE_URL, which other users cannot read, nor of a URL without one', async () => {
    const withPassword = await runCli(['users', 'list'], { env: { GATEHOUSE_DATABASE_URL: 'postgres://gatehouse:secret@127.0.0.1:1/gatehouse' } })
    const withoutPassword = await runCli(['users', 'list', '--database', 'postgres://gatehouse@127.0.0.1:1/gatehouse'])
    for (const result of [withPassword, withoutPassword]) {
      assert.equal(result.code, 1)
      assert.doesNotMatch(result.stderr, /warning/)
    }
  })

  it('names a SQLite file that is not a database (a backup restored from the wrong file, say) and changes nothing', async () => {
    const dir = tempDir()
    const file = join(dir, 'gatehouse.sqlite')
    const garbage = Buffer.from('SQLite format 3\u0000but not really a database, only its first sixteen bytes')
    writeFileSync(file, garbage)
    for (const command of [['users', 'list'], ['migrate'], ['migrate', '--status'], ['backup', join(dir, 'copy.sqlite')]]) {
      const result = await runCli([...command, '--data-dir', dir])
      assert.equal(result.code, 1, command.join(' '))
      assert.equal(result.stderr, `gatehouse: the database sqlite:${file} cannot be used: file is not a database\n`, command.join(' '))
    }
    assert.deepEqual(readFileSync(file), garbage)
    assert.deepEqual(readdirSync(dir), ['gatehouse.sqlite'])
  })

  it('does not repeat a secret that YAML reads as an alias (an unquoted value starting with *) when it refuses the file', async () => {
    const file = join(tempDir(), 'gatehouse.yaml')
    writeFileSync(file, 'ldap:\n  bind_password: *Tr0ub4dor-and-3\n')
    for (const command of [['config', 'check', file], ['users', 'list', '--config', file]]) {
      const result = await runCli(command)
      assert.equal(result.code, 2, command.join(' '))
      assert.equal(result.stderr, `gatehouse: ${file}: YAML, line 2, column 18: an alias (a value that starts with "*") names no anchor before it; quote a value that starts with "*"\n`)
    }
  })

  it('refuses an argument given empty, as an unset variable gives it, naming it and changing nothing', async () => {
    const dir = await migratedDir()
    const copy = join(tempDir(), 'copy.sqlite')
    for (const [command, problem] of [[['users', 'unlock', ''], 'users unlock: NAME is empty'], [['users', 'import', ''], 'users import: FILE is empty'],
      [['backup', ''], 'backup: FILE is empty'], [['restore', ''], 'restore: FILE is empty'], [['config', 'check', ''], 'config check: FILE is empty'],
      [['ldap', 'forget-entries', 'erin', ''], 'ldap forget-entries: one of NAMES is empty'],
      [['keys', 'rotate', '--realm', ''], 'keys rotate: --realm is empty'], [['tokens', 'list', '--user', ''], 'tokens list: --user is empty'],
      [['tokens', 'create', '--user', '', '--description', 'x'], 'tokens create: --user is empty']] as const) {
      const result = await runCli([...command, '--data-dir', dir])
      assert.equal(result.code, 2, command.join(' '))
      assert.equal(result.stderr, `gatehouse: ${problem}; give a value\n`, command.join(' '))
      assert.equal(result.stdout, '', command.join(' '))
    }
    assert.equal((await runCli(['backup', copy, '--data-dir', dir])).code, 0, 'a named file is taken')
  })

  it('does not print back the text a YAML syntax error could not place, only where it is (a database or binary named as the file)', async () => {
    const dir = tempDir()
    const file = join(dir, 'gatehouse.yaml')
    // A SQLite page as `--config` names by mistake: a password hash beside the bytes YAML cannot read.
    writeFileSync(file, Buffer.concat([Buffer.from('a: b\n}'), Buffer.from([0, 1, 2, 0x1b]), Buffer.from('$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$SECRETHASH\n')]))
    const indicator = join(dir, 'indicator.yaml')
    writeFileSync(indicator, 'a: b\n]\n')
    for (const command of [['config', 'check'], ['users', 'list', '--config']]) {
      const result = await runCli([...command, file])
      assert.equal(result.code, 2, command.join(' '))
      assert.equal(result.stderr, `gatehouse: ${file}: 2 problems\n  - YAML, line 2, column 1: Unexpected flow-map-end token in YAML stream: "}"\n  - YAML, line 2, column 2: Unexpected scalar token in YAML stream\n`)
      const shown = await runCli([...command, indicator])
      assert.equal(shown.stderr, `gatehouse: ${indicator}: YAML, line 2, column 1: Unexpected flow-seq-end token in YAML stream: "]"\n`)
    }
  })

  it('refuses a mapping or list that holds itself through an alias, in one line naming its setting', async () => {
    const file = join(tempDir(), 'gatehouse.yaml')
    for (const [yaml, setting] of [['services: &x\n  - *x\n', 'services.0'], ['ldap: &y\n  url: ldap://x\n  more:\n    again: *y\n', 'ldap.more.again']]) {
      writeFileSync(file, yaml!)
      for (const command of [['config', 'check', file], ['users', 'list', '--config', file]]) {
        const result = await runCli(command)
        assert.equal(result.code, 2, command.join(' '))
        assert.equal(result.stderr, `gatehouse: ${file}: ${setting}: an alias inside the anchor it names (*name within &name) makes the value endless; write it out\n`)
      }
    }
    // An anchor used beside itself, not inside, is no loop.
    writeFileSync(file, 'server: &s\n  port: 9000\nmetrics: { enabled: true }\nx_not: 1\n')
    assert.doesNotMatch((await runCli(['config', 'check', file])).stderr, /endless/)
  })

  it('does not repeat a database URL that is not one, which may hold a password it cannot find to hide', async () => {
    for (const url of ['u:s3cretpw@h/db', 'postgres//u:s3cretpw@h', '//u:s3cretpw@h', 'postgres://u:s3cretpw@[bad/x']) {
      for (const [args, env] of [[['--database', url], {}], [[], { GATEHOUSE_DATABASE_URL: url }]] as const) {
        const result = await runCli(['users', 'list', ...args], { env })
        assert.equal(result.code, 2, url)
        // (A password on the command line is warned of first, when the value looks like a URL.)
        assert.ok(result.stderr.endsWith('gatehouse: --database (or GATEHOUSE_DATABASE_URL) must be a postgres:// URL, with any @ # / ? in its password percent-encoded (%40 %23 %2F %3F)\n'), result.stderr)
        assert.doesNotMatch(result.stderr, /s3cretpw/, url)
      }
    }
    // In the configuration file, `config check` says so, as every command then would.
    const file = join(tempDir(), 'gatehouse.yaml')
    writeFileSync(file, 'storage:\n  database: "postgres://u:s3cretpw@[bad/x"\n')
    const checked = await runCli(['config', 'check', file])
    assert.equal(checked.code, 2, checked.stderr)
    assert.match(checked.stderr, /storage\.database: must be a postgres:\/\/ URL/)
    assert.doesNotMatch(checked.stderr + checked.stdout, /s3cretpw/)
  })

  it('masks a database password however the URL spells it: without a username, or holding a slash', async () => {
    for (const url of ['postgres://:secret@127.0.0.1:1/gatehouse', 'postgres://gatehouse:se/cret@127.0.0.1:1/gatehouse', 'postgres://gatehouse:se@cr/et@127.0.0.1:1/gatehouse',
      'postgres://gatehouse:se@cr#et@127.0.0.1:1/gatehouse', 'postgres://gatehouse:se@cr?et@127.0.0.1:1/gatehouse']) {
      const result = await runCli(['users', 'list', '--database', url])
      assert.doesNotMatch(result.stderr, /se\/?c?r?e?t|cr\/et|\bcr\b/, url)
      // A slash in the password ends the host for every URL parser, PostgreSQL's client's too: no URL, refused as one.
      // After an @ in it, the URL parses with the password's middle as its host, which the client would look up.
      if (/se\/|cr[/#?]/.test(url)) {
        assert.equal(result.code, 2, url)
        assert.match(result.stderr, /^gatehouse: --database \(or GATEHOUSE_DATABASE_URL\) must be a postgres:\/\/ URL, with any @ # \/ \? in its password percent-encoded \(%40 %23 %2F %3F\)$/m, url)
        continue
      }
      assert.equal(result.code, 1, url)
      assert.match(result.stderr, /^gatehouse: the database postgres:\/\/(gatehouse)?:\*\*\*@127\.0\.0\.1:1\/gatehouse cannot be used: /m, url)
    }
  })

  it('says a username is taken once, in any letter case, with exit status 3', async () => {
    const dir = await migratedDir()
    assert.equal((await runCli(['users', 'create', 'hana', '--data-dir', dir])).code, 0)
    for (const name of ['hana', 'HANA']) {
      const again = await runCli(['users', 'create', name, '--data-dir', dir])
      // Its own status, so that a provisioning script can take "already there" for done and any other failure for one.
      assert.equal(again.code, 3, name)
      assert.equal(again.stderr, 'gatehouse: A user with that username already exists.\n', name)
    }
  })

  it('refuses a configuration file or a data directory it cannot use, in one line with exit status 2', async () => {
    const dir = tempDir()
    const file = join(dir, 'not-a-directory')
    writeFileSync(file, '')
    const cases: [string[], RegExp][] = [
      [['serve', '--port', '0', '--config', join(dir, 'missing.yaml')], /^gatehouse: .*missing\.yaml: cannot read: ENOENT: no such file or directory$/],
      [['users', 'list', '--config', join(dir, 'missing.yaml')], /missing\.yaml: cannot read: ENOENT/],
      [['users', 'list', '--data-dir', file], /^gatehouse: the data directory .*not-a-directory cannot be used: it is a file, not a directory$/],
      [['serve', '--port', '0', '--data-dir', join(file, 'data')], /^gatehouse: the data directory .*not-a-directory\/data cannot be used: a part of its path is a file, not a directory$/],
      // An address of no interface of this machine (TEST-NET-1, RFC 5737).
      [['serve', '--port', '0', '--host', '192.0.2.1', '--data-dir', join(dir, 'data')], /^gatehouse: cannot listen on 192\.0\.2\.1:0: .*EADDRNOTAVAIL/],
    ]
    for (const [args, reason] of cases) {
      // A password of its own for the superuser a start creates: a generated one would be said too (serve-operations.test.ts).
      const result = await runCli(args, { env: { GATEHOUSE_ADMIN_PASSWORD: 'admin-test-password' } })
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr.trim(), reason, args.join(' '))
      assert.equal(result.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${result.stderr}`)
    }
  })

  it('refuses a data directory where the file system makes none, without hanging', { skip: !existsSync('/proc/self') && 'needs /proc' }, () => {
    // Making /proc/<name> fails with ENOENT though /proc exists; Node's recursive mkdir retries that for ever.
    const result = spawnSync(join(repoRoot, 'bin/gatehouse'), ['users', 'list', '--data-dir', '/proc/gatehouse-data'], { encoding: 'utf8', timeout: 15_000 })
    assert.equal(result.signal, null, 'it ended by itself')
    assert.equal(result.status, 2, result.stderr)
    assert.match(result.stderr, /^gatehouse: the data directory \/proc\/gatehouse-data cannot be used: .+\n$/)
  })

  it('stops quietly when the reader of its output goes away, as a pipe to head does', async () => {
    const dir = tempDir()
    assert.equal((await runCli(['migrate', '--data-dir', dir])).code, 0)
    for (const args of [['config', 'reference'], ['users', 'list', '--data-dir', dir]]) {
      const child = spawn(join(repoRoot, 'bin/gatehouse'), args, { stdio: ['ignore', 'pipe', 'pipe'] })
      // The read end is closed before the command writes: its first write fails with EPIPE.
      child.stdout.destroy()
      let stderr = ''
      child.stderr.on('data', (chunk) => (stderr += chunk))
      const [code] = await once(child, 'close')
      assert.equal(stderr, '', args.join(' '))
      assert.equal(code, 0, args.join(' '))
    }
  })

  it('lists each command\'s own options in its --help before the ones commands share, which come in one order', () => {
    const shared = ['--config', '--data-dir', '--database']
    const leaves = (command: Command, path: string[]): [string, Command][] => {
      const own = command.commands.filter((c) => c.name() !== 'help')
      return own.length ? own.flatMap((c) => leaves(c, [...path, c.name()])) : [[path.join(' '), command]]
    }
    for (const [name, command] of leaves(gatehouseProgram(), [])) {
      const flags = command.options.map((option) => option.long!)
      assert.deepEqual(flags, [...flags.filter((flag) => !shared.includes(flag)), ...shared.filter((flag) => flags.includes(flag))], name)
    }
  })

  it('wraps every command\'s --help in 80 columns (where no pipe or terminal says how wide)', () => {
    const everyCommand = (command: Command, path: string[]): [string, Command][] =>
      [[path.join(' '), command], ...command.commands.flatMap((c) => everyCommand(c, [...path, c.name()]))]
    const commands = everyCommand(gatehouseProgram(), ['gatehouse'])
    assert.ok(commands.length > 30, String(commands.length))
    for (const [name, command] of commands) {
      const tooLong = command.helpInformation().split('\n').filter((line) => line.length > 80)
      assert.deepEqual(tooLong, [], name)
    }
  })

  it('has --help for every command', async () => {
    for (const args of [[], ['serve'], ['users'], ['users', 'create'], ['migrate'], ['config', 'check']]) {
      const result = await runCli([...args, '--help'])
      assert.equal(result.code, 0, args.join(' '))
      assert.match(result.stdout, /Usage: gatehouse/)
    }
  })

  it('checks configuration files and reports all problems', async () => {
    const ok = await runCli(['config', 'check', '--demo', demoConfigFile])
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /OK \(\d+ services?: controller, galaxy, eda, demo-app/)
    const file = join(tempDir(), 'bad.yaml')
    writeFileSync(file, 'server:\n  port: -1\nservices:\n  - name: x\n')
    const bad = await runCli(['config', 'check', file])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /server\.port/)
    assert.match(bad.stderr, /services\.0\.prefix/)
    assert.match(bad.stderr, /services\.0\.upstream/)
  })

  it('checks the file serve would read when none is named: --config, GATEHOUSE_CONFIG, or the demo configuration with --demo', async () => {
    for (const [args, env] of [[['--config', demoConfigFile], {}], [[], { GATEHOUSE_CONFIG: demoConfigFile }], [[], { GATEHOUSE_CONFIG: '' }]] as const) {
      const checked = await runCli(['config', 'check', '--demo', ...args], { env })
      assert.equal(checked.code, 0, checked.stderr)
      assert.match(checked.stdout, /demo\.yaml: OK \(\d+ services?: controller/)
    }
    const nothing = await runCli(['config', 'check'], { env: { GATEHOUSE_CONFIG: '' } })
    assert.equal(nothing.code, 2)
    assert.equal(nothing.stderr, 'gatehouse: name the file to check: config check FILE, --config FILE, GATEHOUSE_CONFIG or --demo\n')
    const both = await runCli(['config', 'check', demoConfigFile, '--config', join(tempDir(), 'other.yaml')])
    assert.equal(both.code, 2)
    assert.match(both.stderr, /^gatehouse: name one file to check/)
    const overEnvironment = await runCli(['config', 'check', '--demo', demoConfigFile], { env: { GATEHOUSE_CONFIG: join(tempDir(), 'other.yaml') } })
    assert.equal(overEnvironment.code, 0, overEnvironment.stderr)
  })

  it('refuses builtin:demo upstreams without --demo, in the words serve stops with', async () => {
    const dir = tempDir()
    const file = join(dir, 'demo-upstreams.yaml')
    writeFileSync(file, [
      'services:',
      '  - { name: echo, prefix: /echo/, upstream: "builtin:demo" }',
      '  - { name: real, prefix: /real/, upstream: "http://127.0.0.1:1" }',
      '  - { name: mirror, prefix: /mirror/, upstream: "builtin:demo" }', '',
    ].join('\n'))
    const served = await runCli(['serve', '--port', '0', '--config', file, '--data-dir', join(dir, 'data')])
    assert.equal(served.code, 2, served.stderr)
    const refusal = /^gatehouse: (.*)\n$/.exec(served.stderr)?.[1]
    assert.match(refusal ?? '', /^services echo, mirror use builtin:demo upstreams, which run only with --demo$/)
    const checked = await runCli(['config', 'check', file])
    assert.equal(checked.code, 2, checked.stderr)
    assert.equal(checked.stdout, '')
    assert.equal(checked.stderr, `gatehouse: ${file}: ${refusal}\n`)
    const withDemo = await runCli(['config', 'check', '--demo', file])
    assert.equal(withDemo.code, 0, withDemo.stderr)
    assert.equal(withDemo.stdout, `${file}: OK (3 services: echo, real, mirror)\n`)
    // The demo configuration is no exception: serve refuses it without --demo too.
    const demo = await runCli(['config', 'check', demoConfigFile])
    assert.equal(demo.code, 2, demo.stderr)
    assert.match(demo.stderr, /use builtin:demo upstreams, which run only with --demo\n$/)
  })

  it('refuses a metrics token file larger than any token, and reads no more of it than that', async () => {
    const dir = tempDir()
    const file = join(dir, 'tokens.yaml')
    writeFileSync(join(dir, 'huge-token'), 'x'.repeat(1 << 20))
    for (const tokenFile of [join(dir, 'huge-token'), '/dev/zero']) {
      writeFileSync(file, `metrics:\n  bearer_token_file: ${tokenFile}\n`)
      const checked = await runCli(['config', 'check', file])
      assert.equal(checked.code, 2, checked.stderr)
      assert.match(checked.stderr, /: metrics\.bearer_token_file \S+: the token file is larger than 64 KiB\n$/)
    }
  })

  it('checks the files a configuration names as serve would at start, reporting every one it cannot use', async () => {
    const dir = tempDir()
    const file = join(dir, 'files.yaml')
    writeFileSync(file, [
      'server:', '  tls:', `    cert_file: ${join(dir, 'missing.crt')}`, `    key_file: ${join(dir, 'missing.key')}`,
      'metrics:', `  bearer_token_file: ${join(dir, 'missing-token')}`,
      'audit:', '  output: file', `  file: ${join(dir, 'no-such-directory', 'audit.jsonl')}`,
      'ldap:', '  servers: [ldaps://ldap.example.com]', '  bind_dn: cn=gatehouse,dc=example,dc=com', '  bind_password: a-bind-password',
      '  user_search:', '    base: ou=people,dc=example,dc=com', '  tls:', `    ca_file: ${join(dir, 'missing-ldap-ca.pem')}`, '',
    ].join('\n'))
    chmodSync(file, 0o600)
    const checked = await runCli(['config', 'check', file])
    assert.equal(checked.code, 2, checked.stderr)
    assert.match(checked.stderr, /: 4 problems\n/)
    assert.match(checked.stderr, /^  - ldap\.tls\.ca_file: cannot read .*missing-ldap-ca\.pem/m)
    assert.match(checked.stderr, /^  - server\.tls\.cert_file: cannot read .*missing\.crt/m)
    assert.match(checked.stderr, /^  - metrics\.bearer_token_file.*missing-token/m)
    assert.match(checked.stderr, /^  - audit\.file .*audit\.jsonl: ENOENT/m)
    assert.ok(!existsSync(join(dir, 'no-such-directory')), 'checking creates nothing')
    const served = await runCli(['serve', '--port', '0', '--config', file, '--data-dir', join(dir, 'data')])
    assert.equal(served.code, 2, served.stderr)
    assert.match(served.stderr, /server\.tls\.cert_file: cannot read/)
    // A directory CA that is not a certificate stops the start as well, before the database is made.
    const notCa = join(dir, 'not-a-ca.pem')
    writeFileSync(notCa, 'not a certificate\n')
    writeFileSync(file, ['ldap:', '  servers: [ldaps://ldap.example.com]', '  bind_dn: cn=gatehouse,dc=example,dc=com', '  bind_password: a-bind-password',
      '  user_search:', '    base: ou=people,dc=example,dc=com', '  tls:', `    ca_file: ${notCa}`, ''].join('\n'))
    const directory = await runCli(['serve', '--port', '0', '--config', file, '--data-dir', join(dir, 'data')])
    assert.equal(directory.code, 2, directory.stderr)
    assert.match(directory.stderr, /ldap\.tls\.ca_file: ".*not-a-ca\.pem" does not hold a PEM CA certificate/)
    assert.ok(!existsSync(join(dir, 'data', 'gatehouse.sqlite')), 'no database made')
  })

  it('warns, when checked and when the gateway starts, that a file holding secrets is readable by other users', async () => {
    const dir = tempDir()
    const file = join(dir, 'secrets.yaml')
    writeFileSync(file, 'realms:\n  - name: platform\n    clients:\n      - client_id: backend\n        public_client: false\n        secret: a-secret-of-sixteen-or-more\n')
    const warning = /^gatehouse: WARNING: .*secrets\.yaml holds secrets \(realms\.0\.clients\.0\.secret\) and other users of this machine may read it \(mode 644\)/m
    chmodSync(file, 0o644)
    const readable = await runCli(['config', 'check', file])
    assert.equal(readable.code, 0, readable.stderr)
    assert.match(readable.stderr, warning)
    const gateway = await spawnGateway(['--config', file, '--data-dir', join(dir, 'data')])
    // Said after the listening line, which is all the output there may be when the start is seen.
    await gateway.stop()
    assert.match(gateway.output(), /holds secrets \(realms\.0\.clients\.0\.secret\)/)
    chmodSync(file, 0o600)
    const privateFile = await runCli(['config', 'check', file])
    assert.equal(privateFile.code, 0, privateFile.stderr)
    assert.equal(privateFile.stderr, '')
  })

  it('warns when an environment variable that serve reads a secret from is not set where the file is checked', async () => {
    const dir = tempDir()
    const file = join(dir, 'sso.yaml')
    writeFileSync(file, 'sso:\n  - name: corp\n    label: Corp ID\n    issuer: https://id.example.com/realms/corp\n    client_id: gatehouse\n    client_secret_env: CHECK_SSO_SECRET\n')
    const unset = await runCli(['config', 'check', file], { env: { CHECK_SSO_SECRET: '' } })
    assert.equal(unset.code, 0, unset.stderr)
    assert.equal(unset.stderr, 'gatehouse: WARNING: sso.0.client_secret_env: the environment variable CHECK_SSO_SECRET is not set or empty here; serve would stop\n')
    const set = await runCli(['config', 'check', file], { env: { CHECK_SSO_SECRET: 'from-the-environment' } })
    assert.equal(set.code, 0, set.stderr)
    assert.equal(set.stderr, '')
  })

  it('warns, when checked and when the gateway starts, of services that take the same client\'s tokens because one leaves oidc.client_id unset', async () => {
    const dir = tempDir()
    const file = join(dir, 'services.yaml')
    const write = (services: Record<string, unknown>[]) => writeFileSync(file, JSON.stringify({
      services: services.map((service, i) => ({ name: `app-${i}`, prefix: `/app-${i}/`, upstream: 'http://127.0.0.1:9', accepts: ['oidc'], ...service })),
      realms: [{ name: 'platform', clients: [{ client_id: 'end-users', public_client: true }, { client_id: 'reports', public_client: true }] }],
    }))
    const warning = 'gatehouse: WARNING: services.0 (app-0, oidc.client_id unset) and services.1 (app-1, oidc.client_id unset) of realm "platform" both take the tokens of client "end-users" (an unset oidc.client_id is the realm\'s first client with standard_flow), so each accepts the tokens meant for the other. Give each service its own client with oidc.client_id, or, where they are meant to share one, name it in each.\n'
    write([{}, {}])
    const shared = await runCli(['config', 'check', file])
    assert.equal(shared.code, 0, shared.stderr)
    assert.equal(shared.stderr, warning)
    // One that names the client the other takes by default shares it all the same.
    write([{}, { oidc: { client_id: 'end-users' } }])
    assert.match((await runCli(['config', 'check', file])).stderr, /services\.0 \(app-0, oidc\.client_id unset\) and services\.1 \(app-1\) of realm "platform" both take the tokens of client "end-users"/)
    // Not said of services with their own clients, of ones that name their audiences, nor of a client both name on purpose.
    for (const separate of [[{}, { oidc: { client_id: 'reports' } }], [{}, { oidc: { audiences: ['app-1'] } }], [{ oidc: { client_id: 'reports' } }, { oidc: { client_id: 'reports' } }], [{}, { accepts: ['basic'] }]]) {
      write(separate)
      const checked = await runCli(['config', 'check', file])
      assert.equal(checked.code, 0, checked.stderr)
      assert.equal(checked.stderr, '', JSON.stringify(separate))
    }
    write([{}, {}])
    const gateway = await spawnGateway(['--config', file, '--data-dir', dir])
    // Said after the listening line, which is all the output there may be when the start is seen.
    await gateway.stop()
    assert.match(gateway.output(), /services\.0 \(app-0, oidc\.client_id unset\) and services\.1 \(app-1, oidc\.client_id unset\) of realm \\?"platform\\?" both take the tokens/)
  })

  it('warns, when checked and when the gateway starts, of services of one realm whose oidc.audiences take each other\'s tokens', async () => {
    const dir = tempDir()
    const file = join(dir, 'services.yaml')
    const write = (services: Record<string, unknown>[]) => writeFileSync(file, JSON.stringify({
      services: services.map((service, i) => ({ name: `app-${i}`, prefix: `/app-${i}/`, upstream: 'http://127.0.0.1:9', accepts: ['oidc'], oidc: { realm: 'platform', ...service.oidc as object } })),
      realms: [
        { name: 'platform', clients: [{ client_id: 'end-users', public_client: true }, { client_id: 'reports', public_client: true }] },
        { name: 'other', clients: [{ client_id: 'end-users', public_client: true }] },
      ],
    }))
    write([{ oidc: { client_id: 'end-users', audiences: ['shared', 'app-0'] } }, { oidc: { client_id: 'reports', audiences: ['shared'] } }])
    const shared = await runCli(['config', 'check', file])
    assert.equal(shared.code, 0, shared.stderr)
    assert.equal(shared.stderr, 'gatehouse: WARNING: services.0 (app-0) and services.1 (app-1) of realm "platform" both take the tokens whose aud or azp names "shared" (services.0.oidc.audiences, services.1.oidc.audiences), so each accepts the tokens meant for the other. Give each service audiences of its own.\n')
    // Audiences named on one side only meet the other's by default: its name and its client.
    write([{ oidc: { client_id: 'end-users', audiences: ['app-1', 'reports'] } }, { oidc: { client_id: 'reports' } }])
    assert.match((await runCli(['config', 'check', file])).stderr, /services\.0 \(app-0\) and services\.1 \(app-1\) of realm "platform" both take the tokens whose aud or azp names "app-1", "reports" \(services\.0\.oidc\.audiences, services\.1's default: its name and client\)/)
    // Not said of audiences of their own, nor of services of different realms.
    for (const separate of [[{ oidc: { audiences: ['app-0'] } }, { oidc: { audiences: ['app-1'] } }], [{ oidc: { realm: 'platform', audiences: ['shared'] } }, { oidc: { realm: 'other', audiences: ['shared'] } }]]) {
      write(separate)
      const checked = await runCli(['config', 'check', file])
      assert.equal(checked.code, 0, checked.stderr)
      assert.equal(checked.stderr, '', JSON.stringify(separate))
    }
    write([{ oidc: { client_id: 'end-users', audiences: ['shared', 'app-0'] } }, { oidc: { client_id: 'reports', audiences: ['shared'] } }])
    const gateway = await spawnGateway(['--config', file, '--data-dir', dir])
    await gateway.stop()
    assert.match(gateway.output(), /services\.0 \(app-0\) and services\.1 \(app-1\) of realm \\?"platform\\?" both take the tokens whose aud or azp names/)
    rmSync(dir, { recursive: true, force: true })
  })

  it('prints the configuration reference with descriptions', async () => {
    const result = await runCli(['config', 'reference'])
    assert.equal(result.code, 0)
    const schema = JSON.parse(result.stdout)
    assert.match(schema.properties.services.items.properties.unauthenticated.description, /redirect/)
    const undescribed: string[] = []
    const walk = (node: JsonSchema, path: string) => {
      for (const [name, property] of Object.entries(node.properties ?? {})) {
        if (!property.description) undescribed.push(`${path}${name}`)
        walk(property, `${path}${name}.`)
      }
      if (node.items) walk(node.items, `${path}[].`)
      node.anyOf?.forEach((choice) => walk(choice, path))
    }
    walk(schema, '')
    assert.deepEqual(undescribed, [], 'every option has a description')
  })
})
