import assert from 'node:assert/strict'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { demoConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, basic, tempDir, type GatewayProcess } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'
import { freePort } from '../helpers/free-port.ts'
import { skewedClock, spawnAtPort } from '../helpers/skewed-clock.ts'
import { decodeJwtPart } from '../helpers/oidc.ts'

const SKEW_MS = 120_000
const TOKEN_PATH = '/realms/platform/protocol/openid-connect/token'
/** The realm's refresh tokens live this long: less than the two processes' clocks are apart (four minutes). */
const SSO_SESSION_IDLE_SECONDS = 60

/**
 * Two `gatehouse serve` processes on one PostgreSQL database, one two minutes ahead of the database's clock and one two
 * minutes behind it. Each writes an OpenID Connect record's expiry, and judges it, by its view of the database's clock,
 * as it stamps the token's `exp`: a refresh token lives as long on either process, whichever issued it.
 */
describe('OpenID Connect records\' expiry across gateway processes whose clocks disagree, on PostgreSQL', () => {
  let ahead: GatewayProcess & { url: string }
  let behind: GatewayProcess & { url: string }
  let db: pg.Client
  let drop: () => Promise<void>
  let dir: string | undefined

  before(async () => {
    const database = await createTestDatabase()
    drop = database.drop
    const configDir = dir = tempDir()
    const ports = [await freePort(), await freePort()]
    const config = readFileSync(demoConfigFile, 'utf8')
      .replace(/^server:\n/m, `server:\n  public_url: http://127.0.0.1:${ports[0]}\n`)
      .replace(/^ {2}- name: platform\n/m, `  - name: platform\n    sso_session_idle_seconds: ${SSO_SESSION_IDLE_SECONDS}\n`)
    writeFileSync(join(configDir, 'gatehouse.yaml'), config)
    const spawn = (port: number, env?: Record<string, string>) => spawnAtPort(join(configDir, 'gatehouse.yaml'), database.url, port, env)
    ahead = await spawn(ports[0]!, skewedClock(SKEW_MS))
    behind = await spawn(ports[1]!, skewedClock(-SKEW_MS))
    db = new pg.Client({ connectionString: database.url })
    await db.connect()
  })
  after(async () => {
    await db?.end()
    await Promise.all([ahead?.stop(), behind?.stop()])
    await drop?.()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const name = (gateway: GatewayProcess) => gateway === ahead ? 'ahead' : 'behind'
  const tokenRequest = (gateway: GatewayProcess & { url: string }, form: Record<string, string>) =>
    fetch(gateway.url + TOKEN_PATH, { method: 'POST', body: new URLSearchParams({ client_id: 'end-users', ...form }) })
  async function passwordGrant(gateway: GatewayProcess & { url: string }, username: string, password: string): Promise<{ refresh_token: string }> {
    const response = await tokenRequest(gateway, { grant_type: 'password', username, password })
    const body = await response.text()
    assert.equal(response.status, 200, `${name(gateway)}: ${body}\n${gateway.output()}`)
    return JSON.parse(body)
  }
  async function createUser(username: string): Promise<string> {
    const password = `${username}-password-long`
    const created = await fetch(`${ahead.url}/api/gateway/v1/users/`, {
      method: 'POST', headers: { authorization: basic('admin', ADMIN_PASSWORD), 'content-type': 'application/json' }, body: JSON.stringify({ username, password }),
    })
    assert.equal(created.status, 201)
    return password
  }
  /** The expiry the database has for a refresh token's record, in epoch ms. */
  async function recordExpiry(refreshToken: string): Promise<number> {
    const { rows } = await db.query(`SELECT expires_at FROM oidc_records WHERE model = 'RefreshToken' AND id = $1`, [decodeJwtPart(refreshToken, 1).jti])
    assert.equal(rows.length, 1)
    return Number(rows[0].expires_at)
  }

  for (const [issuer, user] of [['ahead', 'fast'], ['behind', 'slow']] as const) {
    it(`a refresh token issued on the process whose clock runs ${issuer} expires in the database when its exp says, and refreshes on the other process`, async () => {
      const issuing = issuer === 'ahead' ? ahead : behind
      const other = issuer === 'ahead' ? behind : ahead
      const { refresh_token: refreshToken } = await passwordGrant(issuing, user, await createUser(user))
      // Its lifetime is shorter than the clocks are apart: the other process finds its record until it expires.
      const refreshed = await tokenRequest(other, { grant_type: 'refresh_token', refresh_token: refreshToken })
      assert.equal(refreshed.status, 200, `${name(other)}: ${await refreshed.text()}`)
      // Its exp is the database's time plus its lifetime (provider-clock.ts), and so is its record's expiry, within a
      // second, not the two minutes either process's own clock is off: past it, no process finds the record. The exp is
      // whole seconds of a clock read as the token is made, the record's expiry its remaining lifetime added to a read
      // as it is written, which now and then falls in the next second (1,000 ms apart, seen under load).
      const exp = decodeJwtPart(refreshToken, 1).exp * 1000
      const expiresAt = await recordExpiry(refreshToken)
      assert.ok(expiresAt - exp > -1000 && expiresAt - exp < 2000, `record ${expiresAt}, exp ${exp}`)
    })
  }
})
