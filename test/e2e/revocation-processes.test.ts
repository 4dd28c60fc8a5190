import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { ADMIN_PASSWORD, basic, json, spawnGatewayPair, type GatewayPair } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { at, login } from '../helpers/session.ts'

const admin = { authorization: basic('admin', ADMIN_PASSWORD) }
const HOSTS = '/api/controller/v2/hosts/'

interface Probe {
  kind: string
  sentAt: number
  doneAt: number
  status: number
}

/** The ways one user reaches a service: basic credentials, a personal token, a session cookie. */
interface Credentials {
  basic: Record<string, string>
  token: Record<string, string>
  session: Record<string, string>
}

/**
 * Disabling a user, or changing their password, on PostgreSQL with two `gatehouse serve` processes and a user
 * with 200 sessions: nothing the user sends after the change was reported done is let through, on either process,
 * and a crash of the process making the change cannot leave the other trusting what it cached.
 */
describe('revocation across gateway processes on PostgreSQL, with 200 sessions', () => {
  let pair: GatewayPair
  let db: pg.Client
  let drop: () => Promise<void>

  before(async () => {
    const database = await createTestDatabase()
    drop = database.drop
    pair = await spawnGatewayPair(['--database', database.url])
    db = new pg.Client({ connectionString: database.url })
    await db.connect()
  })
  after(async () => {
    await db?.end()
    await pair?.stop()
    await drop?.()
  })

  const call = (url: string, path: string, init: RequestInit = {}) => fetch(url + path, { redirect: 'manual', ...init })

  /** A user with a token, a real session, and 199 more sessions, whose credentials both processes have verified. */
  async function userWithCredentials(username: string): Promise<{ id: number; credentials: Credentials }> {
    const { first, second } = pair
    const password = `${username}-password`
    const created = await call(first.url, '/api/gateway/v1/users/', { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) })
    assert.equal(created.status, 201)
    const { id } = await json(created)
    const basicAuth = { authorization: basic(username, password) }
    const tokenResponse = await call(first.url, '/api/gateway/v1/tokens/', { method: 'POST', headers: basicAuth })
    assert.equal(tokenResponse.status, 201)
    const session = await login(at(first.url), username, password)
    await db.query(`INSERT INTO sessions (key_hash, user_id, created_at, expires_at, ip, user_agent)
      SELECT md5(random()::text) || md5(random()::text), $1, $2, $3, '127.0.0.1', 'test' FROM generate_series(1, 199)`, [id, Date.now(), Date.now() + 3600_000])
    const { rows } = await db.query('SELECT count(*)::int AS n FROM sessions WHERE user_id = $1', [id])
    assert.equal(rows[0].n, 200)
    const credentials = { basic: basicAuth, token: { authorization: `Bearer ${(await json(tokenResponse)).token}` }, session: { cookie: session.cookie } }
    for (const gateway of [first, second]) {
      for (const headers of Object.values(credentials)) assert.equal((await call(gateway.url, HOSTS, { headers })).status, 200)
    }
    return { id, credentials }
  }

  /** Sends requests one after the other on each (process, credential) pair until `done()`, recording each in `probes`. */
  async function hammer(credentials: Partial<Credentials>, probes: Probe[], done: () => boolean): Promise<void> {
    const loops = [pair.first, pair.second].flatMap((gateway, n) => Object.entries(credentials).map(async ([kind, headers]) => {
      while (!done()) {
        const sentAt = performance.now()
        const response = await call(gateway.url, HOSTS, { headers })
        await response.arrayBuffer()
        probes.push({ kind: `${kind} on process ${n + 1}`, sentAt, doneAt: performance.now(), status: response.status })
      }
    }))
    await Promise.all(loops)
  }

  /**
   * Runs `change` while both processes are hammered, until every (process, credential) pair has sent a few
   * requests after it returned: each of those must be refused.
   */
  async function refusedOnceReturned(credentials: Partial<Credentials>, change: () => Promise<Response>): Promise<void> {
    const probes: Probe[] = []
    const kinds = Object.keys(credentials).length * 2
    let done = false
    const probing = hammer(credentials, probes, () => done)
    let startedAt = 0
    let returnedAt = Infinity
    let response: Response
    try {
      // Every (process, credential) pair answered once before the change, however busy the machine.
      const answered = () => new Set(probes.map((p) => p.kind)).size
      for (let waited = 0; waited < 10_000 && answered() < kinds; waited += 20) await sleep(20)
      startedAt = performance.now()
      response = await change()
      returnedAt = performance.now()
      const triedAfter = () => new Set(probes.filter((p) => p.sentAt >= returnedAt).map((p) => p.kind)).size
      // Refused basic credentials cost a password verification each, which takes a while on a busy machine.
      for (let waited = 0; waited < 10_000 && triedAfter() < kinds; waited += 50) await sleep(50)
      await sleep(200)
    } finally {
      done = true
    }
    await probing
    assert.equal(response.status, 200, await response.text())
    const before = probes.filter((p) => p.doneAt < startedAt)
    assert.equal(new Set(before.map((p) => p.kind)).size, kinds, 'every credential was tried on both processes before the change')
    assert.ok(before.every((p) => p.status === 200), 'the credentials worked before the change')
    const later = probes.filter((p) => p.sentAt >= returnedAt)
    assert.equal(new Set(later.map((p) => p.kind)).size, kinds, 'every credential was tried on both processes after the change')
    assert.deepEqual(later.filter((p) => p.status !== 401).map((p) => `${p.kind}: ${p.status}`), [])
  }

  it('answers no request of a disabled user 200 once the disabling request returned', async () => {
    const { id, credentials } = await userWithCredentials('alice')
    await refusedOnceReturned(credentials, () => call(pair.first.url, `/api/gateway/v1/users/${id}/`, {
      method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: false }),
    }))
    const { rows } = await db.query('SELECT count(*)::int AS n FROM sessions WHERE user_id = $1', [id])
    assert.equal(rows[0].n, 0, 'every session ended')
  })

  it('answers no request with the old password or a session 200 once the password change returned', async () => {
    const { id, credentials } = await userWithCredentials('carol')
    await refusedOnceReturned({ basic: credentials.basic, session: credentials.session }, () => call(pair.first.url, `/api/gateway/v1/users/${id}/`, {
      method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ password: 'carol-new-password' }),
    }))
  })

  it('refuses a disabled user on the other process even when the disabling process is killed mid-request', async () => {
    const { id, credentials } = await userWithCredentials('dave')
    const disabling = call(pair.first.url, `/api/gateway/v1/users/${id}/`, {
      method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: false }),
    }).catch(() => undefined)
    // SIGKILL as soon as the change is visible in the database: whatever the process still had to do is never done.
    for (let i = 0; ; i++) {
      const { rows } = await db.query('SELECT is_active FROM users WHERE id = $1', [id])
      if (!rows[0].is_active) break
      assert.ok(i < 2000, 'the change was never committed')
      await sleep(2)
    }
    pair.first.process.kill('SIGKILL')
    await disabling

    // News the process made in its transaction reaches the other at once, or at its next read of the log (1 s).
    const deadline = performance.now() + 2500
    while ((await call(pair.second.url, HOSTS, { headers: credentials.token })).status === 200) {
      assert.ok(performance.now() < deadline, 'the other process still accepts the disabled user\'s token')
      await sleep(20)
    }
    for (let i = 0; i < 10; i++) {
      for (const [kind, headers] of Object.entries(credentials)) {
        const response = await call(pair.second.url, HOSTS, { headers })
        assert.equal(response.status, 401, kind)
      }
    }
  })
})
