import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { after, before, describe, it } from 'node:test'
import { sql } from '../../src/store/kysely.ts'
import { migrationProvider } from '../../src/store/migrations/index.ts'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { adminAuth, json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Long enough for the probes before it to be of an upstream's last second no more: the next probe connects. */
function pastUpstreamProbeReuse(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1100))
}

function check(body: { checks: { name: string; status: string; data: Record<string, unknown> }[] }, name: string) {
  const found = body.checks.find((c) => c.name === name)
  assert.ok(found, `no check named ${name}`)
  return found
}

describe('health and readiness endpoints', () => {
  let gw: TestGateway
  let downPort: number
  /** An upstream that counts the connections readiness probes open to it. */
  let counted: Server
  let connections = 0
  before(async () => {
    downPort = await closedPort()
    counted = createServer((socket) => {
      connections++
      socket.destroy()
    })
    await new Promise<void>((resolve) => counted.listen(0, '127.0.0.1', resolve))
    gw = await startGateway({
      config: {
        services: [
          { name: 'controller', prefix: '/api/controller/', upstream: 'builtin:demo' },
          { name: 'gone', prefix: '/gone/', upstream: `http://127.0.0.1:${downPort}` },
          { name: 'counted', prefix: '/counted/', upstream: `http://127.0.0.1:${(counted.address() as { port: number }).port}` },
        ],
        realms: [],
      },
    })
  })
  after(async () => {
    await gw?.close()
    counted?.close()
  })

  it('answers /healthz without credentials, from memory, and never cached', async () => {
    const response = await gw.fetch('/healthz')
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('cache-control'), 'no-store')
    assert.deepEqual(await json(response), { status: 'UP', checks: [] })
    assert.equal((await gw.fetch('/healthz', { method: 'HEAD' })).status, 200)
  })

  it('answers OPTIONS on both probes as the API\'s paths do, and other methods with 405 naming the ones they have', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const options = await gw.fetch(path, { method: 'OPTIONS' })
      assert.equal(options.status, 200, path)
      assert.equal(options.headers.get('allow'), 'GET, HEAD, OPTIONS', path)
      assert.equal(options.headers.get('cache-control'), 'no-store', path)
      assert.deepEqual((await json(options)).renders, ['application/json'], path)
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
        const other = await gw.fetch(path, { method })
        assert.equal(other.status, 405, `${method} ${path}`)
        assert.equal(other.headers.get('allow'), 'GET, HEAD, OPTIONS', `${method} ${path}`)
        assert.equal((await json(other)).code, 'method_not_allowed', `${method} ${path}`)
      }
    }
  })

  it('says nosniff on every answer of both probes, as on every other answer the gateway writes itself', async () => {
    for (const path of ['/healthz', '/readyz']) {
      for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST']) {
        const response = await gw.fetch(path, { method })
        await response.arrayBuffer()
        assert.equal(response.headers.get('x-content-type-options'), 'nosniff', `${method} ${path}: ${response.status}`)
      }
    }
  })

  it('reports each readiness check, and an upstream that is down without becoming unready', async () => {
    const response = await gw.fetch('/readyz')
    assert.equal(response.status, 200)
    const body = await json(response)
    assert.equal(body.status, 'UP')
    assert.deepEqual(body.checks.map((c: { name: string; status: string }) => [c.name, c.status]), [['database', 'UP'], ['migrations', 'UP'], ['event_bus', 'UP'], ['realm_keys', 'UP']])
    assert.equal(check(body, 'migrations').data.applied, Object.keys(await migrationProvider('sqlite').getMigrations()).length)
    const upstreams = Object.fromEntries(body.upstreams.map((u: { service: string }) => [u.service, u]))
    assert.equal(upstreams.controller.status, 'UP')
    assert.equal(upstreams.gone.status, 'DOWN')
    assert.equal(upstreams.gone.reason, 'refused')
    // Public: no addresses of upstreams or the database in it.
    assert.doesNotMatch(JSON.stringify(body), new RegExp(`127\\.0\\.0\\.1|${downPort}|sqlite`))
  })

  it('counts every time of its answer in whole milliseconds, as the README shows them', async () => {
    const body = await json(await gw.fetch('/readyz'))
    const times = [
      ...body.checks.flatMap((c: { data: Record<string, unknown> }) => Object.entries(c.data).filter(([key]) => /(^|_)ms(_|$)/.test(key))),
      ...body.upstreams.map((u: { ms: number }) => ['ms', u.ms]),
    ]
    assert.ok(times.some(([key]) => key === 'last_read_ms_ago'), 'the event bus says when it last read the log')
    assert.deepEqual(times.filter(([, value]) => !Number.isInteger(value)), [])
  })

  it('is not ready while a migration this version needs is missing, and ready again once it is applied', async () => {
    await sql`delete from kysely_migration where name = '007_login_failures'`.execute(gw.store.database.db)
    try {
      const response = await gw.fetch('/readyz')
      assert.equal(response.status, 503)
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff')
      const body = await json(response)
      assert.equal(body.code, 'not_ready')
      assert.equal(body.status, 'DOWN')
      assert.equal(check(body, 'migrations').status, 'DOWN')
      assert.deepEqual(check(body, 'migrations').data.pending, ['007_login_failures'])
      assert.equal(check(body, 'database').status, 'UP')
    } finally {
      await sql`insert into kysely_migration (name, timestamp) values ('007_login_failures', '2020-01-01T00:00:00.000Z')`.execute(gw.store.database.db)
    }
    assert.equal((await gw.fetch('/readyz')).status, 200)
  })

  it('stays ready when a newer version has applied migrations this one does not know (a rolling upgrade), and says so', async () => {
    await sql`insert into kysely_migration (name, timestamp) values ('999_from_the_future', '2030-01-01T00:00:00.000Z')`.execute(gw.store.database.db)
    try {
      const response = await gw.fetch('/readyz')
      assert.equal(response.status, 200)
      assert.deepEqual(check(await json(response), 'migrations').data.newer, ['999_from_the_future'])
    } finally {
      await sql`delete from kysely_migration where name = '999_from_the_future'`.execute(gw.store.database.db)
    }
  })

  it('lets probes that arrive together share one check', async () => {
    await pastUpstreamProbeReuse()
    connections = 0
    const responses = await Promise.all(Array.from({ length: 50 }, () => gw.fetch('/readyz')))
    assert.deepEqual(new Set(responses.map((r) => r.status)), new Set([200]))
    assert.ok(connections >= 1 && connections < 50, `${connections} checks for 50 probes`)
  })

  it('connects to each upstream at most about once a second, however fast probes follow one another', async () => {
    // Probes are public: one connection per probe would let anyone make the gateway open (and leave in TIME_WAIT)
    // connections to every upstream as fast as it can ask.
    await pastUpstreamProbeReuse()
    connections = 0
    const started = performance.now()
    for (let i = 0; i < 30; i++) assert.equal((await gw.fetch('/readyz')).status, 200)
    const seconds = (performance.now() - started) / 1000
    assert.ok(connections >= 1 && connections <= Math.ceil(seconds) + 1, `${connections} connections for 30 probes in ${seconds.toFixed(1)} s`)
  })

  it('leaves the platform\'s ping/ as it was', async () => {
    const body = await json(await gw.fetch('/api/gateway/v1/ping/'))
    assert.equal(body.status, 'good')
    assert.equal(body.db_connected, true)
  })

  it('answers concurrent ping/ and /readyz probes with one database query in flight each, and keeps no answer past it', async () => {
    const database = gw.app.store.database
    const ping = database.ping.bind(database)
    const migrationStatus = database.migrationStatus.bind(database)
    // A slow database: each query takes a while, so probes arriving meanwhile find it in flight.
    const slowly = <T>(query: () => Promise<T>) => new Promise((resolve) => setTimeout(resolve, 400)).then(query)
    let pings = 0
    let statuses = 0
    let connected = true
    database.ping = () => {
      pings++
      return slowly(async () => connected && await ping())
    }
    database.migrationStatus = () => {
      statuses++
      return slowly(migrationStatus)
    }
    try {
      await pastUpstreamProbeReuse()
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => gw.fetch(i % 2 ? '/readyz' : '/api/gateway/v1/ping/')))
      assert.deepEqual(answers.map((response) => response.status), answers.map(() => 200))
      assert.ok(pings >= 1 && pings <= 10, `${pings} queries for 20 concurrent pings`)
      assert.ok(statuses >= 1 && statuses <= 10, `${statuses} queries for 20 concurrent readiness probes`)
      // The next probe asks the database again, and an outage is reported by the first probe after it.
      const before = pings
      connected = false
      assert.equal((await json(await gw.fetch('/api/gateway/v1/ping/'))).db_connected, false)
      assert.equal(pings, before + 1)
    } finally {
      database.ping = ping
      database.migrationStatus = migrationStatus
    }
  })

  it('stays ready while the database refuses writes and answers reads (a full disk), and says so until a write succeeds again', async () => {
    const events = gw.store.events
    const heartbeat = events.heartbeat
    events.heartbeat = () => Promise.reject(Object.assign(new Error('database or disk is full'), { code: 'ERR_SQLITE_ERROR', errcode: 13 }))
    try {
      await new Promise((resolve) => setTimeout(resolve, 1200))
      const response = await gw.fetch('/readyz')
      assert.equal(response.status, 200)
      const database = check(await json(response), 'database')
      assert.equal(database.status, 'UP')
      assert.equal(database.data.writes, 'failing')
      assert.ok(Date.now() - Date.parse(String(database.data.writes_failing_since)) < 5000, String(database.data.writes_failing_since))
    } finally {
      events.heartbeat = heartbeat
    }
    await new Promise((resolve) => setTimeout(resolve, 1200))
    assert.deepEqual(Object.keys(check(await json(await gw.fetch('/readyz')), 'database').data), ['ms'])
  })

  // Last: a stopped bus is not started again.
  it('is not ready once the event bus has stopped reading the event log', async () => {
    await gw.app.bus.stop()
    const response = await gw.fetch('/readyz')
    assert.equal(response.status, 503)
    const body = await json(response)
    assert.equal(check(body, 'event_bus').status, 'DOWN')
    assert.equal(check(body, 'event_bus').data.reason, 'stopped')
    assert.equal((await gw.fetch('/healthz')).status, 200)
  })
})

