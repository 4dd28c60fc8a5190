import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout } from 'node:timers/promises'
import { DatabaseUnavailable } from '../../src/errors.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, json, spawnGatewayPair, type GatewayPair, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { at, type Target } from '../helpers/session.ts'

const SETTINGS = '/api/gateway/v1/settings/'
const SESSION = '/api/gateway/v1/settings/session/'
const STREAM = '/api/gateway/v1/activitystream/'
const DEFAULT_COOKIE_AGE = 900

/** The settings entries of the activity stream, once `count` of them are there (each process writes its own every flush_ms). */
async function settingsEntries(target: Target, count: number): Promise<any[]> {
  const giveUpAt = Date.now() + 15_000
  for (;;) {
    const response = await target.fetch(`${STREAM}?content_type=settings&order_by=id&page_size=200`, { headers: adminAuth })
    const body = await json(response)
    assert.equal(response.status, 200, JSON.stringify(body))
    if (body.count >= count || Date.now() > giveUpAt) return body.results
    await setTimeout(100)
  }
}

/**
 * Follows the entries from `from`: each must start where another ended, so that together they are one history of
 * the setting with no value lost or recorded twice. Returns where the history ends.
 */
function chainEnd(entries: any[], from: unknown): unknown {
  const byBefore = new Map<unknown, any>()
  for (const entry of entries) {
    const [old] = entry.changes.changed_fields.session_cookie_age
    assert.ok(!byBefore.has(old), `two entries start from ${old}`)
    byBefore.set(old, entry)
  }
  let value = from
  for (let step = 0; step < entries.length; step++) {
    const entry = byBefore.get(value)
    assert.ok(entry, `no entry starts from ${value} (step ${step})`)
    value = entry.changes.changed_fields.session_cookie_age[1]
  }
  return value
}

const storages: { name: string; start: () => Promise<{ args?: string[]; drop: () => Promise<void> }> }[] = [
  { name: 'SQLite', start: async () => ({ drop: async () => {} }) },
  {
    name: 'PostgreSQL',
    async start() {
      const database = await createTestDatabase()
      return { args: ['--database', database.url], drop: database.drop }
    },
  },
]

for (const storage of storages) {
  describe(`settings changes in the audit trail, two processes on ${storage.name}`, () => {
    let pair: GatewayPair
    let drop: () => Promise<void> = async () => {}
    let targets: [Target, Target]
    before(async () => {
      const started = await storage.start()
      drop = started.drop
      pair = await spawnGatewayPair(started.args)
      targets = [at(pair.first.url), at(pair.second.url)]
    })
    after(async () => {
      await pair?.stop()
      await drop()
    })

    const send = (target: Target, method: string, path: string, body?: string) =>
      target.fetch(path, { method, headers: { ...adminAuth, 'content-type': 'application/json' }, body })

    it('records each of many changes made at once with its own new value, each starting where another ended', async () => {
      const values = Array.from({ length: 80 }, (_, i) => 1000 + i)
      // Sixteen at a time, eight on each process: as many as its pool of ten connections serves without a wait.
      const answers: { value: number; status: number; body: any }[] = []
      let next = 0
      await Promise.all(Array.from({ length: 16 }, async (_, worker) => {
        for (let i = next++; i < values.length; i = next++) {
          const response = await send(targets[worker % 2]!, i % 4 < 2 ? 'PATCH' : 'PUT', SESSION, JSON.stringify({ session_cookie_age: values[i] }))
          answers.push({ value: values[i]!, status: response.status, body: await json(response) })
        }
      }))
      assert.equal(answers.length, values.length)
      for (const { value, status, body } of answers) {
        assert.equal(status, 200, JSON.stringify(body))
        assert.equal(body.session_cookie_age, value, 'the answer shows what this request saved')
        assert.equal(body.SESSION_COOKIE_AGE, value)
      }
      const entries = await settingsEntries(targets[0], values.length)
      assert.equal(entries.length, values.length)
      for (const entry of entries) {
        assert.equal(entry.operation, 'update')
        assert.deepEqual(Object.keys(entry.changes.changed_fields), ['session_cookie_age'], JSON.stringify(entry.changes))
      }
      const recorded = entries.map((entry) => entry.changes.changed_fields.session_cookie_age[1]).sort((a, b) => a - b)
      assert.deepEqual(recorded, values, 'every request\'s own value is recorded, once')
      const last = chainEnd(entries, DEFAULT_COOKIE_AGE)
      for (const target of targets) assert.equal((await json(await target.fetch(SESSION, { headers: adminAuth }))).session_cookie_age, last)
    })

    it('saves and records nothing for a change that changes nothing, and answers with the settings as they are', async () => {
      const before = await settingsEntries(targets[0], 0)
      const current = await json(await targets[1].fetch(SETTINGS + 'all/', { headers: adminAuth }))
      for (const [i, body] of ['{}', '', JSON.stringify({ session_cookie_age: current.session_cookie_age }), JSON.stringify({ gateway_basic_auth_enabled: current.gateway_basic_auth_enabled })].entries()) {
        for (const method of ['PATCH', 'PUT']) {
          const response = await send(targets[i % 2]!, method, SETTINGS, body)
          const answer = await json(response)
          assert.equal(response.status, 200, `${method} ${body}: ${JSON.stringify(answer)}`)
          assert.deepEqual(answer, current, `${method} ${body}`)
        }
      }
      // A category none of whose settings is stored has nothing to reset.
      assert.equal((await send(targets[0], 'DELETE', '/api/gateway/v1/settings/password/')).status, 204)
      // Both processes have written what they had by now.
      await setTimeout(1200)
      assert.equal((await settingsEntries(targets[0], 0)).length, before.length)
    })
  })
}

