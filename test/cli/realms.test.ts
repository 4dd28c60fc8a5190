import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { demoConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, adminAuth, json, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
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

  it('records push-revocation, from the CLI and through the API, with who pushed, the realm and its not-before', async () => {
    assert.equal((await cli('logout-all', REALM)).code, 0, 'the realm has a not-before to push')
    const [{ notBefore }] = (await json(await gw.fetch('/admin/realms', { headers: adminAuth }))).filter((r: { realm: string }) => r.realm === REALM)
    assert.ok(notBefore > 0)
    const fromCli = await cli('push-revocation', REALM)
    assert.equal(fromCli.code, 0, fromCli.stderr)
    assert.equal((await gw.fetch(`/admin/realms/${REALM}/push-revocation`, { method: 'POST', headers: adminAuth })).status, 200)
    await gw.app.audit.flush()
    const stream = await json(await gw.fetch(`/api/gateway/v1/activitystream/?content_type=realm&object_id=${REALM}&order_by=id`, { headers: adminAuth }))
    const admin = await gw.app.store.users.findByUsername('admin')
    // The last two: the test before pushes too.
    assert.deepEqual(stream.results.slice(-2).map((entry: any) => [entry.operation, entry.auth_method, entry.created_by, entry.realm, entry.changes.added_fields.not_before]),
      [['update', 'cli', null, REALM, notBefore], ['update', 'basic', admin!.id, REALM, notBefore]])
  })

  it('refuses a realm the configuration does not have', async () => {
    const refused = await cli('logout-all', 'no-such-realm')
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /no realm "no-such-realm"/)
  })

  it('reads the demo\'s realms with --demo, as serve --demo does, and says how to give them without', async () => {
    const withoutConfig = await runCli(['realms', 'push-revocation', REALM, '--data-dir', gw.dataDir])
    assert.equal(withoutConfig.code, 2)
    assert.equal(withoutConfig.stderr, `gatehouse: no realm "${REALM}" in the configuration (it has none: give the one the gateway runs with --config, or --demo for the demo's)\n`)
    const demo = await runCli(['realms', 'push-revocation', REALM, '--demo', '--data-dir', gw.dataDir])
    assert.equal(demo.code, 0, demo.stderr)
    assert.deepEqual(JSON.parse(demo.stdout), {})
  })
})
