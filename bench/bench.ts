/**
 * `npm run bench`: every figure of the data plane side by side in one run, so a reader compares ratios rather
 * than absolute numbers from a shared machine. The upstream is nginx answering a tiny JSON body; in front of it
 * nginx proxy_pass (one worker), a bare node:http + undici proxy (the floor for any Node proxy), Gatehouse with
 * each credential type, nginx auth_request asking Gatehouse (with and without a 1 s decision cache), and nginx
 * keeping Gatehouse's decisions in memory for 1 s with the Lua module (where it is installed). Then the
 * three token grants, the machine's argon2id rate, start-up time (also without the install's bundles) and idle memory.
 * Each proxy row is measured twice: flat out (requests/s, and a p99 that then mostly mirrors the queue) and paced at
 * BENCH_PACED_RATE requests/s (default 2,000, under every row's capacity), where p99 is the latency a request
 * gains on its way through rather than its wait in a full queue.
 * Needs Debian's `nginx` and `wrk` (and `libnginx-mod-http-lua` for the Lua rows). Environment: BENCH_SECONDS per
 * row (default 3), BENCH_CONNECTIONS (default 50).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TEN_RULES } from './gateway-child.ts'
import { forwardAuthConfiguration, luaModules, proxyServer, startNginx, tinyJsonServer, type Decisions } from '../test/helpers/nginx.ts'

const root = new URL('../', import.meta.url).pathname
const node = join(root, 'node_modules/.bin/node')
const seconds = Number(process.env.BENCH_SECONDS ?? 3)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const pacedRate = Number(process.env.BENCH_PACED_RATE ?? 2000)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const password = 'bench-password'
const clientSecret = 'bench-client-secret-0123456789'
const ports = { upstream: 18481, nginxProxy: 18482, gateway: 18480, authRequest: 18483, authRequestCached: 18484, luaDecisions: 18485 }
const children: ChildProcess[] = []
const STARTS = 5
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'))

function requireTools(): void {
  for (const [tool, flag] of [['wrk', '--version'], ['nginx', '-v']]) {
    try {
      execFileSync(tool!, [flag!], { stdio: 'ignore' })
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') {
        process.stderr.write(`bench: ${tool} is not installed (apt-get install ${tool})\n`)
        process.exit(2)
      }
    }
  }
}

/** Starts a process and resolves with the first match of `ready` in its output, and the time that took. */
function start(command: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<{ match: string; ms: number; child: ChildProcess }> {
  const began = performance.now()
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
        resolve({ match: match[1]!, ms: performance.now() - began, child })
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.on('exit', (code, signal) => {
      reject(new Error(`exited with ${code}: ${output}`))
      // A process that ends in the middle of the run leaves the rows after it failing: say why it ended.
      if (!stopping.has(child)) console.error(`${command} ${args.join(' ')} exited during the run (${signal ?? code}):\n${output.slice(-4000)}`)
    })
  })
}

/** The processes stopped on purpose: any other that exits has failed. */
const stopping = new WeakSet<ChildProcess>()

