import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createServer, get } from 'node:http'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { adminAuth, runCli, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { freePort } from '../helpers/free-port.ts'
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'
import { at } from '../helpers/session.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

function workerPids(primary: number): number[] {
  try {
    return execFileSync('ps', ['--ppid', String(primary), '-o', 'pid='], { encoding: 'utf8' })
      .split('\n').filter((line) => line.trim()).map(Number)
  } catch {
    return []
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A GET on a connection of its own: the port's connections, not requests, are handed to the workers in turn. */
function statusOnNewConnection(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { headers, agent: false }, (response) => {
      response.resume()
      resolve(response.statusCode!)
    }).on('error', reject)
  })
}

/** The body of a GET on a connection of its own. */
function textOnNewConnection(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (body += chunk))
      response.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

/** The body of a GET on a connection of its own, or undefined when no answer came within `ms` (its worker is stopped). */
function textWithin(url: string, ms: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const request = get(url, { agent: false, timeout: ms }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (body += chunk))
      response.on('end', () => resolve(body))
    })
    request.on('timeout', () => request.destroy())
    request.on('error', () => resolve(undefined))
  })
}

const probesCounted = (text: string) => sampleValue(parseScrape(text), 'gatehouse_requests_total', { service: 'none', method: 'read', status: '2xx', auth: 'none' })

/** The status, or 0 when nothing accepts the connection. */
function statusOrRefused(url: string, headers: Record<string, string>): Promise<number> {
  return statusOnNewConnection(url, headers).catch(() => 0)
}

