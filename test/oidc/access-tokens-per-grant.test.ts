import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { assertTokensThrottled, CLIENT_REDIRECT, decodeJwtPart, postToken as post, realmWith, retryAfterOf, SERVICE_SECRET, signedInBrowser, TO_PROVIDER, watchProviderGrants, type TokenAnswer } from '../helpers/oidc.ts'

const LIMIT = 3
const ACCESS_TOKEN_SECONDS = 10
const login = (name: string) => `client_id=reports&client_secret=${SERVICE_SECRET}&grant_type=password&username=${name}&password=${name}-password-long`
const refresh = (token: string) => `client_id=reports&client_secret=${SERVICE_SECRET}&grant_type=refresh_token&refresh_token=${token}`

const assertThrottled = (answer: TokenAnswer) => assertTokensThrottled(answer, ACCESS_TOKEN_SECONDS)

describe('access_tokens_per_grant_limit: the access tokens one login gets by refreshing within an access token\'s lifetime', () => {
  let gw: TestGateway
  let providerGrants: { readonly count: number }

  before(async () => {
    // `reports` uses each refresh token once (refresh_token_rotation): a refused refresh that used it up would break the chain.
    gw = await startGateway({ config: { realms: realmWith([], { access_token_seconds: ACCESS_TOKEN_SECONDS, access_tokens_per_grant_limit: LIMIT }) } })
    providerGrants = watchProviderGrants(gw)
    for (const name of ['looper', 'other', 'browser']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
  })
  after(() => gw.close())

  const rows = async (grantId: string) => (await gw.store.database.db.selectFrom('oidc_records').select('id').where('model', '=', 'AccessToken').where('grant_id', '=', grantId).execute()).length

  it('refuses a refresh past the limit with 429 and Retry-After, on either path, stores nothing for it, keeps its refresh token and the tokens issued, and leaves other logins be', async () => {
    const first = await post(gw, login('looper'))
    assert.equal(first.status, 200, JSON.stringify(first.body))
    const grantId = await gw.store.database.db.selectFrom('oidc_records').select('grant_id').where('model', '=', 'AccessToken').execute().then((found) => found.at(-1)!.grant_id!)
    let token = first.body.refresh_token as string
    const issued: string[] = []
    for (let i = 0; i < LIMIT; i++) {
      // The shortcut and oidc-provider's own grant count alike.
      const answer = await post(gw, refresh(token) + (i % 2 ? TO_PROVIDER : ''))
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      token = answer.body.refresh_token
      issued.push(answer.body.access_token)
    }
    assert.equal(await rows(grantId), LIMIT + 1, 'the login\'s token, and one a refresh')
    const grants = providerGrants.count
    const refused = await post(gw, refresh(token))
    assertThrottled(refused)
    assert.equal(providerGrants.count, grants, 'the shortcut answered the refusal itself, not oidc-provider once more')
    assertThrottled(await post(gw, refresh(token) + TO_PROVIDER))
    assert.equal(await rows(grantId), LIMIT + 1, 'a refused refresh stores nothing')

    // Every token issued stays valid until it expires, as in Keycloak: its record, which the gateway verifies it by, stays.
    for (const accessToken of issued) assert.ok(await gw.store.oidc.find('AccessToken', decodeJwtPart(accessToken, 1).jti, Date.now()))
    // Another login of the same user and client has a count of its own.
    const other = await post(gw, login('other'))
    assert.equal((await post(gw, refresh(other.body.refresh_token))).status, 200)

    // Once the window has passed, the refresh token refused is taken: the refusals did not use it up.
    await sleep(retryAfterOf(refused) * 1000 + 200)
    const again = await post(gw, refresh(token))
    assert.equal(again.status, 200, JSON.stringify(again.body))
  })

  it('counts the codes a signed-in browser redeems on its grant, as its prompt=none requests bring them, with the grant\'s refreshes', async () => {
    const { jar, authorize, verifier, code } = await signedInBrowser(gw, 'browser', 'browser-password-long')
    const silentCode = async () => new URL((await fetch(authorize({ prompt: 'none' }), { redirect: 'manual', headers: { cookie: jar.header() } })).headers.get('location')!).searchParams.get('code')!
    const redeem = (code: string) => post(gw, new URLSearchParams({ client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier }).toString())
    const first = await redeem(code)
    assert.equal(first.status, 200, JSON.stringify(first.body))
    assert.equal((await redeem(await silentCode())).status, 200)
    assert.equal((await post(gw, `client_id=end-users&grant_type=refresh_token&refresh_token=${first.body.refresh_token}`)).status, 200)
    const refusedCode = await silentCode()
    const refused = await redeem(refusedCode)
    assertTokensThrottled(refused, ACCESS_TOKEN_SECONDS)
    // The refused code stays unused: brought again it is refused for the same reason, not taken for a code used twice
    // (which would end the grant, and with it the refresh token below).
    assertTokensThrottled(await redeem(refusedCode), ACCESS_TOKEN_SECONDS)
    assertTokensThrottled(await post(gw, `client_id=end-users&grant_type=refresh_token&refresh_token=${first.body.refresh_token}`), ACCESS_TOKEN_SECONDS)
    // Retried as the answer's Retry-After says, while the code lives (a minute), it redeems, and the login goes on.
    await sleep(retryAfterOf(refused) * 1000 + 200)
    const retried = await redeem(refusedCode)
    assert.equal(retried.status, 200, JSON.stringify(retried.body))
    assert.equal((await post(gw, `client_id=end-users&grant_type=refresh_token&refresh_token=${first.body.refresh_token}`)).status, 200)
  })
})

describe('access_tokens_per_grant_limit beside reuse detection and the refresh shortcut', () => {
  let gw: TestGateway

  before(async () => {
    // A window as long as the default access token's, which no test here outlasts: the counts stay as they are made.
    gw = await startGateway({ config: { realms: realmWith([], { access_tokens_per_grant_limit: LIMIT }) } })
    for (const name of ['reused', 'handed-back']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
  })
  after(() => gw.close())

  it('ends the login of a refresh token used again past the limit, as its reuse ends it below the limit', async () => {
    const tokens = [(await post(gw, login('reused'))).body.refresh_token as string]
    for (let i = 0; i < LIMIT; i++) {
      const answer = await post(gw, refresh(tokens.at(-1)!))
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      tokens.push(answer.body.refresh_token)
    }
    assertTokensThrottled(await post(gw, refresh(tokens.at(-1)!)), 300)
    // `reports` uses each refresh token once: the first one, brought again, is a reuse, which ends the login.
    const reused = await post(gw, refresh(tokens[0]!))
    assert.deepEqual({ status: reused.status, body: reused.body }, { status: 400, body: { error: 'invalid_grant', error_description: 'Maximum allowed refresh token reuse exceeded' } })
    // The newest refresh token went with it: refused as an ended login's, no longer told to wait.
    const newest = await post(gw, refresh(tokens.at(-1)!))
    assert.equal(newest.status, 400, JSON.stringify(newest.body))
    assert.equal(newest.body.error, 'invalid_grant')
  })

  it('counts a refresh once when the shortcut that counted it leaves it to oidc-provider', async () => {
    // `end-users` keeps its refresh tokens valid until they expire, so the login's first one refreshes again later.
    const publicLogin = `client_id=end-users&grant_type=password&username=handed-back&password=handed-back-password-long`
    const publicRefresh = (token: string) => `client_id=end-users&grant_type=refresh_token&refresh_token=${token}`
    const first = (await post(gw, publicLogin)).body.refresh_token as string
    const second = await post(gw, publicRefresh(first))
    assert.equal(second.status, 200, JSON.stringify(second.body))
    // A refresh token whose resource the realm does not serve: the shortcut counts it, finds no resource server for
    // it, and leaves it to oidc-provider, which looks the account up again and refuses it.
    const jti = decodeJwtPart(second.body.refresh_token, 1).jti as string
    const db = gw.store.database.db
    const record = await db.selectFrom('oidc_records').select('payload').where('model', '=', 'RefreshToken').where('id', '=', jti).executeTakeFirstOrThrow()
    const payload = JSON.parse(record.payload)
    await db.updateTable('oidc_records').set({ payload: JSON.stringify({ ...payload, resource: 'urn:elsewhere' }) }).where('model', '=', 'RefreshToken').where('id', '=', jti).execute()
    const refused = await post(gw, publicRefresh(second.body.refresh_token))
    assert.equal(refused.status, 400, JSON.stringify(refused.body))
    // Counted once, the login has one refresh left of the limit.
    for (let i = 2; i < LIMIT; i++) {
      const answer = await post(gw, publicRefresh(first))
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
    }
    assertTokensThrottled(await post(gw, publicRefresh(first)), 300)
  })
})
