import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { codeRedemption, testRealms, tokenRequest } from '../helpers/oidc.ts'

/**
 * Keycloak removes a code from its store the first time the token endpoint is handed it (OAuth2CodeParser
 * `parseCode`), before it checks the redirect URI, the client or PKCE (AuthorizationCodeGrantType): a failed
 * redemption uses the code up as a good one does, so a code cannot be tried again and again.
 */
describe('an authorization code presented once and refused', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  /** Presents the code with `change` applied, then as it should be: the second is refused as a used code. */
  async function refusedThenUsedUp(change: (form: URLSearchParams) => void, description: string): Promise<void> {
    const form = await codeRedemption(gw, 'alice', 'alice-password')
    const wrong = new URLSearchParams(form)
    change(wrong)
    const first = await tokenRequest(gw, wrong)
    assert.equal(first.status, 400)
    assert.deepEqual(first.body, { error: 'invalid_grant', error_description: description })
    const second = await tokenRequest(gw, form)
    assert.equal(second.status, 400)
    assert.deepEqual(second.body, { error: 'invalid_grant', error_description: 'Code not valid' })
  }

  it('is used up when it came without its PKCE code verifier', async () => {
    await refusedThenUsedUp((form) => form.delete('code_verifier'), 'PKCE code verifier not specified')
  })

  it('is used up when it came with another PKCE code verifier', async () => {
    await refusedThenUsedUp((form) => form.set('code_verifier', 'x'.repeat(43)), 'PKCE verification failed: Code mismatch')
  })

  it('is used up when another client of the realm brought it', async () => {
    await refusedThenUsedUp((form) => form.set('client_id', 'browser-only'), 'Auth error: Found different client_id in clientSession')
  })

  it('is used up when it came with another redirect URI', async () => {
    await refusedThenUsedUp((form) => form.set('redirect_uri', 'http://127.0.0.1:9/elsewhere'), 'Incorrect redirect_uri')
  })

  it('is redeemed when it comes right the first time, and only once', async () => {
    const form = await codeRedemption(gw, 'alice', 'alice-password')
    const redeemed = await tokenRequest(gw, form)
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body))
    const again = await tokenRequest(gw, form)
    assert.equal(again.status, 400)
    assert.deepEqual(again.body, { error: 'invalid_grant', error_description: 'Code not valid' })
  })
})