async function until(condition: () => boolean | Promise<boolean>, ms: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${typeof what === 'string' ? what : what()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('serve --workers', () => {
  const dir = tempDir()
  let gateway: GatewayProcess

  before(async () => {
    gateway = await spawnGateway(['--demo', '--data-dir', dir, '--workers', '2'], { GATEHOUSE_LOG_LEVEL: 'info' })
    await until(() => gateway.output().match(/"msg":"worker listening"/g)?.length === 2, 15_000, 'both workers listen')
  })
  after(async () => {
    await gateway.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('serves one port from two processes, and a token revoked through one is refused by both on the next request', async () => {
    const gw = at(gateway.url)
    const created = await createToken(gw as never, adminAuth)
    const statuses = async () => Promise.all(Array.from({ length: 8 }, () => statusOnNewConnection(`${gateway.url}/api/controller/v2/hosts/`, bearer(created.token))))
    assert.deepEqual(await statuses(), Array(8).fill(200))
    // A request's log line is written once its answer is sent, so it may reach the output after the answer did.
    const served = () => [...gateway.output().matchAll(/"pid":(\d+)[^\n]*"path":"\/api\/controller\/v2\/hosts\/"/g)].map((m) => m[1])
    await until(() => served().length === 8, 5000, 'every request is logged')
    assert.equal(new Set(served()).size, 2, `both workers answered:\n${gateway.output()}`)
    assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
    assert.deepEqual(await statuses(), Array(8).fill(401))
  })

  it('prints the listening line once', () => {
    assert.equal(gateway.output().match(/Gatehouse listening on/g)?.length, 1)
  })

  it('answers /metrics for every worker together, so its counters only grow whichever worker is asked', async () => {
    const requests = async () => {
      const samples = parseScrape(await textOnNewConnection(`${gateway.url}/metrics`))
      assert.ok(sampleValue(samples, 'nodejs_heap_size_used_bytes') > 0, 'the process metrics are there too')
      return sampleValue(samples, 'gatehouse_requests_total', { service: 'none', method: 'read', status: '2xx', auth: 'none' })
    }
    let last = await requests()
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 5; i++) assert.equal(await statusOnNewConnection(`${gateway.url}/healthz`, {}), 200)
      const now = await requests()
      // Each round's five probes (and the scrape before them), whichever worker answered each one.
      assert.ok(now >= last + 6, `round ${round}: ${now} after ${last}`)
      last = now
    }
  })

  it('says nosniff on the probes and on /metrics, whichever worker answers', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/metrics', '/healthz', '/readyz']) {
      const response = await fetch(`${gateway.url}${path}`, { headers: { connection: 'close' } })
      await response.arrayBuffer()
      assert.equal(response.status, 200, path)
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', path)
    }
  })

  it('answers many scrapes at once with one collection: each worker listens once, not once per scrape', async () => {
    const answers = await Promise.all(Array.from({ length: 24 }, () => textWithin(`${gateway.url}/metrics`, 5000)))
    for (const text of answers) assert.ok(sampleValue(parseScrape(text!), 'nodejs_heap_size_used_bytes') > 0)
    assert.doesNotMatch(gateway.output(), /MaxListenersExceededWarning/)
  })

  it('keeps the summed counters from going down while a worker is stuck: it is counted at its last answer', async () => {
    for (let i = 0; i < 6; i++) assert.equal(await statusOnNewConnection(`${gateway.url}/healthz`, {}), 200)
    // Asked once, the primary has both workers' answers.
    const before = probesCounted((await textWithin(`${gateway.url}/metrics`, 5000))!)
    const [stuck] = workerPids(gateway.process.pid!)
    process.kill(stuck!, 'SIGSTOP')
    try {
      // Connections go to the workers in turn: those the stopped one gets are not answered; the other answers
      // after waiting its two seconds for the stopped one.
      const answered: number[] = []
      for (let attempt = 0; attempt < 8 && answered.length < 2; attempt++) {
        const text = await textWithin(`${gateway.url}/metrics`, 4000)
        if (text !== undefined) answered.push(probesCounted(text))
      }
      assert.equal(answered.length, 2, 'the worker that runs answers')
      for (const count of answered) assert.ok(count >= before, `${count} after ${before}`)
    } finally {
      process.kill(stuck!, 'SIGCONT')
    }
  })

  it('replaces a worker that dies, and keeps what it counted in the sums', async () => {
    const before = probesCounted((await textWithin(`${gateway.url}/metrics`, 5000))!)
    const [victim] = workerPids(gateway.process.pid!)
    process.kill(victim!, 'SIGKILL')
    await until(() => gateway.output().match(/"msg":"worker listening"/g)?.length === 3, 15_000, 'a new worker listens')
    for (let i = 0; i < 2; i++) {
      const after = probesCounted((await textWithin(`${gateway.url}/metrics`, 5000))!)
      assert.ok(after >= before, `${after} after ${before}: the dead worker's count went with it`)
    }
    assert.equal(workerPids(gateway.process.pid!).length, 2)
    assert.ok(!workerPids(gateway.process.pid!).includes(victim!))
    await until(() => /worker \d+ exited \(SIGKILL\); starting another/.test(gateway.output()), 1000, 'the primary says so')
    assert.equal(await statusOnNewConnection(`${gateway.url}/api/controller/v2/hosts/`, adminAuth), 200, gateway.output())
  })

  it('passes a SIGHUP that came while a worker was starting on to it once it listens (certificates renewed meanwhile)', async () => {
    const before = workerPids(gateway.process.pid!)
    const listening = gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0
    process.kill(before[0]!, 'SIGKILL')
    let starting: number | undefined
    await until(() => (starting = workerPids(gateway.process.pid!).find((pid) => !before.includes(pid))) !== undefined, 15_000, 'a replacement starts')
    process.kill(gateway.process.pid!, 'SIGHUP')
    await until(() => (gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0) > listening, 15_000, 'the replacement listens')
    const hangUpOf = (pid: number) => new RegExp(`"pid":${pid},[^\n]*"msg":"SIGHUP: `).test(gateway.output())
    assert.ok(hangUpOf(before[1]!), 'the worker that was serving heard it')
    await until(() => hangUpOf(starting!), 5000, () => `the replacement ${starting} hears it:\n${gateway.output().slice(-3000)}`)
  })

  it('keeps running when SIGHUPs keep coming while a worker dies, and replaces the worker', async () => {
    for (let round = 0; round < 3; round++) {
      const listening = gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0
      const [victim] = workerPids(gateway.process.pid!)
      process.kill(victim!, 'SIGKILL')
      // Until the primary has collected the dead worker: one of the signals then comes after its channel has closed
      // and before its exit is handled, which a single signal, however timed, hit only now and then. A thousand a
      // second at most, for 3 s at most: libuv passes each signal to the loop through a pipe of 4,096 messages, and
      // a primary slower than the signals lets it fill, and the worker's SIGCHLD can then be lost, its exit never
      // handled (a run spun here for 26 minutes, on a loaded machine), as no supervisor's SIGHUPs would make it.
      const deadline = Date.now() + 3000
      while (existsSync(`/proc/${victim}`) && alive(gateway.process.pid!) && Date.now() < deadline) {
        process.kill(gateway.process.pid!, 'SIGHUP')
        await delay(1)
      }
      await until(() => !alive(gateway.process.pid!) || (gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0) > listening, 15_000, 'a new worker listens')
      assert.ok(alive(gateway.process.pid!), gateway.output().split('\n').filter((line) => !line.includes('SIGHUP: ')).join('\n').slice(-3000))
    }
    assert.equal(workerPids(gateway.process.pid!).length, 2)
    assert.equal(await statusOnNewConnection(`${gateway.url}/api/controller/v2/hosts/`, adminAuth), 200)
  })

  it('stops every worker on SIGTERM', async () => {
    const workers = workerPids(gateway.process.pid!)
    await gateway.stop()
    assert.equal(gateway.process.exitCode, 0)
    await until(() => workers.every((pid) => !alive(pid)), 5000, 'the workers exited')
  })
})

