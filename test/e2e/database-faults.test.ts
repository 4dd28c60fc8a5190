import assert from 'node:assert/strict'
import { linkSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it, mock } from 'node:test'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import WebSocket, { WebSocketServer } from 'ws'
import { demoConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, basic, json, spawnGateway, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { freePort } from '../helpers/free-port.ts'
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts'
import { at, csrfToken, LOGIN, login } from '../helpers/session.ts'
import { holdLock } from '../helpers/sqlite-lock.ts'
import { createToken } from '../helpers/tokens.ts'

const admin = { authorization: basic('admin', ADMIN_PASSWORD) }
const HOSTS = '/api/controller/v2/hosts/'
const PUBLIC = '/api/controller/v2/ping/'
/** The bound: every request is answered within this, whatever the database does. */
const ANSWER_WITHIN_MS = 5000

type Target = Pick<TestGateway, 'url' | 'fetch'>

/** A request that must be answered within ANSWER_WITHIN_MS (the fetch is aborted, and the test fails, otherwise). */
function bounded(gw: Target, path: string, init: RequestInit = {}): Promise<Response> {
  return gw.fetch(path, { ...init, signal: AbortSignal.timeout(ANSWER_WITHIN_MS) })
}

async function expectStatus(gw: Target, path: string, headers: Record<string, string>, status: number): Promise<void> {
  const response = await bounded(gw, path, { headers })
  assert.equal(response.status, status, `${path}: ${await response.text()}`)
}

async function expectUnavailable(response: Response): Promise<void> {
  const body = await json(response)
  assert.equal(response.status, 503, JSON.stringify(body))
  assert.equal(body.code, 'database_unavailable')
  assert.match(response.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/)
  assert.doesNotMatch(JSON.stringify(body), /\bat .+:\d+:\d+/, 'no stack trace')
}

function postUser(gw: Target, username: string): Promise<Response> {
  return bounded(gw, '/api/gateway/v1/users/', {
    method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username, password: `${username}-password` }),
  })
}

async function createUser(gw: Target, username: string): Promise<Record<string, string>> {
  const response = await postUser(gw, username)
  assert.equal(response.status, 201)
  return { authorization: basic(username, `${username}-password`) }
}

/** Asks for /healthz (answered from memory) again and again until `pending` settles; how long the slowest answer took. */
async function slowestHealthWhile(gw: Target, pending: Promise<unknown>): Promise<number> {
  let settled = false
  pending.then(() => (settled = true), () => (settled = true))
  let slowestMs = 0
  while (!settled) {
    const started = performance.now()
    await expectStatus(gw, '/healthz', {}, 200)
    slowestMs = Math.max(slowestMs, performance.now() - started)
    await sleep(20)
  }
  return slowestMs
}

async function eventually(what: string, check: () => Promise<boolean>, withinMs = 15_000): Promise<void> {
  const deadline = Date.now() + withinMs
  while (!(await check())) {
    assert.ok(Date.now() < deadline, what)
    await sleep(50)
  }
}

/**
 * PostgreSQL stopped, frozen (SIGSTOP) and restarted under running gateways, on a throwaway cluster of the
 * test's own: requests are answered in bounded time with 503 database_unavailable where they need the database,
 * credentials already verified keep working only as long as `auth.max_stale_seconds` allows, and news between
 * processes flows again after a restart.
 */
