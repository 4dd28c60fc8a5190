import assert from 'node:assert/strict'
import { hash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, REALM, realmUrl, SERVICE_SECRET, testRealms, tokenRequest } from '../helpers/oidc.ts'

const BASIC = { authorization: `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}` }

/**
 * Keycloak 26 answers `client_credentials` with `scope=openid` (keycloak-connect's `obtainFromClientCredentials()`)
 * with an ID token of the service account user (OAuth2GrantTypeBase `createTokenResponse`: `generateIDToken` for an
 * OIDC request), and without `openid` with none.
 */
describe('the ID token of a client_credentials grant', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
  })
  after(() => gw.close())

  it('comes with scope=openid, for the service account user, as Keycloak\'s', async () => {
    const { status, body } = await tokenRequest(gw, { grant_type: 'client_credentials', scope: 'openid' }, BASIC)
    assert.equal(status, 200)
    assert.equal(body.refresh_token, undefined)
    assert.equal(typeof body.id_token, 'string')
    const certs = await json(await gw.fetch(`/realms/${REALM}/protocol/openid-connect/certs`))
    const { payload, protectedHeader } = await jwtVerify(body.id_token, createLocalJWKSet(certs), { issuer: realmUrl(gw), audience: 'reports' })
    const access = decodeJwtPart(body.access_token, 1)
    assert.equal(protectedHeader.typ, 'JWT')
    assert.deepEqual(Object.keys(payload).slice(0, 10), ['exp', 'iat', 'jti', 'iss', 'aud', 'sub', 'typ', 'azp', 'at_hash', 'acr'])
    assert.deepEqual(
      { typ: payload.typ, azp: payload.azp, sub: payload.sub, acr: payload.acr, exp: payload.exp, user: payload.preferred_username, client: payload.client_id },
      { typ: 'ID', azp: 'reports', sub: access.sub, acr: '1', exp: access.exp, user: 'service-account-reports', client: 'reports' },
    )
    assert.equal(payload.at_hash, hash('sha256', body.access_token, 'buffer').subarray(0, 16).toString('base64url'))
    // No browser or password signed anyone in: no session, no login time, no roles (those are the access token's).
    for (const absent of ['sid', 'auth_time', 'nonce', 'realm_access', 'resource_access', 'scope']) assert.equal(absent in payload, false, absent)
    assert.equal(body.session_state, undefined)
    assert.match(body.scope, /^openid\b/)
  })

  it('does not come without openid, with the shortcut or with oidc-provider answering', async () => {
    for (const form of [{ grant_type: 'client_credentials' }, { grant_type: 'client_credentials', scope: 'profile' }] as Record<string, string>[]) {
      const { status, body } = await tokenRequest(gw, form, BASIC)
      assert.equal(status, 200)
      assert.equal(body.id_token, undefined)
    }
  })
})
