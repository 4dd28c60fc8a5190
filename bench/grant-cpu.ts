/**
 * `node bench/grant-cpu.ts [grants] [rounds] [grant]`: the CPU time Gatehouse spends per token grant, the whole
 * process, its event loop (its main thread) and libuv's thread pool, read from /proc around each round, beside the
 * cost of the grant's cryptography alone measured in this process. CPU time is what a busy machine changes least, where requests/s
 * (`npm run bench`) needs a quiet one. A server (`bin/gatehouse serve`, SQLite) runs as a child with a realm signing
 * RS256 and one signing ES256; after a warm-up, each round makes `grants` refresh_token grants (a chain of refresh
 * tokens per connection; then again with `scope=openid`), as many client_credentials grants, and a tenth as many
 * password grants, four connections at once. Prints each figure as the median of the rounds. `grant` measures
 * only the grants whose name starts with it (and not the cryptography alone). GRANT_CPU_PROFILE=<dir> runs the
 * server with `--cpu-prof` there. GRANT_CPU_CONNECTIONS=<n> makes n connections at once (as many chains) instead of
 * four; GRANT_CPU_POSTGRES=1 runs the server on a database of its own on the tests' PostgreSQL (test/helpers/postgres.ts);
 * GRANT_CPU_CHECKOUT=<dir> starts that checkout's server instead of this one's, so that two versions of the code are
 * measured by the same bench.
 */
import type { ChildProcess } from 'node:child_process'
import { createHmac, createSecretKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashPassword, verifyPassword } from '../src/directory/passwords.ts'
import { createTestDatabase } from '../test/helpers/postgres.ts'
import { cpuMicros, startGateway as startChild } from './gateway-child.ts'

const root = process.env.GRANT_CPU_CHECKOUT ?? new URL('../', import.meta.url).pathname
const grants = Number(process.argv[2] ?? 2000)
const rounds = Number(process.argv[3] ?? 5)
const only = process.argv[4]
const measured = (name: string) => !only || name.startsWith(only)
const connections = Number(process.env.GRANT_CPU_CONNECTIONS ?? 4)
const password = 'bench-password'
const clientSecret = 'bench-client-secret-0123456789'
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-grant-cpu-'))

function writeConfig(): string {
  const config = join(dir, 'grant-cpu.yaml')
  const clients = [
    '    clients:',
    '      - { client_id: end-users, public_client: true, direct_access_grants: true }',
    `      - { client_id: bench-service, public_client: false, secret: ${clientSecret}, service_accounts: true }`,
  ]
  writeFileSync(config, [
    'server: { host: 127.0.0.1, port: 0 }',
    'services: []',
    'realms:',
    '  - name: platform',
    '    access_token_seconds: 3600',
    // Far more service-account tokens than client_credentials_tokens_limit's 10,000 an hour: the grant, not its 429.
    '    client_credentials_tokens_limit: 0',
    // Every refresh is counted for access_tokens_per_grant_limit, as by default, but none reaches it.
    '    access_tokens_per_grant_limit: 1000000',
    ...clients,
    '  - name: platform-es256',
    '    default_signature_algorithm: ES256',
    '    access_token_seconds: 3600',
    // Far more service-account tokens than client_credentials_tokens_limit's 10,000 an hour: the grant, not its 429.
    '    client_credentials_tokens_limit: 0',
    // Every refresh is counted for access_tokens_per_grant_limit, as by default, but none reaches it.
    '    access_tokens_per_grant_limit: 1000000',
    ...clients,
  ].join('\n'))
  return config
}

