import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, grant } from '../helpers/access.ts'
import { adminAuth, basic, json, spawnGatewayPair, type GatewayPair } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { at } from '../helpers/session.ts'

/**
 * The demo eda service's rules on two `gatehouse serve` processes sharing one database: a membership or a role
 * changed through one process decides the very next request on the other, on both backends.
 */
function accessAcrossProcesses(backend: string, storage: () => Promise<{ args: string[] | undefined; cleanup: () => Promise<void> }>): void {
  describe(`access changes across two processes on ${backend}`, () => {
    let pair: GatewayPair
    let cleanup: () => Promise<void>
    const dana = { authorization: basic('dana', 'dana-password-long') }
    const eda = (url: string, method: string) => fetch(`${url}/api/eda/v1/jobs/`, { method, headers: dana })

    before(async () => {
      const chosen = await storage()
      cleanup = chosen.cleanup
      pair = await spawnGatewayPair(chosen.args)
      const first = at(pair.first.url)
      assert.equal((await call(first, 'POST', 'users/', { username: 'dana', password: 'dana-password-long' })).status, 201)
      // `serve --demo` creates the organizations and team its rules name.
      assert.equal((await call(first, 'GET', 'teams/?name=Automation')).body.count, 1)
    })
    after(async () => {
      await pair?.stop()
      await cleanup?.()
    })

    it('lets a member added on one process through on the other at once, and refuses them once removed', async () => {
      const first = at(pair.first.url)
      assert.equal((await eda(pair.second.url, 'POST')).status, 403)
      const team = (await call(first, 'GET', 'teams/?name=Automation')).body.results[0]
      const given = await grant(first, 'dana', 'Team Member', team.id)
      assert.equal(given.status, 201)
      assert.equal((await eda(pair.second.url, 'POST')).status, 200)
      assert.equal((await call(first, 'DELETE', `role_user_assignments/${given.body.id}/`)).status, 204)
      const refused = await eda(pair.second.url, 'POST')
      assert.equal(refused.status, 403)
      assert.equal((await json(refused)).code, 'access_denied')
    })

    it('applies a role revoked on one process to the other\'s next request', async () => {
      const second = at(pair.second.url)
      const auditor = await grant(second, 'dana', 'Platform Auditor')
      assert.equal(auditor.status, 201)
      assert.equal((await eda(pair.first.url, 'GET')).status, 200)
      assert.equal((await call(second, 'DELETE', `role_user_assignments/${auditor.body.id}/`)).status, 204)
      assert.equal((await eda(pair.first.url, 'GET')).status, 403)
    })

    it('refuses a team member on the other process once their team is deleted', async () => {
      const first = at(pair.first.url)
      const team = (await call(first, 'GET', 'teams/?name=Automation')).body.results[0]
      assert.equal((await grant(first, 'dana', 'Team Member', team.id)).status, 201)
      assert.equal((await eda(pair.second.url, 'PUT')).status, 200)
      assert.equal((await call(at(pair.second.url), 'DELETE', `teams/${team.id}/`, undefined, adminAuth)).status, 204)
      assert.equal((await eda(pair.first.url, 'PUT')).status, 403)
    })
  })
}

accessAcrossProcesses('SQLite', async () => ({ args: undefined, cleanup: async () => {} }))
accessAcrossProcesses('PostgreSQL', async () => {
  const database = await createTestDatabase()
  return { args: ['--database', database.url], cleanup: database.drop }
})
