import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { gunzipSync } from 'node:zlib'
import { demoConfigFile, loadConfigFile, validateConfig } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, adminAuth, json, repoRoot, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login, type LoggedIn } from '../helpers/session.ts'

const STATIC = join(repoRoot, 'src/ui/static')

/** A GET sent byte for byte as written (fetch would normalise dot segments and decode nothing). */
function rawGet(url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    request({ hostname, port, path, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    }).on('error', reject).end()
  })
}

describe('serving the web interface', () => {
  let gw: TestGateway
  let admin: LoggedIn
  let user: LoggedIn
  const page = (path: string, session?: LoggedIn, headers: Record<string, string> = {}) =>
    gw.fetch(path, { headers: { accept: 'text/html', ...(session ? { cookie: session.cookie } : {}), ...headers } })

  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'gina', password: 'gina-password' })
    admin = await login(gw, 'admin', ADMIN_PASSWORD)
    user = await login(gw, 'gina', 'gina-password')
  })
  after(() => gw.close())

  it('sends / and /ui to the interface', async () => {
    for (const path of ['/', '/ui']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 302, path)
      assert.equal(response.headers.get('location'), '/ui/')
    }
  })

  it('sends a visitor without a session to the login page, remembering the page', async () => {
    for (const headers of [{}, { accept: '*/*' }, adminAuth]) {
      const response = await gw.fetch('/ui/admin/users?username=gina', { headers })
      assert.equal(response.status, 302)
      assert.equal(response.headers.get('location'), '/api/gateway/v1/login/?next=%2Fui%2Fadmin%2Fusers%3Fusername%3Dgina')
    }
    const stale = await page('/ui/', undefined, { cookie: 'gateway_sessionid=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
    assert.equal(stale.status, 302, 'an ended or made-up session counts as none')
  })

  it('serves the page shell to a session, with a strict content security policy', async () => {
    const response = await page('/ui/tokens', user)
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/)
    const csp = response.headers.get('content-security-policy') ?? ''
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) {
      assert.ok(csp.includes(directive), `${directive} in ${csp}`)
    }
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/)
    assert.equal(response.headers.get('x-frame-options'), 'DENY')
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff')
    assert.equal(response.headers.get('cache-control'), 'no-store')
    const html = await response.text()
    assert.match(html, /<script type="module" src="\/ui\/assets\/js\/app\.js"><\/script>/)
    assert.match(html, /<link rel="modulepreload" href="\/ui\/assets\/js\/pages\/tokens\.js">/)
    assert.doesNotMatch(html, /<script>|<style|style="|\son[a-z]+=/i, 'nothing inline that the policy would block')
  })

  it('answers 403 on administration pages for a user who is not a superuser', async () => {
    assert.equal((await page('/ui/admin/settings', user)).status, 403)
    assert.equal((await page('/ui/admin/settings', admin)).status, 200)
    assert.equal((await page('/ui/account', user)).status, 200)
  })

  it('answers 404 for an address under /ui/ that is no page, with the shell that says so', async () => {
    const shell = await (await page('/ui/account', user)).text()
    for (const path of ['/ui/nowhere', '/ui/tokens/extra', '/ui/admin/users/abc', '/ui/admin/users/0', '/ui/admin/nowhere']) {
      const response = await page(path, admin)
      assert.equal(response.status, 404, path)
      assert.match(response.headers.get('content-type') ?? '', /^text\/html/, path)
      assert.equal(response.headers.get('cache-control'), 'no-store', path)
      assert.equal(await response.text(), shell, `${path}: the page itself says there is no page here`)
    }
    for (const path of ['/ui/', '/ui/account', '/ui/tokens', '/ui/sessions', '/ui/access', '/ui/admin/users', '/ui/admin/users/new', '/ui/admin/users/12',
      '/ui/admin/tokens', '/ui/admin/sessions', '/ui/admin/applications', '/ui/admin/settings', '/ui/admin/services', '/ui/admin/activity']) {
      assert.equal((await page(path, admin)).status, 200, path)
    }
    assert.equal((await page('/ui/nowhere')).status, 302, 'without a session, the login comes first')
    assert.equal((await page('/ui/admin/nowhere', user)).status, 403, 'administration is refused before it is looked up')
  })

  it('answers 405 naming GET for any other method on a page or file, as a page to browsers and JSON to programs', async () => {
    for (const path of ['/ui', '/ui/', '/ui/account', '/ui/admin/users', '/ui/nowhere', '/ui/assets/app.css']) {
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
        const program = await gw.fetch(path, { method, headers: { accept: 'application/json', cookie: admin.cookie, 'x-csrftoken': admin.csrf } })
        assert.equal(program.status, 405, `${method} ${path}`)
        assert.equal(program.headers.get('allow'), 'GET, HEAD, OPTIONS', `${method} ${path}`)
        assert.equal((await json(program)).code, 'method_not_allowed', `${method} ${path}`)
      }
      const browser = await gw.fetch(path, { method: 'POST', headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' })
      assert.equal(browser.status, 405, path)
      assert.match(browser.headers.get('content-type') ?? '', /^text\/html/, path)
      assert.match(await browser.text(), /<code>method_not_allowed<\/code>/, path)
      const options = await gw.fetch(path, { method: 'OPTIONS' })
      assert.equal(options.status, 204, path)
      assert.equal(options.headers.get('allow'), 'GET, HEAD, OPTIONS', path)
    }
  })

  it('serves scripts and the stylesheet with their types, revalidated by ETag, gzipped on request', async () => {
    const script = await gw.fetch('/ui/assets/js/app.js')
    assert.equal(script.status, 200)
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8')
    assert.equal(script.headers.get('cache-control'), 'no-cache')
    const etag = script.headers.get('etag')
    assert.ok(etag)
    const source = await script.text()
    assert.equal(source, readFileSync(join(STATIC, 'js/app.js'), 'utf8'))

    const again = await gw.fetch('/ui/assets/js/app.js', { headers: { 'if-none-match': etag } })
    assert.equal(again.status, 304)
    assert.equal(await again.text(), '')

    const css = await gw.fetch('/ui/assets/app.css', { headers: { 'accept-encoding': 'identity' } })
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8')
    assert.equal(css.headers.get('content-encoding'), null)

    const gzipped = await rawGet(gw.url, '/ui/assets/js/app.js', { 'accept-encoding': 'gzip' })
    assert.equal(gzipped.headers['content-encoding'], 'gzip')
    assert.equal(gunzipSync(gzipped.body).toString('utf8'), source)
  })

  it('gzips only for a client that takes gzip: named or as *, in any case, and not with weight 0 (RFC 9110 §12.5.3)', async () => {
    const encodings: [string, string | undefined][] = [
      ['gzip;q=0, identity', undefined], ['gzip; q=0.000', undefined], ['*;q=0', undefined], ['br, *;q=0', undefined], ['*, gzip;q=0', undefined],
      ['GZIP', 'gzip'], ['identity;q=0.5, gzip;q=0.1', 'gzip'], ['*', 'gzip'], ['br, gzip;q=1.0', 'gzip'],
    ]
    for (const [acceptEncoding, expected] of encodings) {
      const answer = await rawGet(gw.url, '/ui/assets/js/app.js', { 'accept-encoding': acceptEncoding })
      assert.equal(answer.headers['content-encoding'], expected, acceptEncoding)
    }
  })

  it('serves only the interface\'s own files', async () => {
    for (const path of ['/ui/assets/nope.js', '/ui/assets/tsconfig.json', '/ui/assets/index.html']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 404, path)
      assert.equal((await json(response)).code, 'not_found')
    }
    for (const path of ['/ui/assets/%2e%2e/%2e%2e/routes.ts', '/ui/assets/../routes.ts', '/ui/assets/js%2f..%2f..%2froutes.ts']) {
      const escape = await rawGet(gw.url, path)
      assert.equal(escape.status, 400, path)
      assert.equal(JSON.parse(escape.body.toString()).code, 'unsafe_path')
    }
  })

  it('has no script that turns text into markup or code', () => {
    const files = readdirSync(join(STATIC, 'js'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'))
    assert.ok(files.length >= 5)
    for (const file of files) {
      const source = readFileSync(join(STATIC, 'js', file), 'utf8')
      assert.doesNotMatch(source, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/, file)
    }
  })

  it('refuses a service prefix under /ui/ in the configuration', () => {
    const demo = loadConfigFile(demoConfigFile)
    assert.throws(() => validateConfig({ ...demo, services: [{ name: 'x', prefix: '/ui/x/', upstream: 'http://127.0.0.1:1' }] }), /must not be under \/ui\//)
  })
})

describe('the gateway API answering the web interface\'s scripts', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  it('leaves out the Basic challenge for scripts that handle 401 themselves, so browsers show no password dialog', async () => {
    const plain = await gw.fetch('/api/gateway/v1/me/')
    assert.equal(plain.status, 401)
    assert.match(plain.headers.get('www-authenticate') ?? '', /Basic realm/)

    const script = await gw.fetch('/api/gateway/v1/me/', { headers: { 'x-requested-with': 'XMLHttpRequest', cookie: 'gateway_sessionid=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } })
    assert.equal(script.status, 401)
    assert.equal((await json(script)).code, 'invalid_session')
    const challenge = script.headers.get('www-authenticate') ?? ''
    assert.doesNotMatch(challenge, /Basic/i)
    assert.match(challenge, /Bearer realm/)

    // A service's refusal too: demo-app takes basic credentials or an OIDC bearer token.
    const service = await gw.fetch('/demo-app/', { headers: { 'x-requested-with': 'XMLHttpRequest', accept: 'application/json' } })
    assert.equal(service.status, 401)
    assert.equal(service.headers.get('www-authenticate'), 'Bearer realm="Gatehouse"')
  })
})
