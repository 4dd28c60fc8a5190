import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, basic, json, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

const admin = { authorization: basic('admin', ADMIN_PASSWORD) }

function sharedDatabaseSuite(backend: string, storageArgs: () => Promise<{ args: string[]; cleanup: () => Promise<void> }>): void {
  describe(`two gateway processes sharing ${backend}`, () => {
    let a: GatewayProcess
    let b: GatewayProcess
    let cleanup: () => Promise<void>
    before(async () => {
      const storage = await storageArgs()
      cleanup = storage.cleanup
      a = await spawnGateway(['--demo', ...storage.args])
      b = await spawnGateway(['--demo', ...storage.args])
    })
    after(async () => {
      await Promise.all([a?.stop(), b?.stop()])
      await cleanup?.()
    })

    const call = (gw: GatewayProcess, path: string, init: RequestInit = {}) => fetch(gw.url + path, { redirect: 'manual', ...init })

    it('serves the same accounts from both', async () => {
      const created = await call(a, '/api/gateway/v1/users/', { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'shared', password: 'shared-password' }) })
      assert.equal(created.status, 201)
      const auth = { authorization: basic('shared', 'shared-password') }
      for (const gw of [a, b]) {
        const response = await call(gw, '/api/controller/v2/hosts/', { headers: auth })
        assert.equal(response.status, 200)
        assert.equal((await json(response)).identity.verified, true)
      }
    })

    it('refuses a user disabled on the other process at its next request', async () => {
      const auth = { authorization: basic('shared', 'shared-password') }
      assert.equal((await call(b, '/api/gateway/v1/me/', { headers: auth })).status, 200)
      const id = (await json(await call(a, '/api/gateway/v1/users/?username=shared', { headers: admin }))).results[0].id
      const disabled = await call(a, `/api/gateway/v1/users/${id}/`, { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: false }) })
      assert.equal(disabled.status, 200)
      const refused = await call(b, '/api/gateway/v1/me/', { headers: auth })
      assert.equal(refused.status, 401)
      assert.equal((await json(refused)).code, 'account_disabled')
    })

    it('applies a settings change made on the other process at once', async () => {
      assert.equal((await call(b, '/api/gateway/v1/me/', { headers: admin })).status, 200)
      const off = await call(a, '/api/gateway/v1/settings/', { method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ gateway_basic_auth_enabled: false }) })
      assert.equal(off.status, 200)
      const refused = await call(b, '/api/gateway/v1/me/', { headers: admin })
      assert.equal(refused.status, 401)
      assert.equal((await json(refused)).code, 'basic_auth_disabled')
    })
  })
}

sharedDatabaseSuite('an SQLite data directory', async () => ({ args: ['--data-dir', tempDir()], cleanup: async () => {} }))
sharedDatabaseSuite('a PostgreSQL database', async () => {
  const database = await createTestDatabase()
  return { args: ['--database', database.url], cleanup: database.drop }
})
