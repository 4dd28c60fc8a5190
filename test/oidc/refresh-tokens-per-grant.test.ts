import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, realmWith, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/**
 * Every refresh issues a new refresh token, and for a client without `refresh_token_rotation` the earlier ones stay
 * valid, each a row until it expires: a script refreshing in a loop (with the first token, or each new one) once
 * added a row a refresh, kept up to 30 days, and one account could fill the disk in a day.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`a realm's refresh_tokens_per_grant_limit (${backend})`, () => {
  const LIMIT = 3
  let gw: TestGateway
  let drop: (() => Promise<void>) | undefined
  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    drop = database?.drop
    gw = await startGateway({ databaseUrl: database?.url, config: { realms: realmWith([], { refresh_tokens_per_grant_limit: LIMIT }) } })
    await gw.app.accounts.create({ username: 'refresher', password: 'refresher-password' })
    await gw.app.accounts.create({ username: 'bystander', password: 'bystander-password' })
  })
  after(async () => {
    await gw?.close()
    await drop?.()
  })
  const refresh = (refreshToken: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })
  const refreshRows = async (grantId: string) => (await gw.store.database.db.selectFrom('oidc_records').select('id')
    .where('model', '=', 'RefreshToken').where('grant_id', '=', grantId).execute()).length
  const grantOf = async (username: string) => (await gw.store.database.db.selectFrom('oidc_records').select('id').where('model', '=', 'Grant')
    .where('account_id', '=', String((await gw.store.users.findByUsername(username))!.id)).executeTakeFirstOrThrow()).id

  it('keeps a grant\'s newest refresh tokens, and ends the oldest past the limit', async () => {
    const login = await passwordLogin(gw, 'refresher', 'refresher-password', { scope: 'openid offline_access' })
    const grantId = await grantOf('refresher')
    const tokens: string[] = [login.refresh_token]
    for (let i = 0; i < LIMIT + 3; i++) {
      const refreshed = await refresh(tokens.at(-1)!)
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
      tokens.push(refreshed.body.refresh_token)
      assert.ok(await refreshRows(grantId) <= LIMIT, `refresh ${i}: at most ${LIMIT} refresh tokens kept`)
    }
    assert.equal(await refreshRows(grantId), LIMIT)
    const oldest = await refresh(tokens[0]!)
    assert.equal(oldest.status, 400, 'the first refresh token, long past the limit, is refused')
    assert.equal(oldest.body.error, 'invalid_grant')
    const newest = await refresh(tokens.at(-1)!)
    assert.equal(newest.status, 200, 'the newest still refreshes')
    // The login itself goes on: its access token from the newest refresh works.
    assert.equal((await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${newest.body.access_token}` } })).status, 200)
  })

  it('bounds a loop that refreshes with the same token, and leaves other grants alone', async () => {
    const other = await passwordLogin(gw, 'bystander', 'bystander-password')
    const otherGrant = await grantOf('bystander')
    const login = await passwordLogin(gw, 'refresher', 'refresher-password')
    const grants = await gw.store.database.db.selectFrom('oidc_records').select('id').where('model', '=', 'Grant')
      .where('account_id', '=', String((await gw.store.users.findByUsername('refresher'))!.id)).execute()
    const statuses = []
    for (let i = 0; i < LIMIT * 3; i++) statuses.push((await refresh(login.refresh_token)).status)
    for (const { id } of grants) assert.ok(await refreshRows(id) <= LIMIT, `grant ${id}: at most ${LIMIT} refresh tokens`)
    assert.ok(statuses.includes(200) && statuses.at(-1) === 400, `the same token refreshes until it is among the oldest: ${statuses}`)
    assert.equal(await refreshRows(otherGrant), 1, 'another user\'s grant keeps its refresh token')
    assert.equal((await refresh(other.refresh_token)).status, 200)
  })
})

/**
 * Tokens capped by the session's maximum all expire at the same second, and their records' milliseconds say only when
 * in its second each was saved: ordered by expiry first, the bound once ended the token a client had just been given.
 */
describe('refresh_tokens_per_grant_limit when the session maximum caps the tokens', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([], { refresh_tokens_per_grant_limit: 3, sso_session_idle_seconds: 600, sso_session_max_seconds: 600 }) } })
    await gw.app.accounts.create({ username: 'two-tabs', password: 'two-tabs-password' })
  })
  after(async () => {
    await gw?.close()
  })

  it('ends only the oldest, so two clients of one login that each refresh with their newest token go on', async () => {
    const login = await passwordLogin(gw, 'two-tabs', 'two-tabs-password')
    const tabs = [login.refresh_token as string, login.refresh_token as string]
    for (let step = 0; step < 12; step++) {
      const tab = step % 2
      // Across seconds, as two tabs would refresh: each record's milliseconds then fall anywhere in the second.
      if (step % 2 === 1) await new Promise((resolve) => setTimeout(resolve, 600))
      const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tabs[tab]! })
      assert.equal(refreshed.status, 200, `step ${step}, tab ${tab}: ${JSON.stringify(refreshed.body)}`)
      tabs[tab] = refreshed.body.refresh_token
    }
  })
})
