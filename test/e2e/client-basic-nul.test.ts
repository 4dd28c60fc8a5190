import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { realmUrl } from '../helpers/oidc.ts'

/**
 * A NUL character in a client's HTTP basic credentials is refused as one in the form is (src/http/input-safety.ts):
 * the client id is looked up in the store, which takes no NUL, so it must be refused before that, never answered
 * with a server error.
 */
describe('client credentials with a NUL character in HTTP basic', () => {
  let gw: TestGateway
  let clientId: string
  before(async () => {
    gw = await startGateway()
    const created = await gw.fetch('/api/gateway/v1/applications/', {
      method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'nul probe', client_type: 'confidential', authorization_grant_type: 'password' }),
    })
    assert.equal(created.status, 201)
    clientId = (await json(created)).client_id
  })
  after(() => gw.close())

  const basic = (id: string, secret: string) => 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64')
  const post = (path: string, body: Record<string, string>, authorization: string) => gw.fetch(path, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization }, body: new URLSearchParams(body).toString(),
  })

  it('refuses a NUL in the client id or secret at the token, revocation and introspection endpoints with invalid_request, not a server error', async () => {
    const endpoints: [string, Record<string, string>][] = [
      ['/o/token/', { grant_type: 'password', username: 'admin', password: 'wrong' }],
      [realmUrl(gw, '/protocol/openid-connect/token').slice(gw.url.length), { grant_type: 'client_credentials' }],
      ['/o/revoke_token/', { token: 'some-token' }],
      [realmUrl(gw, '/protocol/openid-connect/token/introspect').slice(gw.url.length), { token: 'some-token' }],
    ]
    for (const [path, body] of endpoints) {
      for (const authorization of [basic('a\u0000b', 'secret'), basic(`${clientId}\u0000`, 'secret'), basic(clientId, 'sec\u0000ret')]) {
        const response = await post(path, body, authorization)
        const answer = await json(response)
        assert.equal(response.status, 400, `${path} ${JSON.stringify(answer)}`)
        assert.equal(answer.error, 'invalid_request', path)
      }
    }
  })

  it('still takes the application\'s own credentials in HTTP basic', async () => {
    const response = await post('/o/token/', { grant_type: 'password', username: 'nobody', password: 'wrong' }, basic(clientId, 'not-the-secret'))
    assert.equal(response.status, 401)
    assert.equal((await json(response)).error, 'invalid_client')
  })
})
