import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { exchange } from '../helpers/raw-client.ts'

const REALM = '/realms/platform'
const TOKEN = `${REALM}/protocol/openid-connect/token`
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/**
 * Every answer the gateway writes itself, JSON as much as pages, tells browsers not to guess its type
 * (`X-Content-Type-Options: nosniff`), as the platform's Django and Keycloak's REST answers do. A service's answer is
 * passed on as the service wrote it.
 */
describe('X-Content-Type-Options on the gateway\'s own answers', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway()
  })
  after(async () => {
    await gw?.close()
  })

  const assertNosniff = (what: string, response: Response) =>
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff', `${what} (${response.status})`)

  it('says nosniff on the gateway\'s JSON refusals, in front of a service too', async () => {
    assertNosniff('a path nothing serves', await gw.fetch('/nowhere'))
    assertNosniff('an API path that does not exist', await gw.fetch('/api/gateway/v1/nothing-here/'))
    assertNosniff('a service refusing a request without credentials', await gw.fetch('/api/eda/v1/projects/'))
    assertNosniff('a service refusing a wrong password', await gw.fetch('/api/eda/v1/projects/', { headers: { authorization: 'Basic ' + Buffer.from('admin:wrong').toString('base64') } }))
  })

  it('says nosniff on the refusal of a request Node\'s parser could not read', async () => {
    const raw = await exchange(gw.url, 'GET /api/gateway/v1/ping/ HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n')
    assert.match(raw, /^HTTP\/1\.1 400 /)
    assert.match(raw, /\r\nX-Content-Type-Options: nosniff\r\n/i)
  })

  it('says nosniff on the realm\'s JSON answers, oidc-provider\'s and the gateway\'s own', async () => {
    assertNosniff('the discovery document', await gw.fetch(`${REALM}/.well-known/openid-configuration`))
    assertNosniff('the keys', await gw.fetch(`${REALM}/protocol/openid-connect/certs`))
    assertNosniff('the realm', await gw.fetch(`${REALM}/`))
    assertNosniff('a realm that does not exist', await gw.fetch('/realms/nowhere/'))
    assertNosniff('the account endpoint without a token', await gw.fetch(`${REALM}/account`, { headers: { accept: 'application/json' } }))
    assertNosniff('the token endpoint refusing a body that is no form', await gw.fetch(TOKEN, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }))
  })

  it('says nosniff on the token endpoint\'s answers, granted and refused', async () => {
    const grant = (password: string) => gw.fetch(TOKEN, { method: 'POST', headers: FORM, body: new URLSearchParams({ grant_type: 'password', client_id: 'end-users', username: 'admin', password }) })
    const granted = await grant(ADMIN_PASSWORD)
    assert.equal(granted.status, 200)
    assertNosniff('tokens granted', granted)
    assertNosniff('a wrong password', await grant('wrong-password'))
  })

  it('leaves a service\'s answer as the service wrote it', async () => {
    const answer = await gw.fetch('/api/controller/')
    assert.equal(answer.status, 200)
    assert.equal(answer.headers.get('x-content-type-options'), null)
  })
})
