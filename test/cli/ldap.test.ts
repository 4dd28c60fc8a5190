import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify } from 'yaml'
import { openStore } from '../../src/store/store.ts'
import { runCli, spawnGateway, tempDir } from '../helpers/gateway.ts'
import { GROUPS, PASSWORDS, SERVICE_PASSWORD, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'

describe('gatehouse ldap test', () => {
  let directory: TestDirectory
  let configFile: string
  before(async () => {
    directory = await startDirectory()
    configFile = join(directory.dir, 'gatehouse.yaml')
    writeFileSync(configFile, stringify({
      ldap: directory.config({ start_tls: true, tls: { ca_file: directory.caFile }, bind_password: undefined, bind_password_env: 'LDAP_BIND_PASSWORD' }),
    }))
  })
  after(() => directory?.close())

  const ldapTest = (args: string[], input?: string) =>
    runCli(['ldap', 'test', '--config', configFile, ...args], { input, env: { LDAP_BIND_PASSWORD: SERVICE_PASSWORD } })

  it('says what it found for a user: DN, mapped attributes, groups and roles, and whether the password is right', async () => {
    const { code, stdout, stderr } = await ldapTest(['--user', 'alice', '--password-stdin'], `${PASSWORDS.alice}\n`)
    assert.equal(code, 0, stderr)
    assert.match(stdout, new RegExp(`^server: ${directory.url} \\(StartTLS\\)$`, 'm'))
    assert.match(stdout, new RegExp(`^user: uid=alice,ou=people,${SUFFIX}$`, 'm'))
    assert.match(stdout, /^ {2}uuid: [0-9a-f-]{36}$/m)
    assert.match(stdout, /^ {2}username: alice$/m)
    assert.match(stdout, /^ {2}email: alice@example\.test$/m)
    assert.match(stdout, /^ {2}first_name: Alice$/m)
    assert.match(stdout, /^ {2}last_name: Anderson$/m)
    assert.ok(stdout.includes(`  ${GROUPS.admins}\n`))
    assert.match(stdout, /^is_superuser: yes$/m)
    assert.match(stdout, /^is_system_auditor: no$/m)
    assert.match(stdout, /^groups: developers$/m)
    assert.match(stdout, /^password: ok$/m)
  })

  it('prints what the directory holds of a person as text, its control characters as \\u escapes', async () => {
    const dn = `uid=alice,ou=people,${SUFFIX}`
    await directory.replaceAttribute(dn, 'givenName', ['Ali\u001b]0;owned\u0007ce'])
    try {
      const { code, stdout, stderr } = await ldapTest(['--user', 'alice'])
      assert.equal(code, 0, stderr)
      assert.ok(stdout.includes('  first_name: Ali\\u001b]0;owned\\u0007ce\n'), stdout)
      assert.doesNotMatch(stdout, /[\u001b\u0007]/)
    } finally {
      await directory.replaceAttribute(dn, 'givenName', ['Alice'])
    }
  })

  it('exits 1 when the password is wrong or the user is not found', async () => {
    const wrong = await ldapTest(['--user', 'bob', '--password-stdin'], 'not-the-password\n')
    assert.equal(wrong.code, 1)
    assert.match(wrong.stdout, /^password: refused by the directory$/m)
    assert.match(wrong.stdout, /^is_system_auditor: yes$/m)
    const missing = await ldapTest(['--user', 'nobody'])
    assert.equal(missing.code, 1)
    assert.match(missing.stdout, /^user: not found/m)
  })

  it('looks a user up without a password, checking none', async () => {
    const { code, stdout } = await ldapTest(['--user', 'carol'])
    assert.equal(code, 0)
    assert.match(stdout, /^password: not checked/m)
  })

  it('refuses filter metacharacters in the username and an empty password clearly', async () => {
    const star = await ldapTest(['--user', '*)(uid=*'])
    assert.equal(star.code, 2)
    assert.match(star.stderr, /username/)
    assert.equal(star.stdout, '')
    const empty = await ldapTest(['--user', 'alice', '--password-stdin'], '\n')
    assert.equal(empty.code, 2)
    assert.match(empty.stderr, /password/)
    assert.equal(empty.stdout, '')
  })

  it('warns loudly, here and when the gateway starts, that a certificate is not verified', async () => {
    const unverified = join(directory.dir, 'unverified.yaml')
    writeFileSync(unverified, stringify({ ldap: directory.config({ servers: [directory.ldapsUrl], tls: { reject_unauthorized: false } }) }))
    const warning = /WARNING: ldap\.tls\.reject_unauthorized is false: the directory's certificate is not verified/
    const lookup = await runCli(['ldap', 'test', '--config', unverified, '--user', 'carol'])
    assert.equal(lookup.code, 0, lookup.stderr)
    assert.match(lookup.stderr, warning)
    const verified = await ldapTest(['--user', 'carol'])
    assert.doesNotMatch(verified.stderr, /WARNING/)
    const gateway = await spawnGateway(['--config', unverified, '--data-dir', tempDir()])
    // Said after the listening line, which is all the output there may be when the start is seen.
    await gateway.stop()
    assert.match(gateway.output(), warning)
  })

  it('warns when passwords would cross the network unencrypted: an ldap:// server on another host without start_tls', async () => {
    const plain = join(directory.dir, 'plain.yaml')
    writeFileSync(plain, stringify({ ldap: directory.config({ servers: ['ldap://directory.invalid:389', directory.url] }) }))
    const warning = /WARNING: ldap:\/\/directory\.invalid:389 is used without ldap\.start_tls: the service account's and users' passwords cross the network unencrypted/
    const lookup = await runCli(['ldap', 'test', '--config', plain, '--user', 'carol'])
    assert.match(lookup.stderr, warning)
    const check = await runCli(['config', 'check', plain])
    assert.equal(check.code, 0, check.stderr)
    assert.match(check.stderr, warning)
    const gateway = await spawnGateway(['--config', plain, '--data-dir', tempDir()])
    try {
      // Standard error and standard output are two pipes: the warning may arrive after the line that says it listens.
      for (let waited = 0; !warning.test(gateway.output()) && waited < 5_000; waited += 50) await sleep(50)
      assert.match(gateway.output(), warning)
    } finally {
      await gateway.stop()
    }
    // The same directory on this machine's loopback address is nobody else's to read.
    const local = join(directory.dir, 'local.yaml')
    writeFileSync(local, stringify({ ldap: directory.config({ servers: [directory.url] }) }))
    const loopback = await runCli(['ldap', 'test', '--config', local, '--user', 'carol'])
    assert.equal(loopback.code, 0, loopback.stderr)
    assert.doesNotMatch(loopback.stderr, /WARNING/)
  })

  it('explains why the directory could not be used', async () => {
    const badSecret = await runCli(['ldap', 'test', '--config', configFile, '--user', 'alice'], { env: { LDAP_BIND_PASSWORD: 'wrong' } })
    assert.equal(badSecret.code, 1)
    assert.match(badSecret.stderr, /service account/)
    const noSecret = await runCli(['ldap', 'test', '--config', configFile, '--user', 'alice'], { env: { LDAP_BIND_PASSWORD: '' } })
    assert.equal(noSecret.code, 2)
    assert.match(noSecret.stderr, /LDAP_BIND_PASSWORD/)
    const noSection = await runCli(['ldap', 'test', '--user', 'alice'])
    assert.equal(noSection.code, 2)
    assert.match(noSection.stderr, /no ldap section/)
  })
})

/** A BER element: its tag, its length (definite form), its content. */
function ber(tag: number, content: Buffer): Buffer {
  const length = content.length < 0x80 ? Buffer.from([content.length]) : Buffer.from([0x82, content.length >> 8, content.length & 0xff])
  return Buffer.concat([Buffer.from([tag]), length, content])
}

/** A directory that answers the service account's bind with "unwilling to perform" (53) and `said` as its reason. */
async function refusingDirectory(said: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((socket) => {
    socket.on('error', () => {})
    socket.once('data', (request: Buffer) => {
      // The message id, the INTEGER after the LDAPMessage's SEQUENCE header (a short bind request: short lengths).
      const id = request.subarray(2, 4 + request[3]!)
      const result = Buffer.concat([Buffer.from([0x0a, 0x01, 53]), ber(0x04, Buffer.alloc(0)), ber(0x04, Buffer.from(said))])
      socket.end(ber(0x30, Buffer.concat([id, ber(0x61, result)])))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `ldap://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

describe('gatehouse ldap test against a directory that refuses', () => {
  it('writes the directory\'s reason as text, its control characters as \\u escapes', async () => {
    const directory = await refusingDirectory('busy\u001b]0;owned\u0007\u001b[2J\rrewritten')
    const dir = tempDir()
    try {
      const configFile = join(dir, 'gatehouse.yaml')
      writeFileSync(configFile, stringify({ ldap: {
        servers: [directory.url], bind_dn: 'cn=gatehouse,dc=example,dc=test', bind_password: 'secret',
        user_search: { base: 'ou=people,dc=example,dc=test', filter: '(uid={username})' }, timeouts: { connect_seconds: 2, lookup_seconds: 3 },
      } }))
      const { code, stdout, stderr } = await runCli(['ldap', 'test', '--config', configFile, '--user', 'alice'])
      assert.equal(code, 1, stderr)
      assert.equal(stdout, '')
      assert.ok(stderr.includes('busy\\u001b]0;owned\\u0007\\u001b[2J\\u000drewritten'), stderr)
      assert.doesNotMatch(stderr, /[\u0000-\u0009\u000b-\u001f\u007f]/)
    } finally {
      await directory.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('gatehouse ldap forget-entries', () => {
  const dir = tempDir()
  after(() => rmSync(dir, { recursive: true, force: true }))
  const forget = (...names: string[]) => runCli(['ldap', 'forget-entries', ...names, '--data-dir', dir])

  it('forgets which entries the named accounts, or all, were made for, so their next logins take the entry holding their name', async () => {
    const store = await openStore({ dataDir: dir })
    const ids: number[] = []
    for (const username of ['alice', 'bob', 'carol']) {
      const user = await store.users.create({ username, source: 'ldap', external: true })
      await store.ldapEntries.claim(user.id, `entry-of-${username}`)
      ids.push(user.id)
    }
    await store.close()

    const named = await forget('alice', 'bob')
    assert.equal(named.code, 0, named.stderr)
    assert.equal(named.stdout, 'forgot the directory entries of 2 accounts\n')
    const unknown = await forget('nobody')
    assert.notEqual(unknown.code, 0)
    assert.match(unknown.stderr, /no such user: nobody/)
    const all = await forget()
    assert.equal(all.stdout, 'forgot the directory entries of 1 account\n')

    const reopened = await openStore({ dataDir: dir })
    try {
      assert.deepEqual(await reopened.ldapEntries.entriesOf(ids), new Map())
    } finally {
      await reopened.close()
    }
  })

  it('writes what it forgot to the audit trail, as the command line', async () => {
    const store = await openStore({ dataDir: dir })
    for (const username of ['dave', 'erin']) {
      const user = await store.users.findByUsername(username) ?? await store.users.create({ username, source: 'ldap', external: true })
      await store.ldapEntries.claim(user.id, `entry-of-${username}`)
    }
    const dave = (await store.users.findByUsername('dave'))!
    const before = await store.audit.count()
    await store.close()

    assert.equal((await forget('dave')).code, 0)
    assert.equal((await forget()).stdout, 'forgot the directory entries of 1 account\n')
    assert.equal((await forget()).stdout, 'forgot the directory entries of 0 accounts\n')

    const reopened = await openStore({ dataDir: dir })
    try {
      const { count, entries } = await reopened.audit.list({ offset: 0, limit: 10 })
      assert.equal(count - before, 2, 'nothing forgotten, nothing recorded')
      const [named, all] = entries.slice(-2)
      assert.equal(named!.operation, 'update')
      assert.equal(named!.contentType, 'user')
      assert.equal(named!.objectId, String(dave.id))
      assert.equal(named!.objectName, 'dave')
      assert.equal(named!.authMethod, 'cli')
      assert.deepEqual(named!.changes, { added_fields: {}, removed_fields: {}, changed_fields: { ldap_entry: ['entry-of-dave', null] } })
      assert.equal(all!.objectName, 'all accounts')
      assert.equal(all!.authMethod, 'cli')
      assert.deepEqual(all!.changes, { added_fields: {}, removed_fields: {}, changed_fields: { ldap_entries: [1, 0] } })
    } finally {
      await reopened.close()
    }
  })
})
