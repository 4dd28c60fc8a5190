import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { type TestGateway } from '../helpers/gateway.ts'
import { assertSameTokenAnswers, decodeJwtPart, GUARDED, password, postToken, REALM, SERVICE_SECRET, shared, startForShortcuts, TO_PROVIDER, type TokenAnswer } from '../helpers/oidc.ts'

/**
 * The plain password grant is answered without oidc-provider's HTTP stack (src/oidc/password-grant.ts): for the
 * same login, its answers, tokens and records must be the ones oidc-provider makes, and its refusals too, with the
 * password checked (and a wrong one counted) once.
 */
for (const backend of gatewayBackends) {
  describe(`the password grant without oidc-provider's HTTP stack, on ${backend.name}`, () => {
    let gw: TestGateway
    /** The grants oidc-provider itself answered (its `grant.success` event). */
    let providerGrants: { readonly count: number }

    before(async () => {
      ({ gw, providerGrants } = await startForShortcuts(backend))
    })
    after(() => gw.close())

    const loginForm = (username: string, clientId = 'end-users', secret = password(username)) =>
      `client_id=${clientId}${clientId === 'reports' ? `&client_secret=${SERVICE_SECRET}` : ''}&grant_type=password&username=${username}&password=${secret}`

    /** The login answered by the shortcut (asserted when it succeeds), and the same one answered by oidc-provider. */
    async function bothPaths(form: string, headers: Record<string, string> = {}): Promise<{ shortcut: TokenAnswer; provider: TokenAnswer }> {
      const before = providerGrants.count
      const shortcut = await postToken(gw, form, headers)
      const shortcutTaken = providerGrants.count === before
      const provider = await postToken(gw, form + TO_PROVIDER, headers)
      if (shortcut.status === 200) assert.ok(shortcutTaken, 'the plain login was answered by oidc-provider')
      if (provider.status === 200) assert.equal(providerGrants.count, before + (shortcutTaken ? 1 : 2), 'oidc-provider did not answer the login it was given')
      return { shortcut, provider }
    }

    /** Equal answers: status, headers, members, and each token's header and claims but for what each token or session has its own of. */
    async function assertSameAnswers(shortcut: TokenAnswer, provider: TokenAnswer): Promise<void> {
      assertSameTokenAnswers(shortcut, provider)
      if (shortcut.status !== 200) return
      const records = await Promise.all([shortcut, provider].map(({ body }) => gw.store.oidc.find('AccessToken', decodeJwtPart(body.access_token, 1).jti, Date.now())))
      assert.ok(records[0] && records[1])
      assert.deepEqual(shared(records[0].payload), shared(records[1].payload))
      const refreshIds = await Promise.all([shortcut, provider].map(async ({ body }) => (await gw.app.oidc.get(REALM)!.refreshToken(body.refresh_token))!.jti))
      const refreshRecords = await Promise.all(refreshIds.map((id) => gw.store.oidc.find('RefreshToken', id, Date.now())))
      assert.deepEqual(shared(refreshRecords[0]!.payload), shared(refreshRecords[1]!.payload))
    }

    it('answers a public client\'s login with the headers, members, tokens and records oidc-provider gives, and with openid an ID token', async () => {
      const plain = await bothPaths(loginForm('erin'))
      assert.equal(plain.shortcut.status, 200)
      await assertSameAnswers(plain.shortcut, plain.provider)
      // Its tokens name the grant saved with them.
      assert.equal((await postToken(gw, `client_id=end-users&grant_type=refresh_token&refresh_token=${plain.shortcut.body.refresh_token}`)).status, 200)
      const withOpenid = await bothPaths(`${loginForm('erin')}&scope=openid`)
      assert.equal(withOpenid.shortcut.status, 200)
      assert.ok(withOpenid.shortcut.body.id_token)
      await assertSameAnswers(withOpenid.shortcut, withOpenid.provider)
    })

    it('answers a confidential client\'s login, its secret in the form or in HTTP basic, as oidc-provider does', async () => {
      const inForm = await bothPaths(loginForm('frank', 'reports'))
      assert.equal(inForm.shortcut.status, 200)
      await assertSameAnswers(inForm.shortcut, inForm.provider)
      const basic = { authorization: `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}` }
      const inBasic = await bothPaths(`grant_type=password&username=frank&password=${password('frank')}`, basic)
      assert.equal(inBasic.shortcut.status, 200)
      await assertSameAnswers(inBasic.shortcut, inBasic.provider)
    })

    it('reads a percent-encoded form as oidc-provider does: a login by e-mail address, passwords with %, +, & and letters beyond ASCII, in UTF-8 or ISO-8859-1', async () => {
      const secret = 'p%ss+w&rd=100% l\u00e4tin \u20ac'
      await gw.app.accounts.create({ username: 'grete', password: secret, email: 'grete@example.com' })
      const encoded = (username: string, value: string) => `client_id=end-users&grant_type=password&username=${username}&password=${value}`
      const utf8 = encodeURIComponent(secret)
      const forms = [
        encoded('grete', utf8),
        // Spaces as `+`, and the e-mail address's `@` escaped, as curl's --data-urlencode and browsers write them.
        encoded('grete%40example.com', utf8.replaceAll('%20', '+')),
        // An escaped member name and client id are read as oidc-provider reads them.
        `client%5Fid=end%2Dusers&grant_type=password&user%6Eame=grete&password=${utf8}`,
      ]
      for (const form of forms) {
        const { shortcut, provider } = await bothPaths(form)
        assert.equal(shortcut.status, 200, form)
        await assertSameAnswers(shortcut, provider)
      }
      // ISO-8859-1 (its `ä` is the byte E4), for a password without a letter beyond it.
      await gw.app.accounts.create({ username: 'lotte', password: 'l\u00e4tin+one%-password' })
      const latin1 = await bothPaths(encoded('lotte', 'l%E4tin%2Bone%25-password'))
      assert.equal(latin1.shortcut.status, 200)
      await assertSameAnswers(latin1.shortcut, latin1.provider)
      // Wrong, and refused alike: `+` is a space, not a plus, and a `%` without two hex digits stays itself.
      for (const wrong of [encoded('lotte', 'l%E4tin+one%25-password'), encoded('grete', `${utf8}%`), encoded('grete', utf8.replace('%2B', '+'))]) {
        const { shortcut, provider } = await bothPaths(wrong)
        assert.equal(shortcut.status, 400, wrong)
        await assertSameAnswers(shortcut, provider)
      }
      // A member twice, once escaped, is not a plain form: oidc-provider answers it.
      const twice = await bothPaths(`${encoded('grete', utf8)}&pass%77ord=x`)
      await assertSameAnswers(twice.shortcut, twice.provider)
    })

    it('refuses a wrong password as oidc-provider does, and counts it once', async () => {
      const { shortcut, provider } = await bothPaths(loginForm('frank', 'end-users', 'not-the-password'))
      // Keycloak's 400 for a wrong password since 26.6 (keycloak-format.ts).
      assert.equal(shortcut.status, 400)
      assert.equal(shortcut.body.error, 'invalid_grant')
      await assertSameAnswers(shortcut, provider)
      // Two requests, two wrong passwords: each counted once, though the shortcut's request was answered by oidc-provider.
      assert.equal((await gw.store.loginFailures.find('frank'))?.failures, 2)
      assert.equal((await postToken(gw, loginForm('frank'))).status, 200)
    })

    it('refuses a user the client\'s access rules refuse, an unknown scope and a missing username as oidc-provider does', async () => {
      const outsider = await bothPaths(loginForm('operator', GUARDED))
      assert.equal(outsider.shortcut.status, 400)
      assert.equal(outsider.shortcut.body.error, 'access_denied')
      await assertSameAnswers(outsider.shortcut, outsider.provider)
      const team = await createOrgAndTeam(gw, 'Platform', 'Operators')
      assert.equal((await grant(gw, 'operator', 'Team Member', team.team)).status, 201)
      const member = await bothPaths(loginForm('operator', GUARDED))
      assert.equal(member.shortcut.status, 200)
      await assertSameAnswers(member.shortcut, member.provider)
      const unknownScope = await bothPaths(`${loginForm('erin')}&scope=nonsense`)
      assert.equal(unknownScope.shortcut.body.error, 'invalid_scope')
      await assertSameAnswers(unknownScope.shortcut, unknownScope.provider)
      // A scope oidc-provider refuses for its spelling before any grant runs: a stray space.
      for (const scope of ['openid%20', '%20openid', 'openid%20%20email']) {
        const stray = await bothPaths(`${loginForm('erin')}&scope=${scope}`)
        assert.equal(stray.shortcut.body.error, 'invalid_scope', scope)
        await assertSameAnswers(stray.shortcut, stray.provider)
      }
      const noUsername = await bothPaths(`client_id=end-users&grant_type=password&password=${password('erin')}`)
      assert.equal(noUsername.shortcut.body.error, 'invalid_request')
      await assertSameAnswers(noUsername.shortcut, noUsername.provider)
    })

    it('reads the account once and writes the login\'s records in one statement', async () => {
      // First logins, for what the realm reads once (its keys, read again once they were made; the client).
      assert.equal((await postToken(gw, loginForm('erin'))).status, 200)
      assert.equal((await postToken(gw, loginForm('erin'))).status, 200)
      const statements = { run: [] as string[], counting: true }
      gw.store.database.onQuery((_seconds, sql) => {
        // Not the event bus's polls and heartbeats, nor the audit trail's batched writes: they come at their own times.
        if (statements.counting && !/"(events|gateway_processes|audit_entries)"|pg_notify/.test(sql)) statements.run.push(sql)
      })
      const answer = await postToken(gw, loginForm('erin'))
      statements.counting = false
      assert.equal(answer.status, 200)
      // The account, the lockout's username and address records together, the login's time, the grant, access
      // token and refresh token records together, and the count of the account's live grants (grants_per_user_limit).
      assert.equal(statements.run.length, 5, statements.run.join('\n'))
      assert.match(statements.run.at(-1)!, /^select count\(\*\) as "count" from "oidc_records" where "account_id" = /)
    })

    it('counts its tokens as oidc-provider\'s grants are counted, and records the login', async () => {
      const issued = async () => Number(new RegExp(`gatehouse_oidc_[a-z_]*\\{[^}]*realm="${REALM}"[^}]*grant_type="password"[^}]*\\} (\\d+)`).exec(await (await gw.fetch('/metrics')).text())?.[1] ?? 0)
      const start = await issued()
      const began = Date.now()
      assert.equal((await postToken(gw, loginForm('erin'))).status, 200)
      assert.equal(await issued(), start + 1)
      const erin = (await call(gw, 'GET', 'users/?username=erin')).body.results[0]
      assert.ok(Date.parse(erin.last_login) >= began - 1000)
    })
  })
}
