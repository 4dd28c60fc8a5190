/**
 * Time to listening and idle resident memory, as `npm run bench` measures them, alone: restarts on an existing
 * SQLite database with the benchmark's configuration, `VmRSS` one second after `listening`, the median of several.
 * Given other checkouts' roots as arguments, it alternates their starts with this one's, so that each comparison is
 * made in the same minutes of a shared machine. Environment: IDLE_STARTS (default 7).
 *
 *   node bench/idle-memory.ts [other-checkout ...]
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const here = new URL('../', import.meta.url).pathname
const roots = [here, ...process.argv.slice(2).map((root) => resolve(root))]
const starts = Number(process.env.IDLE_STARTS ?? 7)
const port = 18490
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-idle-'))

/** bench/bench.ts's configuration, its upstream left unstarted: an idle gateway never calls it. */
function writeConfig(): string {
  const config = join(dir, 'bench.yaml')
  const upstream = 'http://127.0.0.1:18491'
  writeFileSync(config, [
    `server: { host: 127.0.0.1, port: ${port}, trusted_proxies: [127.0.0.1] }`,
    'services:',
    `  - { name: controller, prefix: /api/controller/, upstream: "${upstream}", accepts: [basic, session, token, oidc], public_paths: [/api/controller/v2/ping/], oidc: { realm: platform, client_id: end-users } }`,
    `  - { name: ruled, prefix: /api/ruled/, upstream: "${upstream}", accepts: [basic], access: [{ allow: { superuser: true } }] }`,
    'realms:',
    '  - name: platform',
    '    access_token_seconds: 3600',
    '    clients:',
    '      - { client_id: end-users, public_client: true, direct_access_grants: true }',
    '      - { client_id: bench-service, public_client: false, secret: bench-client-secret-0123456789, service_accounts: true }',
    '  - name: platform-es256',
    '    default_signature_algorithm: ES256',
    '    clients:',
    '      - { client_id: end-users, public_client: true, direct_access_grants: true }',
  ].join('\n'))
  return config
}

interface Start {
  ms: number
  /** User and system CPU time to listening: what a busy machine changes least. */
  cpuMs: number
  megabytes: number
}

/** A process's user and system CPU time so far (/proc/<pid>/stat, in clock ticks of 10 ms). */
function cpuMilliseconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/**
 * One start of `root`'s bin/gatehouse: the time to its `listening` line, and its VmRSS a second later. Each checkout
 * keeps its compile caches in a directory of its own, as an installation does: in one directory, the user's, two
 * checkouts whose bundles differ (or whose caches are named differently) replace each other's caches of the
 * dependencies' bundles at every start (src/vendor/code-cache.ts keeps one per bundle name), and so would any other
 * gateway started on the machine meanwhile, so that every start compiled them anew.
 */
async function measureStart(root: string, config: string, dataDir: string, compileCache: string): Promise<Start> {
  const began = performance.now()
  const child = spawn(join(root, 'bin/gatehouse'), ['serve', '--config', config, '--data-dir', dataDir], {
    env: { ...process.env, GATEHOUSE_ADMIN_PASSWORD: 'bench-password', GATEHOUSE_LOG_LEVEL: 'warn', NODE_COMPILE_CACHE: compileCache },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    const [ms, cpuMs] = await new Promise<[number, number]>((resolve, reject) => {
      let output = ''
      const onData = (data: Buffer) => {
        output += data
        if (/Gatehouse listening on/.test(output)) resolve([performance.now() - began, cpuMilliseconds(child.pid!)])
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      child.once('exit', (code) => reject(new Error(`exited with ${code}: ${output}`)))
    })
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const kilobytes = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1])
    return { ms, cpuMs, megabytes: kilobytes / 1024 }
  } finally {
    child.kill('SIGTERM')
    await exited
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2
}

try {
  const config = writeConfig()
  const results = roots.map(() => [] as Start[])
  // A first start of each creates its database (and warms the compile cache, and saves the bundles' code caches,
  // src/vendor/code-cache.ts); only restarts are counted.
  for (const [i, root] of roots.entries()) await measureStart(root, config, join(dir, `data-${i}`), join(dir, `compile-cache-${i}`))
  for (let round = 0; round < starts; round++) {
    for (const [i, root] of roots.entries()) results[i]!.push(await measureStart(root, config, join(dir, `data-${i}`), join(dir, `compile-cache-${i}`)))
  }
  for (const [i, root] of roots.entries()) {
    const rss = results[i]!.map((start) => start.megabytes)
    const ms = results[i]!.map((start) => start.ms)
    const cpuMs = results[i]!.map((start) => start.cpuMs)
    process.stdout.write(`${root}: start to listening ${median(ms).toFixed(0)} ms (CPU ${median(cpuMs).toFixed(0)} ms), idle VmRSS ${median(rss).toFixed(1)} MB (median of ${starts}; ${rss.map((value) => value.toFixed(1)).join(' ')})\n`)
  }
  // Starts of the same round ran within seconds of each other: their differences scatter less than the medians do
  // when the machine's load moves from round to round.
  for (const [i, root] of roots.entries()) {
    if (i === 0) continue
    const cpuMs = results[0]!.map((start, round) => start.cpuMs - results[i]![round]!.cpuMs)
    const ms = results[0]!.map((start, round) => start.ms - results[i]![round]!.ms)
    process.stdout.write(`${roots[0]} against ${root}, median of each round's difference: CPU ${median(cpuMs).toFixed(0)} ms, to listening ${median(ms).toFixed(0)} ms (CPU ${cpuMs.join(' ')})\n`)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