async function stop(child: ChildProcess): Promise<void> {
  stopping.add(child)
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

interface Result {
  rps: number
  p99ms: number
  errors: number
  /** p99 when paced at `pacedRate` requests/s. */
  pacedP99ms?: number
  /** CPU time the measured Node process (and its workers) spent per request, flat out. */
  cpuMicros?: number
  /** Requests/s against the target's reference measured beside it (after, then before, in turn) in each round, the median of the rounds. */
  besideRatio?: number
}

interface WrkOptions {
  headers?: Record<string, string>
  /** A form to POST; several are sent in turn. */
  body?: string | string[]
  connections?: number
  duration?: number
  /** Requests/s to pace at: each connection pauses between requests so that all of them together send about this many. */
  rate?: number
}

/**
 * wrk with one thread, as the issue's measurements; a Lua script for the POSTs of the token grants and for pacing.
 * wrk is a closed loop, so pacing is a pause before each connection's next request: at a rate well under a row's
 * capacity that differs from an open-loop generator only by the latency itself, which is small next to the pause.
 */
function wrk(url: string, options: WrkOptions = {}): Result & { requests: number } {
  const connectionCount = options.connections ?? connections
  const args = ['-t', '1', '-c', String(connectionCount), '-d', `${options.duration ?? seconds}s`, '--latency']
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`)
  const lua: string[] = []
  if (typeof options.body === 'string') {
    lua.push('wrk.method = "POST"', `wrk.body = ${JSON.stringify(options.body)}`, 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"')
  } else if (options.body) {
    lua.push(`bodies = { ${options.body.map((body) => JSON.stringify(body)).join(', ')} }`, 'turn = 0',
      'function request() turn = turn % #bodies + 1; return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" }, bodies[turn]) end')
  }
  // Each pause is drawn anew, uniform between none and twice the mean: connections that all start at once would
  // otherwise stay in step and arrive as bursts of `connectionCount`, and p99 would measure the burst's queue.
  if (options.rate) lua.push('math.randomseed(os.time())', `function delay() return math.random(0, ${Math.round((2 * connectionCount * 1000) / options.rate)}) end`)
  if (lua.length) {
    const script = join(dir, 'wrk.lua')
    writeFileSync(script, lua.join('\n') + '\n')
    args.push('-s', script)
  }
  const out = execFileSync('wrk', [...args, url], { encoding: 'utf8' })
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out)
  const p99ms = p99 ? Number(p99[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[p99[2]!]! : NaN
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = non2xx + (socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0)
  return { rps, p99ms, errors, requests: Number(/(\d+) requests in/.exec(out)?.[1]) }
}

/** One proxy row: what wrk asks for, and the Node process whose CPU time it costs (none for nginx rows). */
interface Target {
  url: string
  options?: WrkOptions
  process?: ChildProcess
  /**
   * The target this one is compared with (an index into the same list): measured flat out again right after it in
   * every round, so that the two figures of a ratio come from the same seconds of the machine.
   */
  beside?: number
}

/**
 * Every target measured flat out and paced, `rounds` times in turn, each figure the median of its rounds: a row
 * measured once is at the mercy of whatever the machine did in those seconds, and one measured after the others
 * would be compared with a different machine. Warm-up (1 s) precedes a target's first round only.
 *
 * Medians of rounds still compare figures taken minutes apart, and this machine's speed at the work a Node proxy does
 * (allocation, native calls) moves by up to 2x from minute to minute (docs/performance.md): a target with a `beside`
 * reference also gets the ratio of each round's pair, measured back to back, and their median. Three rounds take
 * about fifteen minutes.
 */
function measureInRounds(targets: Target[]): Result[] {
  const runs = targets.map(() => ({ flat: [] as Result[], paced: [] as number[], ratios: [] as number[] }))
  for (let round = 0; round < rounds; round++) {
    targets.forEach(({ url, options = {}, process, beside }, i) => {
      if (round === 0) wrk(url, { ...options, duration: 1 })
      const reference = beside === undefined ? undefined : targets[beside]!
      // Before the target in odd rounds, after it in even ones: whatever the first of two runs leaves the second
      // (a collection still to finish, a cooler cache) falls on each side in turn.
      const referenceFirst = round % 2 === 1
      const referenceBefore = reference && referenceFirst ? wrk(reference.url, reference.options).rps : undefined
      const before = process && cpuMilliseconds(process)
      const flat = wrk(url, options)
      const cpuMicros = process ? ((cpuMilliseconds(process) - before!) * 1000) / flat.requests : undefined
      runs[i]!.flat.push({ ...flat, cpuMicros })
      if (reference) runs[i]!.ratios.push(flat.rps / (referenceBefore ?? wrk(reference.url, reference.options).rps))
      runs[i]!.paced.push(wrk(url, { ...options, rate: pacedRate }).p99ms)
    })
  }
  return runs.map(({ flat, paced, ratios }) => ({
    ...flat.sort((a, b) => a.rps - b.rps)[Math.floor(flat.length / 2)]!,
    pacedP99ms: median(paced),
    besideRatio: ratios.length ? median(ratios) : undefined,
  }))
}

/** User and system CPU time of a process and its children (`serve --workers` forks), from /proc. */
function cpuMilliseconds(child: ChildProcess): number {
  const ticks = (pid: number): number => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    let children: number[] = []
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number)
    } catch {}
    return Number(fields[11]) + Number(fields[12]) + children.reduce((sum, pid) => sum + ticks(pid), 0)
  }
  // Linux counts in clock ticks of 10 ms (USER_HZ 100).
  return ticks(child.pid!) * 10
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

const tokenEndpoint = (gateway: string, realm = 'platform') => `${gateway}/realms/${realm}/protocol/openid-connect/token`
const passwordGrantBody = new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password }).toString()
const clientCredentialsBody = new URLSearchParams({ client_id: 'bench-service', client_secret: clientSecret, grant_type: 'client_credentials' }).toString()

async function passwordGrant(gateway: string, realm = 'platform'): Promise<{ access_token: string; refresh_token: string }> {
  const response = await fetch(tokenEndpoint(gateway, realm), { method: 'POST', body: new URLSearchParams(passwordGrantBody) })
  return (await response.json()) as { access_token: string; refresh_token: string }
}

function writeConfig(): string {
  const config = join(dir, 'bench.yaml')
  writeFileSync(config, [
    `server: { host: 127.0.0.1, port: ${ports.gateway}, trusted_proxies: [127.0.0.1] }`,
    'services:',
    `  - { name: controller, prefix: /api/controller/, upstream: "http://127.0.0.1:${ports.upstream}", accepts: [basic, session, token, oidc], public_paths: [/api/controller/v2/ping/], oidc: { realm: platform, client_id: end-users } }`,
    // The same upstream behind ten access rules, the deciding one last: every request evaluates all ten.
    `  - { name: ruled, prefix: /api/ruled/, upstream: "http://127.0.0.1:${ports.upstream}", accepts: [basic], access: ${JSON.stringify(TEN_RULES)} }`,
    'realms:',
    // Tokens that outlive the run (Keycloak's default five minutes would expire the OIDC rows' token part way). wrk
    // sends one refresh token again and again, which the default refresh_tokens_per_grant_limit (100) ends after
    // about a hundred refreshes: the refresh rows lift it, and so measure a refresh without the count the bound makes
    // every fifty refreshes of a grant; they count each refresh for access_tokens_per_grant_limit, which none reaches.
    // The client_credentials rows make far more than client_credentials_tokens_limit's
    // 10,000 tokens an hour: lifted, the rows measure the grant rather than its 429.
    '  - name: platform',
    '    access_token_seconds: 3600',
    '    refresh_tokens_per_grant_limit: 100000',
    '    client_credentials_tokens_limit: 0',
    '    access_tokens_per_grant_limit: 1000000',
    '    clients:',
    '      - { client_id: end-users, public_client: true, direct_access_grants: true }',
    `      - { client_id: bench-service, public_client: false, secret: ${clientSecret}, service_accounts: true }`,
    // The same clients in a realm signing with ECDSA P-256 (Keycloak's "Default Signature Algorithm" ES256).
    '  - name: platform-es256',
    '    default_signature_algorithm: ES256',
    '    access_token_seconds: 3600',
    '    refresh_tokens_per_grant_limit: 100000',
    '    client_credentials_tokens_limit: 0',
    '    access_tokens_per_grant_limit: 1000000',
    '    clients:',
    '      - { client_id: end-users, public_client: true, direct_access_grants: true }',
    `      - { client_id: bench-service, public_client: false, secret: ${clientSecret}, service_accounts: true }`,
  ].join('\n'))
  return config
}

function startGateway(config: string, dataDir: string, extraArgs: string[] = []) {
  return start(join(root, 'bin/gatehouse'), ['serve', '--config', config, '--data-dir', dataDir, ...extraArgs],
    { GATEHOUSE_ADMIN_PASSWORD: password, GATEHOUSE_LOG_LEVEL: 'warn' }, /Gatehouse listening on (\S+)/)
}

/** argon2id verifications a second on every core, and its process's CPU µs per verification. */
function argon2AllCores(): { rate: number; cpuMicros: number } {
  const out = execFileSync(node, [join(root, 'bench/argon2-rate.ts'), String(seconds), 'all-cores'], { encoding: 'utf8', env: { ...process.env, ARGON2_RATE_CPU: '1' } })
  const [rate, cpuMicros] = out.trim().split(' ').map(Number)
  return { rate: rate!, cpuMicros: cpuMicros! }
}

/** User and system CPU ms of this process's reaped children (wrk's, once it exited), from /proc. */
function childrenCpuMilliseconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[13]) + Number(fields[14])) * 10
}

/** User and system CPU ms of a process's main thread (Node's event loop), from /proc. */
function mainThreadCpuMilliseconds(child: ChildProcess): number {
  const fields = readFileSync(`/proc/${child.pid}/task/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** bin/gatehouse's command without its preloaded resolve hook (src/vendor/register.ts): the packages load as installed. */
function startGatewayUnbundled(config: string, dataDir: string) {
  return start(node, ['--disable-warning=ExperimentalWarning', join(root, 'src/cli/main.ts'), 'serve', '--config', config, '--data-dir', dataDir],
    { GATEHOUSE_ADMIN_PASSWORD: password, GATEHOUSE_LOG_LEVEL: 'warn', NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'gatehouse-compile-cache') }, /Gatehouse listening on (\S+)/)
}

const ms = (micros: number) => (micros / 1000).toFixed(1)

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

function residentMegabytes(child: ChildProcess): number {
  const kilobytes = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1])
  return kilobytes / 1024
}

