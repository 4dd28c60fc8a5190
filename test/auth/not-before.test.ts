import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, basic, json, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, realmUrl, SERVICE_SECRET, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { login } from '../helpers/session.ts'
import { bearer, createToken } from '../helpers/tokens.ts'
import { generateToken, hashToken } from '../../src/auth/token-format.ts'
import { USER_TOPIC } from '../../src/store/topics.ts'

/**
 * An account's not-before times: a credential issued before them is refused, also one written while the account was
 * being disabled (after the disable had ended the others) and found again once the account is enabled again.
 */
for (const backend of gatewayBackends) {
  describe(`an account's not-before, on ${backend.name}`, () => {
    let gw: TestGateway

    before(async () => {
      gw = await backend.start({ config: { realms: testRealms } })
    })
    after(() => gw.close())

    const api = (path: string, method: string, body: unknown) =>
      gw.fetch(`/api/gateway/v1/${path}`, { method, headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const service = (token: string) =>
      gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })
    const me = (headers: Record<string, string>) => gw.fetch('/api/gateway/v1/me/', { headers })
    const introspect = (token: string) => gw.fetch(realmUrl(gw, '/protocol/openid-connect/token/introspect').slice(gw.url.length), {
      method: 'POST',
      headers: { authorization: basic('reports', SERVICE_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }),
    })

    /**
     * Moves the account's not-before times as a new password with `revoke_tokens` does, without ending anything: the
     * credentials are ones that raced it.
     */
    async function setNotBefore(userId: number, at: number): Promise<void> {
      await gw.app.bus.change(async (tx, announce) => {
        await tx.users.update(userId, { notBefore: at, tokensNotBefore: at })
        announce(USER_TOPIC, String(userId))
      })
    }

    /** Waits into the next second: an OIDC token's `iat` counts whole seconds, as Keycloak compares it with notBefore. */
    const nextSecond = () => sleep(1001 - (Date.now() % 1000))

    it('refuses a session, a personal token, and an OIDC access token, refresh token and introspection issued before it', async () => {
      const carol = await gw.app.accounts.create({ username: 'carol', password: 'carol-password-long' })
      const session = await login(gw, 'carol', 'carol-password-long')
      const token = await createToken(gw, { authorization: basic('carol', 'carol-password-long') })
      const oidc = await passwordLogin(gw, 'carol', 'carol-password-long')
      assert.equal((await me({ cookie: session.cookie })).status, 200)
      assert.equal((await me(bearer(token.token))).status, 200)
      assert.equal((await service(oidc.access_token)).status, 200)

      await nextSecond()
      await setNotBefore(carol.id, Date.now())

      const bySession = await me({ cookie: session.cookie })
      assert.equal(bySession.status, 401)
      assert.equal((await json(bySession)).code, 'invalid_session')
      const byToken = await me(bearer(token.token))
      assert.equal(byToken.status, 401)
      assert.equal((await json(byToken)).code, 'invalid_token')
      const byAccessToken = await service(oidc.access_token)
      assert.equal(byAccessToken.status, 401)
      assert.equal((await json(byAccessToken)).code, 'invalid_token')
      const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: oidc.refresh_token })
      assert.equal(refreshed.status, 400)
      assert.equal(refreshed.body.error, 'invalid_grant')
      assert.equal((await json(await introspect(oidc.access_token))).active, false)

      // What is issued after it works.
      const later = await passwordLogin(gw, 'carol', 'carol-password-long')
      assert.equal((await service(later.access_token)).status, 200)
      assert.equal((await me({ cookie: (await login(gw, 'carol', 'carol-password-long')).cookie })).status, 200)
      assert.equal((await me(bearer((await createToken(gw, { authorization: basic('carol', 'carol-password-long') })).token))).status, 200)
    })

    it('moves it when the account is disabled and when it is enabled again, so a session written during the disable stays refused; personal tokens work again, as the platform\'s do', async () => {
      const dave = await gw.app.accounts.create({ username: 'dave', password: 'dave-password-long' })
      assert.equal(dave.notBefore, 0)
      const started = Date.now()
      assert.equal((await api(`users/${dave.id}/`, 'PATCH', { is_active: false })).status, 200)
      const disabled = (await gw.store.users.findById(dave.id))!
      assert.ok(disabled.notBefore >= started, 'disabling sets the not-before')
      // A login that read the account while it was active and writes its session and token after the disable ended
      // the others: the writes the disable could not see.
      const racingSession = await gw.app.sessions.start(dave.id, { ip: '127.0.0.1', userAgent: 'test' })
      // The token's issue reads the account again in its write's transaction, and refuses (token-issue-races.test.ts)...
      await assert.rejects(gw.app.tokens.issue(dave, {}), (error: Error) => error.constructor.name === 'AccountDisabled')
      // ...and a personal token is not ended by a disable: one written during it works once the account is back.
      const racingToken = await writtenToken(dave.id)
      await sleep(2)
      assert.equal((await api(`users/${dave.id}/`, 'PATCH', { is_active: true })).status, 200)
      const enabled = (await gw.store.users.findById(dave.id))!
      assert.ok(enabled.notBefore > disabled.notBefore, 'enabling the account again moves it too')
      const bySession = await me({ cookie: `gateway_sessionid=${racingSession.sessionId}` })
      assert.equal(bySession.status, 401)
      assert.equal((await json(bySession)).code, 'invalid_session')
      assert.equal(enabled.tokensNotBefore, 0)
      assert.equal((await me(bearer(racingToken.value))).status, 200)
      assert.equal((await me({ authorization: basic('dave', 'dave-password-long') })).status, 200)
    })

    it('moves the sessions\' one with a new password, and the personal tokens\' one only with revoke_tokens', async () => {
      const erin = await gw.app.accounts.create({ username: 'erin', password: 'erin-password-long' })
      const token = await createToken(gw, { authorization: basic('erin', 'erin-password-long') })
      const started = Date.now()
      assert.equal((await api(`users/${erin.id}/`, 'PATCH', { password: 'erin-password-longer' })).status, 200)
      const changed = (await gw.store.users.findById(erin.id))!
      assert.ok(changed.notBefore >= started)
      assert.equal(changed.tokensNotBefore, 0)
      assert.equal((await me(bearer(token.token))).status, 200)
      // The same password again is no change: nothing moves.
      assert.equal((await api(`users/${erin.id}/`, 'PATCH', { password: 'erin-password-longer' })).status, 200)
      assert.equal((await gw.store.users.findById(erin.id))!.notBefore, changed.notBefore)
      assert.equal((await api(`users/${erin.id}/`, 'PATCH', { password: 'erin-password-longest', revoke_tokens: true })).status, 200)
      assert.ok((await gw.store.users.findById(erin.id))!.tokensNotBefore >= changed.notBefore)
    })

    it('moves the personal tokens\' one when all of a user\'s tokens are revoked, so a token created as they were and written after them is refused', async () => {
      const frank = await gw.app.accounts.create({ username: 'frank', password: 'frank-password-long' })
      const kept = await createToken(gw, { authorization: basic('frank', 'frank-password-long') })
      const started = Date.now()
      const revoked = await api('tokens/revoke/', 'POST', { user: frank.id })
      assert.equal(revoked.status, 200)
      assert.equal((await json(revoked)).revoked, 1)
      assert.ok((await gw.store.users.findById(frank.id))!.tokensNotBefore >= started)
      assert.equal((await me(bearer(kept.token))).status, 401)
      // A token a login created a moment before the revoke, whose row was written after the revoke's delete: its issue
      // reads the account again as it writes, and refuses; a row that came past that (written as it read) is refused
      // by the not-before.
      await assert.rejects(gw.app.tokens.issue(frank, {}, started - 1), (error: Error) => error.constructor.name === 'InvalidCredentials')
      const racing = await writtenToken(frank.id, started - 1)
      const byRacing = await me(bearer(racing.value))
      assert.equal(byRacing.status, 401)
      assert.equal((await json(byRacing)).code, 'invalid_token')
      // Sessions are not ended by it, and a token created after it works.
      assert.equal((await me({ cookie: (await login(gw, 'frank', 'frank-password-long')).cookie })).status, 200)
      assert.equal((await me(bearer((await createToken(gw, { authorization: basic('frank', 'frank-password-long') })).token))).status, 200)
    })

    it('moves every account\'s personal tokens\' one when every token is revoked, so a token created as they were and written after them is refused', async () => {
      const gail = await gw.app.accounts.create({ username: 'gail', password: 'gail-password-long' })
      const auth = { authorization: basic('gail', 'gail-password-long') }
      const kept = await createToken(gw, auth)
      // The account is now held in memory with the not-before it had before the revoke.
      assert.equal((await me(bearer(kept.token))).status, 200)
      const before = (await gw.store.users.findById(gail.id))!
      const started = Date.now()
      const revoked = await api('tokens/revoke/', 'POST', { all: true })
      assert.equal(revoked.status, 200)
      assert.ok((await json(revoked)).revoked >= 1)
      // A creation checked before the revoke and written after it is refused as it writes; a row that came past that
      // (written as the check read) is refused by the not-before.
      await assert.rejects(gw.app.tokens.issue(before, {}, started - 1), (error: Error) => error.constructor.name === 'InvalidCredentials')
      const racing = await writtenToken(gail.id, started - 1)
      const byRacing = await me(bearer(racing.value))
      assert.equal(byRacing.status, 401)
      assert.equal((await json(byRacing)).code, 'invalid_token')
      assert.equal((await me(bearer(kept.token))).status, 401)
      const moved = (await gw.store.users.findById(gail.id))!
      assert.ok(moved.tokensNotBefore > 0)
      assert.equal(moved.notBefore, 0, 'sessions are not ended by it')
      assert.equal((await me({ cookie: (await login(gw, 'gail', 'gail-password-long')).cookie })).status, 200)
      assert.equal((await me(bearer((await createToken(gw, auth)).token))).status, 200)
    })

    /** A personal token's row as a creation at `now` writes it, past the issue's own check. */
    async function writtenToken(userId: number, now = Date.now()): Promise<{ value: string }> {
      const value = generateToken()
      await gw.store.tokens.create({ userId, tokenHash: hashToken(value), scope: 'write', description: '', expires: now + 3_600_000 }, now)
      return { value }
    }
  })
}
