/**
 * `node bench/tail-latency.ts [seconds] [rounds] [credential]`: the built-in proxy's latency percentiles next to nginx
 * proxy_pass and the bare Node proxy (bench/bare-proxy.ts), all in front of the same nginx upstream answering a tiny
 * JSON body, as `npm run bench` sets its proxy rows up. Each round measures every target in turn with wrk -t1 -c50
 * paced at TAIL_RATE requests/s (default 2,000, as the bench's paced column) and then flat out; each figure is the
 * median of its rounds. `credential` is basic (default), token (a personal token) or public (a public path).
 * TAIL_BASELINE=<checkout> runs a second gateway from another checkout (the code before a change, say), measured in
 * the same rounds, alternating with this one; TAIL_NODE_OPTIONS and TAIL_BASELINE_NODE_OPTIONS are each gateway's
 * NODE_OPTIONS (Node flags to try). Prints one table of p50, p90, p99 and requests/s, and with TAIL_STALLS=1 one of
 * each gateway's long event-loop turns during the paced runs, and what the thread did in them (bench/loop-stalls.ts).
 */
import { execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, proxyServer, startNginx, tinyJsonServer } from '../test/helpers/nginx.ts'
import { startChild, startGateway } from './gateway-child.ts'
import type { LoopStalls } from './loop-stalls.ts'

const root = new URL('../', import.meta.url).pathname
const seconds = Number(process.argv[2] ?? 5)
const rounds = Number(process.argv[3] ?? 5)
const credential = process.argv[4] ?? 'basic'
const rate = Number(process.env.TAIL_RATE ?? 2000)
const connections = 50
const password = 'bench-password'
const hosts = '/api/controller/v2/hosts/'
const stalls = process.env.TAIL_STALLS === '1'
const ping = '/api/controller/v2/ping/'

interface Figures {
  p50: number
  p90: number
  p99: number
  rps: number
}

