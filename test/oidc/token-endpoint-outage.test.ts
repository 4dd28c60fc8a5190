import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts'
import { passwordLogin, REALM, SERVICE_SECRET, testRealms, TOKEN_PATH, watchProviderEvent } from '../helpers/oidc.ts'

const PASSWORD = 'erin-password-long'
/** What every path of the token endpoint answers while the database does not (src/oidc/keycloak-format.ts `tokenEndpointFailure`). */
const UNAVAILABLE = { error: 'temporarily_unavailable', error_description: 'The database is not available; try again shortly.' }

interface Answer {
  status: number
  headers: Headers
  text: string
}

async function post(gw: TestGateway, form: Record<string, string>, path = TOKEN_PATH, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await gw.fetch(path, { method: 'POST', headers, body: new URLSearchParams(form), signal: AbortSignal.timeout(10_000) })
  return { status: response.status, headers: response.headers, text: await response.text() }
}

/** The token endpoint's error shape, as OAuth and Keycloak's clients parse it, for an outage: nothing else in it. */
function assertUnavailable(answer: Answer, what: string): void {
  assert.equal(answer.status, 503, `${what}: ${answer.text}`)
  assert.deepEqual(JSON.parse(answer.text), UNAVAILABLE, what)
  assert.match(answer.headers.get('content-type') ?? '', /^application\/json\b/, what)
  assert.equal(answer.headers.get('retry-after'), '5', what)
  assert.equal(answer.headers.get('cache-control'), 'no-store', what)
}

/**
 * The realms' token endpoint on a database that fails in the middle of a grant (a throwaway PostgreSQL cluster of
 * the test's own, stopped, or made to hang on one statement): each way a grant is answered (the refresh_token and
 * client_credentials shortcuts, oidc-provider's grants, the token lane and Fastify's route) answers the same
 * OAuth error, never Gatehouse's own error shape, a stack trace or anything the client sent.
 */
