import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { json, type TestGateway } from '../helpers/gateway.ts'
import { assertSameTokenAnswers, decodeJwtPart, GUARDED, password, postToken, realmWith, REALM, SERVICE_SECRET, shared, startForShortcuts, TO_PROVIDER, watchProviderEvent, watchProviderGrants, without, type TokenAnswer } from '../helpers/oidc.ts'
import { USER_TOPIC } from '../../src/store/topics.ts'

/**
 * The plain refresh_token grant is answered without oidc-provider's HTTP stack (src/oidc/refresh-token.ts): for the
 * same refresh, its answers, tokens and records must be the ones oidc-provider makes, and its refusals too.
 */
for (const backend of gatewayBackends) {
  describe(`refresh_token without oidc-provider's HTTP stack, on ${backend.name}`, () => {
    let gw: TestGateway
    /** The grants oidc-provider itself answered (its `grant.success` event). */
    let providerGrants: { readonly count: number }

    before(async () => {
      ({ gw, providerGrants } = await startForShortcuts(backend))
    })
    after(() => gw.close())

    /** A password login's answer (a new session each time). */
    async function login(username: string, clientId = 'end-users', extra = ''): Promise<Record<string, any>> {
      const secret = clientId === 'reports' ? `&client_secret=${SERVICE_SECRET}` : ''
      const answer = await postToken(gw, `client_id=${clientId}${secret}&grant_type=password&username=${username}&password=${password(username)}${extra}`)
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      return answer.body
    }

    const refreshForm = (clientId: string, refreshToken: string) =>
      `client_id=${clientId}${clientId === 'reports' ? `&client_secret=${SERVICE_SECRET}` : ''}&grant_type=refresh_token&refresh_token=${refreshToken}`

    /** The refresh answered by the shortcut (asserted), and an equal one, of another session, answered by oidc-provider. */
    async function bothPaths(refreshTokens: [string, string], clientId = 'end-users', basic = false): Promise<{ shortcut: TokenAnswer; provider: TokenAnswer }> {
      const before = providerGrants.count
      const form = (refreshToken: string) => basic ? `grant_type=refresh_token&refresh_token=${refreshToken}` : refreshForm(clientId, refreshToken)
      const headers: Record<string, string> = basic ? { authorization: `Basic ${Buffer.from(`${clientId}:${SERVICE_SECRET}`).toString('base64')}` } : {}
      const shortcut = await postToken(gw, form(refreshTokens[0]), headers)
      const shortcutTaken = providerGrants.count === before
      const provider = await postToken(gw, form(refreshTokens[1]) + TO_PROVIDER, headers)
      if (shortcut.status === 200) assert.ok(shortcutTaken, 'the plain refresh was answered by oidc-provider')
      if (provider.status === 200) assert.equal(providerGrants.count, before + (shortcutTaken ? 1 : 2), 'oidc-provider did not answer the refresh it was given')
      return { shortcut, provider }
    }

    async function recordOf(model: string, id: string) {
      const record = await gw.store.oidc.find(model, id, Date.now())
      assert.ok(record, `no ${model} record ${id}`)
      return record
    }

    /** Equal answers: status, headers, members, and each token's header and claims but for what each token or session has its own of. */
    async function assertSameAnswers(shortcut: TokenAnswer, provider: TokenAnswer): Promise<void> {
      assertSameTokenAnswers(shortcut, provider)
      if (shortcut.status !== 200) return
      const [access, expectedAccess] = [decodeJwtPart(shortcut.body.access_token, 1), decodeJwtPart(provider.body.access_token, 1)]
      const [record, expectedRecord] = await Promise.all([recordOf('AccessToken', access.jti), recordOf('AccessToken', expectedAccess.jti)])
      assert.deepEqual(Object.keys(record.payload), Object.keys(expectedRecord.payload))
      assert.deepEqual(shared(record.payload), shared(expectedRecord.payload))
      const refreshIds = await Promise.all([shortcut, provider].map(async ({ body }) => (await gw.app.oidc.get(REALM)!.refreshToken(body.refresh_token))!.jti))
      const [rotated, expectedRotated] = await Promise.all(refreshIds.map((id) => recordOf('RefreshToken', id)))
      assert.deepEqual(Object.keys(rotated.payload), Object.keys(expectedRotated.payload))
      assert.deepEqual(shared(rotated.payload), shared(expectedRotated.payload))
      assert.deepEqual([rotated.consumedAt, rotated.expiresAt! - expectedRotated.expiresAt! < 5000], [expectedRotated.consumedAt, true])
    }

    it('answers a public client\'s refresh with the headers, members, tokens and records oidc-provider gives', async () => {
      const sessions = [await login('erin'), await login('erin')]
      const { shortcut, provider } = await bothPaths([sessions[0]!.refresh_token, sessions[1]!.refresh_token])
      assert.equal(shortcut.status, 200)
      await assertSameAnswers(shortcut, provider)
      assert.equal(shortcut.body.session_state, sessions[0]!.session_state)
      // Without reuse detection an earlier refresh token stays valid, on both paths.
      const again = await bothPaths([sessions[0]!.refresh_token, sessions[1]!.refresh_token])
      await assertSameAnswers(again.shortcut, again.provider)
      assert.equal(again.shortcut.status, 200)
    })

    it('emits the events of oidc-provider\'s token models that its own refresh emits', async () => {
      const names = ['refresh_token.consumed', 'refresh_token.saved', 'access_token.saved', 'access_token.issued']
      const events = names.map((name) => watchProviderEvent(gw, name))
      const counts = () => events.map((event) => event.count)
      const sessions = [await login('erin'), await login('erin')]
      const before = counts()
      assert.equal((await postToken(gw, refreshForm('end-users', sessions[0]!.refresh_token))).status, 200)
      const shortcut = counts().map((count, i) => count - before[i]!)
      assert.equal((await postToken(gw, refreshForm('end-users', sessions[1]!.refresh_token) + TO_PROVIDER)).status, 200)
      const provider = counts().map((count, i) => count - before[i]! - shortcut[i]!)
      assert.deepEqual(Object.fromEntries(names.map((name, i) => [name, shortcut[i]])), Object.fromEntries(names.map((name, i) => [name, provider[i]])))
      assert.ok(shortcut.some((count) => count > 0), 'no token model event was seen')
    })

    it('answers with an ID token when the grant has openid, and for offline tokens, as oidc-provider does', async () => {
      const openid = [await login('erin', 'end-users', '&scope=openid'), await login('erin', 'end-users', '&scope=openid')]
      const withIdToken = await bothPaths([openid[0]!.refresh_token, openid[1]!.refresh_token])
      assert.ok(withIdToken.shortcut.body.id_token)
      await assertSameAnswers(withIdToken.shortcut, withIdToken.provider)
      // The profile's claims in it, as the scopes grant them (the shortcut builds the claims oidc-provider would sign).
      const profile = [await login('erin', 'end-users', '&scope=openid%20profile%20email'), await login('erin', 'end-users', '&scope=openid%20profile%20email')]
      const withProfile = await bothPaths([profile[0]!.refresh_token, profile[1]!.refresh_token])
      assert.equal(decodeJwtPart(withProfile.shortcut.body.id_token, 1).preferred_username, 'erin')
      await assertSameAnswers(withProfile.shortcut, withProfile.provider)
      const offline = [await login('erin', 'end-users', '&scope=offline_access'), await login('erin', 'end-users', '&scope=offline_access')]
      const offlineAnswers = await bothPaths([offline[0]!.refresh_token, offline[1]!.refresh_token])
      assert.equal(decodeJwtPart(offlineAnswers.shortcut.body.refresh_token, 1).typ, 'Offline')
      await assertSameAnswers(offlineAnswers.shortcut, offlineAnswers.provider)
    })

    it('rotates a confidential client\'s single-use refresh tokens: the old one used again is refused and ends the grant, on both paths', async () => {
      const sessions = [await login('frank', 'reports'), await login('frank', 'reports')]
      const { shortcut, provider } = await bothPaths([sessions[0]!.refresh_token, sessions[1]!.refresh_token], 'reports')
      assert.equal(shortcut.status, 200)
      await assertSameAnswers(shortcut, provider)
      const reuse = await bothPaths([sessions[0]!.refresh_token, sessions[1]!.refresh_token], 'reports')
      assert.equal(reuse.shortcut.status, 400)
      assert.deepEqual(reuse.shortcut.body, { error: 'invalid_grant', error_description: 'Maximum allowed refresh token reuse exceeded' })
      await assertSameAnswers(reuse.shortcut, reuse.provider)
      // The reuse revoked the grant: the token the first refresh gave is refused too.
      const revoked = await bothPaths([shortcut.body.refresh_token, provider.body.refresh_token], 'reports')
      assert.equal(revoked.shortcut.status, 400)
      await assertSameAnswers(revoked.shortcut, revoked.provider)
    })

    it('lets one only of the refreshes that bring a single-use refresh token at once succeed, and ends the session for the others\' reuse, on both paths', async () => {
      // A refresh that arrives after the reuse has ended the session finds the session gone, as Keycloak says then.
      const REUSED = new Set(['Maximum allowed refresh token reuse exceeded', 'Invalid refresh token', 'Session not active'])
      for (const path of ['', TO_PROVIDER]) {
        const session = await login('frank', 'reports')
        const answers = await Promise.all(Array.from({ length: 10 }, () => postToken(gw, refreshForm('reports', session.refresh_token) + path)))
        const [winner, ...others] = [...answers.filter((answer) => answer.status === 200), ...answers.filter((answer) => answer.status !== 200)]
        assert.equal(winner!.status, 200)
        for (const refused of others) {
          assert.equal(refused.status, 400, JSON.stringify(refused.body))
          assert.equal(refused.body.error, 'invalid_grant')
          assert.ok(REUSED.has(refused.body.error_description), refused.body.error_description)
        }
        // The reuse ended the session: the token the one refresh gave is refused too, and its access token is not active.
        const next = await postToken(gw, refreshForm('reports', winner!.body.refresh_token))
        assert.equal(next.status, 400)
        const introspection = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token/introspect`, {
          method: 'POST',
          body: new URLSearchParams({ client_id: 'reports', client_secret: SERVICE_SECRET, token: winner!.body.access_token }),
        })
        assert.equal((await json(introspection)).active, false)
      }
    })

    it('takes a confidential client\'s secret from HTTP basic as from the form', async () => {
      const sessions = [await login('frank', 'reports'), await login('frank', 'reports')]
      const { shortcut, provider } = await bothPaths([sessions[0]!.refresh_token, sessions[1]!.refresh_token], 'reports', true)
      assert.equal(shortcut.status, 200)
      await assertSameAnswers(shortcut, provider)
    })

    it('refuses a disabled user\'s refresh, and a wrong client\'s or secret\'s, as oidc-provider does, changing nothing', async () => {
      await gw.app.accounts.create({ username: 'dora', password: password('dora') })
      // A client with single-use refresh tokens: a refused refresh that consumed the token would make its next use a reuse.
      const sessions = [await login('dora', 'reports'), await login('dora', 'reports')]
      const dora = await gw.store.users.findByUsername('dora')
      // Disabling ends the account's refresh tokens; these stand for those a request wrote just as it was disabled,
      // which are refused where they are used: the account is switched off behind the realm's back.
      const setActive = async (active: boolean) => {
        await gw.store.database.db.updateTable('users').set({ is_active: active }).where('id', '=', dora!.id).execute()
        await gw.app.bus.publish(USER_TOPIC, String(dora!.id))
      }
      await setActive(false)
      const disabled = await bothPaths([sessions[0]!.refresh_token, sessions[1]!.refresh_token], 'reports')
      assert.equal(disabled.shortcut.status, 400)
      assert.deepEqual(disabled.shortcut.body, { error: 'invalid_grant', error_description: 'User disabled' })
      await assertSameAnswers(disabled.shortcut, disabled.provider)
      await setActive(true)
      const stillValid = await postToken(gw, refreshForm('reports', sessions[0]!.refresh_token))
      assert.equal(stillValid.status, 200, 'the refused refresh changed the token')

      const erin = await login('erin')
      const otherClient = await postToken(gw, refreshForm('browser-only', erin.refresh_token))
      const otherClientProvider = await postToken(gw, refreshForm('browser-only', erin.refresh_token) + TO_PROVIDER)
      assert.equal(otherClient.status, 400)
      await assertSameAnswers(otherClient, otherClientProvider)
      const frank = await login('frank', 'reports')
      const wrongSecret = `client_id=reports&client_secret=wrong&grant_type=refresh_token&refresh_token=${frank.refresh_token}`
      const [refused, refusedProvider] = [await postToken(gw, wrongSecret), await postToken(gw, wrongSecret + TO_PROVIDER)]
      assert.equal(refused.status, 401)
      await assertSameAnswers(refused, refusedProvider)
      assert.equal((await postToken(gw, refreshForm('reports', frank.refresh_token))).status, 200, 'a refused refresh consumed the token')
    })

    it('refuses a confidential client\'s refresh without its secret, and HTTP basic naming another client than the form, as oidc-provider does, changing nothing', async () => {
      const basic = (credentials: string) => ({ authorization: `Basic ${Buffer.from(credentials).toString('base64')}` })
      const [frank, erin] = [await login('frank', 'reports'), await login('erin')]
      const refusals: [string, Record<string, string>, number][] = [
        // A confidential client's stolen refresh token, without the secret.
        [`client_id=reports&grant_type=refresh_token&refresh_token=${frank.refresh_token}`, {}, 401],
        [`client_id=reports&client_secret=&grant_type=refresh_token&refresh_token=${frank.refresh_token}`, {}, 401],
        // An empty secret in HTTP basic is a wrong one, as Keycloak answers it (client-authentication.test.ts).
        [`grant_type=refresh_token&refresh_token=${frank.refresh_token}`, basic('reports:'), 401],
        // A public client's secret is ignored, as Keycloak ignores it (client-authentication.test.ts), not refused.
        // Two clients named at once.
        [`client_id=end-users&grant_type=refresh_token&refresh_token=${frank.refresh_token}`, basic(`reports:${SERVICE_SECRET}`), 400],
      ]
      for (const [form, headers, status] of refusals) {
        const [refused, refusedProvider] = [await postToken(gw, form, headers), await postToken(gw, form + TO_PROVIDER, headers)]
        assert.equal(refused.status, status, form)
        await assertSameAnswers(refused, refusedProvider)
      }
      assert.equal((await postToken(gw, refreshForm('reports', frank.refresh_token))).status, 200, 'a refused refresh consumed the token')
      assert.equal((await postToken(gw, refreshForm('end-users', erin.refresh_token))).status, 200)
    })

    it('refuses the refresh of a user who no longer passes the client\'s access rules as oidc-provider does', async () => {
      const team = await createOrgAndTeam(gw, 'Platform', 'Operators')
      const membership = await grant(gw, 'operator', 'Team Member', team.team)
      assert.equal(membership.status, 201)
      const sessions = [await login('operator', GUARDED), await login('operator', GUARDED)]
      const member = await bothPaths([sessions[0]!.refresh_token, sessions[1]!.refresh_token], GUARDED)
      assert.equal(member.shortcut.status, 200)
      await assertSameAnswers(member.shortcut, member.provider)
      assert.equal((await call(gw, 'DELETE', `role_user_assignments/${membership.body.id}/`)).status, 204)
      const leaver = await bothPaths([sessions[0]!.refresh_token, sessions[1]!.refresh_token], GUARDED)
      assert.equal(leaver.shortcut.status, 400)
      assert.equal(leaver.shortcut.body.error, 'access_denied')
      await assertSameAnswers(leaver.shortcut, leaver.provider)
    })

    it('counts its tokens as oidc-provider\'s grants are counted', async () => {
      const issued = async () => Number(new RegExp(`gatehouse_oidc_[a-z_]*\\{[^}]*realm="${REALM}"[^}]*grant_type="refresh_token"[^}]*\\} (\\d+)`).exec(await (await gw.fetch('/metrics')).text())?.[1] ?? 0)
      const session = await login('erin')
      const start = await issued()
      assert.equal((await postToken(gw, refreshForm('end-users', session.refresh_token))).status, 200)
      assert.equal(await issued(), start + 1)
    })

    it('reads the refresh token and its grant in one statement, and writes the new refresh token and access token in one', async () => {
      // A first refresh after the login, for what the realm reads once (its keys, told of the login's news).
      const first = await postToken(gw, refreshForm('end-users', (await login('erin')).refresh_token))
      const statements = { run: [] as string[], counting: true }
      gw.store.database.onQuery((_seconds, sql) => {
        // Not the event bus's polls and heartbeats, nor the audit trail's batched writes: they come at their own times.
        if (statements.counting && !/"(events|gateway_processes|audit_entries)"|pg_notify/.test(sql)) statements.run.push(sql)
      })
      const answer = await postToken(gw, refreshForm('end-users', first.body.refresh_token))
      statements.counting = false
      assert.equal(answer.status, 200)
      assert.equal(statements.run.length, 2, statements.run.join('\n'))
    })
  })
}
