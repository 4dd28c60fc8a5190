import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { testRealms, tokenRequest } from '../helpers/oidc.ts'

// Keycloak keeps a disabled user's sessions and judges the user at a refresh (TokenManager) and at the direct grant
// (ValidateUsername); Gatehouse ends the sessions and the refresh tokens with the account, and answers alike.
describe('a refresh token whose user was disabled or deleted after it was issued', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { realms: testRealms } })
  })
  after(() => gw.close())

  const secret = (name: string) => `${name}-password-long`
  async function account(name: string): Promise<number> {
    return (await gw.app.accounts.create({ username: name, password: secret(name) })).id
  }
  const disable = (id: number) => gw.app.accounts.update(id, { isActive: false })
  const remove = async (id: number) => void await gw.app.accounts.delete(id)

  const refusal = (answer: { status: number; body: unknown }) => ({ status: answer.status, body: answer.body })
  const refused = (error_description: string, status = 400) => ({ status, body: { error: 'invalid_grant', error_description } })

  it('answers a refresh of a disabled user "User disabled", of a deleted one "Session not active", and their password logins as Keycloak does', async () => {
    const login = async (name: string) => (await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: name, password: secret(name) })).body.refresh_token as string
    const refresh = (token: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: token })
    const password = (name: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: name, password: secret(name) })

    const disabled = await account('refresh-disabled')
    const token = await login('refresh-disabled')
    await disable(disabled)
    assert.deepEqual(refusal(await refresh(token)), refused('User disabled'))
    assert.deepEqual(refusal(await password('refresh-disabled')), refused('Account disabled'))
    // Enabled again, the token of before stays ended (its grant went with the disable).
    await gw.app.accounts.update(disabled, { isActive: true })
    assert.equal((await refresh(token)).status, 400)

    const deleted = await account('refresh-deleted')
    const deletedToken = await login('refresh-deleted')
    await remove(deleted)
    assert.deepEqual(refusal(await refresh(deletedToken)), refused('Session not active'))
    assert.deepEqual(refusal(await password('refresh-deleted')), refused('Invalid user credentials', 401))

  })
})