describe('readiness of https upstreams', () => {
  const dir = tempDir()
  let gw: TestGateway
  let untrusted: HttpsServer
  // Takes the TCP connection and never says a word of the TLS handshake.
  let stalling: Server
  const stalled: Socket[] = []
  before(async () => {
    const certificate = selfSignedCertificate(dir, 'upstream')
    untrusted = createHttpsServer({ cert: readFileSync(certificate.cert), key: readFileSync(certificate.key) }, (_request, response) => response.end())
    stalling = createServer((socket) => stalled.push(socket))
    await Promise.all([untrusted, stalling].map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))))
    const port = (server: Server | HttpsServer) => (server.address() as { port: number }).port
    gw = await startGateway({
      config: {
        services: [
          { name: 'untrusted', prefix: '/untrusted/', upstream: `https://127.0.0.1:${port(untrusted)}` },
          { name: 'stalling', prefix: '/stalling/', upstream: `https://127.0.0.1:${port(stalling)}` },
        ],
        realms: [],
      },
    })
  })
  after(async () => {
    await gw?.close()
    for (const socket of stalled) socket.destroy()
    untrusted?.close()
    stalling?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('reports an upstream whose certificate the proxy refuses, or whose handshake never ends, as down, as every request to it is', async () => {
    const body = await json(await gw.fetch('/readyz'))
    assert.equal(body.status, 'UP')
    const upstreams = Object.fromEntries(body.upstreams.map((u: { service: string }) => [u.service, u]))
    assert.equal(upstreams.untrusted.status, 'DOWN')
    assert.equal(upstreams.untrusted.reason, 'tls')
    assert.equal(upstreams.stalling.status, 'DOWN')
    assert.equal(upstreams.stalling.reason, 'timeout')
    assert.equal((await gw.fetch('/untrusted/x', { headers: adminAuth })).status, 502)
  })
})
