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
import { runCli, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, passwordLogin, REALM } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { skewedClock } from '../helpers/skewed-clock.ts'

/**
 * Commands run on a machine whose clock is an hour behind the database's: what they sign for others (the realm's admin
 * calls, logout tokens) is dated by the database's clock, as the gateway processes date theirs, or it arrives out of date.
 */
describe('gatehouse commands on a machine whose clock runs behind the database\'s, on PostgreSQL', () => {
  const SKEW_MS = -3600_000
  let receiver: Server
  /** What the realm's receivers were sent: admin calls (a JWT as the body) and logout tokens (in a form). */
  let received: { path: string; token: string }[] = []
  let configFile: string
  let databaseUrl: string
  let drop: () => Promise<void>
  let dir: string
  let db: pg.Client
  let gw: TestGateway
  before(async () => {
    receiver = createServer((request, response) => {
      let body = ''
      request.on('data', (chunk: Buffer) => (body += chunk))
      request.on('end', () => {
        received.push({ path: request.url ?? '', token: new URLSearchParams(body).get('logout_token') ?? body })
        response.end()
      })
    })
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
    const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
    const database = await createTestDatabase()
    ;({ url: databaseUrl, drop } = database)
    db = new pg.Client({ connectionString: databaseUrl })
    await db.connect()
    // The demo realm with a keycloak-connect client (an admin URL) and a script's client (a back-channel logout URI).
    const demo = parse(readFileSync(demoConfigFile, 'utf8')) as { realms: { clients: unknown[] }[] }
    demo.realms[0]!.clients.push(
      { client_id: 'connect-admin', public_client: false, secret: 'connect-admin-secret-0123456789', redirect_uris: [`${receiverUrl}/*`], admin_url: `${receiverUrl}/admin` },
      { client_id: 'script', public_client: true, direct_access_grants: true, backchannel_logout_uri: `${receiverUrl}/script` },
    )
    dir = tempDir()
    configFile = join(dir, 'gatehouse.yaml')
    // JSON is YAML.
    writeFileSync(configFile, JSON.stringify(demo))
    gw = await startGateway({ databaseUrl, config: { realms: demo.realms } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password-long' })
  })
  after(async () => {
    await gw?.close()
    receiver?.close()
    await db?.end()
    await drop?.()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const databaseSeconds = async () => Number((await db.query('SELECT floor(extract(epoch from clock_timestamp()))::bigint AS now')).rows[0].now)

  /** Runs the command on the skewed machine; answers the token sent to `path` and the database's time around the run. */
  async function signedBy(args: string[], path: string, input?: string): Promise<{ claims: Record<string, number>; from: number; to: number }> {
    received = []
    const from = await databaseSeconds()
    const done = await runCli([...args, '--config', configFile, '--database', databaseUrl], { env: skewedClock(SKEW_MS), input })
    assert.equal(done.code, 0, done.stderr)
    const to = await databaseSeconds()
    // The command waits for the deliveries it queued before it exits (each given a few seconds): allow for it anyway.
    for (let waited = 0; !received.some((call) => call.path === path) && waited < 10_000; waited += 100) await sleep(100)
    const call = received.find((sent) => sent.path === path)
    assert.ok(call, `nothing sent to ${path}: ${received.map((sent) => sent.path).join(', ')}`)
    return { claims: decodeJwtPart(call.token, 1), from, to }
  }

  for (const command of ['logout-all', 'push-revocation']) {
    it(`realms ${command} dates the admin call by the database's clock`, async () => {
      const { claims: { expiration }, from, to } = await signedBy(['realms', command, REALM], `/admin/k_${command === 'logout-all' ? 'logout' : 'push_not_before'}`)
      // Keycloak's admin calls hold for 30 s from when they are made.
      assert.ok(expiration >= from + 30 && expiration <= to + 31, `expiration ${expiration}, the database's time ${from}..${to}`)
    })
  }

  it('users set-password dates the logout token it sends a password login\'s client by the database\'s clock', async () => {
    // A busy machine's database may answer this process late once (503): the login is tried again.
    for (let tries = 1; ; tries++) {
      try {
        await passwordLogin(gw, 'alice', 'alice-password-long', { client_id: 'script' })
        break
      } catch (error) {
        if (tries === 5) throw error
        await sleep(1000)
      }
    }
    const { claims: { iat }, from, to } = await signedBy(['users', 'set-password', 'alice', '--password-stdin'], '/script', 'a-new-password-for-alice\n')
    assert.ok(iat >= from && iat <= to + 1, `iat ${iat}, the database's time ${from}..${to}`)
  })
})