describe('serve --workers stopped while a worker starts', () => {
  const dir = tempDir()
  after(() => rmSync(dir, { recursive: true, force: true }))

  const exited = (gateway: GatewayProcess) => new Promise<number | null>((resolve) => {
    if (gateway.process.exitCode !== null || gateway.process.signalCode !== null) resolve(gateway.process.exitCode)
    else gateway.process.once('exit', (code) => resolve(code))
  })

  it('exits 0 on SIGTERM when the first worker listens and the second is still starting, as a supervisor expects', async () => {
    const gateway = await spawnGateway(['--demo', '--data-dir', dir, '--workers', '3'], { GATEHOUSE_LOG_LEVEL: 'info' })
    try {
      let pids: number[] = []
      await until(() => (pids = workerPids(gateway.process.pid!)).length === 3, 15_000, 'the other workers start')
      const listening = gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0
      process.kill(gateway.process.pid!, 'SIGTERM')
      const code = await exited(gateway)
      assert.ok(listening < 3, `a worker was still starting when the stop came:\n${gateway.output()}`)
      assert.equal(code, 0, gateway.output())
      assert.doesNotMatch(gateway.output(), /before it was listening/)
      await until(() => pids.every((pid) => !alive(pid)), 5000, 'every worker exited')
    } finally {
      await gateway.stop()
    }
  })
})

