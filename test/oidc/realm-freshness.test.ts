import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, realmUrl, testRealms } from '../helpers/oidc.ts'

/**
 * Two processes on one SQLite database, whose event buses read the log on their own only once a minute: a realm's
 * endpoints at one know what the other changed before they answer, as the gateway's own requests do.
 */
describe('realm endpoints after a change made by another process on SQLite', () => {
  let changing: TestGateway
  let answering: TestGateway

  before(async () => {
    const dataDir = tempDir()
    changing = await startGateway({ dataDir, pollMs: 60_000, config: { realms: testRealms } })
    answering = await startGateway({ dataDir, pollMs: 60_000, config: { realms: testRealms } })
    await answering.app.accounts.create({ username: 'rita', password: 'rita-password-long' })
  })
  after(async () => {
    await answering?.close()
    await changing?.close()
  })

  const kids = async (gw: TestGateway) => {
    const response = await fetch(realmUrl(gw, '/protocol/openid-connect/certs'))
    assert.equal(response.status, 200)
    return ((await response.json()) as { keys: { kid: string; use: string }[] }).keys.filter((key) => key.use === 'sig').map((key) => key.kid)
  }

  it('publish a realm key replaced at another process, and refuse the tokens of the key it dropped, at once', async () => {
    const tokens = await passwordLogin(answering, 'rita', 'rita-password-long', { scope: 'openid' })
    const oldKid = decodeJwtPart(tokens.access_token, 0).kid
    assert.ok((await kids(answering)).includes(oldKid))
    const userinfo = () => fetch(realmUrl(answering, '/protocol/openid-connect/userinfo'), { headers: { authorization: `Bearer ${tokens.access_token}` } })
    assert.equal((await userinfo()).status, 200)

    const { kid } = await changing.app.oidc.get('platform')!.replaceSigningKey()

    assert.deepEqual(await kids(answering), [kid], 'the JWKS names the new key alone')
    assert.equal((await userinfo()).status, 401, 'a token of the dropped key is refused')
  })
})
