import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it, mock } from 'node:test'
import { Agent } from 'undici'
import { SYSTEM_ACTOR, type Actor } from '../../src/audit/actor.ts'
import { AuditTrail } from '../../src/audit/trail.ts'
import { auditDefaults } from '../../src/config/operations.ts'
import { DatabaseUnavailable } from '../../src/errors.ts'
import { type ListFilter, NO_FILTER } from '../../src/store/list-filter.ts'
import { openStore } from '../../src/store/store.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, basic, json, startGateway, tempDir } from '../helpers/gateway.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'
import { REALM, tokenRequest } from '../helpers/oidc.ts'
import { login, withCsrf } from '../helpers/session.ts'

const newestFirst: ListFilter = { ...NO_FILTER, order: [{ field: 'id', descending: true }] }
const guesser: Actor = { userId: null, username: 'guesser', address: '192.0.2.9', method: 'basic' }

describe('audit trail bounds', () => {
  it('keeps at most queue_limit login entries waiting, counts the rest in one entry, and always keeps changes', async () => {
    const dir = tempDir()
    const store = await openStore({ dataDir: dir })
    const trail = new AuditTrail(store, { ...auditDefaults, queue_limit: 50 })
    try {
      for (let i = 0; i < 80; i++) trail.auth(guesser, { operation: 'login_error', object: { type: 'user', name: `user-${i}` }, code: 'invalid_credentials' })
      trail.change(SYSTEM_ACTOR, 'update', { type: 'settings' }, { session_cookie_age: 900 }, { session_cookie_age: 600 })
      assert.equal(trail.droppedTotal, 30)
      await trail.flush()
      const { count, entries } = await store.audit.list({ filter: newestFirst, offset: 0, limit: 100 })
      assert.equal(count, 50 + 1 + 1)
      assert.equal(entries[0]!.operation, 'dropped')
      assert.deepEqual(entries[0]!.changes, { count: 30 })
      assert.equal(entries[1]!.operation, 'update')
      assert.equal(entries[2]!.objectName, 'user-49', 'the first ones are kept, later ones counted')
    } finally {
      await trail.close()
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('keeps the entry that carries a minute\'s repeated refusals when the queue is full', async () => {
    const dir = tempDir()
    const store = await openStore({ dataDir: dir })
    const trail = new AuditTrail(store, { ...auditDefaults, queue_limit: 10 })
    try {
      for (let i = 0; i < 5; i++) trail.auth(guesser, { operation: 'login_error', object: { type: 'user', name: 'guesser' }, code: 'login_throttled' })
      for (let i = 0; i < 20; i++) trail.auth(guesser, { operation: 'login_error', object: { type: 'user', name: `user-${i}` }, code: 'invalid_credentials' })
      // Stopping writes the counts of the minutes still open, into a queue that is full.
      await trail.close()
      const { entries } = await store.audit.list({ filter: newestFirst, offset: 0, limit: 100 })
      const throttled = entries.filter((entry) => entry.code === 'login_throttled')
      assert.deepEqual(throttled.map((entry) => entry.changes), [{ repeated: 4 }, null])
    } finally {
      await trail.close()
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('keeps every change while the database is away, and counts the login entries it cannot keep beside them', async () => {
    const dir = tempDir()
    const store = await openStore({ dataDir: dir })
    const trail = new AuditTrail(store, { ...auditDefaults, queue_limit: 10 })
    const insertMany = store.audit.insertMany
    store.audit.insertMany = async () => { throw new DatabaseUnavailable() }
    try {
      for (let i = 0; i < 10; i++) trail.auth(guesser, { operation: 'login_error', object: { type: 'user', name: `user-${i}` }, code: 'invalid_credentials' })
      for (let i = 0; i < 3; i++) trail.change(SYSTEM_ACTOR, 'update', { type: 'user', name: `disabled-${i}` }, { is_active: true }, { is_active: false })
      // Away for several flushes: the count of what was dropped waits too, in one entry.
      for (let i = 0; i < 3; i++) await trail.flush()
      assert.equal(trail.waiting, 10, 'the changes, and the login entries the bound leaves room for')
      store.audit.insertMany = insertMany
      await trail.flush()
      const { entries } = await store.audit.list({ filter: newestFirst, offset: 0, limit: 100 })
      assert.deepEqual(entries.filter((entry) => entry.operation === 'update').map((entry) => entry.objectName).sort(), ['disabled-0', 'disabled-1', 'disabled-2'])
      assert.equal(entries.filter((entry) => entry.operation === 'login_error').length, 7)
      assert.deepEqual(entries.filter((entry) => entry.operation === 'dropped').map((entry) => entry.changes), [{ count: 3 }])
      assert.equal(trail.droppedTotal, 3)
    } finally {
      store.audit.insertMany = insertMany
      await trail.close()
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('leaves out of the table only an entry the database refuses for what it holds, and goes on writing the others', async () => {
    const dir = tempDir()
    const store = await openStore({ dataDir: dir })
    const trail = new AuditTrail(store, { ...auditDefaults })
    const errors: unknown[] = []
    trail.onError = (error) => errors.push(error)
    try {
      trail.auth(guesser, { operation: 'login_error', object: { type: 'user', name: 'before' }, code: 'invalid_credentials' })
      // Text with NUL, which every query refuses (src/store/database.ts): no path records one now, but any entry may
      // be one the database will not take.
      trail.auth({ ...guesser, username: 'nul\u0000name' }, { operation: 'login_error', object: { type: 'user', name: 'nul\u0000name' }, code: 'invalid_credentials' })
      trail.auth(guesser, { operation: 'login_error', object: { type: 'user', name: 'after' }, code: 'invalid_credentials' })
      await trail.flush()
      trail.change(SYSTEM_ACTOR, 'update', { type: 'settings' }, { session_cookie_age: 900 }, { session_cookie_age: 600 })
      await trail.flush()
      const { entries } = await store.audit.list({ filter: newestFirst, offset: 0, limit: 100 })
      assert.deepEqual(entries.map((entry) => entry.operation), ['update', 'login_error', 'login_error'])
      assert.deepEqual(entries.slice(1).map((entry) => entry.objectName), ['after', 'before'])
      assert.equal(trail.droppedTotal, 1)
      assert.equal(errors.length, 1)
    } finally {
      await trail.close()
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('deletes entries past the retention', async () => {
    const dir = tempDir()
    const store = await openStore({ dataDir: dir })
    const trail = new AuditTrail(store, { ...auditDefaults, retention_days: 30 })
    try {
      trail.auth(guesser, { operation: 'login_error', object: { type: 'user', name: 'old' }, code: 'invalid_credentials' })
      await trail.flush()
      assert.equal(await trail.prune(Date.now() + 29 * 86_400_000), 0)
      assert.equal(await trail.prune(Date.now() + 31 * 86_400_000), 1)
      assert.equal(await store.audit.count(), 0)
    } finally {
      await trail.close()
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('writes every entry as a JSON line to the configured file, without secrets', async () => {
    const dir = tempDir()
    const file = join(dir, 'audit.jsonl')
    const gw = await startGateway({ config: { audit: { output: 'file', file } } })
    try {
      await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('admin', 'a-wrong-password') } })
      const created = await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'erin', password: 'erin-long-password' }) })
      assert.equal(created.status, 201)
      await gw.app.audit.flush()
      const text = readFileSync(file, 'utf8')
      const lines = text.trim().split('\n').map((line) => JSON.parse(line))
      assert.deepEqual(lines.map((l) => [l.operation, l.code, l.kind]), [['login_error', 'invalid_credentials', 'sign_in'], ['login', null, 'sign_in'], ['create', null, 'change']])
      assert.equal(lines[2].objectName, 'erin')
      assert.match(lines[2].time, /^\d{4}-\d{2}-\d{2}T/)
      assert.ok(!text.includes('erin-long-password') && !text.includes('a-wrong-password'))
    } finally {
      await gw.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('writes what a client chose as characters no terminal acts on: C1 controls and bidirectional overrides as \\u escapes', async () => {
    const dir = tempDir()
    const file = join(dir, 'audit.jsonl')
    const gw = await startGateway({ config: { audit: { output: 'file', file } } })
    try {
      const username = 'ev\u009b2J\u009b31mil\u202eevil\u001b[31m\u2028'
      const refused = await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Basic ${Buffer.from(`${username}:pw`).toString('base64')}` } })
      assert.equal(refused.status, 401)
      await gw.app.audit.flush()
      const text = readFileSync(file, 'utf8')
      assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/, 'no raw control or override in the file')
      const line = JSON.parse(text.trim().split('\n').find((one) => JSON.parse(one).operation === 'login_error')!)
      assert.equal(line.objectName, username, 'read back as the same text')
    } finally {
      await gw.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('cuts a long tried username in the JSON line as in the table, so a failed password grant cannot make a line of any size', async () => {
    const dir = tempDir()
    const file = join(dir, 'audit.jsonl')
    const gw = await startGateway({ config: { audit: { output: 'file', file } } })
    try {
      const username = 'u'.repeat(15_000)
      const grant = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, {
        method: 'POST', body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username, password: 'a-wrong-password' }),
      })
      assert.equal(grant.status, 400)
      await gw.app.audit.flush()
      const lines = readFileSync(file, 'utf8').trim().split('\n')
      const line = lines.find((text) => JSON.parse(text).operation === 'login_error')!
      assert.ok(line.length < 1000, `a line of ${line.length} characters`)
      const { entries: [stored] } = await gw.store.audit.list({ filter: newestFirst, offset: 0, limit: 1 })
      const written = JSON.parse(line)
      assert.equal(stored!.operation, 'login_error')
      assert.equal(written.objectName, stored!.objectName)
      assert.equal(written.actorUsername, stored!.actorUsername)
      assert.equal(written.objectName, 'u'.repeat(200))
      assert.equal(written.actorUsername, 'u'.repeat(150))
    } finally {
      await gw.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  // Each of the 10,000 checks waits its turn behind the others from the same address (src/auth/lockout.ts): seconds
  // on an idle machine, over a minute on a loaded one, so this test has a longer limit than the suite's default.
  it('stays bounded, and the gateway keeps answering, through a burst of 10,000 failed logins', { timeout: 300_000 }, async () => {
    const gw = await startGateway({ config: { audit: { max_entries: 1000, queue_limit: 500, flush_ms: 50 } } })
    const agent = new Agent({ connections: 32, pipelining: 1 })
    try {
      let sent = 0
      const codes = new Map<string, number>()
      const guess = async () => {
        while (sent < 10_000) {
          const i = sent++
          const response = await fetch(`${gw.url}/api/gateway/v1/me/`, { headers: { authorization: basic(`user-${i}`, 'wrong-password') }, dispatcher: agent } as RequestInit)
          const { code } = await response.json() as { code: string }
          codes.set(code, (codes.get(code) ?? 0) + 1)
        }
      }
      const slowest: number[] = []
      let bursting = true
      const probe = async () => {
        while (bursting) {
          const started = performance.now()
          const response = await fetch(`${gw.url}/api/gateway/v1/ping/`, { dispatcher: agent } as RequestInit)
          assert.equal(response.status, 200)
          await response.arrayBuffer()
          slowest.push(performance.now() - started)
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      }
      const probing = probe()
      await Promise.all(Array.from({ length: 32 }, guess))
      bursting = false
      await probing
      assert.equal([...codes.values()].reduce((a, b) => a + b, 0), 10_000)
      assert.ok((codes.get('login_throttled') ?? 0) > 9_000, JSON.stringify([...codes]))
      assert.ok(slowest.length > 0)
      // Bounded generously: the machine running the tests may be busy with other work too.
      assert.ok(Math.max(...slowest) < 5_000, `the slowest ping during the burst took ${Math.max(...slowest)} ms`)

      await gw.app.audit.flush()
      await gw.app.audit.prune()
      const count = await gw.app.store.audit.count()
      assert.ok(count > 0 && count <= 1000, `${count} entries`)
      // (Read from the store: this address is throttled now, admin's password included.)
      const { entries } = await gw.app.store.audit.list({ filter: { ...newestFirst, all: [{ field: 'operation', lookup: 'exact', value: 'login_error', negate: false }] }, offset: 0, limit: 1 })
      assert.equal(entries[0]!.code, 'login_throttled')
    } finally {
      await agent.close()
      await gw.close()
    }
  })
  describe('refused logins that verified no password', () => {
    const ME = '/api/gateway/v1/me/'
    const entriesFrom = async (gw: Awaited<ReturnType<typeof startGateway>>, address: string) => {
      await gw.app.audit.flush()
      const filter: ListFilter = { ...NO_FILTER, all: [{ field: 'source_address', lookup: 'exact', value: address, negate: false }] }
      const { entries } = await gw.app.store.audit.list({ filter, offset: 0, limit: 1000 })
      return entries.map((entry) => [entry.operation, entry.code, entry.objectName, entry.changes])
    }
    /** Moves this process's monotonic clock (performance.now()) on by what `ahead` is set to. */
    const steppedMonotonic = () => {
      const machine = performance.now.bind(performance)
      const clock = { ahead: 0 }
      mock.method(performance, 'now', () => machine() + clock.ahead)
      return clock
    }

    it('are written once per address and minute while throttled, whatever the username, with how often they repeated; each wrong password is written', async () => {
      const gw = await startGateway({ config: { auth: { basic_cache_seconds: 0 } } })
      mock.timers.enable({ apis: ['Date'], now: Date.now() })
      const monotonic = steppedMonotonic()
      try {
        await gw.app.settings.update({ login_failures_before_lockout: 0, login_failures_per_address: 3, login_address_window_seconds: 300 })
        const from = (username: string, password = 'a-wrong-password') => requestFrom('127.0.0.21', gw.url + ME, { headers: { authorization: basic(username, password) } })
        // Each with a password of its own: the same credential sent at once is checked once for all (src/auth/credential-cache.ts).
        const codesOf = async (usernames: string[]) => (await Promise.all(usernames.map((name, i) => from(name, `wrong-${name}-${i}`)))).map((response) => response.json().code)
        for (const name of ['ann', 'bob', 'ann']) assert.equal((await from(name)).json().code, 'invalid_credentials')
        const flood = Array.from({ length: 200 }, (_, i) => (i % 2 ? 'ann' : `nobody-${i}`))
        const scrape = async () => sampleValue(parseScrape(await (await fetch(gw.url + '/metrics')).text()), 'gatehouse_logins_total', { method: 'basic', outcome: 'failure', code: 'login_throttled' })
        assert.deepEqual(new Set(await codesOf(flood.slice(0, 100))), new Set(['login_throttled']))
        assert.deepEqual(await entriesFrom(gw, '127.0.0.21'), [
          ['login_error', 'invalid_credentials', 'ann', null],
          ['login_error', 'invalid_credentials', 'bob', null],
          ['login_error', 'invalid_credentials', 'ann', null],
          ['login_error', 'login_throttled', 'nobody-0', null],
        ])
        assert.deepEqual(new Set(await codesOf(flood.slice(100))), new Set(['login_throttled']))
        assert.equal(await scrape(), 200, 'the metric counts every refusal')

        // The window's count is written when it ends, as its newest refusal; the next refusal opens a window of its own.
        mock.timers.tick(61_000)
        monotonic.ahead += 61_000
        assert.equal((await from('carl')).json().code, 'login_throttled')
        const entries = await entriesFrom(gw, '127.0.0.21')
        assert.deepEqual(entries.slice(3), [
          ['login_error', 'login_throttled', 'nobody-0', null],
          ['login_error', 'login_throttled', 'ann', { repeated: 199 }],
          ['login_error', 'login_throttled', 'carl', null],
        ])
        assert.equal(await scrape(), 201)
      } finally {
        mock.timers.reset()
        mock.restoreAll()
        await gw.close()
      }
    })

    it('are written again once the window is over though the machine\'s clock stepped back meanwhile', async () => {
      const gw = await startGateway({ config: { auth: { basic_cache_seconds: 0 } } })
      mock.timers.enable({ apis: ['Date'], now: Date.now() })
      const monotonic = steppedMonotonic()
      try {
        await gw.app.settings.update({ login_failures_before_lockout: 0, login_failures_per_address: 1, login_address_window_seconds: 7200 })
        const from = (username: string) => requestFrom('127.0.0.24', gw.url + ME, { headers: { authorization: basic(username, `wrong-${username}`) } })
        assert.equal((await from('erin')).json().code, 'invalid_credentials')
        for (const name of ['fay', 'gus', 'hal']) assert.equal((await from(name)).json().code, 'login_throttled')
        // An NTP correction or a virtual machine resumed sets the wall clock back an hour; a minute passes.
        mock.timers.setTime(Date.now() - 3600_000)
        monotonic.ahead += 61_000
        assert.equal((await from('ivy')).json().code, 'login_throttled')
        assert.deepEqual((await entriesFrom(gw, '127.0.0.24')).slice(1), [
          ['login_error', 'login_throttled', 'fay', null],
          ['login_error', 'login_throttled', 'hal', { repeated: 2 }],
          ['login_error', 'login_throttled', 'ivy', null],
        ])
      } finally {
        mock.timers.reset()
        mock.restoreAll()
        await gw.close()
      }
    })

    it('are written once per username, address and minute while the username is locked, and the open count when the gateway stops', async () => {
      const gw = await startGateway({ config: { auth: { basic_cache_seconds: 0 } } })
      try {
        await gw.app.settings.update({ login_failures_before_lockout: 2, login_lockout_seconds: 300, login_failures_per_address: 0, login_lockout_spares_clean_addresses: false })
        const from = (address: string, username: string) => requestFrom(address, gw.url + ME, { headers: { authorization: basic(username, 'a-wrong-password') } })
        for (let i = 0; i < 2; i++) assert.equal((await from('127.0.0.22', 'dora')).json().code, 'invalid_credentials')
        for (let i = 0; i < 50; i++) assert.equal((await from('127.0.0.22', i % 2 ? 'dora' : 'DORA')).json().code, 'account_locked')
        for (let i = 0; i < 5; i++) assert.equal((await from('127.0.0.23', 'dora')).json().code, 'account_locked')
        assert.deepEqual((await entriesFrom(gw, '127.0.0.22')).map(([operation, code]) => [operation, code]), [
          ['login_error', 'invalid_credentials'],
          ['login_error', 'invalid_credentials'],
          ['login_error', 'account_locked'],
        ])
        assert.deepEqual(await entriesFrom(gw, '127.0.0.23'), [['login_error', 'account_locked', 'dora', null]])
        await gw.app.audit.close()
        assert.deepEqual((await entriesFrom(gw, '127.0.0.22')).at(-1), ['login_error', 'account_locked', 'dora', { repeated: 49 }])
        assert.deepEqual((await entriesFrom(gw, '127.0.0.23')).at(-1), ['login_error', 'account_locked', 'dora', { repeated: 4 }])
      } finally {
        await gw.close()
      }
    })
  })
})

for (const backend of gatewayBackends) {
  describe(`the audit trail's count bound on ${backend.name}`, () => {
    it('deletes sign-in entries before any change: an account logging in and out in a loop pushes no administrator\'s change out', { timeout: 180_000 }, async () => {
      const gw = await backend.start({ config: { audit: { max_entries: 100, flush_ms: 20 } } })
      const stream = async (query: string) => json(await gw.fetch(`/api/gateway/v1/activitystream/?page_size=200&${query}`, { headers: adminAuth }))
      try {
        const password = 'mallory-long-password'
        const created = await json(await gw.fetch('/api/gateway/v1/users/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'mallory', password }) }))
        await login(gw, 'mallory', password)
        await gw.app.audit.flush()
        const [session] = (await stream(`content_type=session&operation=create`)).results
        // An administrator ending someone's session is a change; the sessions of logins and logouts are sign-ins.
        assert.equal((await gw.fetch(`/api/gateway/v1/sessions/${session.object_id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
        for (let i = 0; i < 30; i++) {
          const signedIn = await login(gw, 'mallory', password)
          assert.equal((await gw.fetch('/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(signedIn) })).status, 302)
        }
        for (let i = 0; i < 10; i++) assert.equal((await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'mallory', password })).status, 200)
        await gw.app.audit.flush()
        await gw.app.audit.prune()

        const kept = await stream('order_by=id')
        assert.ok(kept.count <= 100 && kept.count > 90, `${kept.count} entries`)
        const changes = kept.results.filter((entry: any) => ['create', 'update', 'delete'].includes(entry.operation) && entry.created_by === 1)
        assert.deepEqual(changes.map((entry: any) => [entry.operation, entry.content_type, entry.object_id]), [['create', 'user', String(created.id)], ['delete', 'session', session.object_id]])
        assert.equal(kept.results[0].id, changes[0].id, 'the oldest entries left are the changes')
        assert.ok(kept.results.slice(2).every((entry: any) => ['login', 'logout'].includes(entry.operation) || entry.content_type === 'session'), 'and the newest sign-ins beside them')
        const newest = await stream('')
        assert.deepEqual(newest.results.slice(0, 10).map((entry: any) => [entry.operation, entry.realm]), Array(10).fill(['login', REALM]), 'the stream reads newest first')
        const events = await json(await gw.fetch(`/admin/realms/${REALM}/events?max=20`, { headers: adminAuth }))
        assert.deepEqual(events.map((event: any) => [event.type, event.details.username]), Array(10).fill(['LOGIN', 'mallory']))
        assert.deepEqual(events.map((event: any) => event.time), events.map((event: any) => event.time).sort((a: number, b: number) => b - a))
      } finally {
        await gw.close()
      }
    })
  })
}
