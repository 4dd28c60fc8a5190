import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { SERVICE_SECRET, testRealms } from '../helpers/oidc.ts'

/**
 * A client's service account is the account named `service-account-<client_id>`. Single sign-on and LDAP make
 * accounts with the names their upstream gives, which a person may choose: such an account, made before the
 * client's first token, must not become the client's service account, or the client's tokens would act as that
 * person, and roles given to the service account by name would go to them.
 */
describe('a service account name taken by a single sign-on or LDAP account', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
  })
  after(() => gw.close())

  const clientCredentials = (form: string, headers: Record<string, string> = {}) => gw.fetch('/realms/platform/protocol/openid-connect/token', {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: form,
  })

  it('issues the client no token acting as that account, by either path of the grant', async () => {
    const squatter = await gw.app.accounts.create({ username: 'service-account-reports', source: 'sso', external: true })
    const basic = `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}`
    for (const [form, headers] of [
      [`client_id=reports&client_secret=${SERVICE_SECRET}&grant_type=client_credentials`, {}],
      ['grant_type=client_credentials&scope=openid', { authorization: basic }],
    ] as const) {
      const response = await clientCredentials(form, headers)
      const body = await response.json() as Record<string, unknown>
      assert.equal(response.status, 400, JSON.stringify(body))
      assert.equal(body.error, 'invalid_grant')
      assert.equal(body.access_token, undefined)
    }
    assert.equal((await gw.store.users.findByUsername('service-account-reports'))!.id, squatter.id, 'the account is left as it is')
  })

  it('nor one holding the name in another letter case, which a realm login would take for it', async () => {
    await gw.app.accounts.delete((await gw.store.users.findByUsername('service-account-reports'))!.id)
    const squatter = await gw.app.accounts.create({ username: 'Service-Account-Reports', source: 'sso', external: true })
    const response = await clientCredentials(`client_id=reports&client_secret=${SERVICE_SECRET}&grant_type=client_credentials`)
    const body = await response.json() as Record<string, unknown>
    assert.equal(response.status, 400, JSON.stringify(body))
    assert.equal(body.error, 'invalid_grant')
    assert.equal(await gw.store.users.findByUsername('service-account-reports'), undefined, 'no second account')
    assert.equal((await gw.store.users.findCaseVariant('service-account-reports'))!.id, squatter.id)
  })
})
