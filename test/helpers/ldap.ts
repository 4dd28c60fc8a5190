import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { Attribute, Change, Client } from 'ldapts'
import { selfSignedCertificate } from './certificates.ts'
import { tempDir } from './gateway.ts'
import { freePort } from './free-port.ts'

/**
 * A real OpenLDAP server (Debian's `slapd`) for one test file: its own config, database and self-signed
 * certificate in a temporary directory, listening on loopback for plain LDAP (StartTLS offered) and LDAPS,
 * loaded with test/fixtures/directory.ldif. No system-wide slapd service is used.
 */

export const SUFFIX = 'dc=example,dc=test'
export const SERVICE_DN = `cn=gatehouse,ou=services,${SUFFIX}`
export const SERVICE_PASSWORD = 'service-bind-password'
const ROOT_DN = `cn=root,${SUFFIX}`
const ROOT_PASSWORD = 'root-password'
export const PASSWORDS: Record<string, string> = {
  alice: 'alice-directory-password',
  bob: 'bob-directory-password',
  carol: 'carol-directory-password',
  erin: 'erin-directory-password',
  dave: 'dave-directory-password',
  admin: 'directory-admin-password',
}
export const GROUPS = {
  admins: `cn=gatehouse-admins,ou=groups,${SUFFIX}`,
  auditors: `cn=auditors,ou=groups,${SUFFIX}`,
  developers: `cn=developers,ou=groups,${SUFFIX}`,
}

const SLAPD = process.env.SLAPD ?? '/usr/sbin/slapd'
const SLAPADD = process.env.SLAPADD ?? '/usr/sbin/slapadd'
const SCHEMA_DIR = '/etc/ldap/schema'
const fixture = new URL('../fixtures/directory.ldif', import.meta.url).pathname
/**
 * slapd runs under a small shell that ends it once the shell's standard input closes: when the test stops it,
 * and also when the test process dies without cleaning up (a timeout's SIGKILL included).
 */
const WATCHDOG = [
  'exec 3<&0',
  '"$0" "$@" &',
  'pid=$!',
  'echo "slapd-pid $pid"',
  '(read -r _ <&3; kill -CONT $pid; kill $pid) >/dev/null 2>&1 &',
  'wait $pid',
].join('\n')

export interface TestDirectory {
  /** ldap://127.0.0.1:PORT (StartTLS available) */
  url: string
  /** ldaps://127.0.0.1:PORT */
  ldapsUrl: string
  /** PEM file of the self-signed certificate slapd presents (for tls.ca_file). */
  caFile: string
  dir: string
  /** The `ldap` config section pointing at this directory, with the fixture's groups mapped. */
  config(overrides?: Record<string, unknown>): Record<string, unknown>
  /** Replaces a group's members, as a directory administrator would. */
  setMembers(groupDn: string, memberDns: string[]): Promise<void>
  /** Replaces an attribute's values of an entry (none: removes the attribute), as a directory administrator would. */
  replaceAttribute(dn: string, type: string, values: string[]): Promise<void>
  /** Deletes an entry, as a directory administrator would. */
  deleteEntry(dn: string): Promise<void>
  /** Adds a person's entry under ou=people (a new entryUUID), as a directory administrator would. */
  addPerson(uid: string, password: string): Promise<void>
  /** Pauses the server process (connections are accepted by the kernel, nothing answers): a "slow" directory. */
  pause(): void
  resume(): void
  stop(): Promise<void>
  start(): Promise<void>
  close(): Promise<void>
  /**
   * How many searches slapd has answered whose filter contains `text` (`uid=alice`), since it last started: only
   * with `logSearches` (slapd then logs each operation).
   */
  searches(text: string): number
}

export interface DirectoryOptions {
  logSearches?: boolean
  /** LDIF loaded after the fixture (many entries load much faster so than added one by one). */
  moreEntries?: string
  /** slapd's own limit on the entries one search returns (its default: 500). */
  sizeLimit?: number | 'unlimited'
  /**
   * The password policy overlay (ppolicy), with a default policy under which a password an administrator set
   * (`pwdReset: TRUE` on the entry) must be changed before anything else is done with it.
   */
  passwordPolicy?: boolean
}

