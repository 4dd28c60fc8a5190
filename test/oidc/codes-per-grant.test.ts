import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, signedInBrowser, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

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
    await gw.app.accounts.create({ username: 'looper', password: 'looper-password-long' })
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
})
