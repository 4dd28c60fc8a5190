import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { Browser } from '../helpers/browser.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, decodeJwtPart, passwordLogin, realmUrl, realmWith, tokenRequest } from '../helpers/oidc.ts'

const VERIFIER = 'silent-sign-in-verifier-0123456789-abcdefghijklmnop'
const CHALLENGE = createHash('sha256').update(VERIFIER).digest('base64url')
const GUARDED = 'operators-only'

/**
 * `prompt=none` (keycloak-js's check-sso, its silent iframe, `login({ prompt: 'none' })`) from a browser signed in
 * only at the gateway: answered from the gateway session exactly where the login step would take that session
 * without its form, and otherwise `login_required` (`interaction_required` for an action), never with a page.
 */
describe('silent sign-in with the gateway session (prompt=none)', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({
      config: {
        realms: realmWith([{ client_id: GUARDED, public_client: true, redirect_uris: [CLIENT_REDIRECT], access: [{ allow: { teams: ['Nobody'] } }] }]),
      },
    })
    for (const name of ['alice', 'bob', 'carol', 'dave']) await gw.app.accounts.create({ username: name, password: `${name}-password` })
  })
  after(() => gw.close())

  /** A browser signed in at the gateway's own login page, never at the realm. */
  async function signedInAtGateway(username: string): Promise<Browser> {
    const browser = new Browser()
    const page = await browser.navigate(`${gw.url}/api/gateway/v1/login/`)
    const done = await browser.submit(page, { username, password: `${username}-password` })
    assert.equal(new URL(done.url).pathname, '/ui/')
    assert.equal(browser.cookie(gw.url, 'gatehouse_oidc_session'), undefined)
    return browser
  }

  /**
   * The silent authorization request of `clientId` (`extra` adds parameters, or leaves one out with ''), and the
   * parameters the realm sends the browser back to the client with: never a page.
   */
  async function silently(browser: Browser, extra: Record<string, string> = {}, clientId = 'end-users'): Promise<URLSearchParams> {
    const params = Object.entries({
      client_id: clientId, redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'st4te', prompt: 'none',
      code_challenge: CHALLENGE, code_challenge_method: 'S256', ...extra,
    }).filter(([, value]) => value !== '')
    const answer = await browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams(params)}`, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
    assert.ok(answer.stoppedAt, `a page was shown: ${answer.response.status} ${answer.body.slice(0, 300)}`)
    const back = new URL(answer.stoppedAt)
    assert.equal(back.searchParams.get('state'), 'st4te')
    return back.searchParams
  }

  const redeem = (code: string, extra: Record<string, string> = { code_verifier: VERIFIER }) =>
    tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, ...extra })

  it('signs a browser signed in only at the gateway in without a page, as single sign-on, with a code only its verifier redeems', async () => {
    const browser = await signedInAtGateway('alice')
    const answer = await silently(browser)
    assert.equal(answer.get('error'), null)
    const code = answer.get('code')!
    assert.ok(code)
    assert.equal((await redeem(code, { code_verifier: 'x'.repeat(43) })).body.error, 'invalid_grant', 'PKCE: the code is the client\'s only')
    const again = await silently(browser)
    const tokens = await redeem(again.get('code')!)
    assert.equal(tokens.status, 200)
    const claims = decodeJwtPart(tokens.body.access_token, 1)
    assert.equal(claims.preferred_username, 'alice')
    assert.equal(claims.acr, '0', 'single sign-on, not a password typed for this authorization')
    assert.ok(browser.cookie(gw.url, 'gatehouse_oidc_session'), 'a realm session now, as after a login at the realm')
  })

  it('has the login status iframe tell keycloak-js that a browser signed in only at the gateway has a session to check', async () => {
    const iframe = realmUrl(gw, '/protocol/openid-connect/login-status-iframe.html')
    const statusCookie = async (browser: Browser) => (await browser.request(iframe)).headers.getSetCookie().find((cookie) => cookie.startsWith('KEYCLOAK_SESSION='))
    assert.equal(await statusCookie(new Browser()), undefined, 'no session, nothing to check')
    const browser = await signedInAtGateway('alice')
    assert.match((await statusCookie(browser)) ?? '', /^KEYCLOAK_SESSION=gateway;/)
    assert.ok((await silently(browser)).get('code'))
    const realmSession = browser.cookie(gw.url, 'KEYCLOAK_SESSION')
    assert.notEqual(realmSession, 'gateway', 'the realm session\'s own, after the silent sign-in')
    assert.equal(await statusCookie(browser), undefined, 'left alone once set')
    assert.equal(browser.cookie(gw.url, 'KEYCLOAK_SESSION'), realmSession)
  })

  it('ends the realm session it made with the gateway session: signed out at the gateway, the next silent request is login_required', async () => {
    const browser = await signedInAtGateway('bob')
    const code = (await silently(browser)).get('code')!
    const tokens = await redeem(code)
    assert.equal(tokens.status, 200)
    const csrf = browser.cookie(gw.url, 'csrftoken')!
    const logout = await browser.request(`${gw.url}/api/gateway/v1/logout/`, { method: 'POST', headers: { 'x-csrftoken': csrf, accept: 'application/json', referer: `${gw.url}/ui/` } })
    assert.equal(logout.status, 302)
    assert.equal((await silently(browser)).get('error'), 'login_required')
    assert.equal((await tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token })).body.error, 'invalid_grant')
  })

  it('answers login_required for a gateway session that was ended elsewhere, expired, or whose account is disabled, and for no session', async () => {
    assert.equal((await silently(new Browser())).get('error'), 'login_required')

    const ended = await signedInAtGateway('carol')
    const endAll = await gw.fetch('/api/gateway/v1/me/sessions/end_others/', { method: 'POST', headers: { authorization: basic('carol', 'carol-password') } })
    assert.equal((await json(endAll)).ended, 1)
    assert.equal((await silently(ended)).get('error'), 'login_required')

    const expired = await signedInAtGateway('carol')
    const carol = (await gw.store.users.findByUsername('carol'))!
    await gw.store.database.db.updateTable('sessions').set({ expires_at: Date.now() - 1000 }).where('user_id', '=', carol.id).execute()
    gw.app.sessions.forgetUser(carol.id)
    assert.equal((await silently(expired)).get('error'), 'login_required')

    const disabled = await signedInAtGateway('dave')
    const dave = (await gw.store.users.findByUsername('dave'))!
    await gw.app.accounts.update(dave.id, { isActive: false })
    try {
      assert.equal((await silently(disabled)).get('error'), 'login_required')
    } finally {
      await gw.app.accounts.update(dave.id, { isActive: true })
    }
    for (const browser of [ended, expired, disabled]) assert.equal(browser.cookie(gw.url, 'gatehouse_oidc_session'), undefined)
  })

  it('answers where the login step would ask for the person: interaction_required for an action, login_required for a fresh login', async () => {
    const browser = await signedInAtGateway('alice')
    const action = await silently(browser, { kc_action: 'UPDATE_PASSWORD' })
    assert.equal(action.get('error'), 'interaction_required')
    assert.equal(action.get('code'), null)
    const fresh = await silently(browser, { max_age: '0' })
    assert.equal(fresh.get('error'), 'login_required')
    // Without a description, as Keycloak's sendError: keycloak-connect's check-sso takes `error` out of the address, not more.
    assert.deepEqual([action.get('error_description'), fresh.get('error_description')], [null, null])
    assert.equal(browser.cookie(gw.url, 'gatehouse_oidc_session'), undefined, 'no realm session made for a refusal')
  })

  it('compares id_token_hint and max_age with the gateway session, as Keycloak with its SSO session', async () => {
    const alice = (await gw.store.users.findByUsername('alice'))!
    const aliceHint = (await passwordLogin(gw, 'alice', 'alice-password', { scope: 'openid' })).id_token
    const bobHint = (await passwordLogin(gw, 'bob', 'bob-password', { scope: 'openid' })).id_token
    for (const [extra, answer] of [
      [{ id_token_hint: bobHint }, 'login_required'],
      [{ id_token_hint: aliceHint }, 'code'],
      [{ max_age: '3600' }, 'code'],
    ] as const) {
      const browser = await signedInAtGateway('alice')
      const back = await silently(browser, extra)
      assert.equal(back.get('code') ? 'code' : back.get('error'), answer, JSON.stringify(extra))
      assert.equal(browser.cookie(gw.url, 'gatehouse_oidc_session') !== undefined, answer === 'code', 'a realm session for an answer only')
    }
    // Without prompt=none the login step takes the gateway session alike, and shows its page where silence refuses.
    const loginStep = async (browser: Browser, extra: Record<string, string>) => {
      const params = { client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'st4te', code_challenge: CHALLENGE, code_challenge_method: 'S256', ...extra }
      const answer = await browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams(params)}`, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
      if (answer.stoppedAt) return new URL(answer.stoppedAt).searchParams.get('code') ? 'code' : 'error'
      return /name="password"/.test(answer.body) ? 'login page' : `${answer.response.status}`
    }
    assert.equal(await loginStep(await signedInAtGateway('alice'), { id_token_hint: bobHint }), 'login page')
    assert.equal(await loginStep(await signedInAtGateway('alice'), { id_token_hint: aliceHint, max_age: '3600' }), 'code')
    // The password was typed two hours ago: older than max_age asks for, fresh enough for a day.
    const browser = await signedInAtGateway('alice')
    await gw.store.database.db.updateTable('sessions').set({ created_at: Date.now() - 2 * 3600_000 }).where('user_id', '=', alice.id).execute()
    gw.app.sessions.forgetUser(alice.id)
    assert.equal((await silently(browser, { max_age: '3600' })).get('error'), 'login_required')
    assert.equal(await loginStep(browser, { max_age: '3600' }), 'login page')
    assert.equal(browser.cookie(gw.url, 'gatehouse_oidc_session'), undefined)
    const code = (await silently(browser, { max_age: '86400' })).get('code')!
    const tokens = await redeem(code)
    assert.equal(tokens.status, 200)
    const authTime = decodeJwtPart(tokens.body.id_token, 1).auth_time
    assert.ok(Math.abs(authTime - (Date.now() / 1000 - 7200)) < 60, `auth_time is when the password was typed: ${authTime}`)
  })

  it('refuses someone the client\'s access rules refuse with access_denied, and makes no realm session', async () => {
    const browser = await signedInAtGateway('alice')
    const answer = await silently(browser, {}, GUARDED)
    assert.equal(answer.get('error'), 'access_denied')
    assert.equal(answer.get('code'), null)
    assert.equal(browser.cookie(gw.url, 'gatehouse_oidc_session'), undefined)
  })

  it('sends a code only to a registered redirect URI, and only with PKCE where the client requires it', async () => {
    const browser = await signedInAtGateway('alice')
    const elsewhere = await browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
      client_id: 'end-users', redirect_uri: 'https://evil.example/cb', response_type: 'code', scope: 'openid', prompt: 'none', code_challenge: CHALLENGE, code_challenge_method: 'S256',
    })}`, { stopBefore: (url) => url.startsWith('https://evil.example') })
    assert.equal(elsewhere.stoppedAt, undefined, 'never sent to an unregistered redirect URI')
    assert.equal(elsewhere.response.status, 400)
    const withoutPkce = await silently(browser, { code_challenge: '', code_challenge_method: '' })
    assert.equal(withoutPkce.get('error'), 'invalid_request')
    assert.equal(withoutPkce.get('code'), null)
    assert.equal(browser.cookie(gw.url, 'gatehouse_oidc_session'), undefined)
  })
})

describe('silent sign-ins with the gateway session, counted as sign-ins started', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({ config: { realms: realmWith([]), auth: { sign_in_starts_per_address: 2 } } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(() => gw.close())

  it('counts each realm session a gateway session makes silently, so that dropping the realm cookie cannot make them without bound', async () => {
    const browser = new Browser()
    const page = await browser.navigate(`${gw.url}/api/gateway/v1/login/`)
    await browser.submit(page, { username: 'alice', password: 'alice-password' })
    const gatewaySession = browser.cookie(gw.url, 'gateway_sessionid')!
    const silently = async () => {
      const response = await gw.fetch(`/realms/platform/protocol/openid-connect/auth?${new URLSearchParams({
        client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', prompt: 'none', code_challenge: CHALLENGE, code_challenge_method: 'S256',
      })}`, { redirect: 'manual', headers: { cookie: `gateway_sessionid=${gatewaySession}` } })
      const back = new URL(response.headers.get('location')!)
      return back.searchParams.get('code') ? 'code' : back.searchParams.get('error')
    }
    assert.deepEqual([await silently(), await silently(), await silently()], ['code', 'code', 'login_required'])
  })
})
