import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DatabaseLockHeld } from '../../src/errors.ts'
import { Health, type LockWaitReport, type OutageReport } from '../../src/store/database.ts'

/** What a driver raises when the database cannot be reached. */
const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
/** What PostgreSQL answers a statement that waited lock_timeout for a row another client holds. */
const lockTimeout = () => Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03', where: 'while updating tuple (0,2) in relation "users"' })
/** What PostgreSQL answers a statement whose statement_timeout ran out: in the middle of a row's wait, and elsewhere. */
const statementTimeout = (where?: string) => Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014', where })

describe('the reports of database outages', () => {
  it('reports an outage when it begins and ends; one between reports ends unreported, counted in the next, never in another\'s failures', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 0 })
    // The minute between reports is the monotonic clock's; here it runs as the mocked wall clock does.
    t.mock.method(performance, 'now', () => Date.now())
    const health = new Health()
    const reports: OutageReport[] = []
    health.subscribe((report) => reports.push(report))
    const fail = (times: number) => {
      for (let i = 0; i < times; i++) health.classify(refused())
    }
    fail(2)
    t.mock.timers.tick(1000)
    health.answered()
    assert.deepEqual(reports.map((r) => [r.state, r.since, r.failures, r.earlierOutages]), [['unavailable', 0, 1, 0], ['available', 0, 1, 0]])

    // Within the minute of the last report: a database refusing some writes would otherwise log each.
    t.mock.timers.tick(1000)
    fail(3)
    t.mock.timers.tick(1000)
    health.answered()
    assert.equal(reports.length, 2)

    // The next outage's report names it, apart from its own.
    t.mock.timers.tick(70_000)
    fail(1)
    assert.deepEqual(reports.at(-1), { state: 'unavailable', since: 73_000, failures: 1, error: 'connect ECONNREFUSED 127.0.0.1:5432', earlierOutages: 1, earlierFailures: 3, earlierSince: 2000, earlierError: 'connect ECONNREFUSED 127.0.0.1:5432' })

    // One that began unreported and ends once the minute is over is reported as it ends, with when it began.
    t.mock.timers.tick(1000)
    health.answered()
    t.mock.timers.tick(10_000)
    fail(2)
    assert.equal(reports.length, 4)
    t.mock.timers.tick(60_000)
    health.answered()
    assert.deepEqual(reports.at(-1), { state: 'available', since: 84_000, failures: 2, error: 'connect ECONNREFUSED 127.0.0.1:5432', earlierOutages: 0, earlierFailures: 0 })
  })

  it('reports the outages it held back once the minute since the last report is over, though none follows', (t) => {
    t.mock.timers.enable({ apis: ['Date', 'setTimeout'], now: 0 })
    t.mock.method(performance, 'now', () => Date.now())
    const health = new Health()
    const reports: OutageReport[] = []
    health.subscribe((report) => reports.push(report))
    const full = () => Object.assign(new Error('database or disk is full'), { code: 'ERR_SQLITE_ERROR', errcode: 13 })
    // A full disk: each write refused, the reads between them answered.
    health.classify(full())
    health.answered()
    assert.deepEqual(reports.map((r) => r.state), ['unavailable', 'available'])
    for (const at of [5000, 20_000, 40_000]) {
      t.mock.timers.setTime(at)
      health.classify(full())
      health.classify(full())
      health.answered()
    }
    assert.equal(reports.length, 2, 'held back within the minute')
    t.mock.timers.tick(59_000 - Date.now())
    assert.equal(reports.length, 2)
    t.mock.timers.tick(1000)
    assert.deepEqual(reports.at(-1), { state: 'available', since: 40_000, failures: 0, error: 'database or disk is full', earlierOutages: 3, earlierFailures: 6, earlierSince: 5000, earlierError: 'database or disk is full' })
    // The next minute's are reported as theirs alone.
    t.mock.timers.tick(10_000)
    health.classify(full())
    health.answered()
    t.mock.timers.tick(60_000)
    assert.deepEqual(reports.slice(3).map((r) => [r.state, r.earlierOutages, r.earlierFailures, r.earlierSince]), [['available', 1, 1, 70_000]])
  })

  it('reports an outage a minute after the last report though the machine\'s clock stepped back meanwhile', (t) => {
    const machineNow = Date.now
    const machinePerformanceNow = performance.now.bind(performance)
    const health = new Health()
    const reports: OutageReport[] = []
    health.subscribe((report) => reports.push(report))
    health.classify(refused())
    health.answered()
    assert.deepEqual(reports.map((r) => r.state), ['unavailable', 'available'])
    // An NTP correction or a virtual machine resumed sets the wall clock back an hour; a minute passes.
    t.mock.method(Date, 'now', () => machineNow() - 3600_000)
    t.mock.method(performance, 'now', () => machinePerformanceNow() + 61_000)
    health.classify(refused())
    assert.deepEqual(reports.map((r) => r.state), ['unavailable', 'available', 'unavailable'])
  })

  it('reports statements that gave up waiting for a locked row at most once a minute, as no outage, and ends one under way', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 0 })
    t.mock.method(performance, 'now', () => Date.now())
    const health = new Health()
    const outages: OutageReport[] = []
    const lockWaits: LockWaitReport[] = []
    health.subscribe((report) => outages.push(report))
    health.subscribeLockWaits((report) => lockWaits.push(report))
    health.classify(refused())
    assert.ok(health.classify(lockTimeout()) instanceof DatabaseLockHeld)
    assert.equal(health.status().reachable, true, 'the server answered')
    assert.deepEqual(outages.map((r) => r.state), ['unavailable', 'available'])
    assert.deepEqual(lockWaits, [{ lock: 'row', waits: 1, error: 'canceling statement due to lock timeout', where: 'while updating tuple (0,2) in relation "users"' }])
    t.mock.timers.tick(1000)
    health.classify(lockTimeout())
    health.classify(lockTimeout())
    assert.equal(lockWaits.length, 1)
    t.mock.timers.tick(60_000)
    health.classify(lockTimeout())
    assert.deepEqual(lockWaits.map((r) => r.waits), [1, 3])
    assert.equal(outages.length, 2)
  })
  it('takes a statement timeout in the middle of a wait for a row as a lock wait, and one elsewhere, or in a foreign key\'s action, as an outage', () => {
    const health = new Health()
    const lockWaits: LockWaitReport[] = []
    health.subscribeLockWaits((report) => lockWaits.push(report))
    const late = health.classify(statementTimeout('while deleting tuple (0,3) in relation "sessions"\nSQL statement "DELETE FROM ONLY "public"."sessions" WHERE $1 OPERATOR(pg_catalog.=) "user_id""'))
    assert.ok(late instanceof DatabaseLockHeld)
    assert.equal(health.status().reachable, true)
    assert.equal(lockWaits.length, 1)
    assert.match(String(lockWaits[0]!.where), /"sessions"/)
    for (const where of [undefined, 'SQL statement "DELETE FROM ONLY "public"."sessions" WHERE $1 OPERATOR(pg_catalog.=) "user_id""']) {
      const slow = health.classify(statementTimeout(where))
      assert.ok(!(slow instanceof DatabaseLockHeld), String(where))
      assert.equal(health.status().reachable, false)
      health.answered()
    }
  })
  it('names an advisory lock waited for by the statement that takes it, and a lock with no row named as a table\'s, each reported apart', () => {
    const health = new Health()
    const lockWaits: LockWaitReport[] = []
    health.subscribeLockWaits((report) => lockWaits.push(report))
    const noContext = () => Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' })
    assert.ok(health.classify(noContext(), 'select pg_advisory_xact_lock(hashtext($1))') instanceof DatabaseLockHeld)
    health.classify(noContext(), 'update "sessions" set "expires_at" = $1 where "id" = $2')
    health.classify(lockTimeout(), 'update "users" set "last_name" = $1 where "id" = $2')
    health.classify(noContext(), 'select pg_advisory_xact_lock(hashtext(\'settings\'))')
    assert.deepEqual(lockWaits.map(({ lock, waits, where }) => ({ lock, waits, where })), [
      { lock: 'advisory', waits: 1, where: undefined },
      { lock: 'table', waits: 1, where: undefined },
      { lock: 'row', waits: 1, where: 'while updating tuple (0,2) in relation "users"' },
    ])
    assert.equal(health.status().reachable, true)
  })
})
