/**
 * `node bench/password-rate.ts [seconds] [rounds] [connections] [checkout...]`: the password grant against the
 * machine's argon2id rate, measured in turns within one run, as `npm run bench` compares them but in rounds and with
 * where the time goes. Each checkout named (default: this one) runs a gateway (`bin/gatehouse serve`, SQLite, a realm
 * signing RS256) with eight users; each round measures the argon2id rate on every core (bench/argon2-rate.ts), then
 * each gateway in turn under wrk (`connections`, the eight users in turn), each followed by the rate again. Per
 * gateway it prints the medians of the rounds: the grants a second (over wrk's own time for them) against the mean of
 * the rates around them (each over the time its verifications took: bench/argon2-rate.ts), the gateway's CPU time per
 * grant (the process, its event loop, the threads that hash and sign: libuv's pool and the hashing threads; V8's own
 * threads: its background compilers and the garbage collector's helpers; the other threads: SQLite's checkpointer),
 * wrk's, and how much of the time the hashing threads were neither running nor waiting for a core
 * (`/proc/<pid>/task/<tid>/schedstat`; with hashes on libuv's pool, as before those threads, its threads', the
 * signatures' time included), over the wall-clock time around wrk, its start and exit included: a hash slot idle while
 * checks wait is a gap the rate does not have.
 */
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { HASHING_THREAD_NAME } from '../src/directory/hashing-threads.ts'
import { cpuMicros, startGateway as startChild } from './gateway-child.ts'

const here = new URL('../', import.meta.url).pathname
const seconds = Number(process.argv[2] ?? 4)
const rounds = Number(process.argv[3] ?? 5)
const connections = Number(process.argv[4] ?? 8)
const checkouts = process.argv.length > 5 ? process.argv.slice(5).map((dir) => resolve(dir)) : [here]
const adminPassword = 'bench-password'
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-password-rate-'))
const ticksPerSecond = 100
const users = Array.from({ length: 8 }, (_, i) => ({ username: `bench-user-${i + 1}`, password: `bench-user-${i + 1}-Long-Passphrase-7q` }))

const config = join(dir, 'password-rate.yaml')
writeFileSync(config, [
  'server: { host: 127.0.0.1, port: 0 }',
  'services: []',
  'realms:',
  '  - name: platform',
  '    clients:',
  '      - { client_id: end-users, public_client: true, direct_access_grants: true }',
].join('\n'))

function startGateway(checkout: string, index: number): Promise<{ child: ChildProcess; url: string }> {
  return startChild(checkout, ['--config', config, '--data-dir', join(dir, `data-${index}`)], { GATEHOUSE_ADMIN_PASSWORD: adminPassword, GATEHOUSE_LOG_LEVEL: 'warn' })
}

/** Reaped children's user and system time in µs (wrk's, once it has exited). */
function childrenMicros(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')
  return ((Number(fields[13]) + Number(fields[14])) * 1e6) / ticksPerSecond
}

interface ThreadTimes { name: string; cpu: number; runNs: number; waitNs: number }

function threads(pid: number): Map<string, ThreadTimes> {
  const found = new Map<string, ThreadTimes>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()
      const [runNs, waitNs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number)
      found.set(tid, { name: tid === String(pid) ? 'main' : name, cpu: cpuMicros(`/proc/${pid}/task/${tid}/stat`), runNs: runNs!, waitNs: waitNs! })
    } catch {
      // The thread ended meanwhile.
    }
  }
  return found
}

/** The rate on every core; its process's CPU time per verification is kept. */
const verificationCpu: number[] = []
function argon2Rate(): number {
  const out = execFileSync(join(here, 'node_modules/.bin/node'), [join(here, 'bench/argon2-rate.ts'), String(seconds), 'all-cores'], { encoding: 'utf8', env: { ...process.env, ARGON2_RATE_CPU: '1' } })
  const [rate, cpu] = out.trim().split(' ').map(Number)
  verificationCpu.push(cpu!)
  return rate!
}

const bodies = users.map((user) => new URLSearchParams({ client_id: 'end-users', grant_type: 'password', ...user }).toString())
const script = join(dir, 'wrk.lua')
writeFileSync(script, [
  `bodies = { ${bodies.map((body) => JSON.stringify(body)).join(', ')} }`, 'turn = 0',
  'function request() turn = turn % #bodies + 1; return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" }, bodies[turn]) end',
].join('\n') + '\n')

interface Sample { rps: number; ratio: number; process: number; loop: number; pool: number; v8: number; others: number; wrk: number; poolIdle: number; loopWait: number; errors: number }

/** V8's own threads: its background compilers (Maglev, TurboFan) and the garbage collector's helpers. */
const V8_THREADS = new Set(['V8Worker', 'DelayedTaskSche'])