describe('serve --workers on a database that is away while workers are replaced', () => {
  let cluster: PgCluster
  let gateway: GatewayProcess

  before(async () => {
    cluster = await startPgCluster()
    // A fixed port: with port 0, workers that come back after all had gone would listen on another one.
    gateway = await spawnGateway(['--demo', '--database', cluster.url, '--workers', '2', '--port', String(await freePort())], { GATEHOUSE_LOG_LEVEL: 'info' })
    await until(() => gateway.output().match(/"msg":"worker listening"/g)?.length === 2, 15_000, 'both workers listen')
  })
  after(async () => {
    await gateway?.stop()
    cluster?.destroy()
  })

  it('keeps trying to replace workers that die until the database is back, and serves the port again', async () => {
    cluster.stop()
    for (const pid of workerPids(gateway.process.pid!)) process.kill(pid, 'SIGKILL')
    // Each replacement loads the whole gateway before it finds the database away: seconds each on a busy machine.
    await until(() => (gateway.output().match(/cannot be used/g)?.length ?? 0) >= 2, 30_000, () => `the replacements fail for want of the database:\n${gateway.output().slice(-3000)}`)
    assert.equal(await statusOrRefused(`${gateway.url}/healthz`, {}), 0, 'no worker serves the port meanwhile')
    cluster.start()
    await until(async () => await statusOrRefused(`${gateway.url}/api/controller/v2/hosts/`, adminAuth) === 200, 30_000, () => `the port is served again:\n${gateway.output().slice(-3000)}`)
    await until(() => workerPids(gateway.process.pid!).length === 2, 30_000, 'two workers again')
    assert.match(gateway.output(), /exited with status 1 before it was listening; trying again in 2 s/)
  })
})

describe('serve --workers with a password in --database', () => {
  const password = 'cmdline-secret-4711'
  let database: { url: string; drop: () => Promise<void> }
  let gateway: GatewayProcess

  before(async () => {
    database = await createTestDatabase()
    const url = new URL(database.url)
    url.password = password
    // The primary starts twice (it runs itself again without the password on its command line), then its workers.
    gateway = await spawnGateway(['--demo', '--database', url.toString(), '--workers', '2'], { GATEHOUSE_LOG_LEVEL: 'info' }, { startMs: 60_000 })
    await until(() => gateway.output().match(/"msg":"worker listening"/g)?.length === 2, 45_000, 'both workers listen')
  })
  after(async () => {
    await gateway?.stop()
    await database?.drop()
  })

  it('hands the workers the database without the password on their command lines, which every user may read', () => {
    const workers = workerPids(gateway.process.pid!)
    assert.equal(workers.length, 2)
    for (const pid of workers) {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      assert.ok(!argv.some((arg) => arg.includes(password)), `worker ${pid} runs with ${argv.join(' ')}`)
      assert.ok(!argv.includes('--database'))
    }
  })

  it('runs the primary without the password on its command line too, and still on the database it names', async () => {
    const argv = readFileSync(`/proc/${gateway.process.pid}/cmdline`, 'utf8').split('\0')
    assert.ok(!argv.some((arg) => arg.includes(password)), `the primary runs with ${argv.join(' ')}`)
    assert.ok(!argv.includes('--database'))
    const environment = readFileSync(`/proc/${gateway.process.pid}/environ`, 'utf8').split('\0')
    assert.ok(environment.some((entry) => entry.startsWith('GATEHOUSE_DATABASE_URL=') && entry.includes(password)), 'the URL moved to its environment')
    assert.equal(await statusOnNewConnection(`${gateway.url}/api/controller/v2/hosts/`, adminAuth), 200)
  })

  it('warns once that a password on the command line is readable by other users', () => {
    const warnings = gateway.output().match(/a password given in --database/g) ?? []
    assert.equal(warnings.length, 1, gateway.output())
    assert.match(gateway.output(), /GATEHOUSE_DATABASE_URL/)
    assert.ok(!gateway.output().includes(password))
  })
})

