import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, realmWith, SERVICE_SECRET, tokenRequest } from '../helpers/oidc.ts'

/**
 * A refresh token's record is stamped when it is saved, and Keycloak's JWT of it is made afterwards: when the second
 * turned in between, the JWT said one `iat` and `exp` and introspection (which answers the record's) another. A clock
 * that moves a second at every reading makes every such moment one where the second turns.
 */
describe('a refresh token says the times its record holds, whenever the second turns', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([]) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    // The realm's provider, made when it is first needed, sets oidc-provider's clock.
    assert.equal((await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })).status, 200)
  })
  after(() => gw.close())

  const introspect = async (token: string) => json(await gw.fetch('/realms/platform/protocol/openid-connect/token/introspect', {
    method: 'POST', body: new URLSearchParams({ client_id: 'reports', client_secret: SERVICE_SECRET, token }),
  }))

  it('by the password grant and by a refresh, offline or not', async () => {
    // oidc-provider's clock reads the process's view of the database's clock (provider-clock.ts), set again as each
    // request finds the realm's provider.
    const clock = gw.app.bus.clock
    const databaseNow = clock.now
    let now = Date.now()
    clock.now = () => (now += 1000)
    try {
      for (const scope of ['openid', 'openid offline_access']) {
        const issued = await passwordLogin(gw, 'alice', 'alice-password', { scope })
        const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: issued.refresh_token })
        assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
        for (const [how, token] of [['password', issued.refresh_token], ['refresh', refreshed.body.refresh_token]] as const) {
          const claims = decodeJwtPart(token, 1)
          const answer = await introspect(token)
          assert.equal(answer.active, true, `${scope}, ${how}`)
          assert.equal(answer.iat, claims.iat, `${scope}, ${how}: iat`)
          assert.equal(answer.exp, claims.exp, `${scope}, ${how}: exp`)
        }
      }
    } finally {
      clock.now = databaseNow
    }
  })
})
