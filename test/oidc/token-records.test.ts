import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { json, type TestGateway } from '../helpers/gateway.ts'
import { codeRedemption, decodeJwtPart, passwordLogin, postToken, realmUrl, SERVICE_SECRET, testRealms, tokenRequest } from '../helpers/oidc.ts'

const demo = loadConfigFile(demoConfigFile)
const BURST = 30

/**
 * The token endpoint writes the records of tokens issued together in one statement; each token is still answered
 * only once its record is committed, so it can be revoked (and is refused after) from the moment the client has it.
 */
for (const backend of gatewayBackends) {
  describe(`tokens issued together, on ${backend.name}`, () => {
    let gw: TestGateway

    before(async () => {
      gw = await backend.start({ config: { realms: testRealms, services: demo.services } })
      await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    })
    after(() => gw.close())

    const callDemoApp = (token: string) => gw.fetch('/demo-app/pipelines/p/trials', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })

    it('has the record of every client credentials token of a burst before answering it', async () => {
      const tokens = await Promise.all(Array.from({ length: BURST }, async () => {
        const { status, body } = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })
        assert.equal(status, 200)
        const { jti } = decodeJwtPart(body.access_token, 1)
        assert.ok(await gw.store.oidc.find('ClientCredentials', jti, Date.now()), `no record for ${jti} when it was answered`)
        return body.access_token as string
      }))
      assert.equal(new Set(tokens).size, BURST)
    })

    it('has the records of every refreshed token of a burst before answering it', async () => {
      const logins = await Promise.all(Array.from({ length: BURST }, () => passwordLogin(gw, 'alice', 'alice-password')))
      await Promise.all(logins.map(async (login) => {
        const { status, body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token })
        assert.equal(status, 200)
        assert.ok(await gw.store.oidc.find('RefreshToken', decodeJwtPart(body.refresh_token, 1).jti, Date.now()), 'no refresh token record')
        assert.ok(await gw.store.oidc.find('AccessToken', decodeJwtPart(body.access_token, 1).jti, Date.now()), 'no access token record')
      }))
    })

    it('ends every token that refreshes racing the logout of their session gave, on both paths', async () => {
      // A member the shortcut does not take (oidc-provider ignores it): the same refreshes, answered by oidc-provider.
      for (const path of [{}, { ignored: '1' }] as Record<string, string>[]) {
        const login = await passwordLogin(gw, 'alice', 'alice-password')
        const refreshes = Promise.all(Array.from({ length: BURST }, () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token, ...path })))
        const logout = gw.fetch(realmUrl(gw, '/protocol/openid-connect/logout').slice(gw.url.length), { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', refresh_token: login.refresh_token }) })
        const [answers, loggedOut] = await Promise.all([refreshes, logout])
        assert.equal(loggedOut.status, 204)
        for (const { body } of answers.filter((answer) => answer.status === 200)) {
          assert.equal((await callDemoApp(body.access_token)).status, 401)
          assert.equal((await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: body.refresh_token })).status, 400)
        }
      }
    })

    it('keys the tokens it issues by the time they were issued, each followed by a whole random id (and a refresh token\'s by its grant)', async () => {
      const before = Date.now()
      const login = await passwordLogin(gw, 'alice', 'alice-password')
      const refreshed = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: login.refresh_token })
      const credentials = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })
      const after = Date.now()
      assert.equal(refreshed.status, 200)
      assert.equal(credentials.status, 200)
      const jti = (token: string) => String(decodeJwtPart(token, 1).jti)
      const issued: [string, string][] = [
        ['RefreshToken', jti(login.refresh_token)], ['AccessToken', jti(login.access_token)],
        ['RefreshToken', jti(refreshed.body.refresh_token)], ['AccessToken', jti(refreshed.body.access_token)],
        ['ClientCredentials', jti(credentials.body.access_token)],
      ]
      for (const [model, id] of issued) {
        // The time in fixed-width hex, then oidc-provider's own id: 43 characters, 256 random bits; a refresh token's
        // then names its chain of refreshes (when it began, and its tag) and its grant, each after a dot.
        assert.match(id, model === 'RefreshToken' ? /^[0-9a-f]{12}[A-Za-z0-9_-]{43}\.[0-9]+\.[0-9a-f]{12}\.[A-Za-z0-9_-]+$/ : /^[0-9a-f]{12}[A-Za-z0-9_-]{43}$/)
        const madeAt = parseInt(id.slice(0, 12), 16)
        // The provider's clock is the database's, which may stand a little apart from this process's.
        assert.ok(madeAt >= before - 60_000 && madeAt <= after + 60_000, `${id} made at ${madeAt}, outside ${before}..${after}`)
        const record = await gw.store.oidc.find(model, id, Date.now())
        assert.ok(record, `no ${model} record under ${id}`)
        if (model === 'RefreshToken') assert.deepEqual([id.split('.')[1], id.split('.')[3]], [String(record.payload.iiat), record.grantId])
      }
      // Bytewise, as SQLite's keys compare: a token issued later sorts after the one it replaced.
      assert.ok(Buffer.compare(Buffer.from(issued[2]![1].slice(0, 12)), Buffer.from(issued[0]![1].slice(0, 12))) >= 0)
      assert.equal(new Set(issued.map(([, id]) => id.slice(12))).size, issued.length)
      const chainOf = (id: string) => id.split('.').slice(1, 3).join('.')
      assert.equal(chainOf(issued[2]![1]), chainOf(issued[0]![1]), 'a refresh keeps the chain of the token it replaced')
      const another = await passwordLogin(gw, 'alice', 'alice-password')
      assert.notEqual(chainOf(jti(another.refresh_token)), chainOf(issued[0]![1]), 'another login begins a chain of its own')
    })

    it('redeems an authorization code that many requests bring at once for one of them only, and revokes what it gave', async () => {
      const form = (await codeRedemption(gw, 'alice', 'alice-password')).toString()
      const answers = await Promise.all(Array.from({ length: BURST }, () => postToken(gw, form)))
      const redeemed = answers.filter((answer) => answer.status === 200)
      assert.equal(redeemed.length, 1)
      for (const refused of answers.filter((answer) => answer.status !== 200)) assert.deepEqual([refused.status, refused.body.error], [400, 'invalid_grant'])
      // RFC 6749 §4.1.2: a code used twice revokes the tokens it gave.
      assert.equal((await callDemoApp(redeemed[0]!.body.access_token)).status, 401)
      assert.equal((await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: redeemed[0]!.body.refresh_token })).status, 400)
    })

    it('refuses at the gateway a token revoked the moment it was issued, while others of its burst stay good', async () => {
      const issued = await Promise.all(Array.from({ length: BURST }, async () => {
        const { body } = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })
        return body.access_token as string
      }))
      const [revoked, kept] = issued
      const revocation = await gw.fetch(realmUrl(gw, '/protocol/openid-connect/revoke').slice(gw.url.length), {
        method: 'POST',
        body: new URLSearchParams({ client_id: 'reports', client_secret: SERVICE_SECRET, token: revoked! }),
      })
      assert.equal(revocation.status, 200)
      const refused = await callDemoApp(revoked!)
      assert.equal(refused.status, 401)
      assert.equal((await json(refused)).code, 'invalid_token')
      assert.equal((await callDemoApp(kept!)).status, 200)
    })
  })
}
