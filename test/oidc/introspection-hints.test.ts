import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, REALM, SERVICE_SECRET, testRealms } from '../helpers/oidc.ts'

const INTROSPECT = `/realms/${REALM}/protocol/openid-connect/token/introspect`
const CLIENT = { client_id: 'reports', client_secret: SERVICE_SECRET }

/**
 * Keycloak's TokenIntrospectionEndpoint takes `token_type_hint` as the name of one of its introspection providers
 * (`access_token`, `refresh_token`, and authorization services' `requesting_party_token`), and refuses any other once
 * the client is authenticated and the token is present.
 */
describe('introspection with a token_type_hint', () => {
  let gw: TestGateway
  let tokens: { access_token: string; refresh_token: string }

  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    tokens = await passwordLogin(gw, 'alice', 'alice-password')
  })
  after(() => gw.close())

  const introspect = (form: Record<string, string>) => gw.fetch(INTROSPECT, { method: 'POST', body: new URLSearchParams(form) })

  it('introspects access and refresh tokens whatever hint of Keycloak\'s names them, the other\'s too', async () => {
    for (const hint of ['access_token', 'refresh_token', 'requesting_party_token']) {
      for (const token of [tokens.access_token, tokens.refresh_token]) {
        const answer = await introspect({ ...CLIENT, token, token_type_hint: hint })
        assert.equal(answer.status, 200, hint)
        assert.equal((await json(answer)).active, true, hint)
      }
    }
  })

  it('refuses a hint Keycloak does not know, 400 "Unsupported token type.", whether the token is valid or not', async () => {
    for (const hint of ['id_token', 'urn:ietf:params:oauth:token-type:access_token', 'ACCESS_TOKEN', '']) {
      for (const token of [tokens.access_token, tokens.refresh_token, 'not-a-token']) {
        const answer = await introspect({ ...CLIENT, token, token_type_hint: hint })
        assert.equal(answer.status, 400, hint)
        assert.deepEqual(await json(answer), { error: 'invalid_request', error_description: 'Unsupported token type.' }, hint)
      }
    }
    assert.equal((await json(await introspect({ ...CLIENT, token: tokens.access_token }))).active, true)
  })

  it('answers a client that fails to authenticate, and a missing token, before the hint, as Keycloak checks them first', async () => {
    const unauthenticated = await introspect({ client_id: 'reports', client_secret: 'wrong-secret-0123456789', token: tokens.access_token, token_type_hint: 'id_token' })
    assert.equal(unauthenticated.status, 401)
    assert.deepEqual(await json(unauthenticated), { error: 'invalid_request', error_description: 'Authentication failed.' })
    // Nor a challenge, whose words would contradict the body's: Keycloak sends none (ClientAuthUtil `errorResponse`).
    assert.equal(unauthenticated.headers.get('www-authenticate'), null)
    const basic = { authorization: `Basic ${Buffer.from('reports:wrong-secret-0123456789').toString('base64')}` }
    const basicIntrospection = await gw.fetch(INTROSPECT, { method: 'POST', headers: basic, body: new URLSearchParams({ token: tokens.access_token }) })
    assert.deepEqual([basicIntrospection.status, basicIntrospection.headers.get('www-authenticate')], [401, null])
    const token = await gw.fetch(INTROSPECT.replace(/\/introspect$/, ''), { method: 'POST', headers: basic, body: new URLSearchParams({ grant_type: 'client_credentials' }) })
    assert.deepEqual([token.status, token.headers.get('www-authenticate')], [401, null])
    const revocation = await gw.fetch(INTROSPECT.replace(/token\/introspect$/, 'revoke'), { method: 'POST', headers: basic, body: new URLSearchParams({ token: tokens.access_token }) })
    assert.deepEqual([revocation.status, await json(revocation), revocation.headers.get('www-authenticate')], [401, { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' }, null])
    const missing = await introspect({ ...CLIENT, token_type_hint: 'id_token' })
    assert.equal(missing.status, 400)
    assert.deepEqual(await json(missing), { error: 'invalid_request', error_description: 'Token not provided.' })
  })
})
