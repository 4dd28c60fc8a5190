import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { adminAuth, json, type TestGateway } from '../helpers/gateway.ts'
import { startGatewayOn } from '../helpers/postgres.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'
import { csrfToken, LOGIN, login, withCsrf } from '../helpers/session.ts'

/** storage.timeouts.query_seconds (2 s), and the rest of the request's own work. */
const ANSWER_WITHIN_MS = 4000

async function timed(gw: TestGateway, path: string, init: RequestInit = {}): Promise<{ response: Response; ms: number }> {
  const started = performance.now()
  const response = await gw.fetch(path, { ...init, signal: AbortSignal.timeout(10_000) })
  return { response, ms: performance.now() - started }
}

/** A local account whose password is its username and `-password`; its id. */
async function createUser(gw: TestGateway, username: string): Promise<number> {
  const created = await gw.fetch('/api/gateway/v1/users/', {
    method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ username, password: `${username}-password` }),
  })
  assert.equal(created.status, 201)
  return (await json(created)).id
}

/** The log's lines about lock waits, where it logged no outage. */
function lockWaitLines(logLines: Record<string, unknown>[]): Record<string, unknown>[] {
  const outages = logLines.filter((line) => /database (still )?unavailable/.test(String(line.msg)))
  assert.deepEqual(outages, [], 'no outage logged')
  return logLines.filter((line) => /^database (row locked|table locked|advisory lock held)/.test(String(line.msg)))
}

/** `gatehouse_db_lock_waits_total` by kind of lock, as /metrics shows it now. */
async function lockWaitsCounted(gw: TestGateway): Promise<Record<'row' | 'table' | 'advisory', number>> {
  const scraped = parseScrape(await (await gw.fetch('/metrics')).text())
  const count = (lock: string) => sampleValue(scraped, 'gatehouse_db_lock_waits_total', { lock })
  return { row: count('row'), table: count('table'), advisory: count('advisory') }
}

async function expectBoundedUnavailable(answer: Promise<{ response: Response; ms: number }>): Promise<void> {
  const { response, ms } = await answer
  const body = await json(response)
  assert.equal(response.status, 503, JSON.stringify(body))
  assert.equal(body.code, 'database_unavailable')
  assert.match(response.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/)
  assert.ok(ms < ANSWER_WITHIN_MS, `answered after ${Math.round(ms)} ms`)
}

/**
 * Another client of the PostgreSQL database (an administrator's psql, a report) holding rows Gatehouse must change, for
 * longer than any request may wait: the requests that need them are answered 503 within the query timeout, change
 * nothing, and succeed once the rows are free; what does not need them is answered meanwhile.
 */