const PASSWORD_POLICY_DN = `cn=password-policy,ou=services,${SUFFIX}`
const PASSWORD_POLICY_LDIF = `dn: ${PASSWORD_POLICY_DN}
objectClass: pwdPolicy
objectClass: device
cn: password-policy
pwdAttribute: userPassword
pwdMustChange: TRUE
`

/**
 * For `passwordPolicy`: a policy under which passwords expire after a day, with no grace logins, and `erin`, whose
 * password it covers and who last changed it years ago.
 */
export const EXPIRED_PASSWORD_LDIF = `dn: cn=expiring-policy,ou=services,${SUFFIX}
objectClass: pwdPolicy
objectClass: device
cn: expiring-policy
pwdAttribute: userPassword
pwdMaxAge: 86400
pwdGraceAuthNLimit: 0

dn: uid=erin,ou=people,${SUFFIX}
objectClass: inetOrgPerson
uid: erin
cn: Erin Evans
sn: Evans
mail: erin@example.test
userPassword: erin-directory-password
pwdPolicySubentry: cn=expiring-policy,ou=services,${SUFFIX}
pwdChangedTime: 20200101000000Z
`

export async function startDirectory(options: DirectoryOptions = {}): Promise<TestDirectory> {
  const dir = tempDir('gatehouse-slapd-')
  const dataDir = join(dir, 'data')
  mkdirSync(dataDir)
  const { cert: certFile, key: keyFile } = selfSignedCertificate(dir, '127.0.0.1', 'rsa:2048')
  const confFile = join(dir, 'slapd.conf')
  writeFileSync(confFile, slapdConf(dir, dataDir, certFile, keyFile, options))
  execFileSync(SLAPADD, ['-f', confFile, '-l', fixture], { stdio: 'pipe' })
  const moreEntries = [options.passwordPolicy ? PASSWORD_POLICY_LDIF : '', options.moreEntries ?? ''].filter(Boolean).join('\n')
  if (moreEntries) execFileSync(SLAPADD, ['-f', confFile], { input: moreEntries, stdio: ['pipe', 'pipe', 'pipe'] })

  const [port, ldapsPort] = [await freePort(), await freePort()]
  const url = `ldap://127.0.0.1:${port}`
  const ldapsUrl = `ldaps://127.0.0.1:${ldapsPort}`
  let child: ChildProcess | undefined
  let output = ''
  // Returns once slapd is stopped (SIGSTOP) or running again (SIGCONT), as /proc tells: a test that pauses the
  // directory and at once asks it something must not be answered by a slapd the signal has not reached yet.
  const signalSlapd = (signal: 'SIGSTOP' | 'SIGCONT') => {
    const pid = Number(/slapd-pid (\d+)/.exec(output)?.[1])
    if (!pid || child?.exitCode !== null) {
      if (signal === 'SIGCONT') return
      throw new Error(`slapd is not running, so it cannot be paused:\n${output}`)
    }
    process.kill(pid, signal)
    const stopped = () => / T /.test(readFileSync(`/proc/${pid}/stat`, 'latin1').replace(/^.*\)/s, ' '))
    const sleeper = new Int32Array(new SharedArrayBuffer(4))
    for (let waited = 0; stopped() !== (signal === 'SIGSTOP'); waited++) {
      if (waited >= 2000) throw new Error(`slapd did not take ${signal} within 2 s`)
      Atomics.wait(sleeper, 0, 0, 1)
    }
  }

  const start = async () => {
    output = ''
    child = spawn('/bin/sh', ['-c', WATCHDOG, SLAPD, '-f', confFile, '-h', `${url}/ ${ldapsUrl}/`, '-d', options.logSearches ? 'stats' : '0'], { stdio: ['pipe', 'pipe', 'pipe'] })
    child.stdout!.on('data', (d) => (output += d))
    child.stderr!.on('data', (d) => (output += d))
    const started = Date.now()
    while (!(await canConnect(port))) {
      if (child.exitCode !== null) throw new Error(`slapd exited with ${child.exitCode}:\n${output}`)
      if (Date.now() - started > 15_000) throw new Error(`slapd did not start listening:\n${output}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  const stop = () => new Promise<void>((resolve) => {
    const running = child
    if (!running || running.exitCode !== null || running.signalCode !== null) return resolve()
    running.once('exit', () => resolve())
    running.stdin!.end()
  })

  const asRoot = async (change: (client: Client) => Promise<void>) => {
    const client = new Client({ url })
    try {
      await client.bind(ROOT_DN, ROOT_PASSWORD)
      await change(client)
    } finally {
      await client.unbind()
    }
  }

  await start()
  return {
    url,
    ldapsUrl,
    caFile: certFile,
    dir,
    config: (overrides = {}) => ({
      servers: [url],
      bind_dn: SERVICE_DN,
      bind_password: SERVICE_PASSWORD,
      user_search: { base: `ou=people,${SUFFIX}`, filter: '(uid={username})' },
      group_search: { base: `ou=groups,${SUFFIX}`, filter: '(&(objectClass=groupOfNames)(member={dn}))' },
      superuser_groups: [GROUPS.admins],
      auditor_groups: [GROUPS.auditors],
      named_groups: { developers: [GROUPS.developers] },
      timeouts: { connect_seconds: 2, lookup_seconds: 3 },
      ...overrides,
    }),
    setMembers: (groupDn, memberDns) => asRoot((client) => client.modify(groupDn, new Change({ operation: 'replace', modification: new Attribute({ type: 'member', values: memberDns }) }))),
    replaceAttribute: (dn, type, values) => asRoot((client) => client.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type, values }) }))),
    deleteEntry: (dn) => asRoot((client) => client.del(dn)),
    addPerson: (uid, password) => asRoot((client) => client.add(`uid=${uid},ou=people,${SUFFIX}`, { objectClass: 'inetOrgPerson', uid, cn: `New ${uid}`, sn: 'New', userPassword: password })),
    pause: () => signalSlapd('SIGSTOP'),
    resume: () => signalSlapd('SIGCONT'),
    stop,
    start,
    async close() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
    searches: (text) => output.split('\n').filter((line) => / SRCH base=/.test(line) && line.includes(text)).length,
  }
}


function slapdConf(dir: string, dataDir: string, certFile: string, keyFile: string, { sizeLimit, passwordPolicy }: DirectoryOptions): string {
  return `
include ${SCHEMA_DIR}/core.schema
include ${SCHEMA_DIR}/cosine.schema
include ${SCHEMA_DIR}/inetorgperson.schema
include ${SCHEMA_DIR}/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
${passwordPolicy ? 'moduleload ppolicy' : ''}
pidfile ${join(dir, 'slapd.pid')}
argsfile ${join(dir, 'slapd.args')}
TLSCertificateFile ${certFile}
TLSCertificateKeyFile ${keyFile}
${sizeLimit === undefined ? '' : `sizelimit ${sizeLimit}`}

database mdb
maxsize 16777216
suffix "${SUFFIX}"
rootdn "${ROOT_DN}"
rootpw ${ROOT_PASSWORD}
directory ${dataDir}
# Anonymous clients may only bind; reading needs the service account (the search bind) or a user's own bind.
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
${passwordPolicy ? `overlay ppolicy\nppolicy_default "${PASSWORD_POLICY_DN}"` : ''}
`
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** One BER element: its tag, its content, and where the next one starts. */
function berElement(buffer: Buffer, offset: number): { tag: number; content: Buffer; end: number } | undefined {
  if (buffer.length < offset + 2) return undefined
  let length = buffer[offset + 1]!
  let start = offset + 2
  if (length & 0x80) {
    const bytes = length & 0x7f
    if (buffer.length < start + bytes) return undefined
    length = buffer.readUIntBE(start, bytes)
    start += bytes
  }
  if (buffer.length < start + length) return undefined
  return { tag: buffer[offset]!, content: buffer.subarray(start, start + length), end: start + length }
}

function berEncode(tag: number, content: Buffer): Buffer {
  const length = content.length < 0x80 ? Buffer.from([content.length]) : Buffer.from([0x82, content.length >> 8, content.length & 0xff])
  return Buffer.concat([Buffer.from([tag]), length, content])
}

/** Splits off the whole LDAP messages at the start of `buffer`, and what is left of a message still arriving. */
function ldapMessages(buffer: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = []
  let offset = 0
  for (let element = berElement(buffer, offset); element; element = berElement(buffer, offset)) {
    messages.push(buffer.subarray(offset, element.end))
    offset = element.end
  }
  return { messages, rest: buffer.subarray(offset) }
}

type BerElement = NonNullable<ReturnType<typeof berElement>>

/** Calls `each` with every whole LDAP message the socket sends: the message, its content, its id and its operation. */
function eachLdapMessage(socket: Socket, each: (message: Buffer, body: Buffer, id: BerElement, operation: BerElement) => void): void {
  let pending: Buffer = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    const { messages, rest } = ldapMessages(Buffer.concat([pending, chunk]))
    pending = rest
    for (const message of messages) {
      const body = berElement(message, 0)!.content
      const id = berElement(body, 0)!
      each(message, body, id, berElement(body, id.end)!)
    }
  })
}

/**
 * Active Directory as a login sees it, in front of the test directory: a user's bind that the directory takes is
 * refused (invalidCredentials) with Active Directory's diagnostic message carrying the `data` code given for the
 * user's DN, as it does for a right password whose account cannot sign in; every other answer passes unchanged.
 */
export async function activeDirectoryImpostor(directoryUrl: string, dataCodes: Record<string, string>): Promise<{ url: string; close: () => Promise<void> }> {
  return relay(directoryUrl, (client, directory) => {
    const binds = new Map<string, string>()
    eachLdapMessage(client, (message, body, id, operation) => {
      if (operation.tag === 0x60) {
        const version = berElement(operation.content, 0)!
        const name = berElement(operation.content, version.end)!.content.toString('utf8')
        if (dataCodes[name]) binds.set(id.content.toString('hex'), dataCodes[name]!)
      }
      directory.write(message)
    })
    eachLdapMessage(directory, (message, body, id, operation) => {
      const data = binds.get(id.content.toString('hex'))
      const resultCode = operation.tag === 0x61 ? berElement(operation.content, 0)!.content[0] : undefined
      if (data === undefined || resultCode !== 0) return void client.write(message)
      const diagnostic = `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data ${data}, v4563\u0000`
      const refusal = Buffer.concat([Buffer.from([0x0a, 0x01, 49]), berEncode(0x04, Buffer.alloc(0)), berEncode(0x04, Buffer.from(diagnostic))])
      client.write(berEncode(0x30, Buffer.concat([body.subarray(0, id.end), berEncode(0x61, refusal)])))
    })
  })
}

/**
 * A server in front of the test directory that drops a connection in the middle of a lookup: it passes the client's
 * first `passed` messages on (all when Infinity), and when the next one arrives it closes both sides without passing
 * it, so the client waits for an answer that never comes. `passed` may be changed between lookups (`pass`); each
 * connection is counted on its own.
 */
export async function droppingRelay(directoryUrl: string, passed: number): Promise<{ url: string; pass: (messages: number) => void; connections: () => number; cut: () => number; close: () => Promise<void> }> {
  let connections = 0
  let cut = 0
  const relaying = await relay(directoryUrl, (client, directory) => {
    connections++
    const passing = passed
    let sent = 0
    eachLdapMessage(client, (message) => {
      if (sent++ < passing) return void directory.write(message)
      if (!client.destroyed) cut++
      client.destroy()
      directory.destroy()
    })
    directory.pipe(client)
  })
  return { ...relaying, pass: (messages) => (passed = messages), connections: () => connections, cut: () => cut }
}

/**
 * A server on loopback that connects each client to the test directory and hands both sockets to `relaying`, which
 * passes on what it will; either side closing closes the other.
 */
async function relay(directoryUrl: string, relaying: (client: Socket, directory: Socket) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const upstream = new URL(directoryUrl)
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const directory = connect(Number(upstream.port), upstream.hostname)
    for (const socket of [client, directory]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.once('close', () => {
        sockets.delete(socket)
        client.destroy()
        directory.destroy()
      })
    }
    relaying(client, directory)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `ldap://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    }),
  }
}
