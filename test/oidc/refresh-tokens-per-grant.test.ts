import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, decodeJwtPart, passwordLogin, realmUrl, realmWith, SERVICE_SECRET, TOKEN_PATH, tokenRequest } from '../helpers/oidc.ts'
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

  /**
   * With `refresh_token_rotation`, a refresh token the limit ended is still one used before: brought back, it ends its
   * login as the reuse of one still kept does, as Keycloak's "Revoke refresh token" takes a token older than the
   * session's last refresh for a stale one (TokenManager `validateTokenReuse`) and detaches its client session.
   */
  describe('for a client with refresh_token_rotation', () => {
    const rotating = (refreshToken: string, clientId = 'reports') => tokenRequest(gw, { client_id: clientId, ...clientId === 'reports' ? { client_secret: SERVICE_SECRET } : {}, grant_type: 'refresh_token', refresh_token: refreshToken })
    /** A login of `reports` refreshed past the limit, each time with the token the last refresh gave. */
    async function refreshedPastLimit(): Promise<{ tokens: string[]; accessToken: string }> {
      const login = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'password', username: 'refresher', password: 'refresher-password' })
      assert.equal(login.status, 200, JSON.stringify(login.body))
      const tokens: string[] = [login.body.refresh_token]
      let accessToken = login.body.access_token as string
      for (let i = 0; i < LIMIT + 2; i++) {
        const refreshed = await rotating(tokens.at(-1)!)
        assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
        tokens.push(refreshed.body.refresh_token)
        accessToken = refreshed.body.access_token
      }
      return { tokens, accessToken }
    }
    /** One browser signs in to the client twice (two tabs): two codes of one grant, each to start a chain of refreshes. */
    async function twoCodesOfOneGrant(): Promise<[string, string]> {
      const jar = new CookieJar()
      const authorize = realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'reports', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT })}`)
      const page = await browse(gw, jar, authorize)
      const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
      const signedIn = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'refresher', password: 'refresher-password' }).toString() })
      return [signedIn.url, (await browse(gw, jar, authorize)).url]
    }
    /** The refresh token a code's redemption gives. */
    async function redeem(url: string): Promise<string> {
      const answer = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'authorization_code', code: new URL(url).searchParams.get('code')!, redirect_uri: CLIENT_REDIRECT })
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      return answer.body.refresh_token as string
    }
    /** The second chain refreshed past the limit, the first chain's only token (never used) is refused, and ends nothing. */
    async function assertLeftBehindEndsNothing(firstTab: string, secondTab: string): Promise<void> {
      for (let i = 0; i < LIMIT + 2; i++) {
        const refreshed = await rotating(secondTab)
        assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
        secondTab = refreshed.body.refresh_token
      }
      const leftBehind = await rotating(firstTab)
      assert.equal(leftBehind.status, 400)
      assert.notEqual(leftBehind.body.error_description, 'Maximum allowed refresh token reuse exceeded')
      assert.equal((await rotating(secondTab)).status, 200, 'the other chain goes on')
    }
    const gatewayStatus = async (accessToken: string) => (await gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${accessToken}` } })).status

    it('ends the login when a token the limit ended is brought back, as the reuse of one kept does', async () => {
      const { tokens, accessToken } = await refreshedPastLimit()
      const stale = await rotating(tokens[0]!)
      assert.deepEqual({ status: stale.status, body: stale.body }, { status: 400, body: { error: 'invalid_grant', error_description: 'Maximum allowed refresh token reuse exceeded' } })
      assert.equal((await rotating(tokens.at(-1)!)).status, 400, 'the newest refresh token ended with its login')
      assert.equal(await gatewayStatus(accessToken), 401, 'and so did its access token')
    })

    it('ends nothing when that token comes from another client, or with its signature changed', async () => {
      const { tokens, accessToken } = await refreshedPastLimit()
      const [header, payload, signature] = tokens[0]!.split('.') as [string, string, string]
      const forged = `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`
      for (const [what, answer] of [['another client', await rotating(tokens[0]!, 'end-users')], ['its signature changed', await rotating(forged)]] as const) {
        assert.equal(answer.status, 400, what)
        assert.equal(answer.body.error, 'invalid_grant', what)
      }
      assert.equal(await gatewayStatus(accessToken), 200, 'the login goes on')
      assert.equal((await rotating(tokens.at(-1)!)).status, 200, 'its newest refresh token still refreshes')
    })

    it('ends nothing for the last token of a chain of refreshes that other chains of its grant left behind, which was never used', async () => {
      const [signedIn, again] = await twoCodesOfOneGrant()
      const firstTab = await redeem(signedIn)
      // A second apart, so that the two chains began in different seconds.
      await new Promise((resolve) => setTimeout(resolve, 1100))
      const secondTab = await redeem(again)
      const grantOfToken = (token: string) => String(decodeJwtPart(token, 1).jti).split('.').at(-1)
      assert.equal(grantOfToken(firstTab), grantOfToken(secondTab), 'one grant')
      await assertLeftBehindEndsNothing(firstTab, secondTab)
    })

    it('ends nothing for the left-behind last token of a chain begun in the same second as the chain that left it behind', async () => {
      // Two tabs restored at once: two codes of one grant redeemed within one second, whose chains share their iiat.
      const clock = gw.app.bus.clock
      const databaseNow = clock.now
      const startedAt = Date.now()
      const second = Math.ceil(databaseNow.call(clock) / 1000) * 1000
      clock.now = () => second + (Date.now() - startedAt)
      try {
        const [signedIn, again] = await twoCodesOfOneGrant()
        const firstTab = await redeem(signedIn)
        const secondTab = await redeem(again)
        assert.equal(decodeJwtPart(firstTab, 1).iat, decodeJwtPart(secondTab, 1).iat, 'both chains began in one second')
        await assertLeftBehindEndsNothing(firstTab, secondTab)
      } finally {
        clock.now = databaseNow
      }
    })

    it('keeps a chain of refreshes across rotations, on oidc-provider\'s refresh grant as on the fast path', async () => {
      const login = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'password', username: 'refresher', password: 'refresher-password' })
      const fast = await rotating(login.body.refresh_token)
      // A query on the token endpoint's URL leaves the request to oidc-provider (routes.ts `readyForProvider`).
      const answer = await gw.fetch(`${TOKEN_PATH}?by=provider`, { method: 'POST', body: new URLSearchParams({ client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'refresh_token', refresh_token: fast.body.refresh_token }) })
      assert.equal(answer.status, 200)
      const chainOf = (token: string) => String(decodeJwtPart(token, 1).jti).split('.').slice(1, 3).join('.')
      assert.deepEqual([chainOf(fast.body.refresh_token), chainOf(((await answer.json()) as { refresh_token: string }).refresh_token)], [chainOf(login.body.refresh_token), chainOf(login.body.refresh_token)])
    })

    it('ends nothing when that token has expired, which it is refused for first', async () => {
      const { tokens } = await refreshedPastLimit()
      // The login's grant, which outlives its refresh tokens: its end is the session maximum's.
      const { grant_id: grantId } = await gw.store.database.db.selectFrom('oidc_records').select('grant_id').where('model', '=', 'RefreshToken')
        .where('id', '=', decodeJwtPart(tokens.at(-1)!, 1).jti).executeTakeFirstOrThrow()
      const clock = gw.app.bus.clock
      const databaseNow = clock.now
      // Past the refresh tokens' lifetime (the realm's default idle time), not the grant's (its maximum).
      clock.now = () => databaseNow.call(clock) + 1900_000
      try {
        const expired = await rotating(tokens[0]!)
        assert.equal(expired.status, 400)
        assert.notEqual(expired.body.error_description, 'Maximum allowed refresh token reuse exceeded')
      } finally {
        clock.now = databaseNow
      }
      assert.ok(await gw.store.database.db.selectFrom('oidc_records').select('id').where('model', '=', 'Grant').where('id', '=', grantId!).executeTakeFirst(), 'the grant is kept')
    })
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