function grantRound(gateway: { child: ChildProcess; url: string }, duration: number): Omit<Sample, 'ratio'> {
  const pid = gateway.child.pid!
  const before = threads(pid)
  const process0 = cpuMicros(`/proc/${pid}/stat`)
  const wrk0 = childrenMicros()
  const started = process.hrtime.bigint()
  const ran = spawnSync('wrk', ['-t', '1', '-c', String(connections), '-d', `${duration}s`, '-s', script, `${gateway.url}/realms/platform/protocol/openid-connect/token`], { encoding: 'utf8' })
  const wallNs = Number(process.hrtime.bigint() - started)
  const after = threads(pid)
  const [, count, time, unit] = /(\d+) requests in ([\d.]+)(ms|s|m)\b/.exec(ran.stdout) ?? []
  const requests = Number(count)
  // wrk's own time for them, without its start and exit, which the wall-clock time around it includes.
  const wrkSeconds = Number(time) * ({ ms: 1e-3, s: 1, m: 60 } as Record<string, number>)[unit!]!
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(ran.stdout)?.[1] ?? 0)
  let loop = 0, pool = 0, v8 = 0, others = 0, loopWaitNs = 0
  const active = { 'libuv-worker': 0, [HASHING_THREAD_NAME]: 0 } as Record<string, number>
  for (const [tid, end] of after) {
    const start = before.get(tid) ?? { cpu: 0, runNs: 0, waitNs: 0 }
    if (end.name === 'main') {
      loop += end.cpu - start.cpu
      loopWaitNs += end.waitNs - start.waitNs
    } else if (end.name in active) {
      pool += end.cpu - start.cpu
      active[end.name]! += end.runNs - start.runNs + end.waitNs - start.waitNs
    } else if (V8_THREADS.has(end.name)) v8 += end.cpu - start.cpu
    else others += end.cpu - start.cpu
  }
  // One thread per core hashes at a time: the threads of their own (src/directory/hashing-threads.ts), or before them
  // two of libuv's pool, which also signed. The rest of the time, a place to hash was idle.
  const slots = availableParallelism()
  const hashingNs = active[HASHING_THREAD_NAME] || active['libuv-worker']!
  return {
    rps: requests / wrkSeconds,
    process: (cpuMicros(`/proc/${pid}/stat`) - process0) / requests,
    loop: loop / requests,
    pool: pool / requests,
    v8: v8 / requests,
    others: others / requests,
    wrk: (childrenMicros() - wrk0) / requests,
    poolIdle: 1 - hashingNs / (slots * wallNs),
    loopWait: loopWaitNs / 1000 / requests,
    errors: non2xx,
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2
}

const gateways: { child: ChildProcess; url: string }[] = []
try {
  for (const [i, checkout] of checkouts.entries()) {
    const gateway = await startGateway(checkout, i)
    gateways.push(gateway)
    const basic = 'Basic ' + Buffer.from(`admin:${adminPassword}`).toString('base64')
    for (const user of users) {
      const made = await fetch(`${gateway.url}/api/gateway/v1/users/`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/json' }, body: JSON.stringify(user) })
      if (made.status !== 201) throw new Error(`could not create ${user.username}: ${made.status} ${await made.text()}`)
    }
    grantRound(gateway, 1)
  }
  const samples: Sample[][] = checkouts.map(() => [])
  let rateBefore = argon2Rate()
  const rates = [rateBefore]
  for (let round = 0; round < rounds; round++) {
    for (const [i, gateway] of gateways.entries()) {
      const sample = grantRound(gateway, seconds)
      const rateAfter = argon2Rate()
      rates.push(rateAfter)
      samples[i]!.push({ ...sample, ratio: sample.rps / ((rateBefore + rateAfter) / 2) })
      process.stderr.write(`round ${round + 1}, ${checkouts[i]}: ${sample.rps.toFixed(1)} grants/s, rate ${rateBefore.toFixed(1)}-${rateAfter.toFixed(1)}, CPU µs/grant ${sample.process.toFixed(0)} (loop ${sample.loop.toFixed(0)}, pool ${sample.pool.toFixed(0)}, V8 ${sample.v8.toFixed(0)}, others ${sample.others.toFixed(0)}), hashing idle ${(sample.poolIdle * 100).toFixed(1)}%\n`)
      rateBefore = rateAfter
    }
  }
  process.stdout.write(`| ${connections} connections, ${seconds} s rounds, median of ${rounds} | grants/s | vs argon2id rate | CPU µs/grant: process | event loop | hashing and signing threads | V8's threads | other threads | wrk | hashing threads idle | loop's wait for a core, µs/grant | non-2xx |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n`)
  for (const [i, checkout] of checkouts.entries()) {
    const s = samples[i]!
    const m = (pick: (sample: Sample) => number) => median(s.map(pick))
    process.stdout.write(`| ${checkout} | ${m((x) => x.rps).toFixed(1)} | ${(m((x) => x.ratio) * 100).toFixed(0)}% | ${m((x) => x.process).toFixed(0)} | ${m((x) => x.loop).toFixed(0)} | ${m((x) => x.pool).toFixed(0)} | ${m((x) => x.v8).toFixed(0)} | ${m((x) => x.others).toFixed(0)} | ${m((x) => x.wrk).toFixed(0)} | ${(m((x) => x.poolIdle) * 100).toFixed(1)}% | ${m((x) => x.loopWait).toFixed(0)} | ${s.reduce((sum, x) => sum + x.errors, 0)} |\n`)
  }
  process.stdout.write(`argon2id rates: ${rates.map((rate) => rate.toFixed(1)).join(', ')}; CPU µs per verification , median ${median(verificationCpu).toFixed(0)}\n`)
} finally {
  for (const gateway of gateways) {
    const exited = new Promise((resolve) => gateway.child.once('exit', resolve))
    gateway.child.kill('SIGTERM')
    await exited
  }
  rmSync(dir, { recursive: true, force: true })
}
