/**
 * `node bench/proxy-cpu.ts [requests] [rounds] [row]`: the CPU time Gatehouse spends per request for each credential
 * type (basic, session cookie, personal token, OIDC bearer), on the built-in proxy, at nginx's forward-auth
 * endpoint (`/api/gateway/v1/authz/auth-request/`, asked directly as nginx asks it) and behind nginx `auth_request`
 * as docs/forward-auth.md configures it without a cache (where nginx is installed), and the floor under a decision
 * (node:http answering the forward-auth question with the allowed answer's fields, deciding nothing), read from /proc
 * around each round; and, where nginx is installed, the nginx worker's CPU time per request for each credential type
 * with a plain `proxy_pass` (no authentication, the credential's header alone), with the 1 s decision cache in files,
 * and with the Lua module's decisions in memory (where `libnginx-mod-http-lua` is installed), as that checkout's
 * docs/forward-auth.md configures them (rows `nginx worker, ...`; Gatehouse is asked about once a second). CPU time
 * is what a busy machine changes least, where requests/s (`npm run bench`) needs a quiet one. A server (`bin/gatehouse serve`, SQLite, as bench/bench.ts configures it) runs as a child, an upstream
 * answering a tiny JSON body as another; this process sends `requests` requests per row and round over eight
 * keep-alive connections, the rows in turn in each round, and prints each row's median. `row` measures only the rows
 * whose name contains it (or one of its parts between `|`). PROXY_CPU_PROFILE=<dir> runs the server with `--cpu-prof` there; PROXY_CPU_BASELINE=<dir>
 * runs a second server from another checkout (the code before a change, say) and measures each row on both in turn,
 * printing the rounds' ratio too (its nginx rows run its own docs/forward-auth.md); PROXY_CPU_PAUSE_MS leaves the
 * servers idle that long before each measurement. PROXY_CPU_WRK=<seconds> sends each round's requests with
 * `wrk -t1 -c50` for that long instead (the load `npm run bench` puts on a proxy: many requests arriving together),
 * and divides by the requests wrk counted.
 */
import { execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Agent, createServer, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cpuMicros, startChild, TEN_RULES } from './gateway-child.ts'

const root = new URL('../', import.meta.url).pathname
const requests = Number(process.argv[2] ?? 20_000)
const rounds = Number(process.argv[3] ?? 5)
const only = process.argv[4]
const connections = 8
const password = 'bench-password'
const pauseMs = Number(process.env.PROXY_CPU_PAUSE_MS ?? 0)
const wrkSeconds = Number(process.env.PROXY_CPU_WRK ?? 0)
/**
 * The floor under any forward-auth decision a Node process makes: node:http answering each question with the fields
 * of Gatehouse's allowed answer (an identity JWT's length), deciding nothing. Served by the upstream's process.
 */
const FLOOR_PATH = '/forward-auth-floor'
/** The controller's public path, as bench/bench.ts's `Gatehouse, public path` row asks it: no credentials at all. */
const PUBLIC_PATH = '/api/controller/v2/ping/'
const FLOOR_ANSWER = [
  'x-request-id', '00000000-0000-4000-8000-000000000000', 'cache-control', 'no-store', 'content-length', '0',
  'x-gatehouse-user', 'admin', 'x-gatehouse-user-id', '1', 'x-gatehouse-auth-method', 'basic', 'x-gatehouse-identity', 'j'.repeat(450),
]

