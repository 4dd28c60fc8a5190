import assert from 'node:assert/strict'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { ConfigError, validateConfig } from '../../src/config/load.ts'
import type { LdapConfig } from '../../src/config/ldap.ts'
import { activeDirectoryRefusal, fillFilter, LdapDirectory, normalizeDn } from '../../src/directory/ldap.ts'
import { DirectoryUnavailable, GatehouseError } from '../../src/errors.ts'
import { EXPIRED_PASSWORD_LDIF, GROUPS, PASSWORDS, startDirectory, SUFFIX, type TestDirectory } from '../helpers/ldap.ts'

function ldapConfig(overrides: Record<string, unknown> = {}): LdapConfig {
  return validateConfig({ ldap: directory.config(overrides) }).ldap!
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof GatehouseError, String(error))
    return error.code
  }
  assert.fail('expected an error')
}

/** A port that accepts connections and never answers: a directory that hangs. */
async function silentServer(): Promise<{ url: string; open: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.resume()
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `ldap://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: () => sockets.size,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    }),
  }
}

/** Listens on 127.0.0.2 and passes every connection on to 127.0.0.1:`port`: the same server under another address. */
async function forwarder(port: string): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((inbound) => {
    const outbound = connect(Number(port), '127.0.0.1')
    for (const socket of [inbound, outbound]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.once('close', () => sockets.delete(socket))
    }
    inbound.pipe(outbound).pipe(inbound)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    }),
  }
}

let directory: TestDirectory

describe('LDAP directory lookups', () => {
  before(async () => {
    directory = await startDirectory()
  })
  after(() => directory.close())

  it('finds a user by search bind, maps their attributes and groups, and checks the password by binding as them', async () => {
    const ldap = new LdapDirectory(ldapConfig())
    const found = await ldap.lookup('alice', PASSWORDS.alice)
    assert.equal(found.passwordValid, true)
    assert.equal(found.server, directory.url)
    const { entryId, ...user } = found.user!
    assert.match(entryId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'its entryUUID')
    assert.deepEqual(user, {
      dn: `uid=alice,ou=people,${SUFFIX}`,
      username: 'alice',
      email: 'alice@example.test',
      firstName: 'Alice',
      lastName: 'Anderson',
      groupDns: [GROUPS.developers, GROUPS.admins],
      isSuperuser: true,
      isSystemAuditor: false,
      groups: ['developers'],
    })
    const bob = await ldap.lookup('bob', 'not-bobs-password')
    assert.equal(bob.passwordValid, false)
    assert.equal(bob.user?.isSuperuser, false)
    assert.equal(bob.user?.isSystemAuditor, true)
  })

  it('answers no user for a name the directory does not have, and leaves unmapped flags undefined', async () => {
    const ldap = new LdapDirectory(ldapConfig({ superuser_groups: [], auditor_groups: [], named_groups: {} }))
    assert.deepEqual(await ldap.lookup('nobody', 'whatever'), { server: directory.url, user: undefined, passwordValid: undefined, foundByUsername: true })
    const carol = await ldap.lookup('carol')
    assert.equal(carol.passwordValid, undefined)
    assert.equal(carol.user?.isSuperuser, undefined)
    assert.equal(carol.user?.isSystemAuditor, undefined)
    assert.deepEqual(carol.user?.groups, [])
  })

  it('finds nobody rather than pick one when several entries match', async () => {
    for (const filter of ['(|(uid={username})(uid=bob))', '(|(uid={username})(objectClass=inetOrgPerson))']) {
      const ldap = new LdapDirectory(ldapConfig({ user_search: { base: `ou=people,${SUFFIX}`, filter } }))
      assert.equal((await ldap.lookup('alice', PASSWORDS.alice)).user, undefined, filter)
    }
  })

  it('refuses filter metacharacters and empty passwords before talking to any server', async () => {
    // The server is unreachable: had anything been sent, the answer would be directory_unavailable.
    const ldap = new LdapDirectory(ldapConfig({ servers: ['ldap://127.0.0.1:1'] }))
    for (const username of ['*', 'alice)(uid=*', 'al*', 'a\\5c', '', 'x'.repeat(151), 'alice\0']) {
      assert.equal(await codeOf(ldap.lookup(username, 'password')), 'invalid', JSON.stringify(username))
    }
    // A NUL ends a C string: a server or proxy reading one would see the text before it, here nothing.
    for (const password of ['', ' ', '   ', '\t \n', '\0', ' \0password', '\0\0']) {
      assert.equal(await codeOf(ldap.lookup('alice', password)), 'invalid', JSON.stringify(password))
    }
    assert.equal(await codeOf(ldap.lookup('alice', 'password')), 'directory_unavailable')
  })

  it('says it has a name that several entries hold, which single sign-on must leave to the directory', async () => {
    const bob = `uid=bob,ou=people,${SUFFIX}`
    const ldap = new LdapDirectory(ldapConfig())
    await directory.replaceAttribute(bob, 'uid', ['bob', 'alice'])
    try {
      assert.equal((await ldap.lookup('alice')).user, undefined, 'no login picks one of them')
      assert.equal(await ldap.has('alice'), true)
      // The account check leaves an account that two entries list as it is, rather than compare one of them.
      assert.equal(await ldap.listedEntry('alice'), '', 'neither entry is taken for the account\'s')
    } finally {
      await directory.replaceAttribute(bob, 'uid', ['bob'])
    }
    assert.equal(await ldap.has('alice'), true)
    assert.equal(await ldap.has('nobody-of-that-name'), false)
  })

  it('makes any value of the identifier attribute an identifier the database holds: printable, at most 255 characters', async () => {
    const carol = `uid=carol,ou=people,${SUFFIX}`
    const ldap = new LdapDirectory(ldapConfig({ attributes: { uuid: 'description' } }))
    const entryIdOf = async () => (await ldap.lookup('carol')).user!.entryId
    try {
      await directory.replaceAttribute(carol, 'description', ['x'.repeat(300)])
      assert.match(await entryIdOf(), /^[0-9a-f]{64}$/, 'a long one by its SHA-256')
      await directory.replaceAttribute(carol, 'description', ['A\0B'])
      assert.equal(await entryIdOf(), '410042', 'one that is not printable in hexadecimal')
      await directory.replaceAttribute(carol, 'description', ['one', 'two'])
      assert.equal(await entryIdOf(), '', 'several values identify nothing')
    } finally {
      await directory.replaceAttribute(carol, 'description', [])
    }
    assert.equal(await entryIdOf(), '')
  })

  it('gives an entry whose username attribute has several values no username, rather than pick one', async () => {
    const carol = `uid=carol,ou=people,${SUFFIX}`
    const ldap = new LdapDirectory(ldapConfig())
    await directory.replaceAttribute(carol, 'uid', ['carol', 'carol-two'])
    try {
      // The directory keeps no order among values: the first one is not always the same, nor the name typed.
      for (const name of ['carol', 'carol-two']) {
        const found = await ldap.lookup(name, PASSWORDS.carol)
        assert.equal(found.user?.dn, carol, name)
        assert.equal(found.user?.username, '', name)
      }
    } finally {
      await directory.replaceAttribute(carol, 'uid', ['carol'])
    }
    assert.equal((await ldap.lookup('carol', PASSWORDS.carol)).user?.username, 'carol')
  })

  it('escapes every value put into a filter (RFC 4515)', () => {
    assert.equal(fillFilter('(uid={username})', { username: 'a*b(c)\\d\0' }), '(uid=a\\2ab\\28c\\29\\5cd\\00)')
    assert.equal(fillFilter('(&(member={dn})(memberUid={username}))', { dn: 'cn=x\\,y,dc=t', username: 'u' }), '(&(member=cn=x\\5c,y,dc=t)(memberUid=u))')
    // The template's own escaped UTF-8 is sent as the characters it spells; its ASCII escapes stay escapes.
    assert.equal(fillFilter('(&(uid={username})(sn=Lu\\c4\\8di\\C4\\87\\2a))', { username: 'u' }), '(&(uid=u)(sn=Lučić\\2a))')
  })

  it('compares group DNs without regard to case or spaces after commas', () => {
    assert.equal(normalizeDn('CN=Admins, OU=Groups,dc=Example,dc=Test'), normalizeDn(GROUPS.admins.replace('gatehouse-', '')))
    // An escaped comma or space is part of the value: `a, b` and `a,b` are two names; `\\2C` is the same comma as `\\,`.
    assert.notEqual(normalizeDn('cn=a\\, b,dc=t'), normalizeDn('cn=a\\,b,dc=t'))
    assert.notEqual(normalizeDn('cn=a\\ ,dc=t'), normalizeDn('cn=a\\,dc=t'))
    assert.equal(normalizeDn('cn=a\\2C b, dc=t'), normalizeDn('CN=A\\, B,DC=T'))
    assert.equal(normalizeDn('cn=caf\\C3\\A9,dc=t'), normalizeDn('cn=CAFÉ,dc=t'))
  })

  it('tries the next server when one cannot be reached', async () => {
    const ldap = new LdapDirectory(ldapConfig({ servers: ['ldap://127.0.0.1:1', directory.url] }))
    const found = await ldap.lookup('carol', PASSWORDS.carol)
    assert.equal(found.server, directory.url)
    assert.equal(found.passwordValid, true)
  })

  it('passes a server that takes connections but answers nothing for the next one within connect_seconds, login after login', async () => {
    const silent = await silentServer()
    try {
      for (const overrides of [{}, { start_tls: true, tls: { ca_file: directory.caFile } }]) {
        const ldap = new LdapDirectory(ldapConfig({ ...overrides, servers: [silent.url, directory.url], timeouts: { connect_seconds: 1, lookup_seconds: 4 } }))
        // One after another, so that each is the lookup that tries the silent server again.
        for (const name of ['alice', 'bob', 'carol'] as const) {
          const started = Date.now()
          const found = await ldap.lookup(name, PASSWORDS[name])
          const elapsed = Date.now() - started
          assert.deepEqual([found.server, found.passwordValid], [directory.url, true], `${name} ${JSON.stringify(overrides)}`)
          assert.ok(elapsed >= 900 && elapsed < 2500, `${name} ${JSON.stringify(overrides)} took ${elapsed} ms`)
        }
      }
      const closing = Date.now()
      while (silent.open() > 0 && Date.now() - closing < 2000) await new Promise((resolve) => setTimeout(resolve, 20))
      assert.equal(silent.open(), 0, 'the connections to the silent server are closed')
    } finally {
      await silent.close()
    }
  })

  it('gives a StartTLS that is never answered connect_seconds, even on the last server', async () => {
    const silent = await silentServer()
    try {
      const ldap = new LdapDirectory(ldapConfig({ servers: [silent.url], start_tls: true, timeouts: { connect_seconds: 1, lookup_seconds: 4 } }))
      const started = Date.now()
      await assert.rejects(ldap.lookup('alice', PASSWORDS.alice), (error: unknown) => {
        assert.ok(error instanceof DirectoryUnavailable)
        assert.match(String((error.cause as Error).message), /did not answer StartTLS or the service bind within ldap\.timeouts\.connect_seconds/)
        return true
      })
      const elapsed = Date.now() - started
      assert.ok(elapsed >= 900 && elapsed < 2500, `took ${elapsed} ms`)
    } finally {
      await silent.close()
    }
  })

  it('speaks StartTLS and LDAPS, verifying the certificate against the configured CA', async () => {
    const startTls = new LdapDirectory(ldapConfig({ start_tls: true, tls: { ca_file: directory.caFile } }))
    assert.equal((await startTls.lookup('alice', PASSWORDS.alice)).passwordValid, true)
    const ldaps = new LdapDirectory(ldapConfig({ servers: [directory.ldapsUrl], tls: { ca_file: directory.caFile } }))
    assert.equal((await ldaps.lookup('alice', PASSWORDS.alice)).passwordValid, true)
  })

  it('fails closed when the certificate does not verify, and never falls back to plain text', async () => {
    for (const overrides of [{ start_tls: true }, { servers: [directory.ldapsUrl] }]) {
      const ldap = new LdapDirectory(ldapConfig(overrides))
      await assert.rejects(ldap.lookup('alice', PASSWORDS.alice), (error: unknown) => {
        assert.ok(error instanceof DirectoryUnavailable)
        assert.match(String((error.cause as Error).message), /certificate/i)
        return true
      })
    }
  })

  it('refuses a certificate the CA signed for another host name, over LDAPS and StartTLS', async () => {
    // 127.0.0.2 reaches the same slapd, whose certificate names only 127.0.0.1 and localhost.
    const forwarders = await Promise.all([directory.url, directory.ldapsUrl].map((url) => forwarder(new URL(url).port)))
    try {
      const [plain, secure] = forwarders.map((f) => f.port)
      for (const overrides of [{ servers: [`ldap://127.0.0.2:${plain}`], start_tls: true }, { servers: [`ldaps://127.0.0.2:${secure}`] }]) {
        const ldap = new LdapDirectory(ldapConfig({ ...overrides, tls: { ca_file: directory.caFile } }))
        await assert.rejects(ldap.lookup('alice', PASSWORDS.alice), (error: unknown) => {
          assert.ok(error instanceof DirectoryUnavailable)
          assert.match(String((error.cause as Error).message), /127\.0\.0\.2.*not in the cert/i)
          return true
        }, overrides.servers[0])
      }
      const named = new LdapDirectory(ldapConfig({ servers: [`ldaps://localhost:${new URL(directory.ldapsUrl).port}`], tls: { ca_file: directory.caFile } }))
      assert.equal((await named.lookup('alice', PASSWORDS.alice)).passwordValid, true)
    } finally {
      for (const f of forwarders) await f.close()
    }
  })

  it('reports a refused service account as the directory being unavailable, with the reason for the operator', async () => {
    const ldap = new LdapDirectory(ldapConfig({ bind_password: 'wrong' }))
    await assert.rejects(ldap.lookup('alice', PASSWORDS.alice), (error: unknown) => {
      assert.ok(error instanceof DirectoryUnavailable)
      assert.equal(error.status, 503)
      assert.match(String((error.cause as Error).message), /service account/)
      return true
    })
  })

  it('reads the service password from the environment, and refuses to start without it', () => {
    const config = ldapConfig({ bind_password: undefined, bind_password_env: 'TEST_LDAP_BIND_PASSWORD' })
    assert.throws(() => new LdapDirectory(config, {}), ConfigError)
    assert.ok(new LdapDirectory(config, { TEST_LDAP_BIND_PASSWORD: 'x' }))
  })

  it('gives up on a directory that accepts connections but never answers, within the lookup timeout', async () => {
    const silent = await silentServer()
    try {
      const ldap = new LdapDirectory(ldapConfig({ servers: [silent.url], timeouts: { connect_seconds: 1, lookup_seconds: 1 } }))
      const started = Date.now()
      assert.equal(await codeOf(ldap.lookup('alice', PASSWORDS.alice)), 'directory_unavailable')
      const elapsed = Date.now() - started
      assert.ok(elapsed >= 900 && elapsed < 2500, `took ${elapsed} ms`)
    } finally {
      await silent.close()
    }
  })

  it('keeps at most max_connections open to a hanging directory, however many logins wait, and closes them all', async () => {
    const silent = await silentServer()
    try {
      const ldap = new LdapDirectory(ldapConfig({ servers: [silent.url], max_connections: 2, timeouts: { connect_seconds: 1, lookup_seconds: 1 } }))
      for (const logins of [12, 4]) {
        const started = Date.now()
        let answered = false
        const answers = Promise.all(Array.from({ length: logins }, () => codeOf(ldap.lookup('alice', PASSWORDS.alice)))).finally(() => (answered = true))
        // While they wait, however long that takes the machine: two on the directory, the others for their turn.
        let most = 0
        while (!answered) {
          most = Math.max(most, silent.open())
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
        // Once the first found it silent, one lookup at a time tries it again; the others fail at once.
        assert.equal(most, logins === 12 ? 2 : 1, `${logins} logins`)
        assert.deepEqual(new Set(await answers), new Set(['directory_unavailable']))
        const elapsed = Date.now() - started
        assert.ok(elapsed < 2500, `took ${elapsed} ms`)
        const closing = Date.now()
        while (silent.open() > 0 && Date.now() - closing < 2000) await new Promise((resolve) => setTimeout(resolve, 20))
        assert.equal(silent.open(), 0)
      }
    } finally {
      await silent.close()
    }
  })

  it('lets logins beyond max_connections wait their turn rather than fail', async () => {
    const ldap = new LdapDirectory(ldapConfig({ max_connections: 2 }))
    const names = ['alice', 'bob', 'carol', 'dave'] as const
    const found = await Promise.all(names.flatMap((name) => [1, 2].map(() => ldap.lookup(name, PASSWORDS[name]))))
    assert.deepEqual(found.map((lookup) => lookup.passwordValid), found.map(() => true))
  })
})

