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
    assert.equal((await grant('alice')).status, 200, 'the realm answers (and is warm) before the directory hangs')
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

  it('shows the realm\'s login page again with the message and Retry-After, rather than an error page', async () => {
    const jar = new CookieJar()
    const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'browser-only', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })}`))
    const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
    const submit = () => browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username: 'dave', password: PASSWORDS.dave! }).toString(), signal: AbortSignal.timeout(10_000) })
    directory.pause()
    let unavailable: Awaited<ReturnType<typeof browse>>
    try {
      unavailable = await submit()
    } finally {
      directory.resume()
    }
    assert.equal(unavailable.response.status, 503)
    assert.equal(unavailable.response.headers.get('retry-after'), '5')
    const html = await unavailable.response.text()
    // Which outage it says depends on where the hang is met: a lookup that waits out its time, or (on a loaded
    // machine) a connection that does not come up within connect_seconds, which equals it here.
    assert.match(html, new RegExp(`<p class="error" id="login-error" role="alert">The directory (did not answer within ${LOOKUP_SECONDS} s|could not be reached)\\.</p>`))
    assert.match(html, /<form method="post"/)
    assert.match(html, /value="dave"/)
    const done = await submit()
    assert.ok(new URL(done.url).searchParams.get('code'), 'the same form signs in once the directory is back')
  })
})
