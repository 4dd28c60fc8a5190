import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { CLIENT_REDIRECT, REALM, realmUrl, testRealms } from '../helpers/oidc.ts'

/**
 * Requests without any credential that start a sign-in write a record each (a realm interaction, a device code, a
 * single sign-on under way): a loop of them from one address is refused with 429 once it passes the limit, and the
 * refused ones write nothing.
 */
describe('sign-ins started by anonymous requests', () => {
  let gw: TestGateway
  const DEVICE_CLIENT = 'tv'
  const PER_ADDRESS = 25
  before(async () => {
    gw = await startGateway({
      config: {
        realms: [{ ...testRealms[0]!, clients: [...testRealms[0]!.clients, { client_id: DEVICE_CLIENT, public_client: true, device_authorization_grant: true, redirect_uris: [CLIENT_REDIRECT] }] }],
        auth: { sign_in_starts_per_address: PER_ADDRESS },
        sso: [{ name: 'corp', label: 'Corp', issuer: 'http://127.0.0.1:1', client_id: 'x', allow_insecure_http: true, timeout_seconds: 2 }],
      },
    })
  })
  after(() => gw?.close())

  const authorization = (extra: Record<string, string> = {}) => `${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
    client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', ...extra,
  })}`
  const records = async () => {
    const oidc = await gw.store.database.db.selectFrom('oidc_records').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    const sso = await gw.store.database.db.selectFrom('sso_logins').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
    return Number(oidc.n) + Number(sso.n)
  }

  it('refuses an address that started too many, with a page for the browser and a code for clients, writing nothing', async () => {
    const flooder = '127.0.0.61'
    for (let i = 0; i < PER_ADDRESS; i++) {
      const started = await requestFrom(flooder, authorization(), { headers: { accept: 'text/html' } })
      assert.equal(started.status, 302, `start ${i}`)
      assert.match(String(started.headers.location), /\/login-actions\//)
    }
    const before = await records()
    const refused = await requestFrom(flooder, authorization(), { headers: { accept: 'text/html' } })
    assert.equal(refused.status, 429)
    assert.match(String(refused.headers['content-type']), /^text\/html/)
    assert.ok(Number(refused.headers['retry-after']) > 0)
    assert.match(refused.body, /Too many sign-ins/)

    const device = await requestFrom(flooder, realmUrl(gw, '/protocol/openid-connect/auth/device'), {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: DEVICE_CLIENT }).toString(),
    })
    assert.equal(device.status, 429)
    assert.equal(device.json().error, 'sign_ins_throttled')

    const sso = await requestFrom(flooder, `${gw.url}/api/gateway/v1/login/sso/corp/`, { headers: { accept: 'application/json' } })
    assert.equal(sso.status, 429)
    assert.equal(sso.json().code, 'sign_ins_throttled')
    const ssoPage = await requestFrom(flooder, `${gw.url}/api/gateway/v1/login/sso/corp/`, { headers: { accept: 'text/html' } })
    assert.equal(ssoPage.status, 429)
    assert.match(ssoPage.body, /role="alert"/)
    assert.equal(ssoPage.headers['retry-after'], sso.headers['retry-after'], 'the page says when to try again, as the error does')
    assert.ok(Number(ssoPage.headers['retry-after']) > 0)
    assert.equal(await records(), before, 'the refused starts wrote nothing')

    // A silent check (keycloak-js's check-sso) starts no sign-in: it still gets its answer.
    const silent = await requestFrom(flooder, authorization({ prompt: 'none' }))
    assert.equal(silent.status, 302)
    assert.equal(new URL(String(silent.headers.location)).searchParams.get('error'), 'login_required')
  })

  it('counts a login started with a form POST once: the POST is sent on as a GET, which counts', async () => {
    const browser = '127.0.0.63'
    const form = new URLSearchParams(new URL(authorization()).searchParams).toString()
    for (let i = 0; i < PER_ADDRESS; i++) {
      const posted = await requestFrom(browser, realmUrl(gw, '/protocol/openid-connect/auth'), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, body: form })
      assert.equal(posted.status, 303, `post ${i}`)
      const started = await requestFrom(browser, String(posted.headers.location), { headers: { accept: 'text/html' } })
      assert.equal(started.status, 302, `start ${i}`)
      assert.match(String(started.headers.location), /\/login-actions\//)
    }
    const refused = await requestFrom(browser, authorization(), { headers: { accept: 'text/html' } })
    assert.equal(refused.status, 429)
  })

  const pushAuthorization = (from: string, extra: Record<string, string> = {}) => requestFrom(from, realmUrl(gw, '/protocol/openid-connect/ext/par/request'), {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams([...new URL(authorization(extra)).searchParams]).toString(),
  })

  it('counts a pushed authorization request, which a public client sends without any credential, as a start', async () => {
    const pusher = '127.0.0.64'
    for (let i = 0; i < PER_ADDRESS; i++) {
      const pushed = await pushAuthorization(pusher)
      assert.equal(pushed.status, 201, `push ${i}: ${pushed.body}`)
    }
    const before = await records()
    const refused = await pushAuthorization(pusher)
    assert.equal(refused.status, 429)
    assert.equal(refused.json().error, 'sign_ins_throttled')
    assert.ok(Number(refused.headers['retry-after']) > 0)
    assert.equal(await records(), before, 'the refused push wrote nothing')
  })

  it('counts a pushed request used with prompt=none in the URL: the pushed parameters, not the URL, say whether it may show a page', async () => {
    const pusher = '127.0.0.65'
    const pushed = await pushAuthorization(pusher)
    const requestUri = pushed.json().request_uri as string
    const uses = async () => requestFrom(pusher, `${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({ client_id: 'end-users', request_uri: requestUri, prompt: 'none' })}`, { headers: { accept: 'text/html' } })
    const first = await uses()
    assert.equal(first.status, 302)
    assert.match(String(first.headers.location), /\/login-actions\//, 'the pushed request shows the login page')
    let answer = first
    for (let i = 2; i <= PER_ADDRESS && answer.status === 302; i++) answer = await uses()
    assert.equal(answer.status, 429, 'the loop of uses was refused within the limit')
  })

  it('counts the logout and device code pages, whose forms keep a new realm browser session for an anonymous browser', async () => {
    const visitor = '127.0.0.66'
    const pages = [realmUrl(gw, '/protocol/openid-connect/logout'), realmUrl(gw, '/device')]
    for (let i = 0; i < PER_ADDRESS; i++) {
      const shown = await requestFrom(visitor, pages[i % 2]!, { method: i % 3 ? 'GET' : 'HEAD', headers: { accept: 'text/html' } })
      assert.equal(shown.status, 200, `visit ${i}`)
    }
    const before = await records()
    for (const page of pages) {
      for (const method of ['GET', 'HEAD']) {
        const refused = await requestFrom(visitor, page, { method, headers: { accept: 'text/html' } })
        assert.equal(refused.status, 429, `${method} ${page}`)
        assert.match(String(refused.headers['content-type']), /^text\/html/)
        if (method === 'GET') assert.match(refused.body, /Too many sign-ins/)
      }
    }
    assert.equal(await records(), before, 'the refused visits wrote nothing')
    // What the counted visits kept is an anonymous browser session: kept as long as a login under way, not an SSO session.
    const kept = await gw.store.database.db.selectFrom('oidc_records').select(['payload', 'expires_at']).where('model', '=', 'Session').execute()
    assert.ok(kept.length > 0)
    for (const session of kept.filter((row) => !String(row.payload).includes('accountId'))) {
      assert.ok(Number(session.expires_at) <= Date.now() + 1800_000, `expires in ${(Number(session.expires_at) - Date.now()) / 1000} s`)
    }
  })

  it('lets other addresses start sign-ins meanwhile', async () => {
    const started = await requestFrom('127.0.0.62', authorization(), { headers: { accept: 'text/html' } })
    assert.equal(started.status, 302)
    const device = await requestFrom('127.0.0.62', realmUrl(gw, '/protocol/openid-connect/auth/device'), {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: DEVICE_CLIENT }).toString(),
    })
    assert.equal(device.status, 200)
    const sso = await requestFrom('127.0.0.62', `${gw.url}/api/gateway/v1/login/sso/corp/`, { headers: { accept: 'application/json' } })
    assert.equal(sso.json().code, 'sso_provider_unavailable', 'not throttled: it got as far as the provider')
  })
})