describe('the token endpoint while the database fails', () => {
  let cluster: PgCluster
  let gw: TestGateway
  /** The failures oidc-provider answered itself (its `server_error` event), which a shortcut's are not. */
  let providerFailures: { readonly count: number }
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    cluster = await startPgCluster()
    gw = await startGateway({ databaseUrl: cluster.url, config: { realms: testRealms }, logLines })
    await gw.app.accounts.create({ username: 'erin', password: PASSWORD })
    providerFailures = watchProviderEvent(gw, 'server_error')
  })
  after(async () => {
    await gw?.close()
    cluster?.destroy()
  })

  const refreshForm = (clientId: string, refreshToken: string) => ({
    client_id: clientId, ...(clientId === 'reports' ? { client_secret: SERVICE_SECRET } : {}), grant_type: 'refresh_token', refresh_token: refreshToken,
  })

  /** The answer, asserted to be oidc-provider's (`byProvider`) or a shortcut's. */
  async function answeredBy(byProvider: boolean, answer: Promise<Answer>): Promise<Answer> {
    const before = providerFailures.count
    const answered = await answer
    assert.equal(providerFailures.count - before, byProvider ? 1 : 0, byProvider ? 'answered by oidc-provider' : 'answered by the shortcut')
    return answered
  }

  /** Inserts of refresh token records wait past the gateway's query timeout; a token is still consumed (an update). */
  async function hangRefreshTokenInserts(db: pg.Client): Promise<void> {
    await db.query(`CREATE OR REPLACE FUNCTION hang_refresh_token_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.model = 'RefreshToken' THEN PERFORM pg_sleep(30); END IF;
        RETURN NEW;
      END $$`)
    await db.query('CREATE TRIGGER hang_refresh_token_inserts BEFORE INSERT ON oidc_records FOR EACH ROW EXECUTE FUNCTION hang_refresh_token_inserts()')
  }

  async function consumedAt(db: pg.Client, refreshToken: string): Promise<unknown> {
    const { jti } = (await gw.app.oidc.get(REALM)!.refreshToken(refreshToken))!
    return (await db.query("SELECT consumed_at FROM oidc_records WHERE model = 'RefreshToken' AND id = $1", [jti])).rows[0]?.consumed_at
  }

  it('answers a refresh whose new token cannot be saved once the old one is consumed; that one stays consumed where reuse is detected', async () => {
    // `reports` detects reuse (its used refresh tokens are marked consumed); `end-users` does not.
    const reports = await passwordLogin(gw, 'erin', PASSWORD, { client_id: 'reports', client_secret: SERVICE_SECRET })
    const endUsers = await passwordLogin(gw, 'erin', PASSWORD)
    const db = new pg.Client({ connectionString: cluster.url })
    await db.connect()
    await hangRefreshTokenInserts(db)
    try {
      logLines.length = 0
      assertUnavailable(await answeredBy(false, post(gw, refreshForm('reports', reports.refresh_token))), 'refresh by a client with reuse detection')
      assertUnavailable(await answeredBy(false, post(gw, refreshForm('end-users', endUsers.refresh_token))), 'refresh by a client without')
      // The failure came after the old token was consumed.
      assert.notEqual(await consumedAt(db, reports.refresh_token), null)
      const requestLines = logLines.filter((line) => line.msg === 'request' && line.path === TOKEN_PATH)
      assert.deepEqual(requestLines.map((line) => [line.status, line.code]), [[503, 'database_unavailable'], [503, 'database_unavailable']])
      const logged = JSON.stringify(logLines)
      for (const secret of [SERVICE_SECRET, reports.refresh_token, endUsers.refresh_token]) assert.ok(!logged.includes(secret), 'nothing the client sent is logged')
    } finally {
      await db.query('DROP TRIGGER hang_refresh_token_inserts ON oidc_records')
      await db.end()
    }
    // The database back, the consumed token is taken for a stolen one (and its session ends), as any reused one.
    const reused = await post(gw, refreshForm('reports', reports.refresh_token))
    assert.equal(reused.status, 400, reused.text)
    assert.deepEqual(JSON.parse(reused.text), { error: 'invalid_grant', error_description: 'Maximum allowed refresh token reuse exceeded' })
    // A client without reuse detection refreshes with the same token again.
    const retried = await post(gw, refreshForm('end-users', endUsers.refresh_token))
    assert.equal(retried.status, 200, retried.text)
  })

  it('answers the client_credentials and password shortcuts, oidc-provider\'s grants and Fastify\'s route alike while the database is down', async () => {
    const endUsers = await passwordLogin(gw, 'erin', PASSWORD)
    cluster.stop()
    try {
      const clientCredentials = { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' }
      assertUnavailable(await answeredBy(false, post(gw, clientCredentials)), 'client_credentials (the shortcut)')
      const basic = { authorization: `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}` }
      assertUnavailable(await answeredBy(false, post(gw, { grant_type: 'client_credentials' }, TOKEN_PATH, basic)), 'client_credentials with HTTP basic (the shortcut)')
      const passwordForm = { client_id: 'end-users', grant_type: 'password', username: 'erin', password: PASSWORD }
      assertUnavailable(await answeredBy(false, post(gw, passwordForm)), 'password (the shortcut)')
      // A member the shortcut does not take: the login is oidc-provider's.
      assertUnavailable(await answeredBy(true, post(gw, { ...passwordForm, ignored: '1' })), 'password with another member (oidc-provider)')
      // A member the shortcut does not take: the refresh is oidc-provider's.
      assertUnavailable(await answeredBy(true, post(gw, { ...refreshForm('end-users', endUsers.refresh_token), scope: 'openid' })), 'refresh with a scope (oidc-provider)')
      // A query string: Fastify's route, and oidc-provider's grant.
      assertUnavailable(await answeredBy(true, post(gw, clientCredentials, `${TOKEN_PATH}?via=route`)), 'client_credentials on Fastify\'s route')
      // The endpoints beside it that programs call answer an outage as it does, not with oidc-provider's "oops".
      const endpoints = TOKEN_PATH.replace(/\/token$/, '')
      assertUnavailable(await post(gw, {}, `${endpoints}/userinfo`, { authorization: `Bearer ${endUsers.access_token}` }), 'userinfo')
      assertUnavailable(await post(gw, { token: endUsers.access_token }, `${endpoints}/token/introspect`, basic), 'introspection')
      assertUnavailable(await post(gw, { token: endUsers.refresh_token }, `${endpoints}/revoke`, basic), 'revocation')
    } finally {
      cluster.start()
    }
    const errors = logLines.filter((line) => typeof line.level === 'number' && line.level >= 50)
    assert.deepEqual(errors, [], 'an outage is no error of Gatehouse\'s own')
  })
})