/** wrk's latency distribution, in ms; paced as bench/bench.ts paces (a random pause before each connection's next request). */
function wrk(url: string, headers: Record<string, string>, duration: number, dir: string, paced: boolean): Figures {
  const args = ['-t', '1', '-c', String(connections), '-d', `${duration}s`, '--latency']
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`)
  if (paced) {
    const script = join(dir, 'paced.lua')
    writeFileSync(script, `math.randomseed(os.time())\nfunction delay() return math.random(0, ${Math.round((2 * connections * 1000) / rate)}) end\n`)
    args.push('-s', script)
  }
  const out = execFileSync('wrk', [...args, url], { encoding: 'utf8' })
  const percentile = (p: number): number => {
    const match = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out)
    return match ? Number(match[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[match[2]!]! : NaN
  }
  return { p50: percentile(50), p90: percentile(90), p99: percentile(99), rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]) }
}

/** The gateway's counts since the last call (it writes them on SIGUSR2, and starts afresh). */
async function stallsSince(gateway: { child: ChildProcess; stallsFile: string }): Promise<LoopStalls> {
  rmSync(gateway.stallsFile, { force: true })
  gateway.child.kill('SIGUSR2')
  for (let waited = 0; waited < 10_000; waited += 50) {
    try {
      return JSON.parse(readFileSync(gateway.stallsFile, 'utf8')) as LoopStalls
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  throw new Error('the gateway did not write its event loop counts')
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const range = (values: number[], digits: number): string => `${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)}`

async function credentialHeaders(gateway: string): Promise<Record<string, string>> {
  const basic = { Authorization: 'Basic ' + Buffer.from(`admin:${password}`).toString('base64') }
  if (credential === 'basic') return basic
  if (credential === 'public') return {}
  if (credential === 'token') {
    const { token } = (await (await fetch(`${gateway}/api/gateway/v1/tokens/`, { method: 'POST', headers: basic })).json()) as { token: string }
    return { Authorization: `Bearer ${token}` }
  }
  throw new Error(`unknown credential ${credential}: basic, token or public`)
}

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-tail-'))
const children: ChildProcess[] = []
try {
  const upstreamPort = await freePort()
  const nginxPort = await freePort()
  children.push(await startNginx(dir, 'upstream', tinyJsonServer(upstreamPort)))
  children.push(await startNginx(dir, 'proxy', proxyServer(nginxPort, upstreamPort)))
  const bare = await startChild(join(root, 'node_modules/.bin/node'), [join(root, 'bench/bare-proxy.ts')], { BARE_PROXY_UPSTREAM: `http://127.0.0.1:${upstreamPort}` }, /(http:\/\/\S+)/)
  children.push(bare.child)
  const config = join(dir, 'gateway.yaml')
  writeFileSync(config, [
    'server: { host: 127.0.0.1, port: 0 }',
    'services:',
    `  - { name: controller, prefix: /api/controller/, upstream: "http://127.0.0.1:${upstreamPort}", accepts: [basic, session, token], public_paths: [${ping}] }`,
  ].join('\n'))
  const checkouts: [string, string, string | undefined][] = [['this checkout', root, process.env.TAIL_NODE_OPTIONS]]
  if (process.env.TAIL_BASELINE) checkouts.push(['baseline', process.env.TAIL_BASELINE, process.env.TAIL_BASELINE_NODE_OPTIONS])
  const targets: { name: string; url: string; headers: Record<string, string>; gateway?: { child: ChildProcess; stallsFile: string } }[] = [
    { name: 'nginx proxy_pass', url: `http://127.0.0.1:${nginxPort}${hosts}`, headers: {} },
    { name: 'bare node:http + undici', url: `${bare.match}${hosts}`, headers: { Authorization: 'Bearer bench' } },
  ]
  for (const [name, checkout, nodeOptions] of checkouts) {
    const stallsFile = join(dir, `${name.replace(/\W/g, '-')}-stalls.json`)
    const options = [nodeOptions, stalls ? `--import ${join(root, 'bench/loop-stalls.ts')}` : undefined].filter(Boolean).join(' ')
    const { child, url } = await startGateway(checkout, ['--config', config, '--data-dir', join(dir, name.replace(/\W/g, '-'))],
      { GATEHOUSE_ADMIN_PASSWORD: password, GATEHOUSE_LOG_LEVEL: 'warn', LOOP_STALLS_FILE: stallsFile, ...(options ? { NODE_OPTIONS: options } : {}) })
    children.push(child)
    const gateway = url.replace(/\/$/, '')
    targets.push({ name: `Gatehouse, ${name}, ${credential}`, url: `${gateway}${credential === 'public' ? ping : hosts}`, headers: await credentialHeaders(gateway), gateway: { child, stallsFile } })
  }
  const runs = targets.map(() => ({ paced: [] as Figures[], flat: [] as Figures[], stalls: [] as LoopStalls[] }))
  for (const target of targets) wrk(target.url, target.headers, 2, dir, false)
  for (let round = 0; round < rounds; round++) {
    // The gateways swap places every round, so that neither always follows the same target.
    const order = targets.map((_, i) => i)
    if (round % 2 && checkouts.length === 2) order.splice(-2, 2, order.at(-1)!, order.at(-2)!)
    for (const i of order) {
      const { gateway } = targets[i]!
      if (stalls && gateway) await stallsSince(gateway)
      runs[i]!.paced.push(wrk(targets[i]!.url, targets[i]!.headers, seconds, dir, true))
      if (stalls && gateway) runs[i]!.stalls.push(await stallsSince(gateway))
      runs[i]!.flat.push(wrk(targets[i]!.url, targets[i]!.headers, seconds, dir, false))
    }
  }
  const lines = [
    `wrk -t1 -c${connections}, ${seconds} s per run, medians of ${rounds} rounds (range), Node ${process.version}`,
    '',
    `| target | p50 ms at ${rate}/s | p90 ms at ${rate}/s | p99 ms at ${rate}/s | p99 vs nginx | requests/s flat out | p99 ms flat out |`,
    '|---|---:|---:|---:|---:|---:|---:|',
  ]
  const nginxP99 = median(runs[0]!.paced.map((run) => run.p99))
  targets.forEach(({ name }, i) => {
    const { paced, flat } = runs[i]!
    const p99 = paced.map((run) => run.p99)
    lines.push(`| ${name} | ${median(paced.map((run) => run.p50)).toFixed(2)} | ${median(paced.map((run) => run.p90)).toFixed(2)} | ${median(p99).toFixed(2)} (${range(p99, 2)}) | ${(median(p99) / nginxP99).toFixed(1)}x | ${Math.round(median(flat.map((run) => run.rps)))} (${range(flat.map((run) => run.rps), 0)}) | ${median(flat.map((run) => run.p99)).toFixed(1)} |`)
  })
  if (stalls) {
    lines.push('', `| event loop, paced runs (medians per run of ${seconds} s) | turns over 5 ms | their ms | running | waiting for a CPU | asleep | with a collection | scavenges | longest scavenge ms | major collections | longest major ms |`, '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    targets.forEach(({ name, gateway }, i) => {
      if (!gateway) return
      const of = (pick: (counts: LoopStalls) => number, digits = 0) => median(runs[i]!.stalls.map(pick)).toFixed(digits)
      lines.push(`| ${name} | ${of((c) => c.stalls)} | ${of((c) => c.stalledMs)} | ${of((c) => c.runningMs)} | ${of((c) => c.queuedMs)} | ${of((c) => c.asleepMs)} | ${of((c) => c.withGc)} | ${of((c) => c.scavenges)} | ${of((c) => c.scavengeMaxMs, 1)} | ${of((c) => c.majors)} | ${of((c) => c.majorMaxMs, 1)} |`)
    })
  }
  process.stdout.write(lines.join('\n') + '\n')
} finally {
  // Each process gone before its directory is: nginx writes its logs there until it exits.
  await Promise.all(children.map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined)
    child.once('exit', resolve)
    child.kill('SIGTERM')
  })))
  rmSync(dir, { recursive: true, force: true })
}
