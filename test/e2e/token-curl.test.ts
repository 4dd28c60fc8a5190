import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

const run = promisify(execFile)

/** The platform document's OAuth 2 token sequence, run with the real curl binary, command for command. */
describe('OAuth 2 tokens with curl, as the document shows', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'operator', password: 'operator-password' })
  })
  after(() => gw.close())

  const curl = async (...args: string[]) => JSON.parse((await run('curl', args)).stdout)

  it('creates a token with `curl -u` and reaches the controller with it as the owner', async () => {
    // curl -u <username>:<password> -k -X POST https://<address>/api/gateway/v1/tokens/
    const created = await curl('-u', 'operator:operator-password', '-k', '-X', 'POST', `${gw.url}/api/gateway/v1/tokens/`)
    assert.match(created.token, /^gatehouse_pat_[0-9A-Za-z]{49}$/)
    assert.equal(created.scope, 'write')

    // curl -k -X GET -H "Content-Type: application/json" -H "Authorization: Bearer <your_token>" https://<address>/api/controller/v2/hosts/
    const hosts = await curl('-k', '-X', 'GET', '-H', 'Content-Type: application/json', '-H', `Authorization: Bearer ${created.token}`, `${gw.url}/api/controller/v2/hosts/`)
    assert.equal(hosts.service, 'controller')
    assert.equal(hosts.path, '/api/controller/v2/hosts/')
    assert.deepEqual(hosts.identity, { username: 'operator', user_id: created.user, auth_method: 'token', verified: true })
    assert.equal(hosts.headers.authorization, null)

    const me = await curl('-k', '-X', 'GET', '-H', `Authorization: Bearer ${created.token}`, `${gw.url}/api/gateway/v1/me/`)
    assert.equal(me.results[0].username, 'operator')
    const tokens = await curl('-k', '-H', `Authorization: Bearer ${created.token}`, `${gw.url}/api/gateway/v1/tokens/`)
    assert.equal(tokens.results[0].id, created.id)
    assert.equal(tokens.results[0].token, '$encrypted$')
  })

  it('shows curl a 401 with a code for a revoked token', async () => {
    const created = await curl('-u', 'operator:operator-password', '-k', '-X', 'POST', `${gw.url}/api/gateway/v1/tokens/`)
    await gw.app.tokens.revoke(created.id)
    const { stdout } = await run('curl', ['-k', '-s', '-w', '\n%{http_code}', '-H', `Authorization: Bearer ${created.token}`, `${gw.url}/api/controller/v2/hosts/`])
    const [body, status] = stdout.split('\n')
    assert.equal(status, '401')
    assert.equal(JSON.parse(body!).code, 'invalid_token')
  })
})
