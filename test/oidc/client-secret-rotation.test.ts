import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { ConfigError, validateConfig } from '../../src/config/load.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { realmWith, tokenRequest } from '../helpers/oidc.ts'

const NEW_SECRET = 'new-secret-after-rotation-0123'
const OLD_SECRET = 'old-secret-before-rotation-0123'
/** Long enough for the gateway to start and the first requests to be answered within it. */
const GRACE_MS = 8000

/**
 * A configured client's secret rotated in the configuration (`previous_secret`): the old one still authenticates
 * beside the new one until its `expires`, then only the new one does, as Keycloak's rotated client secret.
 */
describe('a configured client\'s previous secret', () => {
  let gw: TestGateway
  let expires: number
  before(async () => {
    expires = Date.now() + GRACE_MS
    gw = await startGateway({
      config: {
        realms: realmWith([
          { client_id: 'rotating', public_client: false, secret: NEW_SECRET, previous_secret: { secret: OLD_SECRET, expires: new Date(expires).toISOString() }, service_accounts: true },
          { client_id: 'long-rotated', public_client: false, secret: NEW_SECRET, previous_secret: { secret: OLD_SECRET, expires: '2020-01-01T00:00:00Z' }, service_accounts: true },
        ]),
      },
    })
  })
  after(() => gw.close())

  /** A client_credentials grant's status, the secret in HTTP basic or in the form. */
  const grant = async (clientId: string, secret: string, inForm = false) => {
    const { status, body } = inForm
      ? await tokenRequest(gw, { grant_type: 'client_credentials', client_id: clientId, client_secret: secret })
      : await tokenRequest(gw, { grant_type: 'client_credentials' }, { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` })
    if (status === 401) assert.equal(body.error, 'invalid_client')
    return status
  }

  it('takes the new secret and the previous one until it expires, then the new one only', async () => {
    for (const inForm of [false, true]) {
      assert.equal(await grant('rotating', NEW_SECRET, inForm), 200)
      assert.equal(await grant('rotating', OLD_SECRET, inForm), 200, 'within its grace')
      assert.equal(await grant('rotating', 'some-other-secret-0123456', inForm), 401)
    }
    await sleep(Math.max(0, expires - Date.now()) + 300)
    for (const inForm of [false, true]) {
      assert.equal(await grant('rotating', OLD_SECRET, inForm), 401, 'after its grace')
      assert.equal(await grant('rotating', NEW_SECRET, inForm), 200)
    }
  })

  it('refuses a previous secret whose time is past from the start', async () => {
    assert.equal(await grant('long-rotated', OLD_SECRET), 401)
    assert.equal(await grant('long-rotated', NEW_SECRET), 200)
  })

  it('takes a previous secret only for a client-secret client, with a time and its offset', () => {
    const problems = (client: Record<string, unknown>) => {
      try {
        validateConfig({ realms: [{ name: 'r', clients: [{ client_id: 'c', public_client: false, secret: NEW_SECRET, ...client }] }] })
      } catch (error) {
        if (error instanceof ConfigError) return error.problems
        throw error
      }
      return []
    }
    const previous = { secret: OLD_SECRET, expires: '2026-12-06T12:00:00Z' }
    assert.deepEqual(problems({ previous_secret: previous }), [])
    assert.ok(problems({ previous_secret: previous, client_authenticator: 'client-secret-jwt' }).some((p) => p.startsWith('realms.0.clients.0.previous_secret:')))
    assert.ok(problems({ previous_secret: { ...previous, expires: '2026-12-06 12:00' } }).some((p) => p.startsWith('realms.0.clients.0.previous_secret.expires')))
    assert.ok(problems({ previous_secret: { ...previous, secret: 'short' } }).some((p) => p.startsWith('realms.0.clients.0.previous_secret.secret')))
  })
})
