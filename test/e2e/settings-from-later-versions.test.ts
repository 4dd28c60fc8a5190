import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { after, describe, it } from 'node:test'
import { ADMIN_PASSWORD, adminAuth, json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { login, withCsrf } from '../helpers/session.ts'

const SETTINGS = '/api/gateway/v1/settings/all/'

describe('run-time settings this version cannot read', () => {
  const dataDir = tempDir()
  let gw: TestGateway | undefined
  after(async () => {
    await gw?.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('keeps every other saved setting in force, basic auth switched off included, when one stored value is out of its range', async () => {
    gw = await startGateway({ dataDir })
    const saved = await gw.fetch(SETTINGS, {
      method: 'PATCH',
      headers: { ...adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ gateway_basic_auth_enabled: false, login_failures_before_lockout: 3 }),
    })
    assert.equal(saved.status, 200, JSON.stringify(await json(saved)))
    // A newer version that allows more sessions per user than this one stored its value (a rolling upgrade, or a
    // downgrade after one): this version's range refuses it.
    await gw.store.settings.put({ sessions_per_user_limit: 1_000_000 })
    await gw.close()
    gw = undefined

    gw = await startGateway({ dataDir })
    const refused = await gw.fetch('/api/gateway/v1/me/', { headers: adminAuth })
    assert.equal(refused.status, 401)
    assert.equal((await json(refused)).code, 'basic_auth_disabled')

    const session = await login(gw, 'admin', ADMIN_PASSWORD)
    const shown = await json(await gw.fetch(SETTINGS, { headers: withCsrf(session) }))
    assert.equal(shown.gateway_basic_auth_enabled, false)
    assert.equal(shown.login_failures_before_lockout, 3)
    assert.equal(shown.sessions_per_user_limit, 1000, 'the value it cannot read: its default')

    // Read again while running (news of another change), the same holds.
    await gw.app.settings.reload()
    const still = await gw.fetch('/api/gateway/v1/me/', { headers: adminAuth })
    assert.equal(still.status, 401)
  })

  it('warns once at start of each stored setting it cannot read, naming it and saying the default is used, never its value', async () => {
    const ownDir = tempDir()
    const logLines: Record<string, unknown>[] = []
    let warned: TestGateway | undefined
    try {
      warned = await startGateway({ dataDir: ownDir })
      await warned.store.settings.put({ sessions_per_user_limit: 1_234_567, login_lockout_seconds: 120 })
      await warned.close()
      warned = await startGateway({ dataDir: ownDir, logLines, logLevel: 'warn' })
      const unreadable = () => logLines.filter((line) => line.setting !== undefined)
      assert.deepEqual(unreadable().map((line) => [line.level, line.setting]), [[40, 'sessions_per_user_limit']])
      assert.match(String(unreadable()[0]!.msg), /default/)
      assert.doesNotMatch(JSON.stringify(logLines), /1234567/, 'the value is never logged')
      assert.equal(warned.app.settings.current.login_lockout_seconds, 120, 'the readable one is in force')

      // Read again with nothing new: nothing said again.
      await warned.app.settings.reload()
      assert.equal(unreadable().length, 1)
      // Another version stores a value of a type this one does not take: said when it is read.
      await warned.store.settings.put({ local_password_refuse_common: 'sometimes' })
      await warned.app.settings.reload()
      assert.deepEqual(unreadable().map((line) => line.setting), ['sessions_per_user_limit', 'local_password_refuse_common'])
      assert.doesNotMatch(JSON.stringify(logLines), /sometimes|1234567/)
    } finally {
      await warned?.close()
      rmSync(ownDir, { recursive: true, force: true })
    }
  })
})
