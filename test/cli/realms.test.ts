import assert from 'node:assert/strict'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { parse } from 'yaml'
import { demoConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, runCli, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, REALM, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { skewedClock } from '../helpers/skewed-clock.ts'

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

describe('gatehouse realms on a machine whose clock runs behind the database\'s, on PostgreSQL', () => {
  const SKEW_MS = -3600_000
  let receiver: Server
  let adminCalls: { path: string; token: string }[] = []
  let configFile: string
  let databaseUrl: string
  let drop: () => Promise<void>
  let dir: string
  let db: pg.Client
  before(async () => {
    receiver = createServer((request, response) => {
      let body = ''
      request.on('data', (chunk: Buffer) => (body += chunk))
      request.on('end', () => {
        adminCalls.push({ path: request.url ?? '', token: body })
        response.end()
      })
    })
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
    const adminUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
    const database = await createTestDatabase()
    ;({ url: databaseUrl, drop } = database)
    db = new pg.Client({ connectionString: databaseUrl })
    await db.connect()
    // JSON is YAML: the demo configuration with a keycloak-connect client, which has an admin URL.
    const config = parse(readFileSync(demoConfigFile, 'utf8')) as { realms: { clients: unknown[] }[] }
    config.realms[0]!.clients.push({ client_id: 'connect-admin', public_client: false, secret: 'connect-admin-secret-0123456789', redirect_uris: [`${adminUrl}/*`], admin_url: adminUrl })
    dir = tempDir()
    configFile = join(dir, 'gatehouse.yaml')
    writeFileSync(configFile, JSON.stringify(config))
  })
  after(async () => {
    receiver?.close()
    await db?.end()
    await drop?.()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const databaseSeconds = async () => Number((await db.query('SELECT floor(extract(epoch from clock_timestamp()))::bigint AS now')).rows[0].now)

  for (const command of ['logout-all', 'push-revocation']) {
    it(`${command} stamps the admin call with the database's time, not this machine's`, async () => {
      adminCalls = []
      const before = await databaseSeconds()
      const done = await runCli(['realms', command, REALM, '--config', configFile, '--database', databaseUrl], { env: skewedClock(SKEW_MS) })
      assert.equal(done.code, 0, done.stderr)
      const after = await databaseSeconds()
      assert.equal(adminCalls.length, 1)
      const { expiration } = decodeJwtPart(adminCalls[0]!.token, 1)
      // Keycloak's admin calls hold for 30 s from when they are made.
      assert.ok(expiration >= before + 30 && expiration <= after + 31, `expiration ${expiration}, the database's time ${before}..${after}`)
    })
  }
})