/** LDIF of `count` groups with carol as their member. */
function carolsGroups(count: number): string {
  const carol = `uid=carol,ou=people,${SUFFIX}`
  return Array.from({ length: count }, (_, i) => `dn: cn=many-${i},ou=groups,${SUFFIX}\nobjectClass: groupOfNames\ncn: many-${i}\nmember: ${carol}\n`).join('\n')
}

/** BER's tag, definite length and content (RFC 4511 §5.1), the length in the long form when it needs one. */
function ber(tag: number, content: Buffer): Buffer {
  const length = content.length < 0x80 ? Buffer.from([content.length]) : Buffer.from([0x84, ...[24, 16, 8, 0].map((shift) => (content.length >>> shift) & 0xff)])
  return Buffer.concat([Buffer.from([tag]), length, content])
}

/** The message id element (INTEGER) of the first LDAP message in `buffer`, or undefined until it has arrived. */
function messageIdOf(buffer: Buffer): Buffer | undefined {
  if (buffer.length < 2) return undefined
  const start = buffer[1]! < 0x80 ? 2 : 2 + (buffer[1]! & 0x7f)
  if (buffer.length < start + 2) return undefined
  const end = start + 2 + buffer[start + 1]!
  return buffer.length < end ? undefined : buffer.subarray(start, end)
}