describe('serve --workers, bad values', () => {
  it('exits with the error when the port is taken, instead of waiting for a worker that cannot listen', async () => {
    const squatter = createServer()
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve))
    const { port } = squatter.address() as { port: number }
    const dir = tempDir()
    try {
      const started = Date.now()
      const { code, stderr } = await runCli(['serve', '--demo', '--data-dir', dir, '--host', '127.0.0.1', '--port', String(port), '--workers', '2'], { env: { GATEHOUSE_LOG_LEVEL: 'warn' } })
      assert.notEqual(code, 0)
      assert.match(stderr, /EADDRINUSE|in use/i)
      assert.ok(Date.now() - started < 30_000)
    } finally {
      squatter.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })


  it('refuses a count that is not a number from 1 to 256 or auto', async () => {
    for (const value of ['0', 'many', '1000']) {
      const { code, stderr } = await runCli(['serve', '--workers', value])
      assert.equal(code, 2)
      assert.match(stderr, /--workers \(or GATEHOUSE_WORKERS\) must be a number from 1 to 256 or "auto"/)
    }
    // From the environment, where the option's name alone would send the administrator looking at the command line.
    const { code, stderr } = await runCli(['serve'], { env: { GATEHOUSE_WORKERS: 'abc' } })
    assert.equal(code, 2)
    assert.match(stderr, /GATEHOUSE_WORKERS\) must be a number from 1 to 256 or "auto", got "abc"/)
  })
})

describe('serve --workers with a configuration file', () => {
  const dir = tempDir()
  const file = `${dir}/gatehouse.yaml`
  const service = (name: string) => `  - { name: ${name}, prefix: /${name}/, upstream: "http://127.0.0.1:9" }`
  let gateway: GatewayProcess

  before(async () => {
    writeFileSync(file, ['services:', service('first')].join('\n'))
    gateway = await spawnGateway(['--config', file, '--data-dir', dir, '--workers', '2'], { GATEHOUSE_LOG_LEVEL: 'info' })
    await until(() => gateway.output().match(/"msg":"worker listening"/g)?.length === 2, 15_000, 'both workers listen')
  })
  after(async () => {
    await gateway.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const listened = () => gateway.output().match(/"msg":"worker listening"/g)?.length ?? 0
  /** Kills each worker in turn, waiting for its replacement to listen: then every worker is one started since. */
  async function replaceEveryWorker(): Promise<void> {
    for (const victim of workerPids(gateway.process.pid!)) {
      const before = listened()
      process.kill(victim, 'SIGKILL')
      await until(() => listened() > before, 15_000, () => `a replacement listens:\n${gateway.output().slice(-3000)}`)
    }
  }
  /** Whether a path is a service's (401 without credentials) on both workers' connections, or no one's (404). */
  const statuses = async (path: string) => Promise.all([1, 2, 3, 4].map(() => statusOrRefused(`${gateway.url}${path}`, {})))

  it('starts a replacement worker on the configuration the others run, not on a file a SIGHUP refused, and on the one a SIGHUP took', async () => {
    writeFileSync(file, 'services: [\n')
    const refusals = gateway.output().match(/SIGHUP: the configuration file has problems/g)?.length ?? 0
    process.kill(gateway.process.pid!, 'SIGHUP')
    await until(() => (gateway.output().match(/SIGHUP: the configuration file has problems/g)?.length ?? 0) === refusals + 2, 10_000, 'both workers refuse the file')
    await replaceEveryWorker()
    assert.deepEqual(await statuses('/first/x'), [401, 401, 401, 401], gateway.output().slice(-3000))

    writeFileSync(file, ['services:', service('first'), service('second')].join('\n'))
    const reads = gateway.output().match(/SIGHUP: configuration file read again/g)?.length ?? 0
    process.kill(gateway.process.pid!, 'SIGHUP')
    await until(() => (gateway.output().match(/SIGHUP: configuration file read again/g)?.length ?? 0) === reads + 2, 10_000, 'both workers read it')
    // Edited again without a SIGHUP: the workers started from now on run what the others took.
    writeFileSync(file, ['services:', service('third')].join('\n'))
    await replaceEveryWorker()
    assert.deepEqual(await statuses('/second/x'), [401, 401, 401, 401], gateway.output().slice(-3000))
    assert.deepEqual(await statuses('/third/x'), [404, 404, 404, 404])
  })
})