function startGateway(config: string, database: string | undefined): Promise<{ child: ChildProcess; url: string }> {
  const profile = process.env.GRANT_CPU_PROFILE
  return startChild(root, ['--config', config, '--data-dir', join(dir, 'data'), ...(database ? ['--database', database] : [])],
    { GATEHOUSE_ADMIN_PASSWORD: password, GATEHOUSE_LOG_LEVEL: 'warn', ...(profile ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profile}` } : {}) })
}

const agent = new Agent({ keepAlive: true, maxSockets: connections })

function post(url: string, body: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        if (response.statusCode !== 200) reject(new Error(`${response.statusCode}: ${text}`))
        else resolve(JSON.parse(text))
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const tokenEndpoint = (url: string, realm: string) => `${url}/realms/${realm}/protocol/openid-connect/token`
const passwordBody = new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password }).toString()
const passwordOpenidBody = new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password, scope: 'openid' }).toString()
const clientCredentialsBody = new URLSearchParams({ client_id: 'bench-service', client_secret: clientSecret, grant_type: 'client_credentials' }).toString()

/**
 * A chain of grants on each connection, `next` making a connection's next body from its last answer: each call makes
 * `count` more grants, going on from where the last call left each chain. `first` starts the chains, once, in the
 * warm-up: a refresh chain starts with a password grant, whose argon2id (about 10 ms of CPU) would otherwise be
 * counted in every round's refresh figure.
 */
function chains(endpoint: string, first: () => Promise<string>, next: (answer: any) => string): (count: number) => Promise<void> {
  let started: Promise<string[]> | undefined
  return async (count) => {
    const bodies = await (started ??= Promise.all(Array.from({ length: connections }, first)))
    let left = count
    await Promise.all(bodies.map(async (_, i) => {
      while (left-- > 0) bodies[i] = next(await post(endpoint, bodies[i]!))
    }))
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** CPU µs of libuv's thread pool (where RS256 signatures and argon2id run): its threads' user and system time. */
function poolMicros(pid: number): number {
  let total = 0
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim() === 'libuv-worker') total += cpuMicros(`/proc/${pid}/task/${task}/stat`)
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return total
}

interface GrantCpu {
  process: number
  loop: number
  pool: number
}

/** CPU µs of the server per grant, the process's, its event loop's and its thread pool's, median of the rounds. */
async function measure(pid: number, count: number, grant: (count: number) => Promise<void>): Promise<GrantCpu> {
  await grant(Math.max(connections, Math.floor(count / 4)))
  const perGrant: GrantCpu[] = []
  const read = (): GrantCpu => ({ process: cpuMicros(`/proc/${pid}/stat`), loop: cpuMicros(`/proc/${pid}/task/${pid}/stat`), pool: poolMicros(pid) })
  for (let round = 0; round < rounds; round++) {
    const before = read()
    await grant(count)
    const after = read()
    perGrant.push({ process: (after.process - before.process) / count, loop: (after.loop - before.loop) / count, pool: (after.pool - before.pool) / count })
  }
  return { process: median(perGrant.map((r) => r.process)), loop: median(perGrant.map((r) => r.loop)), pool: median(perGrant.map((r) => r.pool)) }
}

/** A row's figure: the process's CPU µs per grant, then its event loop's and its thread pool's. */
const figure = (cpu: GrantCpu) => `${cpu.process.toFixed(0)} (${cpu.loop.toFixed(0)}, ${cpu.pool.toFixed(0)})`

/** CPU µs per call of `operation`, in this process, median of the rounds. */
async function isolated(count: number, operation: () => unknown): Promise<number> {
  for (let i = 0; i < Math.max(1, count / 10); i++) await operation()
  const perCall: number[] = []
  for (let round = 0; round < rounds; round++) {
    const before = process.cpuUsage()
    for (let i = 0; i < count; i++) await operation()
    const used = process.cpuUsage(before)
    perCall.push((used.user + used.system) / count)
  }
  return median(perCall)
}

const rows: [string, string][] = []
let gateway: { child: ChildProcess; url: string } | undefined
const database = process.env.GRANT_CPU_POSTGRES ? await createTestDatabase() : undefined
try {
  gateway = await startGateway(writeConfig(), database?.url)
  const pid = gateway.child.pid!
  const { url } = gateway
  for (const realm of ['platform', 'platform-es256']) {
    const endpoint = tokenEndpoint(url, realm)
    const refreshBody = (answer: any) => new URLSearchParams({ client_id: 'end-users', grant_type: 'refresh_token', refresh_token: answer.refresh_token }).toString()
    if (measured('refresh_token')) {
      const refresh = await measure(pid, grants, chains(endpoint, async () => refreshBody(await post(endpoint, passwordBody)), refreshBody))
      rows.push([`refresh_token, ${realm}`, figure(refresh)])
      // As Keycloak's adapters ask: with `openid`, each refresh signs an ID token too.
      const openid = await measure(pid, grants, chains(endpoint, async () => refreshBody(await post(endpoint, passwordOpenidBody)), refreshBody))
      rows.push([`refresh_token, scope=openid, ${realm}`, figure(openid)])
    }
    if (!measured('client_credentials')) continue
    const credentials = await measure(pid, grants, chains(endpoint, async () => clientCredentialsBody, () => clientCredentialsBody))
    rows.push([`client_credentials, ${realm}`, figure(credentials)])
  }
  const endpoint = tokenEndpoint(url, 'platform')
  if (measured('password')) {
    const passwords = await measure(pid, Math.max(connections, Math.floor(grants / 10)), chains(endpoint, async () => passwordBody, () => passwordBody))
    rows.push(['password, platform', figure(passwords)])
  }
  if (!only) {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    const input = randomBytes(900)
    // A KeyObject made once, as src/oidc/keycloak-tokens.ts keeps it: from raw bytes each time, an HMAC costs four times as much.
    const hmacKey = createSecretKey(randomBytes(64))
    const hash = await hashPassword(password)
    rows.push(['RS256 signature alone', (await isolated(500, () => sign('sha256', input, rsa))).toFixed(0)])
    rows.push(['ES256 signature alone', (await isolated(2000, () => sign('sha256', input, { key: ec, dsaEncoding: 'ieee-p1363' }))).toFixed(0)])
    rows.push(['HS512 (the refresh token) alone', (await isolated(5000, () => createHmac('sha512', hmacKey).update(input).digest())).toFixed(1)])
    rows.push(['argon2id verification alone', (await isolated(20, () => verifyPassword(hash, password))).toFixed(0)])
  }
} finally {
  agent.destroy()
  if (gateway) {
    const exited = new Promise((resolve) => gateway!.child.once('exit', resolve))
    gateway.child.kill('SIGTERM')
    await exited
  }
  await database?.drop()
  rmSync(dir, { recursive: true, force: true })
}

process.stdout.write(`| ${grants} grants a round (password: ${Math.max(connections, Math.floor(grants / 10))}), ${connections} connections, ${database ? 'PostgreSQL' : 'SQLite'}, median of ${rounds} rounds | CPU µs per grant (event loop, thread pool) |\n|---|---:|\n`)
for (const [name, value] of rows) process.stdout.write(`| ${name} | ${value} |\n`)