for (const backend of gatewayBackends) {
  describe(`a settings change whose reload fails after the commit, on ${backend.name}`, () => {
    let gw: TestGateway
    before(async () => {
      gw = await backend.start()
    })
    after(() => gw.close())

    it('answers with what it saved and records it, and the process applies it at its next read of the log', async () => {
      const settings = gw.store.settings
      const readAll = settings.all.bind(settings)
      let failures = 0
      settings.all = async () => {
        if (failures++ === 0) throw new DatabaseUnavailable()
        return readAll()
      }
      try {
        const response = await gw.fetch(SESSION, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ session_cookie_age: 1234 }) })
        const body = await json(response)
        assert.equal(response.status, 200, JSON.stringify(body))
        assert.equal(body.session_cookie_age, 1234)
        assert.ok(failures > 0, 'the reload was made to fail')
      } finally {
        settings.all = readAll
      }
      await gw.app.audit.flush()
      const { results } = await json(await gw.fetch(`${STREAM}?content_type=settings`, { headers: adminAuth }))
      assert.equal(results.length, 1)
      assert.deepEqual(results[0].changes.changed_fields, { session_cookie_age: [DEFAULT_COOKIE_AGE, 1234] })
      const giveUpAt = Date.now() + 5000
      while (gw.app.settings.current.session_cookie_age !== 1234 && Date.now() < giveUpAt) await setTimeout(50)
      assert.equal(gw.app.settings.current.session_cookie_age, 1234)
    })
  })
}

for (const backend of gatewayBackends) {
  describe(`a reset of settings stored with the default's value, on ${backend.name}`, () => {
    let gw: TestGateway
    before(async () => {
      gw = await backend.start()
    })
    after(() => gw.close())

    it('deletes them, so that a later default reaches them, and records no change', async () => {
      // As an earlier version's PUT stored a value equal to the default.
      await gw.store.settings.put({ session_cookie_age: DEFAULT_COOKIE_AGE })
      const response = await gw.fetch(SESSION, { method: 'DELETE', headers: adminAuth })
      assert.equal(response.status, 204)
      assert.equal('session_cookie_age' in await gw.store.settings.all(), false, 'the stored row is gone')
      await gw.app.audit.flush()
      const { results } = await json(await gw.fetch(`${STREAM}?content_type=settings`, { headers: adminAuth }))
      assert.deepEqual(results, [], 'nothing changed, so nothing is recorded')
    })
  })
}
