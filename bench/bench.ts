/**
 * `npm run bench`: requests per second and p99 latency to the demo controller, directly and through the gateway,
 * with wrk (Debian package `wrk`) as the load generator in its own process. Each target is warmed up first.
 * Environment: BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 32).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = new URL('../', import.meta.url).pathname
const seconds = Number(process.env.BENCH_SECONDS ?? 10)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32)
const password = 'bench-password'
const children: ChildProcess[] = []

function requireWrk(): void {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' })
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') {
      process.stderr.write('bench: wrk is not installed (apt-get install wrk)\n')
      process.exit(2)
    }
  }
}

function start(command: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<string> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`did not start: ${output}`)), 30_000)
    const onData = (data: Buffer) => {
      output += data
      const match = ready.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.on('exit', (code) => reject(new Error(`exited with ${code}: ${output}`)))
  })
}

interface Result {
  rps: number
  p99ms: number
  errors: number
}

function wrk(url: string, headers: Record<string, string> = {}, duration = seconds): Result {
  const args = ['-t', '2', '-c', String(connections), '-d', `${duration}s`, '--latency']
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`)
  const out = execFileSync('wrk', [...args, url], { encoding: 'utf8' })
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out)
  const p99ms = p99 ? Number(p99[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[p99[2]!]! : NaN
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = non2xx + (socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0)
  return { rps, p99ms, errors }
}

/** The session login as a script does it: fetch the CSRF cookie, post the form, keep gateway_sessionid. */
async function logIn(gateway: string): Promise<string> {
  const page = await fetch(`${gateway}/api/gateway/v1/login/`)
  const csrf = /csrftoken=([^;]+)/.exec(page.headers.get('set-cookie') ?? '')![1]!
  const response = await fetch(`${gateway}/api/gateway/v1/login/`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': csrf, cookie: `csrftoken=${csrf}`, referer: `${gateway}/api/gateway/v1/login/` },
    body: new URLSearchParams({ username: 'admin', password }),
  })
  const session = /gateway_sessionid=([^;]+)/.exec(response.headers.getSetCookie().join('\n'))
  if (!session) throw new Error(`login failed: ${response.status}`)
  return `gateway_sessionid=${session[1]}`
}

/** An access token from the realm, as the first document's users get one. */
async function passwordGrant(gateway: string): Promise<string> {
  const response = await fetch(`${gateway}/realms/platform/protocol/openid-connect/token`, {
    method: 'POST',
    body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password }),
  })
  return ((await response.json()) as { access_token: string }).access_token
}

/** Nine rules that do not match an administrator's GET (a team, an organization, a network, paths, methods...), then one that does. */
const tenRules = [
  { deny: { users: ['mallory', 'trudy'] } },
  { deny: { paths: ['/api/ruled/admin/*', '/api/ruled/internal/*'] } },
  { allow: { teams: ['Automation', 'Operations'] } },
  { allow: { organizations: ['Research'], methods: ['GET', 'HEAD'] } },
  { allow: { roles: ['Platform Auditor'], methods: ['GET'] } },
  { deny: { networks: ['10.0.0.0/8', '192.168.0.0/16'] } },
  { allow: { auth_methods: ['oidc'], scopes: ['api:read'] } },
  { deny: { methods: ['DELETE'], superuser: false } },
  { allow: { users: ['alice', 'bob', 'carol'] } },
  { allow: { superuser: true } },
]

requireWrk()
const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'))
try {
  const node = join(root, 'node_modules/.bin/node')
  const upstream = (await start(node, [join(root, 'bench/upstream.ts')], { GATEWAY_URL: 'http://127.0.0.1:18480' }, /(http:\/\/\S+)/)).replace(/\/$/, '')
  const ruledUpstream = (await start(node, [join(root, 'bench/upstream.ts')], { GATEWAY_URL: 'http://127.0.0.1:18480', BENCH_SERVICE: 'ruled' }, /(http:\/\/\S+)/)).replace(/\/$/, '')
  const config = join(dataDir, 'bench.yaml')
  writeFileSync(config, [
    'server: { host: 127.0.0.1, port: 18480 }',
    'services:',
    `  - { name: controller, prefix: /api/controller/, upstream: "${upstream}", accepts: [basic, session, token, oidc], public_paths: [/api/controller/v2/ping/], oidc: { realm: platform, client_id: end-users } }`,
    // The same upstream behind ten access rules, the deciding one last: every request evaluates all ten.
    `  - { name: ruled, prefix: /api/ruled/, upstream: "${ruledUpstream}", accepts: [basic], access: ${JSON.stringify(tenRules)} }`,
    'realms:',
    '  - { name: platform, clients: [{ client_id: end-users, public_client: true, direct_access_grants: true }] }',
  ].join('\n'))
  const gateway = await start(join(root, 'bin/gatehouse'), ['serve', '--config', config, '--data-dir', dataDir],
    { GATEHOUSE_ADMIN_PASSWORD: password, GATEHOUSE_LOG_LEVEL: 'warn' }, /Gatehouse listening on (\S+)/)
  const basicAuth = { Authorization: 'Basic ' + Buffer.from(`admin:${password}`).toString('base64') }
  const tokenResponse = await fetch(`${gateway}/api/gateway/v1/tokens/`, { method: 'POST', headers: basicAuth })
  const { token } = (await tokenResponse.json()) as { token: string }
  const sessionCookie = await logIn(gateway)
  const accessToken = await passwordGrant(gateway)

  const targets: [string, string, Record<string, string>][] = [
    ['direct to the upstream', `${upstream}/api/controller/v2/ping/`, {}],
    ['gateway, public path', `${gateway}/api/controller/v2/ping/`, {}],
    ['gateway, basic auth', `${gateway}/api/controller/v2/hosts/`, basicAuth],
    ['gateway, basic auth, ten access rules', `${gateway}/api/ruled/v2/hosts/`, basicAuth],
    ['gateway, session cookie', `${gateway}/api/controller/v2/hosts/`, { Cookie: sessionCookie }],
    ['gateway, personal token', `${gateway}/api/controller/v2/hosts/`, { Authorization: `Bearer ${token}` }],
    ['gateway, OIDC bearer', `${gateway}/api/controller/v2/hosts/`, { Authorization: `Bearer ${accessToken}` }],
  ]
  const rows: string[] = []
  let direct = 0
  for (const [name, url, headers] of targets) {
    wrk(url, headers, 2)
    const result = wrk(url, headers)
    direct ||= result.rps
    rows.push(`| ${name} | ${Math.round(result.rps)} | ${result.p99ms.toFixed(2)} | ${(result.rps / direct).toFixed(2)} | ${result.errors} |`)
  }
  process.stdout.write([
    `wrk, ${connections} connections, ${seconds} s per target, Node ${execFileSync(node, ['-v'], { encoding: 'utf8' }).trim()}`,
    '',
    '| target | requests/s | p99 ms | ratio to direct | errors |',
    '|---|---:|---:|---:|---:|',
    ...rows,
    '',
  ].join('\n'))
} finally {
  for (const child of children) child.kill('SIGTERM')
  rmSync(dataDir, { recursive: true, force: true })
}
