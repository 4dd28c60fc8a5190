import assert from 'node:assert/strict'
import { linkSync, renameSync, rmSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { offSiteNexts, resolvedOrigin } from '../helpers/open-redirect.ts'
import { Browser, parseForm } from '../helpers/browser.ts'
import { csrfToken, LOGIN, login, setCookie, withCsrf } from '../helpers/session.ts'
import { LOGIN_BODY_LIMIT } from '../../src/api/login.ts'

describe('login, logout and session endpoints', () => {
  let gw: TestGateway
  let aliceId: number
  before(async () => {
    gw = await startGateway()
    aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })).id
  })
  after(() => gw.close())

  const sessionCount = async () => (await gw.store.sessions.list({ offset: 0, limit: 1, now: Date.now() })).count
  const postLogin = async (body: string, headers: Record<string, string> = {}, query = '') => {
    const token = await csrfToken(gw)
    return gw.fetch(LOGIN + query, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, ...headers },
      body,
    })
  }

  it('serves the login page with the csrftoken cookie as Django sets it', async () => {
    const response = await gw.fetch(LOGIN, { headers: { accept: 'text/html' } })
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type')!, /^text\/html/)
    assert.match(response.headers.get('content-security-policy')!, /frame-ancestors 'none'/)
    const cookie = setCookie(response, 'csrftoken')!
    assert.match(cookie.value, /^[A-Za-z0-9_-]{64}$/)
    assert.match(cookie.attributes, /Path=\//)
    assert.match(cookie.attributes, /SameSite=Lax/)
    assert.doesNotMatch(cookie.attributes, /HttpOnly|Max-Age|Expires/)
    const html = await response.text()
    assert.match(html, /<form method="post" action="\/api\/gateway\/v1\/login\/">/)
    assert.ok(html.includes(`name="csrfmiddlewaretoken" value="${cookie.value}"`))
  })

  it('keeps a valid csrftoken it already set, and answers JSON to clients asking for it', async () => {
    const token = await csrfToken(gw)
    const response = await gw.fetch(`${LOGIN}?next=/api/controller/v2/`, { headers: { accept: 'application/json', cookie: `csrftoken=${token}` } })
    assert.equal(setCookie(response, 'csrftoken'), undefined)
    assert.deepEqual(await json(response), { csrf_token: token, login_url: LOGIN, next: '/api/controller/v2/' })
  })

  it('sends a person in a browser to the web interface when the form names no next page', async () => {
    const token = await csrfToken(gw)
    const response = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { accept: 'text/html,application/xhtml+xml', 'content-type': 'application/x-www-form-urlencoded', cookie: `csrftoken=${token}` },
      body: `username=alice&password=alice-password&csrfmiddlewaretoken=${token}`,
    })
    assert.equal(response.status, 302)
    assert.equal(response.headers.get('location'), '/ui/')
  })

  it('logs in with the form, redirects, records the login and rotates the CSRF token', async (t) => {
    // A frozen clock: the times the gateway writes can be compared exactly.
    t.mock.timers.enable({ apis: ['Date'], now: Math.floor(Date.now() / 1000) * 1000 })
    const token = await csrfToken(gw)
    const response = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}` },
      body: 'username=alice&password=alice-password',
    })
    assert.equal(response.status, 302)
    assert.equal(response.headers.get('location'), '/api/gateway/v1/')
    const session = setCookie(response, 'gateway_sessionid')!
    assert.match(session.value, /^[A-Za-z0-9_-]{43}$/, '256 random bits')
    assert.deepEqual(session.attributes.split('; ').sort(), ['HttpOnly', 'Max-Age=900', 'Path=/', 'SameSite=Lax'])
    const rotated = setCookie(response, 'csrftoken')!.value
    assert.notEqual(rotated, token)
    const stored = await gw.store.users.findById(aliceId)
    assert.equal(stored!.lastLogin, Date.now())
    const me = await json(await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${session.value}` } }))
    assert.equal(Date.parse(me.results[0].last_login), stored!.lastLogin, 'the API shows the new last_login at once')
    const all = await gw.store.sessions.list({ offset: 0, limit: 200, now: Date.now() })
    assert.ok(all.sessions.every((s) => s.keyHash !== session.value), 'only a hash of the identifier is stored')
  })

  it('accepts a JSON body and answers JSON, without the session identifier in the body', async () => {
    const token = await csrfToken(gw)
    const response = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrftoken': token, cookie: `csrftoken=${token}` },
      body: JSON.stringify({ username: 'alice', password: 'alice-password', next: '/api/eda/' }),
    })
    assert.equal(response.status, 200)
    const body = await json(response)
    const sessionId = setCookie(response, 'gateway_sessionid')!.value
    assert.equal(body.username, 'alice')
    assert.equal(body.next, '/api/eda/')
    assert.equal(body.csrf_token, setCookie(response, 'csrftoken')!.value)
    assert.equal(body.expires_in_seconds, 900)
    assert.ok(!JSON.stringify(body).includes(sessionId))
  })

  it('answers wrong credentials with 401 and sets nothing', async () => {
    const before = await sessionCount()
    for (const body of ['username=alice&password=wrong', 'username=nobody&password=wrong']) {
      const response = await postLogin(body)
      assert.equal(response.status, 401)
      assert.equal((await json(response)).code, 'invalid_credentials')
      assert.deepEqual(response.headers.getSetCookie(), [])
    }
    assert.equal(await sessionCount(), before)
  })

  it('shows a browser the login page again with an error after wrong credentials', async () => {
    const response = await postLogin('username=alice&password=wrong&next=%2Fapi%2Feda%2F', { accept: 'text/html,application/xhtml+xml' })
    assert.equal(response.status, 401)
    assert.deepEqual(response.headers.getSetCookie(), [])
    const html = await response.text()
    assert.match(html, /role="alert">Invalid username or password\./)
    assert.match(html, /name="username"[^>]*value="alice"/)
    assert.match(html, /name="next" value="\/api\/eda\/"/)
  })

  it('redirects only to its own site after login', async () => {
    const cases: [string, string][] = [
      ['/api/controller/v2/hosts/?page=2', '/api/controller/v2/hosts/?page=2'],
      [`${gw.url}/api/eda/`, '/api/eda/'],
      [`http://someone@${new URL(gw.url).host}/api/eda/`, '/api/eda/'],
      ['https://evil.example/', '/api/gateway/v1/'],
      ['//evil.example/x', '/api/gateway/v1/'],
      ['/\\evil.example/x', '/api/gateway/v1/'],
      ['/\t/evil.example', '/api/gateway/v1/'],
      ['/.//evil.example/', `${gw.url}//evil.example/`],
      ['/x/..//evil.example/', `${gw.url}//evil.example/`],
      ['/%2e//evil.example/', `${gw.url}//evil.example/`],
    ]
    for (const [next, location] of cases) {
      const inForm = await postLogin(`username=alice&password=alice-password&next=${encodeURIComponent(next)}`)
      assert.equal(inForm.headers.get('location'), location, next)
      const inQuery = await postLogin('username=alice&password=alice-password', {}, `?next=${encodeURIComponent(next)}`)
      assert.equal(inQuery.headers.get('location'), location, next)
    }
  })

  it('never sends a browser to another site after a login, however next is spelled', async () => {
    const site = new URL(gw.url).origin
    for (const next of offSiteNexts(gw.url)) {
      const login = await postLogin(`username=alice&password=alice-password&next=${encodeURIComponent(next)}`, { accept: 'text/html' })
      assert.equal(login.status, 302, JSON.stringify(next))
      assert.ok(setCookie(login, 'gateway_sessionid'), 'a genuine login')
      assert.equal(resolvedOrigin(login.headers.get('location')!, gw.url + LOGIN), site, `${JSON.stringify(next)} -> ${login.headers.get('location')}`)
      const page = await gw.fetch(`${LOGIN}?next=${encodeURIComponent(next)}`, { headers: { accept: 'application/json' } })
      const offered = (await json(page)).next
      assert.ok(offered === null || resolvedOrigin(offered, gw.url + LOGIN) === site, `${JSON.stringify(next)} offered as ${offered}`)
    }
  })

  it('refuses bad input with a clear 4xx and changes nothing', async () => {
    const before = await sessionCount()
    const lastLogin = (await gw.store.users.findById(aliceId))!.lastLogin
    const cases: [string, Record<string, string>, number, string, string?][] = [
      ['username=alice', {}, 400, 'invalid', 'password'],
      ['password=alice-password', {}, 400, 'invalid', 'username'],
      ['username=&password=alice-password', {}, 400, 'invalid', 'username'],
      [`username=${'a'.repeat(151)}&password=x`, {}, 400, 'invalid', 'username'],
      [`username=alice&password=${'p'.repeat(1025)}`, {}, 400, 'invalid', 'password'],
      ['username=alice&password=alice-password&next=' + 'a'.repeat(3000), {}, 400, 'invalid', 'next'],
      ['username=alice&username=bob&password=alice-password', {}, 400, 'invalid', 'username'],
      ['username=alice&password=alice-password&is_superuser=true', {}, 400, 'invalid', 'is_superuser'],
      ['username=alice&password=alice-password', { 'content-type': 'text/plain' }, 415, 'unsupported_media_type'],
      ['username=alice&password=alice-password', { 'content-type': 'multipart/form-data; boundary=x' }, 415, 'unsupported_media_type'],
      ['["alice"]', { 'content-type': 'application/json' }, 400, 'invalid', 'non_field_errors'],
      ['{"username": "alice", "password": 1}', { 'content-type': 'application/json' }, 400, 'invalid', 'password'],
      ['{"username": ', { 'content-type': 'application/json' }, 400, 'invalid_json'],
      // The login reads no more than the largest login (LOGIN_BODY_LIMIT), far below the API's 1 MiB.
      ['x'.repeat(LOGIN_BODY_LIMIT + 1), {}, 413, 'payload_too_large'],
    ]
    for (const [body, headers, status, code, fieldName] of cases) {
      const response = await postLogin(body, headers)
      assert.equal(response.status, status, `${body.slice(0, 40)} ${JSON.stringify(headers)}`)
      const answer = await json(response)
      assert.equal(answer.code, code, body.slice(0, 40))
      assert.deepEqual(Object.keys(answer.errors ?? {}), fieldName ? [fieldName] : [], `the fields named: ${JSON.stringify(answer)}`)
      assert.equal(setCookie(response, 'gateway_sessionid'), undefined)
    }
    // Each problem in its own words: a name too long is not "not a string".
    const messages: [string, Record<string, string>, string, string][] = [
      [`username=${'a'.repeat(151)}&password=x`, {}, 'username', 'Ensure this field has no more than 150 characters.'],
      [`username=alice&password=${'p'.repeat(1025)}`, {}, 'password', 'Ensure this field has no more than 1024 characters.'],
      ['username=&password=x', {}, 'username', 'This field may not be blank.'],
      ['username=alice&username=bob&password=x', {}, 'username', 'Give this parameter once.'],
      ['{"username": "alice", "password": 1}', { 'content-type': 'application/json' }, 'password', 'password must be a string.'],
    ]
    for (const [body, headers, fieldName, message] of messages) {
      assert.deepEqual((await json(await postLogin(body, headers))).errors, { [fieldName]: [message] }, body.slice(0, 40))
    }
    const repeatedNext = await gw.fetch(`${LOGIN}?next=/a/&next=/b/`)
    assert.equal(repeatedNext.status, 400)
    assert.equal(await sessionCount(), before)
    assert.equal((await gw.store.users.findById(aliceId))!.lastLogin, lastLogin)
  })

  it('replaces the session a browser already had when it logs in again', async () => {
    const first = await login(gw, 'alice', 'alice-password')
    const second = await login(gw, 'alice', 'alice-password', { cookie: `gateway_sessionid=${first.sessionId}; csrftoken=${first.csrf}`, 'x-csrftoken': first.csrf })
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${first.sessionId}` } })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${second.sessionId}` } })).status, 200)
  })

  it('tells how long the session has left, and 404 without a session', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const response = await gw.fetch('/api/gateway/v1/session/', { headers: { cookie: session.cookie } })
    assert.equal(response.status, 200)
    const body = await json(response)
    assert.deepEqual(Object.keys(body).sort(), ['expires_in_seconds', 'expires_on', 'now', 'user'])
    assert.equal(body.user, (await json(await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } }))).results[0].id)
    assert.ok(body.expires_in_seconds >= 899 && body.expires_in_seconds <= 900)
    assert.equal(Date.parse(body.expires_on) - Date.parse(body.now) >= 899_000, true)
    const byBasic = await gw.fetch('/api/gateway/v1/session/', { headers: adminAuth })
    assert.equal(byBasic.status, 404)
    assert.equal((await json(byBasic)).code, 'no_session')
    const anonymous = await gw.fetch('/api/gateway/v1/session/')
    assert.equal(anonymous.status, 404)
    assert.equal((await json(anonymous)).code, 'no_session')
  })

  it('extends the session by session_cookie_age from now', async (t) => {
    const session = await login(gw, 'alice', 'alice-password')
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    t.mock.timers.tick(600_000)
    const before = await json(await gw.fetch('/api/gateway/v1/session/', { headers: { cookie: session.cookie } }))
    assert.ok(before.expires_in_seconds <= 300)
    const noCsrf = await gw.fetch('/api/gateway/v1/session/', { method: 'POST', headers: { cookie: session.cookie } })
    assert.equal(noCsrf.status, 403)
    const extended = await gw.fetch('/api/gateway/v1/session/', { method: 'POST', headers: withCsrf(session) })
    assert.equal(extended.status, 200)
    assert.equal((await json(extended)).expires_in_seconds, 900)
    assert.match(setCookie(extended, 'gateway_sessionid')!.attributes, /Max-Age=900/)
    assert.equal(setCookie(extended, 'gateway_sessionid')!.value, session.sessionId)
    t.mock.timers.tick(800_000)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 200, 'alive past its first end')
  })

  it('ends the session on logout, with CSRF, and deletes the cookie', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const refused = await gw.fetch('/api/gateway/v1/logout/', { method: 'POST', headers: { cookie: session.cookie } })
    assert.equal(refused.status, 403)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 200, 'a forged logout ends nothing')
    const response = await gw.fetch('/api/gateway/v1/logout/', { method: 'POST', headers: withCsrf(session) })
    assert.equal(response.status, 302)
    assert.equal(response.headers.get('location'), '/api/', 'as the platform redirects')
    const cleared = setCookie(response, 'gateway_sessionid')!
    assert.equal(cleared.value, '')
    assert.match(cleared.attributes, /Max-Age=0/)
    for (const path of ['/api/gateway/v1/me/', '/api/controller/v2/hosts/']) {
      const after = await gw.fetch(path, { headers: { cookie: session.cookie } })
      assert.equal(after.status, 401, path)
    }
    const ended = await gw.fetch('/api/gateway/v1/session/', { headers: { cookie: session.cookie } })
    assert.equal(ended.status, 404)
    assert.equal((await json(ended)).code, 'no_session')
  })

  it('logs out with GET too, and redirects to /api/ with or without a session, as the platform does', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const response = await gw.fetch('/api/gateway/v1/logout/', { headers: { cookie: session.cookie } })
    assert.equal(response.status, 302)
    assert.equal(response.headers.get('location'), '/api/')
    assert.equal(setCookie(response, 'gateway_sessionid')!.value, '')
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 401)
    const again = await gw.fetch('/api/gateway/v1/logout/', { headers: { cookie: session.cookie } })
    assert.equal(again.status, 302)
  })

  it('ends nothing on a GET another site led the browser to (Sec-Fetch-Site), and ends the session on this site\'s own', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    // HEAD too, which the GET route answers (a sibling subdomain's script can send one without CORS).
    for (const [site, method] of [['cross-site', 'GET'], ['same-site', 'GET'], ['cross-site', 'HEAD'], ['same-site', 'HEAD']] as const) {
      const response = await gw.fetch('/api/gateway/v1/logout/', { method, headers: { cookie: session.cookie, 'sec-fetch-site': site, accept: 'text/html' } })
      assert.equal(response.status, 302, `${method} ${site}`)
      assert.equal(setCookie(response, 'gateway_sessionid'), undefined, `${site}: the cookie is left`)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: session.cookie } })).status, 200, `${site}: the session goes on`)
    }
    for (const site of ['same-origin', 'none']) {
      const own = await login(gw, 'alice', 'alice-password')
      const response = await gw.fetch('/api/gateway/v1/logout/', { headers: { cookie: own.cookie, 'sec-fetch-site': site } })
      assert.equal(response.status, 302)
      assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: own.cookie } })).status, 401, `${site}: ended`)
    }
  })

  it('sends a browser back to the login page after logout', async () => {
    const session = await login(gw, 'alice', 'alice-password')
    const response = await gw.fetch('/api/gateway/v1/logout/', {
      method: 'POST',
      headers: { cookie: session.cookie, accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' },
      body: `csrfmiddlewaretoken=${session.csrf}`,
    })
    assert.equal(response.status, 302)
    assert.equal(response.headers.get('location'), LOGIN)
  })

  it('answers a login form whose CSRF token went stale with the login page again, the username kept, and logs in from it', async () => {
    // Two tabs with the login page: logging in from the first rotates the token that the second's form carries.
    const browser = new Browser()
    const first = await browser.navigate(`${gw.url}${LOGIN}?next=/ui/tokens`)
    const second = await browser.navigate(`${gw.url}${LOGIN}?next=/ui/sessions`)
    assert.equal((await browser.submit(first, { username: 'alice', password: 'alice-password' })).url, `${gw.url}/ui/tokens`)
    const sessionsBefore = await sessionCount()
    const stale = await browser.submit(second, { username: 'alice', password: 'alice-password' })
    assert.equal(stale.response.status, 403)
    assert.match(stale.response.headers.get('content-type')!, /^text\/html/)
    assert.equal(stale.response.headers.get('cache-control'), 'no-store')
    const form = parseForm(stale.body)
    assert.equal(form.fields.username, 'alice', 'the username is kept')
    assert.equal(form.fields.password, '', 'the password is not sent back')
    assert.equal(form.fields.next, '/ui/sessions', 'the page asked for is kept')
    assert.equal(form.fields.csrfmiddlewaretoken, browser.cookie(gw.url, 'csrftoken'), 'the form carries the current token')
    assert.match(stale.body, /role="alert"/)
    assert.equal(await sessionCount(), sessionsBefore, 'no login happened')
    const again = await browser.submit(stale, { password: 'alice-password' })
    assert.equal(again.url, `${gw.url}/ui/sessions`)

    // Without the cookie at all (cookies cleared meanwhile), the page sets a new one and offers the form again.
    const page = await new Browser().navigate(`${gw.url}${LOGIN}`)
    const cleared = new Browser()
    const noCookie = await cleared.navigate(`${gw.url}${LOGIN}`, { form: { ...parseForm(page.body).fields, username: 'alice', password: 'alice-password' } })
    assert.equal(noCookie.response.status, 403)
    assert.equal(parseForm(noCookie.body).fields.username, 'alice')
    assert.equal(parseForm(noCookie.body).fields.csrfmiddlewaretoken, cleared.cookie(gw.url, 'csrftoken'))
    assert.equal((await cleared.submit(noCookie, { password: 'alice-password' })).url, `${gw.url}/ui/`)
  })

  it('answers a browser\'s login form that does not fit, such as a pasted password longer than any, with the form again', async () => {
    const browser = new Browser()
    const page = await browser.navigate(`${gw.url}${LOGIN}?next=/ui/tokens`)
    const before = await sessionCount()
    const refused = await browser.submit(page, { username: 'alice', password: 'p'.repeat(1025) })
    assert.equal(refused.response.status, 400)
    assert.match(refused.response.headers.get('content-type')!, /^text\/html/)
    assert.match(refused.body, /role="alert"/)
    const form = parseForm(refused.body)
    assert.deepEqual([form.fields.username, form.fields.password, form.fields.next], ['alice', '', '/ui/tokens'])
    assert.equal(await sessionCount(), before)
    assert.equal((await browser.submit(refused, { password: 'alice-password' })).url, `${gw.url}/ui/tokens`)
  })

  it('keeps refusing a login form posted from another site with an error, and JSON clients with a stale token get JSON', async () => {
    const token = await csrfToken(gw)
    const crossSite = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { accept: 'text/html', origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded', cookie: `csrftoken=${token}` },
      body: `username=alice&password=alice-password&csrfmiddlewaretoken=${token}`,
    })
    assert.equal(crossSite.status, 403)
    assert.doesNotMatch(await crossSite.text(), /<form/)
    const script = await gw.fetch(LOGIN, {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json', cookie: `csrftoken=${token}`, 'x-csrftoken': 'x'.repeat(64) },
      body: JSON.stringify({ username: 'alice', password: 'alice-password' }),
    })
    assert.equal(script.status, 403)
    assert.equal((await json(script)).code, 'csrf_token_incorrect')
  })
})

