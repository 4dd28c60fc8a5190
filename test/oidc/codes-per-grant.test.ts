import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, signedInBrowser, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { recordKey } from '../../src/oidc/record-keys.ts'

/** The most codes a grant holds (src/oidc/adapter.ts), and how many more a process may save between its counts. */
const LIMIT = 100
const BETWEEN_COUNTS = LIMIT / 2

/**
 * Each authorization request issues a code, a row for its minute: a signed-in browser, or a script with its cookie,
 * looping over the authorization endpoint with `prompt=none` once added a row a request.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`the codes one grant holds (${backend})`, () => {
  let gw: TestGateway
  let drop: (() => Promise<void>) | undefined
  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    drop = database?.drop
    gw = await startGateway({ databaseUrl: database?.url, config: { realms: testRealms } })
    for (const name of ['looper', 'reuser', 'waster']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
  })
  after(async () => {
    await gw?.close()
    await drop?.()
  })

  it('are at most the limit and some: a new one past it ends the oldest, refused as unknown, and the newest redeems', async () => {
    const { jar, authorize, verifier } = await signedInBrowser(gw, 'looper', 'looper-password-long')

    const codes: string[] = []
    for (let i = 0; i < 2 * LIMIT; i++) {
      const answer = await fetch(authorize({ prompt: 'none' }), { redirect: 'manual', headers: { cookie: jar.header() } })
      const code = new URL(answer.headers.get('location')!).searchParams.get('code')
      assert.ok(code, answer.headers.get('location')!)
      codes.push(code)
    }
    const rows = await gw.store.database.db.selectFrom('oidc_records').select('id').where('model', '=', 'AuthorizationCode').execute()
    assert.ok(rows.length <= LIMIT + BETWEEN_COUNTS, `${rows.length} codes stored`)
    assert.ok(rows.length >= LIMIT, `${rows.length} codes stored`)
    const redeem = (code: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    const oldest = await redeem(codes[0]!)
    assert.deepEqual({ status: oldest.status, body: oldest.body }, { status: 400, body: { error: 'invalid_grant', error_description: 'Code not valid' } })
    const newest = await redeem(codes.at(-1)!)
    assert.equal(newest.status, 200, JSON.stringify(newest.body))
  })

  it('keeps the used codes past the limit, so that one brought again is taken for a code used twice and ends its grant', async () => {
    const { jar, authorize, verifier, code } = await signedInBrowser(gw, 'reuser', 'reuser-password-long')
    const redeem = (code: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    const first = await redeem(code)
    assert.equal(first.status, 200, JSON.stringify(first.body))
    for (let i = 0; i < 2 * LIMIT; i++) await fetch(authorize({ prompt: 'none' }), { redirect: 'manual', headers: { cookie: jar.header() } })
    const again = await redeem(code)
    assert.deepEqual({ status: again.status, body: again.body }, { status: 400, body: { error: 'invalid_grant', error_description: 'Code not valid' } })
    // Its grant ended with the tokens it gave, as Keycloak detaches the client session of a code used twice.
    const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: first.body.refresh_token })
    assert.equal(refreshed.status, 400, refreshed.body.error)
  })

  it('keeps at most as many used codes past the limit as the limit', async () => {
    const { jar, authorize } = await signedInBrowser(gw, 'waster', 'waster-password-long')
    let lastCode = ''
    for (let i = 0; i < 3 * LIMIT; i++) {
      const code = lastCode = new URL((await fetch(authorize({ prompt: 'none' }), { redirect: 'manual', headers: { cookie: jar.header() } })).headers.get('location')!).searchParams.get('code')!
      // A wrong verifier: refused, and used up all the same.
      const refused = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: 'x'.repeat(43) })
      assert.equal(refused.status, 400)
    }
    const { grant_id: grantId } = await gw.store.database.db.selectFrom('oidc_records').select('grant_id').where('model', '=', 'AuthorizationCode').where('id', '=', recordKey(lastCode)).executeTakeFirstOrThrow()
    const rows = await gw.store.database.db.selectFrom('oidc_records').select('id').where('model', '=', 'AuthorizationCode').where('grant_id', '=', grantId).execute()
    // As many used ones as the limit are kept past it, and no more.
    assert.ok(rows.length > LIMIT + BETWEEN_COUNTS, `${rows.length} codes stored`)
    assert.ok(rows.length <= 2 * LIMIT + BETWEEN_COUNTS, `${rows.length} codes stored`)
  })
})