describe('a gateway on PostgreSQL whose rows another client holds locked', () => {
  let gw: TestGateway
  let holder: pg.Client
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    gw = await startGatewayOn('postgres', { logLines, logLevel: 'warn' })
    holder = new pg.Client({ connectionString: gw.store.database.description })
    await holder.connect()
  })
  after(async () => {
    await holder?.end().catch(() => {})
    await gw?.close()
  })

  // First: the log says it once a minute at most.
  it('logs a row held past the query timeout as a locked row naming its table, not as a database outage, and stays ready meanwhile', async () => {
    const id = await createUser(gw, 'held-hana')
    await holder.query('begin')
    await holder.query('select * from users where id = $1 for update', [id])
    try {
      await expectBoundedUnavailable(timed(gw, `/api/gateway/v1/users/${id}/`, {
        method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ last_name: 'Held' }),
      }))
      assert.equal(gw.store.database.status().reachable, true, 'a locked row is not an unreachable database')
      const ready = await gw.fetch('/readyz')
      assert.equal(ready.status, 200, JSON.stringify(await json(ready)))
    } finally {
      await holder.query('rollback')
    }
    const locked = lockWaitLines(logLines)
    assert.equal(locked.length, 1, JSON.stringify(logLines))
    assert.equal(locked[0]!.level, 40)
    assert.equal(locked[0]!.lock, 'row')
    assert.equal(locked[0]!.waits, 1)
    assert.match(String(locked[0]!.where), /"users"/)
  })

  it('logs a wait given up for an advisory lock, and for a table locked whole, as what each is, not as a row', async () => {
    const session = await login(gw, 'held-hana', 'held-hana-password')
    const countedBefore = await lockWaitsCounted(gw)
    await holder.query('begin')
    await holder.query(`select pg_advisory_xact_lock(hashtext('settings'))`)
    await holder.query('lock table sessions in exclusive mode')
    try {
      await expectBoundedUnavailable(timed(gw, '/api/gateway/v1/settings/all/', {
        method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ local_password_min_length: 9 }),
      }))
      await expectBoundedUnavailable(timed(gw, '/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(session, { referer: gw.url + '/api/gateway/v1/logout/' }) }))
      assert.equal(gw.store.database.status().reachable, true)
    } finally {
      await holder.query('rollback')
    }
    const advisory = lockWaitLines(logLines).filter((line) => line.lock === 'advisory')
    assert.equal(advisory.length, 1, JSON.stringify(logLines))
    assert.match(String(advisory[0]!.msg), /^database advisory lock held/)
    assert.equal(advisory[0]!.where, undefined)
    const table = lockWaitLines(logLines).filter((line) => line.lock === 'table')
    assert.equal(table.length, 1, JSON.stringify(logLines))
    assert.match(String(table[0]!.msg), /^database table locked/)
    const counted = await lockWaitsCounted(gw)
    assert.deepEqual({ row: counted.row - countedBefore.row, table: counted.table - countedBefore.table, advisory: counted.advisory - countedBefore.advisory }, { row: 0, table: 1, advisory: 1 })
  })

  it('answers a change to a user whose row is held, and a sign-in of that user, 503 within the query timeout, keeps nothing of the change, and makes it once the row is free', async () => {
    const id = await createUser(gw, 'locked-lee')
    const patch = (firstName: string) => timed(gw, `/api/gateway/v1/users/${id}/`, {
      method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ first_name: firstName }),
    })
    await holder.query('begin')
    await holder.query('select * from users where id = $1 for update', [id])
    try {
      await expectBoundedUnavailable(patch('While-Locked'))
      const csrf = await csrfToken(gw)
      await expectBoundedUnavailable(timed(gw, LOGIN, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': csrf, cookie: `csrftoken=${csrf}`, referer: gw.url + LOGIN },
        body: new URLSearchParams({ username: 'locked-lee', password: 'locked-lee-password' }).toString(),
      }))
      const { response: listed, ms } = await timed(gw, '/api/gateway/v1/users/?username=locked-lee', { headers: adminAuth })
      assert.equal(listed.status, 200, 'reading the row is not held up')
      assert.ok(ms < 1000)
    } finally {
      await holder.query('rollback')
    }
    assert.equal((await json(await gw.fetch(`/api/gateway/v1/users/${id}/`, { headers: adminAuth }))).first_name, '', 'the refused change left nothing')
    const { response } = await patch('After')
    assert.equal(response.status, 200)
    assert.equal((await json(response)).first_name, 'After')
  })

  it('answers a logout whose session row is held 503 within the query timeout, and the session stays signed in until it is free', async () => {
    const session = await login(gw, 'locked-lee', 'locked-lee-password')
    const logout = () => timed(gw, '/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(session, { referer: gw.url + '/api/gateway/v1/logout/' }) })
    await holder.query('begin')
    await holder.query('select * from sessions for update')
    try {
      await expectBoundedUnavailable(logout())
    } finally {
      await holder.query('rollback')
    }
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 200, 'still signed in')
    const { response } = await logout()
    assert.ok(response.status < 400, String(response.status))
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 401, 'signed out once the row was free')
  })
})

/**
 * A statement that waits for one held row, has it, and then waits for another: its second wait begins most of the
 * query timeout into the statement, so it ends on the statement timeout, not on lock_timeout.
 */
describe('a gateway on PostgreSQL whose statement meets a held row late', () => {
  let gw: TestGateway
  let first: pg.Client
  let second: pg.Client
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    gw = await startGatewayOn('postgres', { logLines, logLevel: 'warn' })
    first = new pg.Client({ connectionString: gw.store.database.description })
    second = new pg.Client({ connectionString: gw.store.database.description })
    await first.connect()
    await second.connect()
  })
  after(async () => {
    await first?.end().catch(() => {})
    await second?.end().catch(() => {})
    await gw?.close()
  })

  it('logs a row lock waited for from late in a statement as a locked row, not as a database outage, and stays ready', async () => {
    const id = await createUser(gw, 'late-lars')
    await login(gw, 'late-lars', 'late-lars-password')
    await login(gw, 'late-lars', 'late-lars-password')
    // In the order the DELETE of the user's sessions comes to them (physical order, by index or by scan).
    const { rows } = await first.query<{ id: number }>('select id from sessions where user_id = $1 order by ctid', [id])
    assert.equal(rows.length, 2)
    await first.query('begin')
    await first.query('select 1 from sessions where id = $1 for update', [rows[0]!.id])
    await second.query('begin')
    await second.query('select 1 from sessions where id = $1 for update', [rows[1]!.id])
    const freeFirst = setTimeout(() => void first.query('commit'), 1000)
    try {
      await expectBoundedUnavailable(timed(gw, `/api/gateway/v1/users/${id}/sessions/`, { method: 'DELETE', headers: adminAuth }))
      assert.equal(gw.store.database.status().reachable, true, 'a locked row is not an unreachable database')
      const ready = await gw.fetch('/readyz')
      assert.equal(ready.status, 200, JSON.stringify(await json(ready)))
    } finally {
      clearTimeout(freeFirst)
      await first.query('rollback').catch(() => {})
      await second.query('rollback')
    }
    const locked = lockWaitLines(logLines)
    assert.equal(locked.length, 1, JSON.stringify(logLines))
    assert.equal(locked[0]!.lock, 'row')
    assert.match(String(locked[0]!.where), /"sessions"/)
    assert.deepEqual(await lockWaitsCounted(gw), { row: 1, table: 0, advisory: 0 })
  })
})
