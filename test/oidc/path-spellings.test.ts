import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_PASSWORD, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { CLIENT_REDIRECT, decodeJwtPart, passwordLogin, realmUrl, testRealms } from '../helpers/oidc.ts'

/**
 * oidc-provider's router takes its paths in any case and with a trailing slash; the gateway judges a realm path by
 * its exact spelling (its throttles, its allowed methods, the tokens it swaps for their record ids). An endpoint's
 * path with a trailing slash is that endpoint, checked as it is; one in another case is no endpoint (404, as
 * Keycloak matches its paths in their case). Before, `/userinfo/` took a token's `jti` as the token, `/token/` a
 * refresh token's `jti` as the refresh token, and `/AUTH` started sign-ins no throttle counted.
 */
describe('realm paths in other spellings', () => {
  let gw: TestGateway
  const PER_ADDRESS = 3
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms, auth: { sign_in_starts_per_address: PER_ADDRESS } } })
  })
  after(() => gw?.close())

  const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) => gw.fetch(realmUrl(gw, path).slice(gw.url.length), {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form),
  })

  it('answers an endpoint\'s path with a trailing slash as that endpoint, its checks included', async () => {
    const tokens = await passwordLogin(gw, 'admin', ADMIN_PASSWORD, { scope: 'openid' })
    const viaSlash = await post('/protocol/openid-connect/token/', { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
    assert.equal(viaSlash.status, 200)
    const { jti: refreshJti } = decodeJwtPart(tokens.refresh_token, 1)
    for (const path of ['/protocol/openid-connect/token', '/protocol/openid-connect/token/']) {
      const refused = await post(path, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshJti })
      assert.deepEqual([refused.status, (await json(refused)).error], [400, 'invalid_grant'], path)
    }
    const { jti: accessJti } = decodeJwtPart(tokens.access_token, 1)
    for (const path of ['/protocol/openid-connect/userinfo', '/protocol/openid-connect/userinfo/']) {
      const own = await gw.fetch(realmUrl(gw, path).slice(gw.url.length), { headers: { authorization: `Bearer ${tokens.access_token}` } })
      assert.equal(own.status, 200, path)
      const byId = await gw.fetch(realmUrl(gw, path).slice(gw.url.length), { headers: { authorization: `Bearer ${accessJti}` } })
      assert.equal(byId.status, 401, path)
    }
  })

  it('answers an endpoint\'s path in another case 404, as Keycloak, and hands it to no one', async () => {
    const tokens = await passwordLogin(gw, 'admin', ADMIN_PASSWORD)
    const { jti: accessJti } = decodeJwtPart(tokens.access_token, 1)
    const { jti: refreshJti } = decodeJwtPart(tokens.refresh_token, 1)
    const answers: Record<string, number> = {}
    for (const [method, path] of [
      ['POST', '/protocol/openid-connect/TOKEN'], ['POST', '/protocol/openid-connect/Token/'], ['POST', '/PROTOCOL/openid-connect/token'],
      ['POST', '/protocol/openid-connect/token/INTROSPECT'], ['POST', '/protocol/openid-connect/REVOKE'], ['GET', '/protocol/openid-connect/USERINFO'],
      ['GET', '/protocol/openid-connect/AUTH'], ['GET', '/protocol/openid-connect/AUTH/some-login'], ['POST', '/protocol/openid-connect/auth/DEVICE'],
      ['GET', '/protocol/openid-connect/Certs'], ['GET', '/.WELL-KNOWN/openid-configuration'], ['GET', '/protocol/openid-connect/LOGOUT'],
    ] as const) {
      const answer = await gw.fetch(realmUrl(gw, path).slice(gw.url.length), {
        method,
        headers: { authorization: `Bearer ${accessJti}`, ...(method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(method === 'POST' ? { body: new URLSearchParams({ client_id: 'end-users', grant_type: 'refresh_token', refresh_token: refreshJti, token: accessJti }) } : {}),
      })
      const body = await json(answer)
      answers[path] = answer.status
      assert.equal(body.error, 'Unable to find matching target resource method', path)
    }
    assert.deepEqual(new Set(Object.values(answers)), new Set([404]), JSON.stringify(answers))
  })

  it('counts a sign-in started at the authorization endpoint\'s path with a trailing slash, and refuses one in another case', async () => {
    const start = (path: string) => requestFrom('127.0.0.71', `${realmUrl(gw, path)}?${new URLSearchParams({
      client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`, { headers: { accept: 'application/json' } })
    const statuses = []
    for (let i = 0; i < PER_ADDRESS + 1; i++) statuses.push((await start('/protocol/openid-connect/auth/')).status)
    statuses.push((await start('/protocol/openid-connect/AUTH')).status)
    assert.deepEqual(statuses, [...Array(PER_ADDRESS).fill(302), 429, 404])
  })
})
