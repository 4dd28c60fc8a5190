import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { codeRedemption, SERVICE_SECRET, testRealms, TOKEN_PATH } from '../helpers/oidc.ts'

const PLATFORM_TOKEN = '/o/token/'
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

/**
 * django-ansible-base's TokenView (the platform's `/o/token/`) turns django-oauth-toolkit's 200 for a POST into 201;
 * the realm's own token endpoint answers 200, as Keycloak's. Every grant is answered so, whichever step issues it.
 */
describe('the platform\'s /o/token/ status', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const grant = (path: string, form: Record<string, string> | URLSearchParams, headers: Record<string, string> = {}) =>
    gw.fetch(path, { method: 'POST', headers: { ...FORM, ...headers }, body: new URLSearchParams(form) })

  it('answers the password, refresh, client credentials and authorization code grants 201 Created, where the realm\'s endpoint answers 200', async () => {
    const password = { grant_type: 'password', client_id: 'end-users', username: 'alice', password: 'alice-password' }
    assert.equal((await grant(TOKEN_PATH, password)).status, 200)
    const issued = await grant(PLATFORM_TOKEN, password)
    assert.equal(issued.status, 201)
    assert.equal(issued.statusText, 'Created')
    const tokens = await json(issued)
    assert.equal(typeof tokens.access_token, 'string')
    const refreshed = await grant(PLATFORM_TOKEN, { grant_type: 'refresh_token', client_id: 'end-users', refresh_token: tokens.refresh_token })
    assert.equal(refreshed.status, 201)
    assert.equal(typeof (await json(refreshed)).access_token, 'string')
    const service = await grant(PLATFORM_TOKEN, { grant_type: 'client_credentials' }, { authorization: basic('reports', SERVICE_SECRET) })
    assert.equal(service.status, 201)
    assert.equal(typeof (await json(service)).access_token, 'string')
    const code = await grant(PLATFORM_TOKEN, await codeRedemption(gw, 'alice', 'alice-password'))
    assert.equal(code.status, 201)
    assert.equal(typeof (await json(code)).access_token, 'string')
  })

  it('answers a refused grant as before, with its 4xx', async () => {
    const wrong = await grant(PLATFORM_TOKEN, { grant_type: 'password', client_id: 'end-users', username: 'alice', password: 'wrong-password' })
    assert.equal(wrong.status, 400)
    assert.equal((await json(wrong)).error, 'invalid_grant')
    const badClient = await grant(PLATFORM_TOKEN, { grant_type: 'client_credentials' }, { authorization: basic('reports', 'wrong-secret-0123456789') })
    assert.equal(badClient.status, 401)
    const unknownGrant = await grant(PLATFORM_TOKEN, { grant_type: 'made_up', client_id: 'end-users' })
    assert.equal(unknownGrant.status, 400)
  })
})
