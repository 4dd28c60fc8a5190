import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'

const run = promisify(execFile)

/** Runs the real curl binary (asynchronously: the gateway answers from this same process). */
async function curl(...args: string[]): Promise<string> {
  const { stdout } = await run('curl', ['--silent', '--show-error', ...args], { maxBuffer: 10 * 1024 * 1024 })
  return stdout
}

/** Cookie-jar lines (`curl -c -`): domain, include-subdomains, path, secure, expiry, name, value. */
function jarCookies(jar: string): Map<string, string[]> {
  const cookies = new Map<string, string[]>()
  for (const line of jar.split('\n')) {
    const fields = line.replace(/^#HttpOnly_/, '').split('\t')
    if (fields.length === 7 && !line.startsWith('# ')) cookies.set(fields[5]!, fields)
  }
  return cookies
}

describe('the second document\'s curl session login, run with real curl', () => {
  let gw: TestGateway
  const password = 'alice-curl-password'
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'alice', password })
  })
  after(() => gw.close())

  it('gets a CSRF token, logs in, and calls the gateway and a service with the session cookie', async () => {
    // curl -k -c - https://<address>/api/gateway/v1/login/
    const jar = jarCookies(await curl('-k', '-c', '-', `${gw.url}/api/gateway/v1/login/`))
    const csrf = jar.get('csrftoken')
    assert.ok(csrf, 'the cookie jar has csrftoken')
    assert.deepEqual(csrf.slice(0, 6), ['127.0.0.1', 'FALSE', '/', 'FALSE', '0', 'csrftoken'], 'a session cookie for the whole site, as the document shows')
    const token = csrf[6]!

    // curl -X POST -H 'Content-Type: application/x-www-form-urlencoded' --referer .../login/ -H 'X-CSRFToken: <token>'
    //   --data 'username=<username>&password=<password>' --cookie 'csrftoken=<token>' .../login/ -k -D - -o /dev/null
    const headers = await curl('-X', 'POST', '-H', 'Content-Type: application/x-www-form-urlencoded',
      '--referer', `${gw.url}/api/gateway/v1/login/`,
      '-H', `X-CSRFToken: ${token}`,
      '--data', `username=alice&password=${password}`,
      '--cookie', `csrftoken=${token}`,
      `${gw.url}/api/gateway/v1/login/`, '-k', '-D', '-', '-o', '/dev/null')
    assert.match(headers, /^HTTP\/1\.1 302 /)
    const setCookie = /^set-cookie: gateway_sessionid=([^;\r\n]+);([^\r\n]*)/im.exec(headers)
    assert.ok(setCookie, headers)
    const sessionId = setCookie[1]!
    for (const attribute of ['HttpOnly', 'SameSite=Lax', 'Path=/', 'Max-Age=900']) assert.ok(setCookie[2]!.includes(attribute), attribute)

    // curl -X GET --cookie "gateway_sessionid=<session_ID>" https://<address>/api/<component>/<api_endpoint> -k -L | jq
    const me = JSON.parse(await curl('-X', 'GET', '--cookie', `gateway_sessionid=${sessionId}`, `${gw.url}/api/gateway/v1/me/`, '-k', '-L'))
    assert.equal(me.results[0].username, 'alice')
    const hosts = JSON.parse(await curl('-X', 'GET', '--cookie', `gateway_sessionid=${sessionId}`, `${gw.url}/api/controller/v2/hosts/`, '-k', '-L'))
    assert.equal(hosts.service, 'controller')
    assert.deepEqual(hosts.identity, { username: 'alice', user_id: hosts.identity.user_id, auth_method: 'session', verified: true })
    const galaxy = JSON.parse(await curl('--cookie', `gateway_sessionid=${sessionId}`, `${gw.url}/api/galaxy/v1/x/`, '-k', '-L'))
    assert.equal(galaxy.identity.username, 'alice')
    // The demo's eda service lets in only the people its access rules name (docs/access.md); alice is in no team.
    const eda = JSON.parse(await curl('--cookie', `gateway_sessionid=${sessionId}`, `${gw.url}/api/eda/v1/x/`, '-k', '-L'))
    assert.equal(eda.code, 'access_denied')
  })

  it('logs in like a browser without JavaScript: the form, its hidden token, a cookie jar and the redirect', async () => {
    const dir = tempDir()
    try {
      const jar = join(dir, 'cookies.txt')
      const page = await curl('-c', jar, '-b', jar, `${gw.url}/api/gateway/v1/login/?next=/api/controller/v2/hosts/`)
      const token = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(page)?.[1]
      const next = /name="next" value="([^"]+)"/.exec(page)?.[1]
      assert.ok(token && next)
      const landed = JSON.parse(await curl('-c', jar, '-b', jar, '-L', '--referer', `${gw.url}/api/gateway/v1/login/`,
        '--data-urlencode', 'username=alice', '--data-urlencode', `password=${password}`,
        '--data-urlencode', `csrfmiddlewaretoken=${token}`, '--data-urlencode', `next=${next}`,
        `${gw.url}/api/gateway/v1/login/`))
      assert.equal(landed.path, '/api/controller/v2/hosts/')
      assert.equal(landed.identity.auth_method, 'session')
      const wrong = await curl('-b', jar, '-H', 'Accept: text/html', '-w', '%{http_code}',
        '--data-urlencode', 'username=alice', '--data-urlencode', 'password=wrong',
        '--data-urlencode', `csrfmiddlewaretoken=${jarCookies(readFileSync(jar, 'utf8')).get('csrftoken')![6]}`,
        `${gw.url}/api/gateway/v1/login/`)
      assert.match(wrong, /role="alert"/)
      assert.ok(wrong.endsWith('401'))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
