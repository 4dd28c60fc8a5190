import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gatewayBackends } from '../helpers/backends.ts'
import { ADMIN_PASSWORD, json, type TestGateway } from '../helpers/gateway.ts'

/** The longest name the configuration takes for a realm. */
const LONG_REALM = `r${'e'.repeat(98)}m`

/**
 * A realm whose name is as long as the configuration allows works on either database: its signing keys (whose purpose
 * in the database is the name behind a prefix) are made, its tokens signed, and its logins recorded with its name.
 */
for (const backend of gatewayBackends) describe(`a realm with a name of 100 characters, on ${backend.name}`, () => {
  let gw: TestGateway
  before(async () => {
    gw = await backend.start({
      config: {
        services: [],
        realms: [{ name: LONG_REALM, default_signature_algorithm: 'ES256', clients: [{ client_id: 'cli', public_client: true, direct_access_grants: true }] }],
      },
    })
  })
  after(() => gw.close())

  it('publishes its keys, signs its tokens and records its logins', async () => {
    const certs = await gw.fetch(`/realms/${LONG_REALM}/protocol/openid-connect/certs`)
    assert.equal(certs.status, 200)
    assert.equal((await json(certs)).keys.length, 1)
    const token = await gw.fetch(`/realms/${LONG_REALM}/protocol/openid-connect/token`, {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'cli', grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD }),
    })
    assert.equal(token.status, 200, await token.clone().text())
    assert.ok((await json(token)).refresh_token)

    await gw.app.audit.flush()
    const events = await gw.fetch(`/admin/realms/${LONG_REALM}/events`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` } })
    assert.equal(events.status, 200)
    assert.deepEqual((await json(events)).map((event: { type: string; realmId: string }) => [event.type, event.realmId]), [['LOGIN', LONG_REALM]])
  })
})
