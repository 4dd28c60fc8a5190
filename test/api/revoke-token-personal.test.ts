import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateToken } from '../../src/auth/token-format.ts'
import { DatabaseUnavailable } from '../../src/errors.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/**
 * The platform's `POST /o/revoke_token/` (django-oauth-toolkit's RevokeTokenView) revokes whatever access token the
 * value names once the client has authenticated, and the platform's personal tokens are access tokens without an
 * application: a personal token's value revokes it there as `DELETE tokens/{id}/` does.
 */
for (const backend of ['SQLite', 'PostgreSQL'] as const) {
  describe(`/o/revoke_token/ with a personal token, on ${backend}`, () => {
    let gw: TestGateway
    let other: TestGateway
    let drop: (() => Promise<void>) | undefined
    let client: { client_id: string; client_secret: string }

    before(async () => {
      const database = backend === 'PostgreSQL' ? await createTestDatabase() : undefined
      drop = database?.drop
      gw = await startGateway(database ? { databaseUrl: database.url } : {})
      // A second process on the same database, which holds the tokens it has seen in memory.
      other = await startGateway(database ? { databaseUrl: database.url } : { dataDir: gw.dataDir })
      const created = await gw.fetch('/api/gateway/v1/applications/', {
        method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'revoker', client_type: 'confidential', authorization_grant_type: 'password' }),
      })
      assert.equal(created.status, 201)
      client = await json(created)
      const bob = await gw.fetch('/api/gateway/v1/users/', {
        method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'bob', password: 'bob-long-password-1' }),
      })
      assert.equal(bob.status, 201)
    })
    after(async () => {
      await other?.close()
      await gw?.close()
      await drop?.()
    })

    async function personalToken(authorization: string): Promise<{ id: number; token: string }> {
      const response = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ scope: 'write' }) })
      assert.equal(response.status, 201)
      return json(response)
    }
    const me = async (at: TestGateway, token: string) => (await at.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${token}` } })).status
    const revoke = (form: Record<string, string>, headers: Record<string, string> = {}) => gw.fetch('/o/revoke_token/', {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString(),
    })

    it('revokes the token before it answers 200, here and on another process that held it', async () => {
      const { id, token } = await personalToken(adminAuth.authorization)
      assert.equal(await me(gw, token), 200)
      assert.equal(await me(other, token), 200)
      const response = await revoke({ token, client_id: client.client_id, client_secret: client.client_secret })
      assert.equal(response.status, 200)
      assert.equal(await me(gw, token), 401)
      assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { headers: adminAuth })).status, 404)
      // The other process is told by the event the deletion wrote; it may take one poll of the bus.
      const deadline = Date.now() + 30_000
      let status = await me(other, token)
      while (status !== 401 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        status = await me(other, token)
      }
      assert.equal(status, 401)
    })

    it('takes the client\'s credentials in HTTP basic too', async () => {
      const { token } = await personalToken(adminAuth.authorization)
      const response = await revoke({ token }, { authorization: basic(client.client_id, client.client_secret) })
      assert.equal(response.status, 200)
      assert.equal(await me(gw, token), 401)
    })

    it('audits the revocation as the deletion of the token, without its value', async () => {
      const { id, token } = await personalToken(adminAuth.authorization)
      assert.equal((await revoke({ token, client_id: client.client_id, client_secret: client.client_secret })).status, 200)
      await gw.app.audit.flush()
      const stream = await json(await gw.fetch('/api/gateway/v1/activitystream/?order_by=-id&page_size=20', { headers: adminAuth }))
      const entry = stream.results.find((e: { operation: string; content_type: string; object_id: string }) => e.operation === 'delete' && e.content_type === 'token' && e.object_id === String(id))
      assert.ok(entry, 'a delete entry for the token')
      assert.equal(entry.created_by, null)
      assert.equal(entry.changes.removed_fields.user, 1)
      assert.equal(JSON.stringify(entry).includes(token), false)
    })

    it('refuses a wrong secret or an unknown client with 401 and revokes nothing', async () => {
      const { token } = await personalToken(adminAuth.authorization)
      for (const [form, headers] of [
        [{ token, client_id: client.client_id, client_secret: 'not-the-secret' }, {}],
        [{ token, client_id: 'no-such-client', client_secret: client.client_secret }, {}],
        [{ token, client_id: client.client_id }, {}],
        [{ token }, { authorization: basic(client.client_id, 'not-the-secret') }],
      ] as [Record<string, string>, Record<string, string>][]) {
        const response = await revoke(form, headers)
        assert.equal(response.status, 401, JSON.stringify(form))
        assert.equal((await json(response)).error, 'invalid_client')
        assert.equal(await me(gw, token), 200, JSON.stringify(form))
      }
      // No client at all is Keycloak's "Missing client_id parameter" (oauthlib's revocation answers it 401 invalid_client
      // too), and revokes nothing either.
      const anonymous = await revoke({ token })
      assert.equal(anonymous.status, 401)
      assert.deepEqual(await json(anonymous), { error: 'invalid_client', error_description: 'Missing client_id parameter' })
      assert.equal(await me(gw, token), 200)
    })

    it('never answers 200 when the revocation could not be written: 503 with Retry-After, and a retry revokes it', async () => {
      const { token } = await personalToken(adminAuth.authorization)
      const tokens = gw.app.tokens
      const revokeByValue = tokens.revokeByValue
      tokens.revokeByValue = async () => { throw new DatabaseUnavailable() }
      try {
        const response = await revoke({ token, client_id: client.client_id, client_secret: client.client_secret })
        assert.equal(response.status, 503)
        assert.equal(response.headers.get('retry-after'), '5')
        assert.equal((await json(response)).error, 'temporarily_unavailable')
      } finally {
        tokens.revokeByValue = revokeByValue
      }
      assert.equal((await revoke({ token, client_id: client.client_id, client_secret: client.client_secret })).status, 200)
      assert.equal(await me(gw, token), 401)
    })

    it('answers a value no token has 200, as RFC 7009 asks', async () => {
      for (const token of [generateToken(), 'gatehouse_pat_not-a-token', 'something else']) {
        const response = await revoke({ token, client_id: client.client_id, client_secret: client.client_secret })
        assert.equal(response.status, 200, token)
      }
    })

    it('revokes another user\'s token: the value is the authority, as on the platform', async () => {
      const { token } = await personalToken(basic('bob', 'bob-long-password-1'))
      assert.equal(await me(gw, token), 200)
      assert.equal((await revoke({ token, client_id: client.client_id, client_secret: client.client_secret })).status, 200)
      assert.equal(await me(gw, token), 401)
    })
  })
}

describe('the realm\'s revocation endpoint with a personal token', () => {
  let gw: TestGateway
  let client: { client_id: string; client_secret: string }
  before(async () => {
    gw = await startGateway()
    const created = await gw.fetch('/api/gateway/v1/applications/', {
      method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'keycloak revoker', client_type: 'confidential', authorization_grant_type: 'password' }),
    })
    client = await json(created)
  })
  after(() => gw?.close())

  it('knows no personal tokens, as Keycloak: answers 200 and the token keeps working', async () => {
    const created = await gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: '{}' })
    const { token } = await json(created)
    const realm = gw.app.oidc.applicationsRealm!.name
    const response = await gw.fetch(`/realms/${realm}/protocol/openid-connect/revoke`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, client_id: client.client_id, client_secret: client.client_secret }).toString(),
    })
    assert.equal(response.status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${token}` } })).status, 200)
  })
})
