import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, basic, json, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, testRealms, tokenRequest } from '../helpers/oidc.ts'

// Two gateways on one database, as two processes behind a load balancer: the password changes through the first,
// and the second, which has already accepted the user's tokens, must refuse them from then on.
for (const backend of gatewayBackends) {
  describe(`a password change ends what the old password gave, on ${backend.name}`, () => {
    let first: TestGateway
    let second: TestGateway

    before(async () => {
      first = await backend.start({ config: { realms: testRealms } })
      second = await startGateway({ config: { realms: testRealms }, dataDir: first.dataDir, databaseUrl: first.app.config.storage.database })
      // Both answer as one public URL, so the realm's tokens carry the same issuer everywhere.
      second.app.publicUrl = first.url
    })
    after(async () => {
      await second?.close()
      await first?.close()
    })

    const bearer = (gw: TestGateway, token: string) => gw.fetch('/demo-app/x', { headers: { authorization: `Bearer ${token}` } })
    const codeOf = async (response: Response) => (await json(response)).code as string
    const refresh = (refreshToken: string) => tokenRequest(first, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshToken })
    const personalToken = async (username: string, password: string) => {
      const response = await first.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { authorization: basic(username, password) } })
      assert.equal(response.status, 201)
      return (await json(response)).token as string
    }
    const changeOwnPassword = (username: string, current: string, next: string, extra: Record<string, unknown> = {}) => first.fetch('/api/gateway/v1/me/password/', {
      method: 'POST',
      headers: { authorization: basic(username, current), 'content-type': 'application/json' },
      body: JSON.stringify({ current_password: current, new_password: next, ...extra }),
    })
    /** The audit trail's entries of the personal tokens of `userId` revoked together, with how many each ended. */
    const tokensRevokedEntries = async (userId: number) => {
      await first.app.audit.flush()
      const { results } = await json(await first.fetch('/api/gateway/v1/activitystream/?operation=delete&content_type=token&order_by=id', { headers: adminAuth }))
      return results.filter((entry: { summary_fields: { content_object: { name: string } } }) => entry.summary_fields.content_object.name === `tokens of user ${userId}`)
        .map((entry: { changes: { removed_fields: { revoked: number } } }) => entry.changes.removed_fields.revoked)
    }
    const setPassword = (id: number, body: Record<string, unknown>) => first.fetch(`/api/gateway/v1/users/${id}/`, {
      method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify(body),
    })

    it('refuses the user\'s OIDC access tokens on every process at once, and their refresh tokens, and keeps personal tokens by default', async () => {
      await first.app.accounts.create({ username: 'rita', password: 'rita-password-1' })
      const oidc = await passwordLogin(first, 'rita', 'rita-password-1')
      const pat = await personalToken('rita', 'rita-password-1')
      assert.equal((await bearer(second, oidc.access_token)).status, 200, 'accepted, and remembered, before the change')
      assert.equal((await bearer(first, oidc.access_token)).status, 200)

      assert.equal((await changeOwnPassword('rita', 'rita-password-1', 'rita-password-2')).status, 204)

      for (const gw of [second, first]) {
        const refused = await bearer(gw, oidc.access_token)
        assert.equal(refused.status, 401)
        assert.equal(await codeOf(refused), 'invalid_token')
      }
      const refreshed = await refresh(oidc.refresh_token)
      assert.equal(refreshed.status, 400)
      assert.equal(refreshed.body.error, 'invalid_grant')
      assert.equal((await first.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${pat}` } })).status, 200, 'personal tokens stay unless asked')

      const fresh = await passwordLogin(first, 'rita', 'rita-password-2')
      assert.equal((await bearer(second, fresh.access_token)).status, 200, 'tokens from the new password work')
      assert.equal((await refresh(fresh.refresh_token)).status, 200)
    })

    it('revokes the personal tokens too when the user asks for it', async () => {
      const { id } = await first.app.accounts.create({ username: 'sam', password: 'sam-password-one' })
      const pat = await personalToken('sam', 'sam-password-one')
      assert.equal((await second.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${pat}` } })).status, 200)
      assert.equal((await changeOwnPassword('sam', 'sam-password-one', 'sam-password-two', { revoke_tokens: true })).status, 204)
      for (const gw of [second, first]) assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${pat}` } })).status, 401)
      assert.deepEqual(await tokensRevokedEntries(id), [1], 'recorded as tokens/revoke/ records it')
    })

    it('ends OIDC grants when an administrator sets a password, and personal tokens only with revoke_tokens', async () => {
      const { id } = await first.app.accounts.create({ username: 'tess', password: 'tess-password-one' })
      const oidc = await passwordLogin(first, 'tess', 'tess-password-one')
      const pat = await personalToken('tess', 'tess-password-one')
      const patWorks = async () => (await second.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${pat}` } })).status === 200
      assert.equal((await bearer(second, oidc.access_token)).status, 200)

      assert.equal((await setPassword(id, { password: 'tess-password-two' })).status, 200)
      assert.equal((await bearer(second, oidc.access_token)).status, 401)
      assert.equal((await refresh(oidc.refresh_token)).status, 400)
      assert.ok(await patWorks())

      assert.deepEqual(await tokensRevokedEntries(id), [])
      assert.equal((await setPassword(id, { password: 'tess-password-three', revoke_tokens: true })).status, 200)
      assert.equal(await patWorks(), false)
      assert.deepEqual(await tokensRevokedEntries(id), [1])
    })

    it('refuses revoke_tokens without a new password, or not a boolean, and changes nothing', async () => {
      const { id } = await first.app.accounts.create({ username: 'uma', password: 'uma-password-one' })
      const pat = await personalToken('uma', 'uma-password-one')
      for (const body of [{ revoke_tokens: true }, { first_name: 'Uma', revoke_tokens: false }, { password: 'uma-password-two', revoke_tokens: 'maybe' }]) {
        const response = await setPassword(id, body)
        assert.equal(response.status, 400, JSON.stringify(body))
        assert.ok('revoke_tokens' in (await json(response)).errors)
      }
      const own = await changeOwnPassword('uma', 'uma-password-one', 'uma-password-two', { revoke_tokens: 2 })
      assert.equal(own.status, 400)
      assert.ok('revoke_tokens' in (await json(own)).errors)
      assert.equal((await first.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('uma', 'uma-password-one') } })).status, 200)
      assert.equal((await first.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${pat}` } })).status, 200)
      assert.equal((await first.store.users.findById(id))!.firstName, '')
    })

    it('does the same for bin/gatehouse users set-password, with --revoke-tokens for personal tokens', async () => {
      const { id } = await first.app.accounts.create({ username: 'vera', password: 'vera-password-one' })
      const oidc = await passwordLogin(first, 'vera', 'vera-password-one')
      const pat = await personalToken('vera', 'vera-password-one')
      assert.equal((await bearer(second, oidc.access_token)).status, 200)
      const storage = first.app.config.storage.database ? ['--database', first.app.config.storage.database] : ['--data-dir', first.dataDir]
      const result = await runCli(['users', 'set-password', 'vera', '--password-stdin', '--revoke-tokens', ...storage], { input: 'vera-password-two\n' })
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, /password changed for vera, personal tokens revoked/)
      assert.equal((await bearer(second, oidc.access_token)).status, 401)
      assert.equal((await refresh(oidc.refresh_token)).status, 400)
      assert.equal((await second.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${pat}` } })).status, 401)
      assert.deepEqual(await tokensRevokedEntries(id), [1])
    })
  })
}