describe('the login form while the database is away', () => {
  it('answers a browser\'s form with the login page again, saying so, the username kept, and logs in once it is back', async () => {
    const dir = tempDir()
    const gw = await startGateway({ dataDir: dir })
    const file = join(dir, 'gatehouse.sqlite')
    const kept = join(dir, 'kept.sqlite')
    try {
      await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
      const browser = new Browser()
      const page = await browser.navigate(`${gw.url}${LOGIN}?next=/ui/tokens`)
      linkSync(file, kept)
      unlinkSync(file)
      for (let tries = 0; (await gw.fetch('/readyz')).status !== 503; tries++) {
        assert.ok(tries < 100, 'the gateway notices the database is gone')
        await sleep(50)
      }
      const away = await browser.submit(page, { username: 'alice', password: 'alice-password' })
      assert.equal(away.response.status, 503)
      assert.match(away.body, /<p class="error" id="login-error" role="alert">The database is not available; try again shortly\.<\/p>/)
      const form = parseForm(away.body)
      assert.deepEqual([form.fields.username, form.fields.password, form.fields.next], ['alice', '', '/ui/tokens'])

      renameSync(kept, file)
      for (let tries = 0; (await gw.fetch('/readyz')).status !== 200; tries++) {
        assert.ok(tries < 100, 'the gateway finds the database again')
        await sleep(50)
      }
      assert.equal((await browser.submit(away, { password: 'alice-password' })).url, `${gw.url}/ui/tokens`)
    } finally {
      await gw.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
