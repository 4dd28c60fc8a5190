import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { AccountDisabled } from '../../src/errors.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login, type LoggedIn } from '../helpers/session.ts'

const PASSWORD = 'carol-password-long'

describe('one authorize step for every place', () => {
  let gw: TestGateway
  let carol: LoggedIn
  const logLines: Record<string, unknown>[] = []

  /** The request line a response was logged with: exactly one, found by its request's path and status. */
  async function loggedLine(path: string, status: number): Promise<Record<string, unknown>> {
    for (let i = 0; i < 500 && !logLines.some((line) => line.msg === 'request' && line.path === path && line.status === status); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const lines = logLines.filter((line) => line.msg === 'request' && line.path === path && line.status === status)
    assert.equal(lines.length, 1, `one request line for ${status} ${path}`)
    return lines[0]!
  }

  before(async () => {
    gw = await startGateway({ logLines })
    await gw.app.accounts.create({ username: 'carol', password: PASSWORD })
    carol = await login(gw, 'carol', PASSWORD)
  })
  after(() => gw.close())

  it('refuses at a service, at the gateway API and at an administration page alike, logging each refusal once with its reason', async () => {
    const atService = await gw.fetch('/api/controller/v2/hosts/', { headers: { authorization: basic('carol', 'not-her-password') } })
    assert.equal(atService.status, 401)
    assert.equal((await json(atService)).code, 'invalid_credentials')

    const atApi = await gw.fetch('/api/gateway/v1/settings/', { headers: { authorization: basic('carol', PASSWORD) } })
    assert.equal(atApi.status, 403)
    assert.equal((await json(atApi)).code, 'permission_denied')

    const atPage = await gw.fetch('/ui/admin/settings', { headers: { accept: 'text/html', cookie: carol.cookie } })
    assert.equal(atPage.status, 403)

    const expected = [
      ['/api/controller/v2/hosts/', 401, { place: 'controller', decision: 'refused', code: 'invalid_credentials', authenticator: 'basic', user: undefined }],
      ['/api/gateway/v1/settings/', 403, { place: 'gateway', decision: 'refused', code: 'permission_denied', authenticator: 'basic', user: 'carol' }],
      ['/ui/admin/settings', 403, { place: 'ui/admin', decision: 'refused', code: 'permission_denied', authenticator: 'session', user: 'carol' }],
    ] as const
    for (const [path, status, fields] of expected) {
      const line = await loggedLine(path, status)
      assert.deepEqual({ place: line.place, decision: line.decision, code: line.code, authenticator: line.authenticator, user: line.user }, fields, path)
    }
    const everything = JSON.stringify(logLines)
    for (const secret of [PASSWORD, 'not-her-password', carol.sessionId, basic('carol', PASSWORD)]) assert.ok(!everything.includes(secret), 'no credential in the log')
  })

  it('logs a request let in as granted, with the place and the authenticator that decided', async () => {
    const response = await gw.fetch('/api/controller/v2/hosts/?granted', { headers: { authorization: basic('carol', PASSWORD) } })
    assert.equal(response.status, 200)
    const line = await loggedLine('/api/controller/v2/hosts/', 200)
    assert.deepEqual([line.place, line.decision, line.code, line.authenticator, line.user], ['controller', 'granted', undefined, 'basic', 'carol'])
  })

  it('answers account_disabled with 401 at a service, at the gateway API and when a token is made for the account', async () => {
    const dora = await gw.app.accounts.create({ username: 'dora', password: PASSWORD })
    const { value: token } = await gw.app.tokens.issue(dora, {})
    await gw.app.accounts.update(dora.id, { isActive: false })
    for (const [path, authorization] of [['/api/controller/v2/hosts/', basic('dora', PASSWORD)], ['/api/gateway/v1/me/', basic('dora', PASSWORD)], ['/api/gateway/v1/me/', `Bearer ${token}`]] as const) {
      const response = await gw.fetch(path, { headers: { authorization } })
      assert.equal(response.status, 401, path)
      assert.equal((await json(response)).code, 'account_disabled', path)
    }
    const disabled = (await gw.app.accounts.get(dora.id))!
    await assert.rejects(gw.app.tokens.issue(disabled, {}), (error) => error instanceof AccountDisabled && error.status === 401)
  })
})
