import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { PASSWORDS, startDirectory, type TestDirectory } from '../helpers/ldap.ts'
import { browse, CLIENT_REDIRECT, CookieJar, realmUrl, testRealms, TO_PROVIDER, TOKEN_PATH } from '../helpers/oidc.ts'

const LOOKUP_SECONDS = 1

/**
 * A realm's doors while the directory hangs (slapd stopped with SIGSTOP): a directory login is answered as an outage
 * in each door's own shape, never as a failure of Gatehouse's own.
 */
describe('a realm\'s logins while the directory hangs', () => {
  let directory: TestDirectory
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []
  before(async () => {
    directory = await startDirectory()
    gw = await startGateway({
      logLines,
      config: { realms: testRealms, ldap: directory.config({ timeouts: { connect_seconds: 1, lookup_seconds: LOOKUP_SECONDS } }), auth: { basic_cache_seconds: 0 } },
    })
  })
  after(async () => {
    directory?.resume()
    await gw?.close()
    await directory?.close()
  })

  const grant = (username: string, extra = '') => gw.fetch(TOKEN_PATH, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username, password: PASSWORDS[username]! }).toString() + extra,
    signal: AbortSignal.timeout(10_000),
  })

  it('answers the password grant 503 temporarily_unavailable with Retry-After, however answered, and logs no failure of its own', async () => {
    directory.pause()
    try {
      for (const [username, extra] of [['bob', ''], ['carol', TO_PROVIDER]] as const) {
        const started = Date.now()
        const response = await grant(username, extra)
        const body = await response.json() as Record<string, unknown>
        assert.equal(response.status, 503, `${username}: ${JSON.stringify(body)}`)
        assert.deepEqual(body, { error: 'temporarily_unavailable', error_description: `The directory did not answer within ${LOOKUP_SECONDS} s.` })
        assert.equal(response.headers.get('retry-after'), '5')
        assert.ok(Date.now() - started < LOOKUP_SECONDS * 1000 + 1500, `took ${Date.now() - started} ms`)
      }
    } finally {
      directory.resume()
    }
    assert.deepEqual(logLines.filter((line) => line.msg === 'OpenID Connect provider failed'), [])
    assert.ok(logLines.filter((line) => line.code === 'directory_unavailable' && line.msg === 'the directory could not be used').length >= 2)
    assert.equal((await grant('bob')).status, 200, 'works again once the directory is back')
  })
})
