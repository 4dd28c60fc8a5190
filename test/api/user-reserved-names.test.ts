import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * Keycloak names a client's service account `service-account-<clientId>`, and the client_credentials grant acts as
 * the account of that name: an account given such a name by anyone else would stop that client's grant.
 */
describe('the users API keeps service accounts\' names for clients', () => {
  let gw: TestGateway
  let userId: number

  before(async () => {
    gw = await startGateway()
    userId = (await gw.app.accounts.create({ username: 'renamed-later', password: 'renamed-later-password' })).id
  })
  after(() => gw.close())

  it('refuses to create an account named like a client\'s service account, in any letter case, and creates nothing', async () => {
    const before = await gw.store.users.count()
    for (const username of ['service-account-reports', 'Service-Account-Reports', 'service-account-']) {
      const refused = await call(gw, 'POST', 'users/', { username, password: 'a-long-enough-password' })
      assert.equal(refused.status, 400, username)
      assert.equal(refused.body.code, 'invalid')
      assert.ok(Array.isArray(refused.body.username), 'DRF-shaped: the field\'s messages at the top level')
    }
    assert.equal(await gw.store.users.count(), before)
  })

  it('refuses to rename an account to such a name, leaving it as it was', async () => {
    for (const method of ['PATCH', 'PUT']) {
      const refused = await call(gw, method, `users/${userId}/`, { username: 'SERVICE-ACCOUNT-audit' })
      assert.equal(refused.status, 400, method)
      assert.ok(Array.isArray(refused.body.username))
    }
    assert.equal((await gw.store.users.findById(userId))!.username, 'renamed-later')
    const similar = await call(gw, 'PATCH', `users/${userId}/`, { username: 'service-accounts' })
    assert.equal(similar.status, 200, 'only the prefix with its dash is kept')
  })

  it('lets an administrator change a service account\'s other fields, its name sent as it is', async () => {
    // As a realm makes it for its client's first client_credentials grant.
    const account = await gw.app.accounts.create({ username: 'service-account-billing', email: '' })
    const changed = await call(gw, 'PUT', `users/${account.id}/`, { username: 'service-account-billing', first_name: 'Billing' })
    assert.equal(changed.status, 200, JSON.stringify(changed.body))
    assert.equal(changed.body.first_name, 'Billing')
  })
})
