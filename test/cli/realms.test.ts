import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { demoConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, REALM, tokenRequest } from '../helpers/oidc.ts'

describe('gatehouse realms', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  const cli = (...args: string[]) => runCli(['realms', ...args, '--config', demoConfigFile, '--data-dir', gw.dataDir])
  const refresh = (token: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: token })

  it('logout-all ends every session and token of the realm, which the running gateway refuses, and prints what the admin URLs answered', async () => {
    const alice = await passwordLogin(gw, 'alice', 'alice-password')
    assert.equal((await refresh(alice.refresh_token)).status, 200)
    const other = await passwordLogin(gw, 'admin', ADMIN_PASSWORD)
    // The demo's service that takes the realm's tokens (README: demo-app).
    const me = () => gw.fetch('/demo-app/pipelines/', { headers: { authorization: `Bearer ${other.access_token}` } })
    assert.equal((await me()).status, 200, 'the running gateway takes the access token, and keeps it verified in memory')
    const ended = await cli('logout-all', REALM)
    assert.equal(ended.code, 0, ended.stderr)
    assert.deepEqual(JSON.parse(ended.stdout), {}, 'no client of the realm has an admin URL')
    const refused = await refresh(other.refresh_token)
    assert.equal(refused.status, 400)
    assert.equal(refused.body.error, 'invalid_grant')
    // The running gateway hears of the ended grants through the database's event log (polled, with a deadline).
    for (const until = Date.now() + 30_000; (await me()).status !== 401; await sleep(100)) {
      if (Date.now() > until) throw new Error('the running gateway still takes the access token')
    }
    assert.equal((await refresh((await passwordLogin(gw, 'alice', 'alice-password')).refresh_token)).status, 200, 'a login since is taken')

    const pushed = await cli('push-revocation', REALM)
    assert.equal(pushed.code, 0, pushed.stderr)
    assert.deepEqual(JSON.parse(pushed.stdout), {})
  })

  it('refuses a realm the configuration does not have', async () => {
    const refused = await cli('logout-all', 'no-such-realm')
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /no realm "no-such-realm"/)
  })
})
