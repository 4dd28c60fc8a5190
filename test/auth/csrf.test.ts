import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { csrfToken, LOGIN, login, setCookie, withCsrf } from '../helpers/session.ts'

const form = 'username=alice&password=alice-password'

function postLogin(gw: TestGateway, headers: Record<string, string>, body = form): Promise<Response> {
  return gw.fetch(LOGIN, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body })
}

describe('CSRF protection', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({
      config: { server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'], trusted_origins: ['https://ui.example.com', 'https://*.apps.example.com', 'http://*.dev.example.com:8080'] } },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  it('says which part is missing or wrong, and logs nobody in', async () => {
    const token = await csrfToken(gw)
    const cases: [Record<string, string>, string][] = [
      [{}, 'csrf_cookie_missing'],
      [{ 'x-csrftoken': token }, 'csrf_cookie_missing'],
      [{ cookie: `csrftoken=${token}` }, 'csrf_token_missing'],
      [{ cookie: `csrftoken=${token}`, 'x-csrftoken': token.slice(1) + 'x' }, 'csrf_token_incorrect'],
      [{ cookie: `csrftoken=${token}`, 'x-csrftoken': 'short' }, 'csrf_token_incorrect'],
      [{ cookie: 'csrftoken=bad!token', 'x-csrftoken': 'bad!token' }, 'csrf_cookie_malformed'],
    ]
    for (const [headers, code] of cases) {
      const response = await postLogin(gw, headers)
      assert.equal(response.status, 403, code)
      assert.equal((await json(response)).code, code)
      assert.equal(setCookie(response, 'gateway_sessionid'), undefined)
    }
    assert.equal((await gw.store.sessions.list({ offset: 0, limit: 10, now: Date.now() })).count, 0)
  })

  it('accepts the token as the csrfmiddlewaretoken form field, as HTML forms send it', async () => {
    const token = await csrfToken(gw)
    const response = await postLogin(gw, { cookie: `csrftoken=${token}` }, `${form}&csrfmiddlewaretoken=${token}`)
    assert.equal(response.status, 302)
    const wrong = await postLogin(gw, { cookie: `csrftoken=${token}`, 'x-csrftoken': token }, `${form}&csrfmiddlewaretoken=${'x'.repeat(64)}`)
    assert.equal((await json(wrong)).code, 'csrf_token_incorrect')
  })

  it('refuses a request whose Origin is another site, and accepts a trusted origin', async () => {
    const token = await csrfToken(gw)
    const headers = { cookie: `csrftoken=${token}`, 'x-csrftoken': token }
    for (const origin of ['https://evil.example', 'null', 'http://127.0.0.1']) {
      const response = await postLogin(gw, { ...headers, origin })
      assert.equal(response.status, 403, origin)
      assert.equal((await json(response)).code, 'csrf_origin_mismatch')
    }
    assert.equal((await postLogin(gw, { ...headers, origin: gw.url })).status, 302)
    assert.equal((await postLogin(gw, { ...headers, origin: 'https://ui.example.com' })).status, 302)
  })

  it('trusts every name under the domain of a https://*.domain origin, with its scheme and port, as Django does', async () => {
    // Accepted by the configuration check and then never matched (the host was taken as the literal `*.apps.example.com`).
    const token = await csrfToken(gw)
    const headers = { cookie: `csrftoken=${token}`, 'x-csrftoken': token }
    const trusted = ['https://a.apps.example.com', 'https://b.a.apps.example.com', 'https://apps.example.com', 'http://x.dev.example.com:8080', 'https://A.Apps.Example.com']
    for (const origin of trusted) assert.equal((await postLogin(gw, { ...headers, origin })).status, 302, origin)
    const untrusted = ['http://a.apps.example.com', 'https://a.apps.example.com:8443', 'https://aapps.example.com', 'https://a.apps.example.com.evil.example',
      'https://example.com', 'http://x.dev.example.com', 'https://x.dev.example.com:8080', 'file:///etc/passwd', 'null']
    for (const origin of untrusted) {
      const response = await postLogin(gw, { ...headers, origin })
      assert.equal(response.status, 403, origin)
      assert.equal((await json(response)).code, 'csrf_origin_mismatch', origin)
    }
    // A session's write from such a page, and its Referer on HTTPS.
    const session = await login(gw, 'alice', 'alice-password')
    const extend = (extra: Record<string, string>) => gw.fetch('/api/gateway/v1/session/', { method: 'POST', headers: withCsrf(session, extra) })
    assert.equal((await extend({ origin: 'https://ui.apps.example.com' })).status, 200)
    assert.equal((await json(await extend({ origin: 'https://ui.apps.example.org' }))).code, 'csrf_origin_mismatch')
    const https = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gate.example.com' }
    assert.equal((await extend({ ...https, origin: 'https://ui.apps.example.com', referer: 'https://ui.apps.example.com/page' })).status, 200)
    assert.equal((await json(await extend({ ...https, referer: 'https://ui.apps.example.org/page' }))).code, 'csrf_referer_mismatch')
  })

  it('requires a same-origin HTTPS Referer on HTTPS (behind a proxy that says so) from a request without an Origin', async () => {
    const token = await csrfToken(gw)
    const https = { cookie: `csrftoken=${token}`, 'x-csrftoken': token, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gate.example.com' }
    const cases: [Record<string, string>, string][] = [
      [{}, 'csrf_referer_missing'],
      [{ referer: 'not a url' }, 'csrf_referer_malformed'],
      [{ referer: 'http://gate.example.com/api/gateway/v1/login/' }, 'csrf_referer_insecure'],
      [{ referer: 'https://evil.example/api/gateway/v1/login/' }, 'csrf_referer_mismatch'],
      [{ referer: 'https://gate.example.com.evil.example/' }, 'csrf_referer_mismatch'],
    ]
    for (const [extra, code] of cases) {
      const response = await postLogin(gw, { ...https, ...extra })
      assert.equal(response.status, 403, code)
      assert.equal((await json(response)).code, code)
    }
    const ok = await postLogin(gw, { ...https, referer: 'https://gate.example.com/api/gateway/v1/login/' })
    assert.equal(ok.status, 302)
    assert.match(setCookie(ok, 'gateway_sessionid')!.attributes, /(^|; )Secure(;|$)/)
    assert.match(setCookie(ok, 'csrftoken')!.attributes, /(^|; )Secure(;|$)/)
    assert.equal((await postLogin(gw, { ...https, referer: 'https://ui.example.com/login' })).status, 302, 'trusted origin')
    const plain = await postLogin(gw, { cookie: `csrftoken=${token}`, 'x-csrftoken': token })
    assert.equal(plain.status, 302, 'plain HTTP needs no Referer, as in Django')
    // A trusted Origin stands for the Referer (a page with Referrer-Policy: no-referrer), as in Django 4.0 and later;
    // an untrusted one is refused whatever the Referer says.
    for (const origin of ['https://gate.example.com', 'https://ui.example.com']) {
      assert.equal((await postLogin(gw, { ...https, origin })).status, 302, origin)
      assert.equal((await postLogin(gw, { ...https, origin, referer: 'https://elsewhere.example/' })).status, 302, `${origin}, the Referer unread`)
    }
    const untrusted = await postLogin(gw, { ...https, origin: 'https://evil.example', referer: 'https://gate.example.com/api/gateway/v1/login/' })
    assert.equal((await json(untrusted)).code, 'csrf_origin_mismatch')
    assert.doesNotMatch(setCookie(plain, 'gateway_sessionid')!.attributes, /Secure/)
  })

  it('checks the Referer of session writes to a service on HTTPS too', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const https = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gate.example.com' }
    const refused = await gw.fetch('/api/controller/v2/hosts/', { method: 'POST', headers: withCsrf(session, https) })
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'csrf_referer_missing')
    const ok = await gw.fetch('/api/controller/v2/hosts/', { method: 'POST', headers: withCsrf(session, { ...https, referer: 'https://gate.example.com/ui/' }) })
    assert.equal(ok.status, 200)
  })

  it('treats the whole site as HTTPS when the public URL is https', async () => {
    const url = gw.app.publicUrl
    gw.app.publicUrl = 'https://gate.example.org'
    try {
      const token = await csrfToken(gw)
      const headers = { cookie: `csrftoken=${token}`, 'x-csrftoken': token }
      assert.equal((await json(await postLogin(gw, headers))).code, 'csrf_referer_missing')
      const ok = await postLogin(gw, { ...headers, referer: 'https://gate.example.org/api/gateway/v1/login/' })
      assert.equal(ok.status, 302)
      assert.match(setCookie(ok, 'gateway_sessionid')!.attributes, /(^|; )Secure(;|$)/)
    } finally {
      gw.app.publicUrl = url
    }
  })

  it('refuses a gateway API write with basic credentials from another site\'s page, as a browser resends them', async () => {
    const alice = { authorization: basic('alice', 'alice-password') }
    const post = (headers: Record<string, string>) => gw.fetch('/api/gateway/v1/tokens/', {
      method: 'POST', headers: { ...alice, 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: 'description=forged',
    })
    const forged = await post({ origin: 'https://evil.example' })
    assert.equal(forged.status, 403)
    assert.equal((await json(forged)).code, 'csrf_origin_mismatch')
    assert.equal((await post({ origin: 'null' })).status, 403)
    assert.equal((await gw.store.tokens.list({ offset: 0, limit: 10 })).count, 0)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { ...alice, origin: 'https://evil.example' } })).status, 200)
    assert.equal((await post({ origin: 'https://ui.example.com' })).status, 201)
    assert.equal((await post({})).status, 201)
  })

  it('refuses a write to a service with basic credentials from another site\'s page before the service hears of it, and sends it on without them on a public path', async () => {
    const alice = { authorization: basic('alice', 'alice-password') }
    const post = (path: string, headers: Record<string, string>) => gw.fetch(path, {
      method: 'POST', headers: { ...alice, 'content-type': 'text/plain', ...headers }, body: 'launch',
    })
    const forged = await post('/api/controller/v2/job_templates/7/launch/', { origin: 'https://evil.example' })
    assert.equal(forged.status, 403)
    assert.equal((await json(forged)).code, 'csrf_origin_mismatch')
    assert.equal((await post('/api/controller/v2/job_templates/7/launch/', { origin: 'null' })).status, 403)
    const identityOf = async (response: Response) => {
      assert.equal(response.status, 200)
      return (await json(response)).identity?.username
    }
    assert.equal(await identityOf(await post('/api/controller/v2/job_templates/7/launch/', { origin: 'https://ui.example.com' })), 'alice')
    assert.equal(await identityOf(await post('/api/controller/v2/job_templates/7/launch/', {})), 'alice')
    assert.equal(await identityOf(await gw.fetch('/api/controller/v2/hosts/', { headers: { ...alice, origin: 'https://evil.example' } })), 'alice')
    // On a public path the request goes on as anonymous, as with a session cookie that fails the check.
    assert.equal(await identityOf(await post('/api/controller/v2/ping/', { origin: 'https://evil.example' })), undefined)
    assert.equal(await identityOf(await post('/api/controller/v2/ping/', {})), 'alice')
  })
})
