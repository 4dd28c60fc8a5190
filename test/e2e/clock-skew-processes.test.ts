import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { generateToken, hashToken } from '../../src/auth/token-format.ts'
import { demoConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, basic, json, runCli, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { freePort } from '../helpers/free-port.ts'
import { skewedClock, spawnAtPort } from '../helpers/skewed-clock.ts'
import { decodeJwtPart } from '../helpers/oidc.ts'
import { at, login } from '../helpers/session.ts'

const admin = { authorization: basic('admin', ADMIN_PASSWORD) }
const ME = '/api/gateway/v1/me/'
const SKEW_MS = -120_000
const DEMO_TOKEN_PATH = '/realms/platform/protocol/openid-connect/token'
/** The demo realm's `access_token_seconds` (its default). */
const ACCESS_TOKEN_SECONDS = 300

/**
 * Three `gatehouse serve` processes on one PostgreSQL database, on "hosts" whose clocks disagree by two minutes (one
 * runs behind, one ahead). An account's not-befores are the database's time, and what a process issues (sessions,
 * personal tokens, OpenID Connect codes and tokens) is stamped with its view of the database's clock: a revocation
 * refuses everything issued before it, and nothing issued after it, whichever process does which.
 */
describe('not-befores across gateway processes whose clocks disagree, on PostgreSQL', () => {
  let right: GatewayProcess
  let behind: GatewayProcess
  let ahead: GatewayProcess
  let db: pg.Client
  let drop: () => Promise<void>
  let databaseUrl: string
  let dir: string | undefined
  let spawn: (port: number, env?: Record<string, string>) => Promise<GatewayProcess>
  let ports: number[]
  /** A service that keeps the identity tokens it receives. */
  let capture: Server
  const identities: string[] = []

  before(async () => {
    const database = await createTestDatabase()
    drop = database.drop
    databaseUrl = database.url
    // One public URL, as behind a load balancer: a realm's tokens name it as their issuer, whichever process issued them.
    const configDir = dir = tempDir()
    ports = [await freePort(), await freePort(), await freePort()]
    capture = createServer((req, res) => {
      identities.push(String(req.headers['x-gatehouse-identity']))
      res.end('{}')
    }).listen(0, '127.0.0.1')
    await once(capture, 'listening')
    const captureService = `services:\n  - name: capture\n    prefix: /capture/\n    upstream: http://127.0.0.1:${(capture.address() as AddressInfo).port}\n`
    writeFileSync(join(configDir, 'gatehouse.yaml'), readFileSync(demoConfigFile, 'utf8')
      .replace(/^server:\n/m, `server:\n  public_url: http://127.0.0.1:${ports[0]}\n`)
      .replace(/^services:\n/m, captureService))
    spawn = (port: number, env?: Record<string, string>) => spawnAtPort(join(configDir, 'gatehouse.yaml'), database.url, port, env)
    right = await spawn(ports[0]!)
    behind = await spawn(ports[1]!, skewedClock(SKEW_MS))
    ahead = await spawn(ports[2]!, skewedClock(-SKEW_MS))
    db = new pg.Client({ connectionString: database.url })
    await db.connect()
  })
  after(async () => {
    await db?.end()
    await Promise.all([right?.stop(), behind?.stop(), ahead?.stop()])
    capture?.close()
    await drop?.()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const call = (gateway: GatewayProcess, path: string, init: RequestInit = {}) => fetch(gateway.url + path, { redirect: 'manual', ...init })
  const post = (gateway: GatewayProcess, path: string, headers: Record<string, string>, body: unknown = {}) =>
    call(gateway, path, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })

  const name = (gateway: GatewayProcess) => gateway === right ? 'right' : gateway === behind ? 'behind' : 'ahead'
  const tokenRequest = (gateway: GatewayProcess, form: Record<string, string>) =>
    call(gateway, DEMO_TOKEN_PATH, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', ...form }) })
  async function passwordGrant(gateway: GatewayProcess, username: string, password: string): Promise<{ access_token: string; refresh_token: string }> {
    const response = await tokenRequest(gateway, { grant_type: 'password', username, password })
    const body = await response.text()
    assert.equal(response.status, 200, `${name(gateway)}: ${body}\n${gateway.output()}`)
    return JSON.parse(body)
  }
  const changePassword = async (gateway: GatewayProcess, id: number, password: string) => assert.equal((await call(gateway, `/api/gateway/v1/users/${id}/`, {
    method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ password }),
  })).status, 200)
  /** The database's clock, in whole seconds. */
  const databaseSeconds = async () => Number((await db.query('SELECT floor(extract(epoch from clock_timestamp()))::bigint AS now')).rows[0].now)

  async function createUser(username: string): Promise<{ id: number; auth: Record<string, string>; password: string }> {
    const password = `${username}-password-long`
    const created = await post(right, '/api/gateway/v1/users/', admin, { username, password })
    assert.equal(created.status, 201)
    return { id: (await json(created)).id, auth: { authorization: basic(username, password) }, password }
  }

  it('a token created on the process whose clock is behind, after its user\'s tokens were revoked on the other, works on both', async () => {
    const { id, auth } = await createUser('olga')
    const revoked = await post(right, '/api/gateway/v1/tokens/revoke/', admin, { user: id })
    assert.equal(revoked.status, 200)
    const created = await post(behind, '/api/gateway/v1/tokens/', auth)
    assert.equal(created.status, 201)
    const bearer = { authorization: `Bearer ${(await json(created)).token}` }
    for (const gateway of [behind, right]) {
      const response = await call(gateway, ME, { headers: bearer })
      assert.equal(response.status, 200, `${gateway === right ? 'right' : 'behind'}: ${await response.text()}`)
    }
  })

  it('revoking every token on the process whose clock is behind refuses, on both, a token created just before it and written after it', async () => {
    const { id, auth } = await createUser('rita')
    const created = await post(right, '/api/gateway/v1/tokens/', auth)
    assert.equal(created.status, 201)
    const kept = { authorization: `Bearer ${(await json(created)).token}` }
    // Both processes now hold the account in memory, with the not-before it had before the revoke.
    for (const gateway of [right, behind]) assert.equal((await call(gateway, ME, { headers: kept })).status, 200)
    const stampedAt = Date.now() - 1000
    const revoked = await post(behind, '/api/gateway/v1/tokens/revoke/', admin, { all: true })
    assert.equal(revoked.status, 200)
    const racing = generateToken()
    await db.query(`INSERT INTO tokens (user_id, token_hash, scope, description, created_at, modified_at, expires_at) VALUES ($1, $2, 'write', '', $3, $3, $4)`,
      [id, hashToken(racing), stampedAt, stampedAt + 3600_000])
    for (const gateway of [right, behind]) {
      const response = await call(gateway, ME, { headers: { authorization: `Bearer ${racing}` } })
      assert.equal(response.status, 401, gateway === right ? 'right' : 'behind')
      assert.equal((await json(response)).code, 'invalid_token')
    }
    const fresh = await post(right, '/api/gateway/v1/tokens/', auth)
    assert.equal(fresh.status, 201)
    const freshBearer = { authorization: `Bearer ${(await json(fresh)).token}` }
    for (const gateway of [behind, right]) assert.equal((await call(gateway, ME, { headers: freshBearer })).status, 200)
  })

  it('`gatehouse tokens create` on a machine whose clock runs ahead stamps the token with the database\'s time', async () => {
    await createUser('sven')
    const created = await runCli(['tokens', 'create', '--user', 'sven', '--database', databaseUrl], { env: skewedClock(-SKEW_MS) })
    assert.equal(created.code, 0, created.stderr)
    const { rows: [row] } = await db.query('SELECT created_at, floor(extract(epoch from clock_timestamp()) * 1000)::bigint AS now FROM tokens WHERE token_hash = $1', [hashToken(created.stdout.trim())])
    assert.ok(Number(row.created_at) <= Number(row.now), `created ${row.created_at}, database's time ${row.now}`)
    assert.ok(Number(row.created_at) > Number(row.now) - 60_000)
  })

  it('a password change on the process whose clock is behind refuses, on both, a session the other started just before it and wrote after it', async () => {
    const { id, auth } = await createUser('pia')
    // A login on the process with the right clock, a moment before the change, whose row is written after it.
    const sessionId = randomBytes(32).toString('base64url')
    const stampedAt = Date.now() - 1000
    const changed = await call(behind, `/api/gateway/v1/users/${id}/`, {
      method: 'PATCH', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ password: 'pia-password-longer' }),
    })
    assert.equal(changed.status, 200)
    await db.query(`INSERT INTO sessions (key_hash, user_id, created_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, '127.0.0.1', 'test')`,
      [createHash('sha256').update(sessionId).digest('hex'), id, stampedAt, stampedAt + 3600_000])
    for (const gateway of [right, behind]) {
      const response = await call(gateway, ME, { headers: { cookie: `gateway_sessionid=${sessionId}` } })
      assert.equal(response.status, 401, gateway === right ? 'right' : 'behind')
      assert.equal((await json(response)).code, 'invalid_session')
    }
    // The old password is refused, and a login with the new one on the process that is behind works on both.
    assert.equal((await call(right, ME, { headers: auth })).status, 401)
    const fresh = await login(at(behind.url), 'pia', 'pia-password-longer')
    for (const gateway of [behind, right]) assert.equal((await call(gateway, ME, { headers: { cookie: fresh.cookie } })).status, 200, gateway === right ? 'right' : 'behind')
  })

  it('OpenID Connect tokens issued on the process whose clock runs ahead are stamped with the database\'s time', async () => {
    await createUser('ada')
    const before = await databaseSeconds()
    const { access_token: accessToken } = await passwordGrant(ahead, 'ada', 'ada-password-long')
    const claims = decodeJwtPart(accessToken, 1)
    assert.ok(claims.iat >= before - 1 && claims.iat <= await databaseSeconds(), `iat ${claims.iat}, the database's time ${before}`)
    assert.equal(claims.exp - claims.iat, ACCESS_TOKEN_SECONDS)
  })

  it('a password change on one process refuses, on every process, the OpenID Connect tokens the process whose clock runs ahead issued just before it, also where their records were written after it', async () => {
    const { id, password } = await createUser('bert')
    const tokens = await passwordGrant(ahead, 'bert', password)
    const bearer = { authorization: `Bearer ${tokens.access_token}` }
    // Every process now holds the verified token and the account in memory, with the not-before it had before.
    for (const gateway of [right, ahead, behind]) assert.equal((await call(gateway, '/demo-app/x', { headers: bearer })).status, 200, name(gateway))
    const { rows: records } = await db.query('SELECT * FROM oidc_records WHERE account_id = $1', [String(id)])
    assert.ok(records.length >= 3, 'the grant, the refresh token and the access token')
    // Into the database's next second: a token's iat counts whole seconds.
    await sleep(1001 - (Date.now() % 1000))
    await changePassword(right, id, 'bert-password-longer')
    // The records a grant in flight during the change would have written after it.
    for (const record of records) {
      const columns = Object.keys(record)
      await db.query(`INSERT INTO oidc_records (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) ON CONFLICT DO NOTHING`, columns.map((column) => record[column]))
    }
    for (const gateway of [right, ahead, behind]) {
      const response = await call(gateway, '/demo-app/x', { headers: bearer })
      assert.equal(response.status, 401, name(gateway))
      const refreshed = await tokenRequest(gateway, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
      assert.equal(refreshed.status, 400, name(gateway))
      assert.equal((await json(refreshed)).error, 'invalid_grant')
    }
  })

  it('OpenID Connect tokens issued on the process whose clock is behind, just after a password change on another, work on every process', async () => {
    const { id } = await createUser('cleo')
    await changePassword(right, id, 'cleo-password-longer')
    const tokens = await passwordGrant(behind, 'cleo', 'cleo-password-longer')
    for (const gateway of [behind, right, ahead]) {
      const response = await call(gateway, '/demo-app/x', { headers: { authorization: `Bearer ${tokens.access_token}` } })
      assert.equal(response.status, 200, `${name(gateway)}: ${response.headers.get('www-authenticate')}`)
      const refreshed = await tokenRequest(gateway, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token })
      assert.equal(refreshed.status, 200, `${name(gateway)}: ${JSON.stringify(await json(refreshed))}`)
    }
  })

  it('a realm key replaced on one process stays published on the process whose clock runs ahead until its tokens expire by the database\'s clock', async () => {
    const { password } = await createUser('kira')
    const signed = await passwordGrant(right, 'kira', password)
    const oldKid = decodeJwtPart(signed.access_token, 0).kid as string
    // Thirty days on, the key is due to be replaced. Only a process that reads the keys again sees that: `right`, restarted.
    await db.query('UPDATE signing_keys SET created_at = created_at - $1 WHERE kid = $2', [30 * 86400_000, oldKid])
    await right.stop()
    right = await spawn(ports[0]!)
    const newKid = decodeJwtPart((await passwordGrant(right, 'kira', password)).access_token, 0).kid as string
    assert.notEqual(newKid, oldKid)
    // As if it had been replaced five minutes ago: its last tokens expire within the minute, by the database's clock,
    // less than `ahead` runs ahead of it.
    await db.query('UPDATE signing_keys SET retire_at = floor(extract(epoch from clock_timestamp()) * 1000)::bigint + 60000 WHERE kid = $1', [oldKid])
    // `ahead` heard of the new key, and reads the keys again at its next request.
    const certs = async () => ((await json(await call(ahead, '/realms/platform/protocol/openid-connect/certs'))).keys as { kid: string }[]).map((key) => key.kid)
    let published = await certs()
    for (const until = Date.now() + 10_000; !published.includes(newKid) && Date.now() < until; published = await certs()) await sleep(100)
    assert.ok(published.includes(newKid), `ahead publishes ${published}`)
    assert.ok(published.includes(oldKid), `ahead publishes ${published}, without the replaced key ${oldKid}`)
    assert.equal((await db.query('SELECT 1 FROM signing_keys WHERE kid = $1', [oldKid])).rowCount, 1)
    const proxied = await call(ahead, '/demo-app/x', { headers: { authorization: `Bearer ${signed.access_token}` } })
    assert.equal(proxied.status, 200, `${proxied.headers.get('www-authenticate')}`)
  })

  it('identity tokens signed on the process whose clock runs ahead are stamped with the database\'s time', async () => {
    const before = await databaseSeconds()
    const response = await call(ahead, '/capture/x', { headers: admin })
    assert.equal(response.status, 200)
    const claims = decodeJwtPart(identities.at(-1)!, 1)
    assert.ok(claims.iat >= before - 1 && claims.iat <= await databaseSeconds(), `iat ${claims.iat}, the database's time ${before}`)
  })
})