describe('gateways on a PostgreSQL that stops, freezes and restarts', () => {
  let cluster: PgCluster

  before(async () => {
    cluster = await startPgCluster()
  })
  after(() => cluster?.destroy())

  it('answers every request within 5 s while the database is frozen: remembered credentials 200, the rest 503', async () => {
    const gw = await startGateway({ databaseUrl: cluster.url })
    try {
      const alice = await createUser(gw, 'frozen-alice')
      const bob = await createUser(gw, 'frozen-bob')
      const token = { authorization: `Bearer ${(await createToken(gw, alice)).token}` }
      const session = { cookie: (await login(gw, 'frozen-alice', 'frozen-alice-password')).cookie }
      for (const headers of [alice, token, session]) await expectStatus(gw, HOSTS, headers, 200)
      await expectStatus(gw, '/api/gateway/v1/users/', admin, 200)
      const csrf = await csrfToken(gw)

      cluster.freeze()
      try {
        // Twice: at once, and once the first queries have timed out and the background read of the log is stuck.
        for (const wait of [0, 2100]) {
          await sleep(wait)
          await Promise.all([
            ...[alice, token, session].map((headers) => expectStatus(gw, HOSTS, headers, 200)),
            expectStatus(gw, PUBLIC, {}, 200),
            bounded(gw, HOSTS, { headers: bob }).then(expectUnavailable),
            bounded(gw, '/api/gateway/v1/users/', { headers: admin }).then(expectUnavailable),
            bounded(gw, LOGIN, {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': csrf, cookie: `csrftoken=${csrf}`, referer: gw.url + LOGIN },
              body: new URLSearchParams({ username: 'frozen-bob', password: 'frozen-bob-password' }).toString(),
            }).then(expectUnavailable),
          ])
        }
      } finally {
        cluster.thaw()
      }
      await eventually('bob gets in once the database answers again', async () => (await gw.fetch(HOSTS, { headers: bob })).status === 200)
    } finally {
      await gw.close()
    }
  })

  it('refuses remembered credentials with 503 once the database has not answered for auth.max_stale_seconds', async () => {
    const gw = await startGateway({ databaseUrl: cluster.url, config: { auth: { max_stale_seconds: 2 } } })
    try {
      const carol = await createUser(gw, 'stale-carol')
      await expectStatus(gw, HOSTS, carol, 200)
      cluster.freeze()
      try {
        await eventually('the gateway notices it cannot read the news', async () => !gw.app.bus.status().fresh)
        await bounded(gw, HOSTS, { headers: carol }).then(expectUnavailable)
        await expectStatus(gw, PUBLIC, {}, 200)
      } finally {
        cluster.thaw()
      }
      await eventually('carol gets in again once the database answers', async () => (await gw.fetch(HOSTS, { headers: carol })).status === 200)
    } finally {
      await gw.close()
    }
  })

  it('closes authenticated WebSockets once the database has not answered for auth.max_stale_seconds, and keeps anonymous ones open', async () => {
    const service = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await once(service, 'listening')
    const closesAtService: { code: number; reason: string }[] = []
    service.on('connection', (socket) => {
      socket.send('open')
      socket.on('close', (code, reason) => closesAtService.push({ code, reason: String(reason) }))
    })
    const logLines: Record<string, unknown>[] = []
    const gw = await startGateway({
      databaseUrl: cluster.url, logLines,
      config: { auth: { max_stale_seconds: 2 }, services: [{ name: 'feed', prefix: '/feed/', upstream: `http://127.0.0.1:${(service.address() as AddressInfo).port}`, public_paths: ['/feed/open/*'] }] },
    })
    const opened: WebSocket[] = []
    const open = async (path: string, headers: Record<string, string> = {}) => {
      const socket = new WebSocket(`${gw.url.replace('http:', 'ws:')}${path}`, { headers })
      opened.push(socket)
      await once(socket, 'message')
      return socket
    }
    try {
      const signedIn = await open('/feed/events/', admin)
      const anonymous = await open('/feed/open/events/')
      const closed = once(signedIn, 'close')
      cluster.freeze()
      const frozenAt = performance.now()
      try {
        const [code, reason] = await Promise.race([closed, sleep(10_000).then(() => assert.fail('the signed-in socket is still open'))])
        const ms = performance.now() - frozenAt
        assert.ok(ms >= 1000, `closed ${Math.round(ms)} ms after the database stopped answering: remembered credentials are trusted that long`)
        assert.deepEqual({ code, reason: String(reason) }, { code: 1013, reason: 'database unavailable' }, 'the client is told to try again later')
        await eventually('the service is told too', async () => closesAtService.length === 1, 2000)
        assert.deepEqual(closesAtService, [{ code: 1013, reason: 'database unavailable' }])
        assert.equal(anonymous.readyState, WebSocket.OPEN, 'a socket without credentials has nothing to revoke')
        await eventually('the close is logged', async () => logLines.some((entry) => entry.msg === 'websocket closed' && entry.path === '/feed/events/'), 2000)
        const line = logLines.find((entry) => entry.msg === 'websocket closed' && entry.path === '/feed/events/')
        assert.equal(line?.closed_by, 'database_unavailable')
        assert.match(await (await gw.fetch('/metrics')).text(), /^gatehouse_websockets_closed_total\{service="feed",reason="database_unavailable"\} 1$/m)
      } finally {
        cluster.thaw()
      }
    } finally {
      for (const socket of opened) socket.terminate()
      await gw.close()
      service.close()
    }
  })

  it('answers 503 database_unavailable with Retry-After while the database is down, and logs the outage once', async () => {
    const gw = await spawnGateway(['--demo', '--database', cluster.url], { GATEHOUSE_LOG_LEVEL: 'info' })
    const target = at(gw.url)
    try {
      await expectStatus(target, '/api/gateway/v1/users/', admin, 200)
      cluster.stop()
      try {
        for (let i = 0; i < 10; i++) {
          await bounded(target, '/api/gateway/v1/users/', { headers: admin }).then(expectUnavailable)
          await bounded(target, HOSTS, { headers: { authorization: basic('nobody', 'wrong') } }).then(expectUnavailable)
        }
      } finally {
        cluster.start()
      }
      await eventually('the gateway answers again', async () => (await target.fetch('/api/gateway/v1/users/', { headers: admin })).status === 200)
      await eventually('the recovery is logged', async () => gw.output().includes('database available again'))
      const lines = gw.output().split('\n')
      assert.equal(lines.filter((line) => line.includes('"database unavailable')).length, 1, gw.output())
      assert.deepEqual(lines.filter((line) => /"level":(50|60)/.test(line)), [], 'no error lines')
      assert.doesNotMatch(gw.output(), /\n\s+at /, 'no stack traces')
    } finally {
      await gw.stop()
    }
  })

  it('stops on SIGTERM while the database is frozen, within its shutdown grace, instead of waiting for the database to answer', async () => {
    const gw = await spawnGateway(['--demo', '--database', cluster.url], { GATEHOUSE_LOG_LEVEL: 'info' })
    try {
      await expectStatus(at(gw.url), '/api/gateway/v1/users/', admin, 200)
      const exited = once(gw.process, 'exit')
      cluster.freeze()
      try {
        const stoppedAt = performance.now()
        gw.process.kill('SIGTERM')
        // Shutdown grace 25 s, with no request in flight: what is left to write (the last-use times, the activity
        // stream, leaving the log) gives up after storage.timeouts.query_seconds (2 s) each.
        const [code] = await Promise.race([exited, sleep(12_000).then(() => assert.fail(`still running 12 s after SIGTERM:\n${gw.output().slice(-2000)}`))])
        assert.equal(code, 0, gw.output().slice(-2000))
        assert.ok(performance.now() - stoppedAt < 12_000)
        assert.match(gw.output(), /"msg":"stopped"/)
      } finally {
        cluster.thaw()
      }
    } finally {
      await gw.stop()
    }
  })

  it('through a restart under load, answers each request with its result or a 503 in JSON, keeps its connections bounded, and is ready again without a restart', async () => {
    const gw = await startGateway({ databaseUrl: cluster.url })
    const db = new pg.Client({ connectionString: cluster.url })
    const answers = new Map<string, number>()
    const created: string[] = []
    const readiness: number[] = []
    let mostPooled = 0
    let loading = true
    const note = (status: number, body: { code?: string; error?: string }) => {
      const key = status === 503 ? `503 ${body.code ?? body.error}` : String(status)
      answers.set(key, (answers.get(key) ?? 0) + 1)
    }
    const load = async (worker: number) => {
      for (let i = 0; loading; i++) {
        const username = `restart-${worker}-${i}`
        const posted = await postUser(gw, username)
        note(posted.status, await json(posted))
        if (posted.status === 201) created.push(username)
        const listed = await bounded(gw, '/api/gateway/v1/users/?page_size=1', { headers: admin })
        note(listed.status, await json(listed))
        mostPooled = Math.max(mostPooled, gw.store.database.poolStatus()!.total)
      }
    }
    const probe = async () => {
      while (loading) {
        const status = (await bounded(gw, '/readyz')).status
        if (readiness.at(-1) !== status) readiness.push(status)
        await sleep(100)
      }
    }
    try {
      const running = Promise.all([load(1), load(2), load(3), load(4), probe()])
      await sleep(500)
      // Stopped for a while, so that the requests and probes meet the outage (stop and start block this process).
      cluster.stop()
      try {
        await sleep(1_500)
      } finally {
        cluster.start()
      }
      await eventually('the gateway writes again', async () => (await postUser(gw, `restart-after-${Date.now()}`)).status === 201)
      await sleep(500)
      loading = false
      await running
      assert.deepEqual([...answers.keys()].filter((key) => !['200', '201', '503 database_unavailable'].includes(key)), [], JSON.stringify(Object.fromEntries(answers)))
      assert.ok((answers.get('503 database_unavailable') ?? 0) > 0, 'the restart was met')
      assert.deepEqual(readiness, [200, 503, 200])
      assert.ok(mostPooled <= 10, `${mostPooled} connections in the pool (storage.pool_connections: 10)`)
      await db.connect()
      const { rows } = await db.query(`select count(*)::int as count from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()`)
      assert.ok(rows[0].count <= 10 + 1, `${rows[0].count} connections at the server: the pool's and the one listening`)
      for (const username of created.slice(-5)) await expectStatus(gw, HOSTS, { authorization: basic(username, `${username}-password`) }, 200)
    } finally {
      loading = false
      await db.end()
      await gw.close()
    }
  })

  /**
   * A gateway on a database of its own, connecting as a role limited to `limit` connections (superusers may pass a
   * connection limit; the role may not), with `db` connected as the superuser to change the limit.
   */
  async function withLimitedRole(limit: number, run: (gw: TestGateway, db: pg.Client) => Promise<void>): Promise<void> {
    const db = new pg.Client({ connectionString: cluster.url })
    await db.connect()
    await db.query(`create role limited_gatehouse login connection limit ${limit}`)
    await db.query('create database limited_gatehouse owner limited_gatehouse')
    try {
      const gw = await startGateway({ databaseUrl: cluster.url.replace('postgres@', 'limited_gatehouse@').replace(/\/postgres$/, '/limited_gatehouse') })
      try {
        await run(gw, db)
      } finally {
        await gw.close()
      }
    } finally {
      await db.query('drop database limited_gatehouse with (force)')
      await db.query('drop role limited_gatehouse')
      await db.end()
    }
  }

  /** Twenty requests at once that each need the database: each answer's status, and its code where it has one. */
  async function burst(gw: Target): Promise<string[]> {
    const answers = await Promise.all(Array.from({ length: 20 }, () => bounded(gw, '/api/gateway/v1/users/?page_size=1', { headers: admin })))
    return Promise.all(answers.map(async (response) => `${response.status} ${(await json(response)).code ?? ''}`.trim()))
  }

  it('answers 503 in JSON while PostgreSQL refuses it every connection (other clients hold them all), serves remembered credentials meanwhile, and opens them once it may', () => withLimitedRole(14, async (gw, db) => {
    await expectStatus(gw, HOSTS, admin, 200)
    // Lowered to none, its new connections are refused as they are when other clients hold every one there is.
    await db.query('alter role limited_gatehouse connection limit 0')
    // The pool's connections end (an administrator's pg_terminate_backend); the one listening stays.
    await db.query(`select pg_terminate_backend(pid) from pg_stat_activity where usename = 'limited_gatehouse' and query not like 'LISTEN %'`)
    await eventually('the pool holds no connection', async () => gw.store.database.poolStatus()!.total === 0, 5000)
    assert.deepEqual([...new Set(await burst(gw))], ['503 database_unavailable'])
    await expectStatus(gw, HOSTS, admin, 200)
    await expectStatus(gw, '/healthz', {}, 200)
    await db.query('alter role limited_gatehouse connection limit 14')
    await eventually('every request is answered again', async () => (await burst(gw)).every((answer) => answer === '200'), 5000)
  }))

  // Fewer than the pool's 10 and the listening connection: what too many processes for max_connections come to.
  it('serves a burst on the connections it holds when PostgreSQL allows it fewer than storage.pool_connections, instead of failing the requests that would open one more', () => withLimitedRole(4, async (gw) => {
    for (let round = 0; round < 3; round++) {
      const answers = await burst(gw)
      assert.deepEqual([...new Set(answers)], ['200'], answers.join())
    }
    assert.ok(gw.store.database.poolStatus()!.total <= 3)
  }))

  it('answers an OIDC bearer token 503, not invalid, at a process that read no realm keys before the database went away', async () => {
    // One public URL, and so one issuer, for both processes: the first's.
    const dir = tempDir()
    const [issuingPort, freshPort] = [await freePort(), await freePort()]
    writeFileSync(join(dir, 'gatehouse.yaml'), readFileSync(demoConfigFile, 'utf8').replace(/^server:\n/m, `server:\n  public_url: http://127.0.0.1:${issuingPort}\n`))
    const args = ['--demo', '--config', join(dir, 'gatehouse.yaml'), '--database', cluster.url]
    const issuing = await spawnGateway([...args, '--port', String(issuingPort)])
    const fresh = await spawnGateway([...args, '--port', String(freshPort)])
    try {
      const granted = await bounded(at(issuing.url), '/realms/platform/protocol/openid-connect/token', {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }),
      })
      const { access_token: token } = await json(granted)
      assert.equal(granted.status, 200)
      const bearer = { authorization: `Bearer ${token}` }
      const target = at(`http://127.0.0.1:${freshPort}`)
      // Warm, but no token of the realm checked yet: its keys are read at the first.
      await expectStatus(target, '/api/gateway/v1/users/', admin, 200)
      cluster.stop()
      try {
        await bounded(target, '/demo-app/x', { headers: bearer }).then(expectUnavailable)
      } finally {
        cluster.start()
      }
      await eventually('the token is taken once the database is back', async () => (await target.fetch('/demo-app/x', { headers: bearer })).status === 200)
    } finally {
      await Promise.all([issuing.stop(), fresh.stop()])
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('answers 503 database_unavailable while the database takes no writes (a standby after a failover), and writes again once it does', async () => {
    const logLines: Record<string, unknown>[] = []
    const gw = await startGateway({ databaseUrl: cluster.url, logLines })
    const db = new pg.Client({ connectionString: cluster.url })
    await db.connect()
    const readOnly = async (on: boolean) => {
      await db.query(`ALTER SYSTEM SET default_transaction_read_only = ${on ? 'on' : 'off'}`)
      await db.query('SELECT pg_reload_conf()')
      // Each backend applies the reloaded setting at its next command; a first query on a new connection waits for none.
      await sleep(200)
    }
    try {
      const csrf = await csrfToken(gw)
      await readOnly(true)
      try {
        await postUser(gw, 'read-only-erin').then(expectUnavailable)
        await bounded(gw, '/api/gateway/v1/tokens/', { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: '{}' }).then(expectUnavailable)
        await bounded(gw, LOGIN, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': csrf, cookie: `csrftoken=${csrf}`, referer: gw.url + LOGIN },
          body: new URLSearchParams({ username: 'admin', password: ADMIN_PASSWORD }).toString(),
        }).then(expectUnavailable)
        await expectStatus(gw, '/api/gateway/v1/users/', admin, 200)
        for (let i = 0; i < 5; i++) {
          await postUser(gw, 'read-only-erin').then(expectUnavailable)
          await expectStatus(gw, '/api/gateway/v1/users/', admin, 200)
        }
      } finally {
        await readOnly(false)
      }
      await createUser(gw, 'read-only-erin')
      // Reads answered between failed writes do not make each write an outage of its own in the log.
      const messages = logLines.map((line) => String(line.msg))
      assert.equal(messages.filter((msg) => msg.startsWith('database unavailable')).length, 1, messages.join('\n'))
      assert.equal(messages.filter((msg) => msg === 'database available again').length, 1, messages.join('\n'))
    } finally {
      await db.end()
      await gw.close()
    }
  })

  it('hears news from the other process again after a restart, without waiting for the next read of the log', async () => {
    // With a minute between reads of the log, only LISTEN (or reading the log once it listens again) can bring news.
    const first = await startGateway({ databaseUrl: cluster.url, pollMs: 60_000 })
    const second = await startGateway({ databaseUrl: cluster.url, pollMs: 60_000 })
    try {
      const dave = await createUser(first, 'restart-dave')
      const { id } = (await json(await first.fetch('/api/gateway/v1/users/?username=restart-dave', { headers: admin }))).results[0]
      await expectStatus(second, HOSTS, dave, 200)
      cluster.restart()
      let disabled: Response
      // The first request after the restart may find a connection the restart cut: clients retry a 503.
      do {
        disabled = await first.fetch(`/api/gateway/v1/users/${id}/`, {
          method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: false }),
        })
      } while (disabled.status === 503 && (await sleep(100), true))
      assert.equal(disabled.status, 200)
      const refused = await second.fetch(HOSTS, { headers: dave })
      assert.equal(refused.status, 401)
      assert.equal((await json(refused)).code, 'account_disabled')
    } finally {
      await Promise.all([first.close(), second.close()])
    }
  })

  it('reads the log for each request while its LISTEN connection is down, and says so in /readyz', async () => {
    // With a minute between reads of the log, news can come only from LISTEN, which stays down here.
    const first = await startGateway({ databaseUrl: cluster.url, pollMs: 60_000 })
    const second = await startGateway({ databaseUrl: cluster.url, pollMs: 60_000 })
    const db = new pg.Client({ connectionString: cluster.url })
    await db.connect()
    try {
      const erin = await createUser(first, 'unheard-erin')
      const { id } = (await json(await first.fetch('/api/gateway/v1/users/?username=unheard-erin', { headers: admin }))).results[0]
      await expectStatus(second, HOSTS, erin, 200)
      // The LISTEN connections are cut and cannot be opened again (the pool's connections are untouched).
      for (const gw of [first, second]) gw.app.store.database.listenClient = () => Promise.reject(new Error('connection refused'))
      await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`)
      await eventually('the LISTEN connection is noticed lost', async () => !second.app.bus.status().listening, 5000)
      const ready = await json(await second.fetch('/readyz'))
      assert.deepEqual(ready.checks.find((check: { name: string }) => check.name === 'event_bus').data.listening, false)

      const disabled = await first.fetch(`/api/gateway/v1/users/${id}/`, {
        method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: false }),
      })
      assert.equal(disabled.status, 200)
      const refused = await second.fetch(HOSTS, { headers: erin })
      assert.equal(refused.status, 401)
      assert.equal((await json(refused)).code, 'account_disabled')
    } finally {
      await db.end()
      await Promise.all([first.close(), second.close()])
    }
  })
})

/**
 * Another process (a CLI command, another worker) holding the SQLite file's write lock: a gateway's write waits for
 * it without stopping the process, so what needs no write is answered meanwhile.
 */
describe('a gateway on a SQLite file whose write lock another process holds', () => {
  /** Longer than the machine running the tests delays an answer on its own, far shorter than the locks below. */
  const SLOWEST_HEALTH_MS = 400

  it('answers from memory while a write waits for the lock; the write succeeds once it is free, or is answered 503 after the query timeout', async () => {
    const dir = tempDir()
    const gw = await spawnGateway(['--demo', '--data-dir', dir])
    const target = at(gw.url)
    const file = join(dir, 'gatehouse.sqlite')
    try {
      // The administrator's credentials are remembered from here on: the requests below wait for the lock only.
      await createUser(target, 'lock-first')

      // Within the query timeout (storage.timeouts.query_seconds, 2 s by default).
      let holder = await holdLock(file, 1000)
      let created = postUser(target, 'lock-waits')
      let slowestMs = await slowestHealthWhile(target, created)
      assert.equal((await created).status, 201)
      assert.ok(slowestMs < SLOWEST_HEALTH_MS, `/healthz took up to ${slowestMs.toFixed(0)} ms while the write waited`)
      await holder.exited

      // Past it: held long enough that the write meets the lock for the whole query timeout even when a loaded machine
      // takes a second or more to bring the request to it.
      holder = await holdLock(file, 6000)
      created = postUser(target, 'lock-gives-up')
      slowestMs = await slowestHealthWhile(target, created)
      await expectUnavailable(await created)
      assert.ok(slowestMs < SLOWEST_HEALTH_MS, `/healthz took up to ${slowestMs.toFixed(0)} ms while the write waited`)
      await holder.exited
      await createUser(target, 'lock-gives-up')
    } finally {
      await gw.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('a gateway whose SQLite file is deleted while it runs', () => {
  it('answers 503 database_unavailable instead of taking writes no later start would find, and takes them again once the file is back', async () => {
    const dir = tempDir()
    const gw = await startGateway({ dataDir: dir, config: { auth: { max_stale_seconds: 2 } } })
    const file = join(dir, 'gatehouse.sqlite')
    const kept = join(dir, 'kept.sqlite')
    try {
      const frank = await createUser(gw, 'file-first')
      await expectStatus(gw, HOSTS, frank, 200)
      linkSync(file, kept)
      unlinkSync(file)
      await eventually('the gateway notices the file is gone', async () => (await gw.fetch('/readyz')).status === 503, 5000)
      await postUser(gw, 'file-lost').then(expectUnavailable)
      await expectStatus(gw, '/healthz', {}, 200)
      // No news can be read meanwhile: remembered credentials are trusted no longer than auth.max_stale_seconds.
      await eventually('remembered credentials are refused', async () => (await gw.fetch(HOSTS, { headers: frank })).status === 503, 5000)
      await expectStatus(gw, PUBLIC, {}, 200)
      linkSync(kept, file)
      await eventually('the gateway takes writes again', async () => (await postUser(gw, 'file-back')).status === 201, 5000)
      assert.equal((await gw.store.users.findByUsername('file-lost')), undefined)
    } finally {
      await gw.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  for (const suffix of ['-wal', '-shm']) {
    it(`answers 503 database_unavailable once its ${suffix} file is deleted, instead of taking writes a crash would lose; stopping keeps what was written`, async () => {
      const dir = tempDir()
      const logLines: Record<string, unknown>[] = []
      const gw = await startGateway({ dataDir: dir, logLines })
      try {
        await createUser(gw, `kept${suffix}`)
        // Found by the check once a second, once the connection is in WAL mode.
        await sleep(1200)
        unlinkSync(join(dir, `gatehouse.sqlite${suffix}`))
        await eventually('the gateway notices the file is gone', async () => (await gw.fetch('/readyz')).status === 503, 5000)
        await postUser(gw, `lost${suffix}`).then(expectUnavailable)
        await expectStatus(gw, '/healthz', {}, 200)
        const outage = logLines.find((line) => String(line.msg).startsWith('database unavailable'))
        assert.match(String(outage?.error), new RegExp(`gatehouse\\.sqlite${suffix} was deleted or replaced while in use: stop every process on the database and start again`))
      } finally {
        await gw.close()
      }
      // Closing checkpointed the WAL it had open into the database file, the only copy left of the commits.
      const db = new DatabaseSync(join(dir, 'gatehouse.sqlite'), { readOnly: true })
      try {
        assert.deepEqual(db.prepare("SELECT username FROM users WHERE username LIKE 'kept%' OR username LIKE 'lost%'").all().map((row) => row.username), [`kept${suffix}`])
      } finally {
        db.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }

  it('refuses remembered credentials with 503 after auth.max_stale_seconds even when the machine\'s clock stepped back before the file went', async () => {
    const dir = tempDir()
    const gw = await startGateway({ dataDir: dir, config: { auth: { max_stale_seconds: 2 } } })
    const file = join(dir, 'gatehouse.sqlite')
    const kept = join(dir, 'kept.sqlite')
    const machineNow = Date.now
    try {
      const grace = await createUser(gw, 'clock-stepped')
      await expectStatus(gw, HOSTS, grace, 200)
      // An NTP step or a virtual machine resumed: the wall clock goes back an hour; reads of the log go on meanwhile.
      mock.method(Date, 'now', () => machineNow() - 3600_000)
      await sleep(500)
      await expectStatus(gw, HOSTS, grace, 200)
      linkSync(file, kept)
      unlinkSync(file)
      await eventually('remembered credentials are refused', async () => (await gw.fetch(HOSTS, { headers: grace })).status === 503, 5000)
      mock.restoreAll()
      linkSync(kept, file)
    } finally {
      mock.restoreAll()
      await gw.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('stays up when its file cannot even be looked for (a symbolic link loop where its directory was), and serves again once the directory is back', async () => {
    const parent = tempDir()
    const dir = join(parent, 'data')
    const gw = await spawnGateway(['--demo', '--data-dir', dir])
    const target = at(gw.url)
    try {
      await createUser(target, 'dir-first')
      renameSync(dir, `${dir}.moved`)
      symlinkSync(dir, dir)
      await eventually('the gateway notices the file is gone', async () => (await target.fetch('/readyz')).status === 503, 5000)
      await postUser(target, 'dir-lost').then(expectUnavailable)
      unlinkSync(dir)
      renameSync(`${dir}.moved`, dir)
      await eventually('the gateway takes writes again', async () => (await postUser(target, 'dir-back')).status === 201, 5000)
    } finally {
      await gw.stop()
      rmSync(parent, { recursive: true, force: true })
    }
  })
})