if (process.env.PROXY_CPU_UPSTREAM) {
  // The upstream, in a process of its own: a tiny JSON body for every request.
  const body = '{"ok":true}'
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (req.url === FLOOR_PATH) res.writeHead(200, FLOOR_ANSWER).end()
      else res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body)
    })
  })
  server.keepAliveTimeout = 65_000
  server.listen(0, '127.0.0.1', () => process.stdout.write(`http://127.0.0.1:${(server.address() as { port: number }).port}\n`))
  process.on('SIGTERM', () => process.exit(0))
} else {
  await main()
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-proxy-cpu-'))
  const children: ChildProcess[] = []
  const agent = new Agent({ keepAlive: true, maxSockets: connections })
  try {
    const upstream = await started(children, startChild(process.execPath, [new URL(import.meta.url).pathname], { PROXY_CPU_UPSTREAM: '1' }, /(http:\/\/\S+)/))
    const config = join(dir, 'proxy-cpu.yaml')
    writeFileSync(config, [
      'server: { host: 127.0.0.1, port: 0, trusted_proxies: [127.0.0.1] }',
      'services:',
      `  - { name: controller, prefix: /api/controller/, upstream: "${upstream.match}", accepts: [basic, session, token, oidc], public_paths: [${PUBLIC_PATH}], oidc: { realm: platform, client_id: end-users } }`,
      // As in bench/bench.ts: the same upstream behind ten access rules, the deciding one last.
      `  - { name: ruled, prefix: /api/ruled/, upstream: "${upstream.match}", accepts: [basic], access: ${JSON.stringify(TEN_RULES)} }`,
      'realms:',
      '  - name: platform',
      '    access_token_seconds: 3600',
      '    clients:',
      '      - { client_id: end-users, public_client: true, direct_access_grants: true }',
    ].join('\n'))
    const hosts = '/api/controller/v2/hosts/'
    const bare = await started(children, startChild(process.execPath, [join(root, 'bench/bare-proxy.ts')], { BARE_PROXY_UPSTREAM: upstream.match.replace(/\/$/, '') }, /(http:\/\/\S+)/))
    // This checkout, and beside it (each row measured on both in turn) the one PROXY_CPU_BASELINE names, if any.
    const roots = [root, ...(process.env.PROXY_CPU_BASELINE ? [process.env.PROXY_CPU_BASELINE] : [])]
    const gateways = []
    for (const [g, gatewayRoot] of roots.entries()) {
      const profile = process.env.PROXY_CPU_PROFILE
      const gateway = await started(children, startChild(join(gatewayRoot, 'bin/gatehouse'), ['serve', '--config', config, '--data-dir', join(dir, `data-${g}`)], {
        GATEHOUSE_ADMIN_PASSWORD: password,
        GATEHOUSE_LOG_LEVEL: 'warn',
        ...(profile ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profile}` } : {}),
      }, /Gatehouse listening on (\S+)/))
      const url = gateway.match.replace(/\/$/, '')
      const credentials = await signIn(url)
      // nginx as the checkout's docs/forward-auth.md configures it, where nginx (and for `memory`, its Lua module) is installed.
      const nginx = await import(join(gatewayRoot, 'test/helpers/nginx.ts')) as typeof import('../test/helpers/nginx.ts')
      const site = (decisions: Decisions | 'proxy_pass') => nginxInFront(nginx, join(dir, `nginx-${g}`), decisions, url, upstream.match).then((site) => {
        children.push(site.child)
        return site
      }, (error: Error) => {
        process.stderr.write(`nginx (${decisions}) not measured: ${error.message}\n`)
        return undefined
      })
      const asked = await site('asked')
      const inFront = [
        { name: 'proxy_pass (no authentication)', site: await site('proxy_pass') },
        { name: '1 s file cache', site: await site('file cache') },
        { name: 'Lua decision cache', site: nginx.luaModules() === undefined ? undefined : await site('memory') },
      ]
      // What nginx sends with each question (docs/forward-auth.md's `location = /_gatehouse`), beside the client's own.
      const asNginxAsks = { 'x-original-uri': hosts, 'x-original-method': 'GET', 'x-forwarded-host': 'gatehouse.example', 'x-forwarded-proto': 'https', 'x-forwarded-for': '192.0.2.7' }
      const rows: Row[] = [
        { name: 'proxy, public path (no credentials)', url, path: PUBLIC_PATH, headers: {} },
        ...credentials.flatMap(([name, headers]) => [
          { name: `proxy, ${name}`, url, path: hosts, headers },
          { name: `forward-auth, ${name}`, url, path: '/api/gateway/v1/authz/auth-request/', headers: { ...headers, ...asNginxAsks } },
          ...(asked ? [{ name: `nginx auth_request, ${name}`, url: asked.url, path: hosts, headers }] : []),
          ...inFront.flatMap((front) => front.site ? [{ name: `nginx worker, ${front.name}, ${name}`, url: front.site.url, path: hosts, headers, pid: front.site.worker }] : []),
        ]),
        { name: 'proxy, basic, ten access rules', url, path: '/api/ruled/v2/hosts/', headers: credentials[0]![1] },
        { name: 'bare node:http + undici proxy (bench/bare-proxy.ts)', url: bare.match.replace(/\/$/, ''), path: hosts, headers: { authorization: 'Bearer bench' }, pid: bare.child.pid! },
        { name: 'forward-auth floor (node:http answering, no decision)', url: upstream.match.replace(/\/$/, ''), path: FLOOR_PATH, headers: { ...credentials[0]![1], ...asNginxAsks }, pid: upstream.child.pid! },
      ].filter((row) => !only || only.split('|').some((part) => row.name.includes(part)))
      gateways.push({ pid: gateway.child.pid!, rows, perRequest: rows.map(() => [] as number[]) })
    }

    for (const { rows } of gateways) for (const row of rows) await send(agent, row.url, row.path, row.headers, Math.max(connections, requests / 10))
    for (let round = 0; round < rounds; round++) {
      for (const i of gateways[0]!.rows.keys()) {
        for (const { pid, rows, perRequest } of gateways) {
          if (pauseMs) await new Promise((resolve) => setTimeout(resolve, pauseMs))
          const measured = rows[i]!.pid ?? pid
          const before = cpuMicros(`/proc/${measured}/stat`)
          const sent = wrkSeconds ? wrk(rows[i]!.url + rows[i]!.path, rows[i]!.headers) : await send(agent, rows[i]!.url, rows[i]!.path, rows[i]!.headers, requests)
          perRequest[i]!.push((cpuMicros(`/proc/${measured}/stat`) - before) / sent)
        }
      }
    }
    const columns = gateways.length > 1 ? ' | baseline | the rounds\' ratio, median' : ''
    const load = wrkSeconds ? `wrk -t1 -c50 for ${wrkSeconds} s a round` : `${requests} requests a round, ${connections} connections`
    process.stdout.write(`| ${load}, median of ${rounds} rounds | CPU µs per request (Gatehouse's; the nginx worker's in its rows)${columns} |\n|---|---:${gateways.length > 1 ? '|---:|---:' : ''}|\n`)
    for (const [i, row] of gateways[0]!.rows.entries()) {
      const [mine, baseline] = gateways.map(({ perRequest }) => perRequest[i]!)
      const compared = baseline ? ` | ${median(baseline).toFixed(1)} | ${median(mine!.map((value, round) => value / baseline[round]!)).toFixed(2)}` : ''
      process.stdout.write(`| ${row.name} | ${median(mine!).toFixed(1)}${compared} |\n`)
    }
  } finally {
    agent.destroy()
    await Promise.all(children.map(stop))
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A row: requests to `url` + `path`, the CPU time of `pid` (the gateway's when not given) counted. */
interface Row {
  readonly name: string
  readonly url: string
  readonly path: string
  readonly headers: Record<string, string>
  readonly pid?: number
}

type Decisions = import('../test/helpers/nginx.ts').Decisions

/**
 * nginx in front of the service, one worker: asking Gatehouse as `nginx` (a checkout's test/helpers/nginx.ts, which
 * reads that checkout's docs/forward-auth.md) configures it, keeping its decisions as told, or a plain `proxy_pass`.
 * `worker`: the process that serves the requests (nginx's master only starts it).
 */
async function nginxInFront(nginx: typeof import('../test/helpers/nginx.ts'), dir: string, decisions: Decisions | 'proxy_pass', gateway: string, service: string): Promise<{ child: ChildProcess; url: string; worker: number }> {
  const port = await nginx.freePort()
  const name = decisions.replace(/\W/g, '-')
  const { http, main } = decisions === 'proxy_pass'
    ? { http: nginx.proxyServer(port, Number(new URL(service).port)), main: '' }
    : nginx.forwardAuthConfiguration({ port, gateway: new URL(gateway).host, service: new URL(service).host }, decisions, join(dir, `${name}-cache`))
  const child = await nginx.startNginx(dir, name, `keepalive_requests 1000000;\n${http}`, main)
  // The master listens before it starts the worker: a connection can succeed before there is one.
  for (let tries = 0; tries < 100; tries++) {
    const worker = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0])
    if (worker) return { child, url: `http://127.0.0.1:${port}`, worker }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  child.kill()
  throw new Error(`nginx ${name} started no worker`)
}

/** The four credentials, as bench/bench.ts gets them: the admin's password, a session, a personal token, an access token. */
async function signIn(url: string): Promise<[string, Record<string, string>][]> {
  const basic = { authorization: 'Basic ' + Buffer.from(`admin:${password}`).toString('base64') }
  // A session outlives the run (by default it ends after 15 minutes).
  await fetch(`${url}/api/gateway/v1/settings/`, { method: 'PATCH', headers: { ...basic, 'content-type': 'application/json' }, body: JSON.stringify({ session_cookie_age: 86_400 }) })
  const { token } = (await (await fetch(`${url}/api/gateway/v1/tokens/`, { method: 'POST', headers: basic })).json()) as { token: string }
  const page = await fetch(`${url}/api/gateway/v1/login/`)
  const csrf = /csrftoken=([^;]+)/.exec(page.headers.get('set-cookie') ?? '')![1]!
  const login = await fetch(`${url}/api/gateway/v1/login/`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': csrf, cookie: `csrftoken=${csrf}`, referer: `${url}/api/gateway/v1/login/` },
    body: new URLSearchParams({ username: 'admin', password }),
  })
  const session = /gateway_sessionid=([^;]+)/.exec(login.headers.getSetCookie().join('\n'))![1]!
  const grant = await fetch(`${url}/realms/platform/protocol/openid-connect/token`, {
    method: 'POST',
    body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password }),
  })
  const { access_token: accessToken } = (await grant.json()) as { access_token: string }
  return [
    ['basic', basic],
    ['session cookie', { cookie: `gateway_sessionid=${session}` }],
    ['personal token', { authorization: `Bearer ${token}` }],
    ['OIDC bearer', { authorization: `Bearer ${accessToken}` }],
  ]
}

/** `count` GETs over the connections, each answer read to its end; anything but 200 stops the run. Answers `count`. */
async function send(agent: Agent, url: string, path: string, headers: Record<string, string>, count: number): Promise<number> {
  let left = count
  await Promise.all(Array.from({ length: connections }, async () => {
    while (left-- > 0) await get(agent, url + path, headers)
  }))
  return count
}

/**
 * GETs from `wrk -t1 -c50` for PROXY_CPU_WRK seconds; answers how many it completed. Any answer but 2xx, any socket
 * error or timeout (a request whose CPU time would count without the request), or none at all stops the run.
 */
function wrk(url: string, headers: Record<string, string>): number {
  const output = execFileSync('wrk', ['-t1', '-c50', `-d${wrkSeconds}s`, ...Object.entries(headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]), url], { encoding: 'utf8' })
  const completed = Number(/(\d+) requests in/.exec(output)?.[1] ?? 0)
  if (/Non-2xx|Socket errors/.test(output) || !completed) throw new Error(`${url}: not every request answered 2xx\n${output}`)
  return completed
}

function get(agent: Agent, url: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    request(url, { agent, headers }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => response.statusCode === 200 ? resolve() : reject(new Error(`${url}: ${response.statusCode} ${Buffer.concat(chunks)}`)))
    }).on('error', reject).end()
  })
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** A started child, kept in `children` to be stopped at the end. */
async function started(children: ChildProcess[], starting: Promise<{ child: ChildProcess; match: string }>): Promise<{ child: ChildProcess; match: string }> {
  const child = await starting
  children.push(child.child)
  return child
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}
