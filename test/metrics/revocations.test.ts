import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'
import { Browser } from '../helpers/browser.ts'
import { CLIENT_REDIRECT, REALM, realmUrl, testRealms } from '../helpers/oidc.ts'
import { login, withCsrf } from '../helpers/session.ts'
import { createToken } from '../helpers/tokens.ts'

/** gatehouse_revocations_total counts the sessions and tokens that ended, not the audit entries that say so. */
describe('gatehouse_revocations_total', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
  })
  after(() => gw?.close())

  const revocations = async (kind: string) => sampleValue(parseScrape(await (await gw.fetch('/metrics')).text()), 'gatehouse_revocations_total', { kind })
  const revokeTokensOf = async (user: number) => {
    const response = await gw.fetch('/api/gateway/v1/tokens/revoke/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ user }) })
    assert.equal(response.status, 200)
    return (await json(response)).revoked as number
  }

  it('adds as many tokens as a revocation of a user\'s tokens ended, and none when it ended none', async () => {
    const bob = await gw.app.accounts.create({ username: 'bob', password: 'bob-password-1' })
    const before = await revocations('token')
    assert.equal(await revokeTokensOf(bob.id), 0)
    assert.equal(await revokeTokensOf(bob.id), 0)
    assert.equal(await revocations('token'), before, 'nothing was revoked')
    for (let i = 0; i < 3; i++) await createToken(gw, { authorization: basic('bob', 'bob-password-1') })
    assert.equal(await revokeTokensOf(bob.id), 3)
    assert.equal(await revocations('token'), before + 3)
  })

  it('adds the session a sign-out ended', async () => {
    await gw.app.accounts.create({ username: 'carol', password: 'carol-password-1' })
    const session = await login(gw, 'carol', 'carol-password-1')
    const before = await revocations('session')
    assert.equal((await gw.fetch('/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(session) })).status, 302)
    assert.equal(await revocations('session'), before + 1)
  })

  it('adds no session for a realm\'s logout-all that ended no gateway session', async () => {
    const before = await revocations('session')
    const response = await gw.fetch(`/admin/realms/${encodeURIComponent(REALM)}/logout-all`, { method: 'POST', headers: adminAuth })
    assert.equal(response.status, 200)
    assert.equal(await revocations('session'), before)
  })

  it('adds the gateway sessions a realm\'s logout-all ended with the realm\'s sign-ins', async () => {
    await gw.app.accounts.create({ username: 'dave', password: 'dave-password-1' })
    // A browser that signs in at the realm is signed in to the gateway too (one sign-in), with a session linked to it.
    const browser = new Browser()
    const page = await browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
      client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`)
    assert.ok((await browser.submit(page, { username: 'dave', password: 'dave-password-1' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })).stoppedAt)
    const me = () => browser.request(`${gw.url}/api/gateway/v1/me/`, { headers: { accept: 'application/json' } })
    assert.equal((await me()).status, 200)
    const before = await revocations('session')
    const response = await gw.fetch(`/admin/realms/${encodeURIComponent(REALM)}/logout-all`, { method: 'POST', headers: adminAuth })
    assert.equal(response.status, 200)
    assert.equal((await me()).status, 401)
    assert.equal(await revocations('session'), before + 1)
  })
})
