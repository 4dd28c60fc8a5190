import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it, type TestContext } from 'node:test'
import { setProviderClock } from '../../src/oidc/provider-clock.ts'
import { recordKey } from '../../src/oidc/record-keys.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, codeRedemption, signedInBrowser, testRealms, tokenRequest } from '../helpers/oidc.ts'

let gw: TestGateway
before(async () => {
  gw = await startGateway({ config: { realms: testRealms } })
  await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
})
after(() => gw.close())

/**
 * Keycloak removes a code from its store the first time the token endpoint is handed it (OAuth2CodeParser
 * `parseCode`), before it checks the redirect URI, the client or PKCE (AuthorizationCodeGrantType): a failed
 * redemption uses the code up as a good one does, so a code cannot be tried again and again.
 */
describe('an authorization code presented once and refused', () => {
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

/**
 * A code brought again after it was used is proof that it leaked, whatever else is wrong with the request that brings
 * it: Keycloak's AuthorizationCodeGrantType detaches the code's client session as soon as `parseCode` finds the code
 * gone, before it compares the redirect URI, the client or PKCE, and answers "Code not valid". The token endpoint
 * authenticates the client first, so a request whose client fails to authenticate ends nothing.
 */
describe('an authorization code brought again after its redemption', () => {
  /** Redeems a code, then brings it again with `change` applied: refused `answer`, and whether the tokens it gave still refresh. */
  async function redeemedThenAgain(change: (form: URLSearchParams) => void): Promise<{ again: { status: number; body: any }; refreshed: number }> {
    const form = await codeRedemption(gw, 'alice', 'alice-password')
    const redeemed = await tokenRequest(gw, form)
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body))
    const wrong = new URLSearchParams(form)
    change(wrong)
    const again = await tokenRequest(gw, wrong)
    const refresh = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: redeemed.body.refresh_token })
    return { again, refreshed: refresh.status }
  }

  /** Brings a redeemed code again two minutes on, its row pruned if it expired: refused, and its grant ended. */
  async function broughtAfterItsMinute(t: TestContext, form: URLSearchParams, refreshToken: string): Promise<void> {
    setProviderClock(() => Date.now() + 120_000)
    t.after(() => setProviderClock(() => Date.now()))
    await gw.store.oidc.pruneExpired(Date.now() + 120_000)
    const again = await tokenRequest(gw, form)
    assert.equal(again.status, 400)
    assert.deepEqual(again.body, { error: 'invalid_grant', error_description: 'Code not valid' })
    const refresh = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })
    assert.equal(refresh.status, 400, 'its grant ended')
  }

  for (const [what, change] of [
    ['by another client of the realm', (form: URLSearchParams) => form.set('client_id', 'browser-only')],
    ['with another PKCE code verifier', (form: URLSearchParams) => form.set('code_verifier', 'x'.repeat(43))],
    ['without its PKCE code verifier', (form: URLSearchParams) => form.delete('code_verifier')],
    ['with another redirect URI', (form: URLSearchParams) => form.set('redirect_uri', 'http://127.0.0.1:9/elsewhere')],
    ['without its redirect URI', (form: URLSearchParams) => form.delete('redirect_uri')],
  ] as const) {
    it(`ends what it gave when brought ${what}, refused "Code not valid"`, async () => {
      const { again, refreshed } = await redeemedThenAgain(change)
      assert.equal(again.status, 400)
      assert.deepEqual(again.body, { error: 'invalid_grant', error_description: 'Code not valid' })
      assert.equal(refreshed, 400)
    })
  }

  it('ends what it gave when brought after its minute, as Keycloak, whose code names its session, ends it then too', async (t) => {
    const form = await codeRedemption(gw, 'alice', 'alice-password')
    const redeemed = await tokenRequest(gw, form)
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body))
    await broughtAfterItsMinute(t, form, redeemed.body.refresh_token)
  })

  it('is kept, used, holding only what ends its grant: no claims, nonce, redirect URI, scope nor PKCE challenge', async (t) => {
    // A page load of a single-page app signed in already: a new code, with its nonce, for the same grant.
    const browser = await signedInBrowser(gw, 'alice', 'alice-password')
    const pageLoad = await browse(gw, browser.jar, browser.authorize({ nonce: randomUUID(), state: randomUUID() }))
    const code = new URL(pageLoad.url).searchParams.get('code')!
    const row = () => gw.store.database.db.selectFrom('oidc_records').select(['payload', 'consumed_at']).where('model', '=', 'AuthorizationCode').where('id', '=', recordKey(code)).executeTakeFirstOrThrow()
    const issued = await row()
    assert.equal(typeof JSON.parse(issued.payload).nonce, 'string')
    const form = new URLSearchParams({ client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: browser.verifier })
    const redeemed = await tokenRequest(gw, form)
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body))
    const kept = await row()
    assert.notEqual(kept.consumed_at, null)
    const payload = JSON.parse(kept.payload)
    for (const member of ['claims', 'nonce', 'redirectUri', 'scope', 'codeChallenge', 'codeChallengeMethod', 'authTime', 'acr', 'amr', 'sid']) assert.equal(payload[member], undefined, member)
    assert.deepEqual(Object.keys(payload).sort(), ['accountId', 'clientId', 'exp', 'expiresWithSession', 'gatehouseRealm', 'grantId', 'iat', 'kind', 'sessionUid'])
    await broughtAfterItsMinute(t, form, redeemed.body.refresh_token)
  })

  it('ends nothing when brought by a client that fails to authenticate', async () => {
    const { again, refreshed } = await redeemedThenAgain((form) => {
      form.set('client_id', 'reports')
      form.set('client_secret', 'not-the-secret')
    })
    assert.equal(again.status, 401)
    assert.equal(again.body.error, 'invalid_client')
    assert.equal(refreshed, 200)
  })
})
