import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { generateToken, hashToken } from '../../src/auth/token-format.ts'
import { ADMIN_PASSWORD, basic, json, repoRoot, runCli, spawnGateway, type GatewayProcess } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { at, login } from '../helpers/session.ts'

const admin = { authorization: basic('admin', ADMIN_PASSWORD) }
const ME = '/api/gateway/v1/me/'
const SKEW_MS = -120_000

/** The environment of a gateway or CLI process whose Date.now() runs `skewMs` off the machine's clock. */
function skewed(skewMs: number): Record<string, string> {
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${join(repoRoot, 'test/fixtures/skewed-clock.mjs')}`, CLOCK_SKEW_MS: String(skewMs) }
}

/**
 * Two `gatehouse serve` processes on one PostgreSQL database, on "hosts" whose clocks disagree by two minutes (the
 * second one's runs behind). An account's not-befores are the database's time, and what a process issues is stamped
 * with its view of the database's clock: a revocation refuses everything issued before it, and nothing issued after
 * it, whichever process does which.
 */
describe('not-befores across gateway processes whose clocks disagree, on PostgreSQL', () => {
  let right: GatewayProcess
  let behind: GatewayProcess
  let db: pg.Client
  let drop: () => Promise<void>
  let databaseUrl: string

  before(async () => {
    const database = await createTestDatabase()
    drop = database.drop
    databaseUrl = database.url
    const args = ['--demo', '--database', database.url]
    right = await spawnGateway(args)
    behind = await spawnGateway(args, skewed(SKEW_MS))
    db = new pg.Client({ connectionString: database.url })
    await db.connect()
  })
  after(async () => {
    await db?.end()
    await Promise.all([right?.stop(), behind?.stop()])
    await drop?.()
  })

  const call = (gateway: GatewayProcess, path: string, init: RequestInit = {}) => fetch(gateway.url + path, { redirect: 'manual', ...init })
  const post = (gateway: GatewayProcess, path: string, headers: Record<string, string>, body: unknown = {}) =>
    call(gateway, path, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })

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
    const created = await runCli(['tokens', 'create', '--user', 'sven', '--database', databaseUrl], { env: skewed(-SKEW_MS) })
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
})