/** The resident memory one second after `listening`, the process left alone. */
async function idleResidentMegabytes(child: ChildProcess): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 1000))
  return residentMegabytes(child)
}

/** nginx asking Gatehouse as docs/forward-auth.md configures it, keeping its decisions as told, started. */
async function forwardAuthServer(name: string, port: number, decisions: Decisions): Promise<void> {
  const site = { port, gateway: `127.0.0.1:${ports.gateway}`, service: `127.0.0.1:${ports.upstream}` }
  const { http, main } = forwardAuthConfiguration(site, decisions, join(dir, 'authz-cache'))
  // wrk's connections kept for the whole row, as the proxy_pass row's are (nginx closes one after 1,000 requests).
  children.push(await startNginx(dir, name, `keepalive_requests 1000000;\n${http}`, main))
}

interface Row {
  name: string
  result?: Result
  note?: string
  /** What the row's `besideRatio` compares it with. */
  beside?: string
}

function table(rows: Row[], baseline: Result, floor: Result): string {
  const lines = [
    `| target | requests/s | vs nginx proxy_pass | vs bare Node proxy | side by side (the two measured back to back) | p99 ms flat out | p99 ms at ${pacedRate}/s | p99 at ${pacedRate}/s vs nginx proxy_pass | Node CPU µs per request | errors |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const { name, result, note, beside } of rows) {
    if (!result) {
      lines.push(`| ${name} | ${note} | | | | | | | | |`)
      continue
    }
    const paced = result.pacedP99ms ?? NaN
    lines.push(`| ${name} | ${Math.round(result.rps)} | ${(result.rps / baseline.rps).toFixed(2)}x | ${(result.rps / floor.rps).toFixed(2)}x | ${result.besideRatio === undefined ? '' : `${result.besideRatio.toFixed(2)}x ${beside}`} | ${result.p99ms.toFixed(2)} | ${paced.toFixed(2)} | ${(paced / baseline.pacedP99ms!).toFixed(1)}x | ${result.cpuMicros === undefined ? '' : result.cpuMicros.toFixed(result.cpuMicros < 10 ? 1 : 0)} | ${result.errors} |`)
  }
  return lines.join('\n')
}

requireTools()
try {
  await startNginx(dir, 'upstream', tinyJsonServer(ports.upstream)).then((child) => children.push(child))
  await startNginx(dir, 'proxy', proxyServer(ports.nginxProxy, ports.upstream)).then((child) => children.push(child))
  const bare = await start(node, [join(root, 'bench/bare-proxy.ts')], { BARE_PROXY_UPSTREAM: `http://127.0.0.1:${ports.upstream}` }, /(http:\/\/\S+)/)

  const config = writeConfig()
  const dataDir = join(dir, 'data')
  // Start-up is timed as the median of several starts: one start is at the mercy of whatever else the machine does.
  const freshStarts: number[] = []
  for (let i = 0; i < STARTS; i++) {
    const fresh = await startGateway(config, i === 0 ? dataDir : join(dir, `data-${i}`))
    freshStarts.push(fresh.ms)
    await stop(fresh.child)
  }
  // Each restart is followed by one that loads the dependencies as installed, not from the bundles `npm install`
  // made of them (src/vendor/): what they save, measured in the same minute.
  // Idle memory too is the median over the restarts: now and then one start lands 10-20 MB above the others.
  const restarts: number[] = []
  const idleRssSamples: number[] = []
  const unbundledRestarts: number[] = []
  for (let i = 1; i < STARTS; i++) {
    const restart = await startGateway(config, dataDir)
    restarts.push(restart.ms)
    idleRssSamples.push(await idleResidentMegabytes(restart.child))
    await stop(restart.child)
    const unbundled = await startGatewayUnbundled(config, dataDir)
    unbundledRestarts.push(unbundled.ms)
    await stop(unbundled.child)
  }
  const restarted = await startGateway(config, dataDir)
  restarts.push(restarted.ms)
  const gateway = restarted.match.replace(/\/$/, '')
  idleRssSamples.push(await idleResidentMegabytes(restarted.child))

  const basicAuth = { Authorization: 'Basic ' + Buffer.from(`admin:${password}`).toString('base64') }
  const { token } = (await (await fetch(`${gateway}/api/gateway/v1/tokens/`, { method: 'POST', headers: basicAuth })).json()) as { token: string }
  const sessionCookie = await logIn(gateway)
  const { access_token: accessToken, refresh_token: refreshToken } = await passwordGrant(gateway)
  const hosts = '/api/controller/v2/hosts/'
  const credentials: [string, Record<string, string>][] = [
    ['basic', basicAuth],
    ['session cookie', { Cookie: sessionCookie }],
    ['personal token', { Authorization: `Bearer ${token}` }],
    ['OIDC bearer', { Authorization: `Bearer ${accessToken}` }],
  ]

  // Every proxy target, measured together in rounds (measureInRounds); the nginx auth_request ones need a
  // forward-auth endpoint, which older Gatehouse versions lack.
  const BARE = 3
  const NGINX_PROXY = 1
  const named: { name: string; target: Target; beside?: string }[] = [
    { name: 'upstream direct (nginx return 200)', target: { url: `http://127.0.0.1:${ports.upstream}${hosts}` } },
    { name: 'nginx proxy_pass, 1 worker', target: { url: `http://127.0.0.1:${ports.nginxProxy}${hosts}` } },
    // The same request as the OIDC bearer rows below (a kilobyte of token in every request) with no auth at all.
    { name: 'nginx proxy_pass, 1 worker, OIDC bearer header', target: { url: `http://127.0.0.1:${ports.nginxProxy}${hosts}`, options: { headers: credentials[3]![1] }, beside: NGINX_PROXY }, beside: 'nginx' },
    { name: 'bare node:http + undici proxy', target: { url: `${bare.match}${hosts}`, options: { headers: { Authorization: 'Bearer bench' } }, process: bare.child } },
    { name: 'Gatehouse, public path', target: { url: `${gateway}/api/controller/v2/ping/`, process: restarted.child, beside: BARE }, beside: 'bare' },
    ...credentials.map(([name, headers]) => ({ name: `Gatehouse, ${name}`, target: { url: `${gateway}${hosts}`, options: { headers }, process: restarted.child, beside: BARE }, beside: 'bare' })),
    { name: 'Gatehouse, basic, ten access rules', target: { url: `${gateway}/api/ruled/v2/hosts/`, options: { headers: basicAuth }, process: restarted.child, beside: BARE }, beside: 'bare' },
  ]
  const notes: Row[] = []
  const forwardAuth = await fetch(`${gateway}/api/gateway/v1/authz/auth-request/`, { headers: { 'x-original-method': 'GET', 'x-original-uri': hosts } })
  if (forwardAuth.status === 404) {
    notes.push({ name: 'nginx auth_request to Gatehouse', note: 'not measured: this Gatehouse has no forward-auth endpoint' })
  } else {
    await forwardAuthServer('auth-request', ports.authRequest, 'asked')
    await forwardAuthServer('auth-request-cached', ports.authRequestCached, 'file cache')
    const lua = luaModules() !== undefined
    if (lua) await forwardAuthServer('lua-decisions', ports.luaDecisions, 'memory')
    else notes.push({ name: 'nginx + Lua decision cache, 1 s', note: 'not measured: libnginx-mod-http-lua is not installed' })
    for (const [name, headers] of credentials) {
      const builtIn = named.findIndex((row) => row.name === `Gatehouse, ${name}`)
      named.push({ name: `nginx auth_request, ${name}`, target: { url: `http://127.0.0.1:${ports.authRequest}${hosts}`, options: { headers }, process: restarted.child, beside: builtIn }, beside: 'built-in' })
      named.push({ name: `nginx auth_request + 1 s cache, ${name}`, target: { url: `http://127.0.0.1:${ports.authRequestCached}${hosts}`, options: { headers }, process: restarted.child, beside: NGINX_PROXY }, beside: 'nginx' })
      if (lua) named.push({ name: `nginx + Lua decision cache, 1 s, ${name}`, target: { url: `http://127.0.0.1:${ports.luaDecisions}${hosts}`, options: { headers }, process: restarted.child, beside: NGINX_PROXY }, beside: 'nginx' })
    }
  }
  const results = measureInRounds(named.map(({ target }) => target))
  // The rounds held this event loop for minutes: the connections fetch keeps were closed by the gateway meanwhile
  // (its keep-alive timeout), and only now can undici read that. One turn of the loop lets it drop them, rather than
  // write the next request into a closed one (EPIPE).
  await new Promise((resolve) => setTimeout(resolve, 100))
  const rows: Row[] = [...named.map(({ name, beside }, i) => ({ name, result: results[i]!, beside })), ...notes]
  const nginxProxy = results[1]!
  const bareProxy = results[3]!

  const refreshBody = (token: string) => new URLSearchParams({ client_id: 'end-users', grant_type: 'refresh_token', refresh_token: token }).toString()
  const es256RefreshToken = (await passwordGrant(gateway, 'platform-es256')).refresh_token
  // Eight users in turn, as real load would be. (Password checks from one client address run in parallel as far as
  // the lockout's counts allow (src/directory/lockout.ts): from this one address too, the bound is argon2id on every core.)
  const passwordUsers = Array.from({ length: 8 }, (_, i) => ({ username: `bench-user-${i + 1}`, password: `bench-user-${i + 1}-Long-Passphrase-7q` }))
  for (const user of passwordUsers) {
    const made = await fetch(`${gateway}/api/gateway/v1/users/`, { method: 'POST', headers: { ...basicAuth, 'content-type': 'application/json' }, body: JSON.stringify(user) })
    if (made.status !== 201) throw new Error(`could not create ${user.username}: ${made.status} ${await made.text()}`)
  }
  const passwordBodies = passwordUsers.map((user) => new URLSearchParams({ client_id: 'end-users', grant_type: 'password', ...user }).toString())
  const grants: [string, string, string | string[], number][] = [
    ['client_credentials, RS256', 'platform', clientCredentialsBody, connections],
    ['client_credentials, ES256', 'platform-es256', clientCredentialsBody, connections],
    ['refresh_token, RS256', 'platform', refreshBody(refreshToken), connections],
    ['refresh_token, ES256', 'platform-es256', refreshBody(es256RefreshToken), connections],
    ['password, RS256, eight users in turn', 'platform', passwordBodies, 8],
  ]
  const grantRow = ([name, realm, body, grantConnections]: (typeof grants)[number], server = restarted.child) => {
    wrk(tokenEndpoint(gateway, realm), { body, connections: grantConnections, duration: 1 })
    const before = { process: cpuMilliseconds(server), loop: mainThreadCpuMilliseconds(server), wrk: childrenCpuMilliseconds() }
    const result = wrk(tokenEndpoint(gateway, realm), { body, connections: grantConnections })
    const perGrant = (after: number, start: number) => ((after - start) * 1000) / result.requests
    const cpuMicros = { process: perGrant(cpuMilliseconds(server), before.process), loop: perGrant(mainThreadCpuMilliseconds(server), before.loop), wrk: perGrant(childrenCpuMilliseconds(), before.wrk) }
    return { line: `| ${name} | ${Math.round(result.rps)} | ${result.p99ms.toFixed(2)} | ${result.errors} |`, rps: result.rps, cpuMicros }
  }
  const grantRows = grants.slice(0, -1).map((grant) => grantRow(grant).line)
  // The password grant's bound is argon2id on every core, and this machine's speed drifts over a run: that rate is
  // measured just before and just after the row, and the row compared with their mean. Every cycle the grant spends
  // beside its hash (the event loop's work, the signature, wrk's) is one argon2id does not get: the CPU time of a
  // grant and of a verification, which a busy machine changes far less than their rates, bound the ratio the row
  // can reach (docs/performance.md, the password grant).
  const argon2Around = [argon2AllCores()]
  const passwordRow = grantRow(grants.at(-1)!)
  argon2Around.push(argon2AllCores())
  grantRows.push(passwordRow.line)
  const argon2Mean = (argon2Around[0]!.rate + argon2Around[1]!.rate) / 2
  const verificationCpuMicros = (argon2Around[0]!.cpuMicros + argon2Around[1]!.cpuMicros) / 2
  const passwordCpu = passwordRow.cpuMicros
  const loadedRss = residentMegabytes(restarted.child)
  await stop(restarted.child)

  // The same gateway as two processes sharing the port (`serve --workers 2`): what a second core adds, here where
  // wrk and the upstream take their share of the same two cores.
  const twoWorkers = await startGateway(config, dataDir, ['--workers', '2'])
  const workerRows = [credentials[0]!, credentials[3]!]
  const workerResults = measureInRounds(workerRows.map(([, headers]) => ({ url: `${gateway}${hosts}`, options: { headers }, process: twoWorkers.child })))
  rows.push(...workerRows.map(([name], i) => ({ name: `Gatehouse --workers 2, ${name}`, result: workerResults[i]! })))
  grantRows.push(...grants.slice(0, 4).map(([name, ...rest]) => grantRow([`${name}, --workers 2`, ...rest], twoWorkers.child).line))
  await stop(twoWorkers.child)
  const argon2OneAtATime = Number(execFileSync(node, [join(root, 'bench/argon2-rate.ts'), String(seconds), 'one-at-a-time'], { encoding: 'utf8' }).trim())

  process.stdout.write([
    `wrk -t1 -c${connections}, ${seconds} s per row after 1 s of warm-up, median of ${rounds} rounds, Node ${execFileSync(node, ['-v'], { encoding: 'utf8' }).trim()}, ${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim()}`,
    '',
    table(rows, nginxProxy, bareProxy),
    '',
    '| token grant | requests/s | p99 ms | errors |',
    '|---|---:|---:|---:|',
    ...grantRows,
    `| (argon2id verifications/s at Gatehouse's cost, on every core, just before and after the password row) | ${argon2Around.map(({ rate }) => Math.round(rate)).join(', ')} | | |`,
    `| (password grant vs argon2id on every core, their mean) | ${Math.round((passwordRow.rps / argon2Mean) * 100)}% | | |`,
    `| (CPU ms per password grant: Gatehouse's (its event loop's), wrk's; per argon2id verification) | ${ms(passwordCpu.process)} (${ms(passwordCpu.loop)}), ${ms(passwordCpu.wrk)}; ${ms(verificationCpuMicros)} | | |`,
    `| (password grant vs argon2id, the bound their CPU time sets: a verification's against a grant's and wrk's) | ${Math.round((verificationCpuMicros / (passwordCpu.process + passwordCpu.wrk)) * 100)}% | | |`,
    `| (argon2id verifications/s at Gatehouse's cost, one at a time) | ${Math.round(argon2OneAtATime)} | | |`,
    '',
    '| start-up | |',
    '|---|---:|',
    `| start to listening, new database (median of ${STARTS}) | ${Math.round(median(freshStarts))} ms |`,
    `| start to listening, existing database (median of ${STARTS}) | ${Math.round(median(restarts))} ms |`,
    `| start to listening, existing database, dependencies as installed, not bundled (median of ${STARTS - 1}) | ${Math.round(median(unbundledRestarts))} ms |`,
    `| resident memory, idle after start (median of ${idleRssSamples.length}) | ${Math.round(median(idleRssSamples))} MB |`,
    `| resident memory, after the run | ${Math.round(loadedRss)} MB |`,
    '',
  ].join('\n'))
} finally {
  await Promise.all(children.map(stop))
  rmSync(dir, { recursive: true, force: true })
}