/**
 * A directory that takes the service account's bind and answers the search that follows without end: `huge`, one
 * entry announcing a gigabyte; `endless`, entries of 16 kB each. It sends as fast as it is read, up to 256 MB, and
 * says how much it sent.
 */
async function floodingServer(kind: 'huge' | 'endless'): Promise<{ url: string; sent: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  let sent = 0
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => sockets.delete(socket))
    let pending = Buffer.alloc(0)
    let answered = 0
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      const id = messageIdOf(pending)
      if (!id) return
      pending = Buffer.alloc(0)
      if (answered++ === 0) return void socket.write(ber(0x30, Buffer.concat([id, ber(0x61, Buffer.from([0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00]))])))
      const entry = ber(0x30, Buffer.concat([id, ber(0x64, Buffer.concat([ber(0x04, Buffer.from('cn=x')), ber(0x30, ber(0x30, Buffer.concat([ber(0x04, Buffer.from('cn')), ber(0x31, ber(0x04, Buffer.alloc(16_000, 0x61)))])))]))]))
      const first = kind === 'huge' ? Buffer.concat([Buffer.from([0x30, 0x84, 0x40, 0x00, 0x00, 0x00]), id, Buffer.from([0x64, 0x84, 0x3f, 0xff, 0xff, 0x00])]) : entry
      const next = kind === 'huge' ? Buffer.alloc(16_000) : entry
      const flood = (): void => {
        let chunk = first
        while (!socket.destroyed && sent < 256 * 1024 * 1024) {
          sent += chunk.length
          if (!socket.write(chunk)) return void socket.once('drain', flood)
          chunk = next
        }
      }
      flood()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `ldap://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent: () => sent,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    }),
  }
}

describe('LDAP directory answers that could be large', () => {
  let large: TestDirectory
  before(async () => {
    // A directory without a size limit of its own, where carol is in more groups than a login reads.
    large = await startDirectory({ sizeLimit: 'unlimited', moreEntries: carolsGroups(1001) })
  })
  after(() => large?.close())

  it('refuses a login whose groups pass the directory\'s own size limit, rather than map the part it sent', async () => {
    const limited = await startDirectory({ sizeLimit: 500, moreEntries: carolsGroups(600) })
    try {
      const ldap = new LdapDirectory(validateConfig({ ldap: limited.config() }).ldap!)
      assert.equal(await codeOf(ldap.lookup('carol', PASSWORDS.carol)), 'directory_unavailable')
      assert.equal((await ldap.lookup('alice', PASSWORDS.alice)).passwordValid, true)
    } finally {
      await limited.close()
    }
  })

  it('refuses a login whose groups are more than it reads, rather than map a part of them', async () => {
    const ldap = new LdapDirectory(validateConfig({ ldap: large.config() }).ldap!)
    await assert.rejects(ldap.lookup('carol', PASSWORDS.carol), (error: unknown) => {
      assert.ok(error instanceof DirectoryUnavailable)
      assert.match(String((error.cause as Error).message), /more than 1000 groups/)
      return true
    })
    const alice = await ldap.lookup('alice', PASSWORDS.alice)
    assert.equal(alice.passwordValid, true)
    assert.deepEqual(alice.user?.groups, ['developers'])
  })

  for (const kind of ['huge', 'endless'] as const) {
    it(`stops reading a directory that answers a search with ${kind === 'huge' ? 'one message announcing a gigabyte' : 'entries without end'}, as one that did not answer`, async () => {
      const flooding = await floodingServer(kind)
      try {
        const ldap = new LdapDirectory(validateConfig({ ldap: large.config({ servers: [flooding.url], timeouts: { lookup_seconds: 60 } }) }).ldap!)
        await assert.rejects(ldap.lookup('alice', PASSWORDS.alice), DirectoryUnavailable)
        assert.ok(flooding.sent() < 32 * 1024 * 1024, `the directory could send ${flooding.sent()} bytes`)
      } finally {
        await flooding.close()
      }
    })
  }
})

/** Two groups whose names differ only by a space after an escaped comma: `ops, admins` and `ops,admins`. */
const COMMA_GROUPS = `dn: cn=ops\\, admins,ou=groups,${SUFFIX}
objectClass: groupOfNames
cn: ops, admins
member: uid=carol,ou=people,${SUFFIX}

dn: cn=ops\\,admins,ou=groups,${SUFFIX}
objectClass: groupOfNames
cn: ops,admins
member: uid=bob,ou=people,${SUFFIX}

dn:: ${Buffer.from(`cn=Équipe,ou=groups,${SUFFIX}`).toString('base64')}
objectClass: groupOfNames
cn:: ${Buffer.from('Équipe').toString('base64')}
member: uid=carol,ou=people,${SUFFIX}
`

describe('LDAP group DNs with escaped characters', () => {
  let commas: TestDirectory
  before(async () => {
    commas = await startDirectory({ moreEntries: COMMA_GROUPS })
  })
  after(() => commas?.close())

  it('gives a mapped group\'s roles to its members only, not to those of a group whose name differs by an escaped comma\'s space', async () => {
    const ldap = new LdapDirectory(validateConfig({
      ldap: commas.config({
        superuser_groups: [`cn=ops\\, admins,ou=groups,${SUFFIX}`],
        // The same group, its comma escaped in hexadecimal and its attribute type in capitals.
        named_groups: { ops: [`CN=ops\\2C admins, ou=groups,${SUFFIX}`] },
      }),
    }).ldap!)
    const bob = await ldap.lookup('bob', PASSWORDS.bob)
    assert.equal(bob.passwordValid, true)
    assert.equal(bob.user?.isSuperuser, false, `bob is in ${bob.user?.groupDns.join(' | ')}`)
    assert.deepEqual(bob.user?.groups, [])
    const carol = await ldap.lookup('carol', PASSWORDS.carol)
    assert.equal(carol.user?.isSuperuser, true, `carol is in ${carol.user?.groupDns.join(' | ')}`)
    assert.deepEqual(carol.user?.groups, ['ops'])
  })

  it('matches a group whose letters beyond ASCII a configuration escapes in hexadecimal, whatever their case', async () => {
    const ldap = new LdapDirectory(validateConfig({
      ldap: commas.config({
        // OpenLDAP answers `cn=Équipe`: here the É is escaped as its UTF-8 bytes, and the é in lower case.
        superuser_groups: [`cn=\\C3\\89quipe,ou=groups,${SUFFIX}`],
        named_groups: { equipe: [`cn=\\c3\\a9quipe,ou=groups,${SUFFIX}`] },
      }),
    }).ldap!)
    const carol = await ldap.lookup('carol', PASSWORDS.carol)
    assert.equal(carol.user?.isSuperuser, true, `carol is in ${carol.user?.groupDns.join(' | ')}`)
    assert.deepEqual(carol.user?.groups, ['equipe'])
  })

  it('finds what a filter names in escaped UTF-8 (RFC 4515), as it finds the characters written as they are', async () => {
    for (const equipe of ['\\C3\\89quipe', '\\c3\\89QUIPE', 'Équipe', '\\c3\\89q*']) {
      const ldap = new LdapDirectory(validateConfig({
        ldap: commas.config({ group_search: { base: `ou=groups,${SUFFIX}`, filter: `(&(member={dn})(cn=${equipe}))` } }),
      }).ldap!)
      const carol = await ldap.lookup('carol', PASSWORDS.carol)
      assert.deepEqual(carol.user?.groupDns, [`cn=Équipe,ou=groups,${SUFFIX}`], equipe)
    }
    const users = new LdapDirectory(validateConfig({
      ldap: commas.config({ user_search: { base: `ou=people,${SUFFIX}`, filter: '(&(uid={username})(!(cn=\\c3\\89quipe\\2a)))' } }),
    }).ldap!)
    assert.equal((await users.lookup('carol', PASSWORDS.carol)).passwordValid, true)
  })
})

describe('LDAP password policy answers', () => {
  let policed: TestDirectory
  before(async () => {
    policed = await startDirectory({ passwordPolicy: true, moreEntries: EXPIRED_PASSWORD_LDIF })
  })
  after(() => policed?.close())

  it('refuses a password the directory says must be changed first, and says so', async () => {
    const ldap = new LdapDirectory(validateConfig({ ldap: policed.config() }).ldap!)
    await policed.replaceAttribute(`uid=carol,ou=people,${SUFFIX}`, 'pwdReset', ['TRUE'])
    assert.equal(await codeOf(ldap.lookup('carol', PASSWORDS.carol)), 'password_change_required')
    assert.equal((await ldap.lookup('carol', 'not-carols-password')).passwordValid, false)
    assert.equal((await ldap.lookup('alice', PASSWORDS.alice)).passwordValid, true)
  })

  it('says an expired password has expired only to the right password', async () => {
    const ldap = new LdapDirectory(validateConfig({ ldap: policed.config() }).ldap!)
    assert.equal(await codeOf(ldap.lookup('erin', PASSWORDS.erin!)), 'password_expired')
    assert.equal((await ldap.lookup('erin', 'not-erins-password')).passwordValid, false)
    assert.equal((await ldap.lookup('alice', PASSWORDS.alice)).passwordValid, true)
  })
})

describe('Active Directory\'s reasons for refusing a bind', () => {
  /** Active Directory's diagnostic message for a refused bind, as ldapts puts it in the error. */
  const refusal = (data: string) => activeDirectoryRefusal(`80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data ${data}, v4563\u0000 Code: 0x31`)?.code

  it('names the states it gives only for the right password', () => {
    assert.equal(refusal('532'), 'password_expired')
    assert.equal(refusal('773'), 'password_change_required')
    assert.equal(refusal('533'), 'account_disabled')
    assert.equal(refusal('701'), 'account_expired')
  })

  it('leaves a locked account, a wrong password and an unknown user a plain wrong password', () => {
    // Active Directory answers 775 whatever the password: saying so would tell a guesser.
    for (const data of ['775', '52e', '525', '530', '531']) assert.equal(refusal(data), undefined, data)
    assert.equal(activeDirectoryRefusal('Invalid Credentials Code: 0x31'), undefined)
  })
})

describe('LDAP configuration', () => {
  const base = {
    servers: ['ldap://127.0.0.1:389'],
    bind_dn: 'cn=svc,dc=example,dc=test',
    bind_password: 'x',
    user_search: { base: 'ou=people,dc=example,dc=test' },
  }
  const problems = (ldap: Record<string, unknown>): string[] => {
    try {
      validateConfig({ ldap })
      return []
    } catch (error) {
      assert.ok(error instanceof ConfigError)
      return error.problems
    }
  }

  it('has working defaults for an inetOrgPerson directory, local passwords first', () => {
    const config = validateConfig({ ldap: base })
    assert.equal(config.ldap!.user_search.filter, '(uid={username})')
    assert.deepEqual(config.ldap!.attributes, { username: 'uid', email: 'mail', first_name: 'givenName', last_name: 'sn', uuid: 'entryUUID' })
    assert.deepEqual(config.auth.password_sources, ['local', 'ldap'])
    assert.equal(validateConfig({}).ldap, undefined)
  })

  it('reports every mistake at once', () => {
    const found = problems({
      ...base,
      servers: ['http://x', 'ldaps://ok:636'],
      start_tls: true,
      bind_password_env: 'ALSO',
      user_search: { base: 'ou=people,dc=example,dc=test', filter: '(uid=alice)' },
      superuser_groups: ['cn=admins,dc=example,dc=test'],
    })
    for (const path of ['ldap.servers.0', 'ldap.user_search.filter', 'ldap.bind_password', 'ldap.group_search', 'ldap.start_tls']) {
      assert.ok(found.some((p) => p.startsWith(path + ':')), `${path} in ${found.join(' | ')}`)
    }
    assert.ok(problems({ ...base, user_search: { base: 'ou=p,dc=t', filter: '(uid={username}' } }).some((p) => p.includes('not a valid LDAP filter')))
    // Escaped bytes that are no UTF-8 would be sent as other bytes than those written.
    assert.ok(problems({ ...base, user_search: { base: 'ou=p,dc=t', filter: '(&(uid={username})(sn=\\c4))' } }).some((p) => p.startsWith('ldap.user_search.filter: escapes bytes that are not UTF-8')))
    assert.deepEqual(problems({ ...base, user_search: { base: 'ou=p,dc=t', filter: '(&(uid={username})(sn=Lu\\c4\\8di\\c4\\87))' } }), [])
  })

  it('keeps local accounts among the password sources', () => {
    assert.throws(() => validateConfig({ auth: { password_sources: ['ldap'] } }), ConfigError)
    assert.deepEqual(validateConfig({ auth: { password_sources: ['ldap', 'local'] } }).auth.password_sources, ['ldap', 'local'])
  })
})
