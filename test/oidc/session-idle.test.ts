import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { Browser } from '../helpers/browser.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, realmUrl, realmWith, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

const VERIFIER = 'session-idle-verifier-0123456789-abcdefghijklmnopqrst'
const CHALLENGE = createHash('sha256').update(VERIFIER).digest('base64url')
const IDLE = 600
const MAX = 3600
/** Keycloak's SessionTimeoutHelper.IDLE_TIMEOUT_WINDOW_SECONDS. */
const WINDOW = 120

/**
 * A realm's browser session ends once it has been idle longer than `sso_session_idle_seconds` and Keycloak's
 * two-minute window: a login, an authorization with its cookie and a refresh of one of its tokens are activity.
 * Never past `sso_session_max_seconds`. The browsers here have no gateway session (its cookie dropped), which would
 * sign them in again without the form. On both stores: a refresh extends its session's record in SQL of each.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`a realm browser session idle too long (${backend})`, () => {
  let gw: TestGateway
  let dropDatabase = async () => {}
  let realNow: () => number
  let ahead = 0
  /** Moves oidc-provider's clock (the process's view of the database's clock) forward. */
  const wait = (seconds: number) => { ahead += seconds * 1000 }

  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    if (database) dropDatabase = database.drop
    gw = await startGateway({ config: { realms: realmWith([], { sso_session_idle_seconds: IDLE, sso_session_max_seconds: MAX }) }, ...(database ? { databaseUrl: database.url } : {}) })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    const clock = gw.app.bus.clock
    const now = clock.now.bind(clock)
    realNow = now
    clock.now = () => now() + ahead
  })
  after(async () => {
    await gw?.close()
    await dropDatabase()
  })

  const authorization = (extra: Record<string, string> = {}) => `${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
    client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', state: 'st4te',
    code_challenge: CHALLENGE, code_challenge_method: 'S256', ...extra,
  })}`
  const toClient = (url: string) => url.startsWith(CLIENT_REDIRECT)

  /** A browser signed in at the realm's login page, without the gateway session that login opened; and its code. */
  async function signedIn(): Promise<{ browser: Browser; code: string }> {
    const browser = new Browser()
    const page = await browser.navigate(authorization(), { stopBefore: toClient })
    const done = await browser.submit(page, { username: 'alice', password: 'alice-password' }, { stopBefore: toClient })
    const code = new URL(done.stoppedAt!).searchParams.get('code')!
    assert.ok(code)
    assert.ok(browser.cookie(gw.url, 'gateway_sessionid'), 'a realm login opens a gateway session')
    browser.forget(gw.url, 'gateway_sessionid')
    return { browser, code }
  }

  /** What the realm answers the browser's authorization: a code without a page, or the login form. */
  async function authorize(browser: Browser, extra: Record<string, string> = {}): Promise<'code' | 'login form' | string> {
    const answer = await browser.navigate(authorization(extra), { stopBefore: toClient })
    if (answer.stoppedAt) {
      const back = new URL(answer.stoppedAt).searchParams
      return back.get('code') ? 'code' : String(back.get('error'))
    }
    return answer.response.status === 200 && /name="password"/.test(answer.body) ? 'login form' : `${answer.response.status} ${answer.body.slice(0, 200)}`
  }

  const redeem = (code: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: VERIFIER })
  const refresh = (token: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: token })

  it('asks for the login once idle past the idle limit and the window, each authorization sliding it', async () => {
    const { browser } = await signedIn()
    wait(IDLE + WINDOW - 20)
    assert.equal(await authorize(browser, { prompt: 'none' }), 'code', 'within the window: still signed in')
    wait(IDLE + WINDOW - 20)
    assert.equal(await authorize(browser), 'code', 'the authorization before was activity')
    wait(IDLE + WINDOW + 5)
    assert.equal(await authorize(browser, { prompt: 'none' }), 'login_required')
    assert.equal(await authorize(browser), 'login form')
  })

  it('keeps a session whose tokens are refreshed, and ends it idle after the last refresh', async () => {
    const loggedInAt = gw.app.bus.clock.now()
    const { browser, code } = await signedIn()
    const tokens = await redeem(code)
    assert.equal(tokens.status, 200)
    wait(IDLE - 100)
    const refreshed = await refresh(tokens.body.refresh_token)
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
    wait(IDLE - 100)
    // Idle 1000 s since the login, 500 s since the refresh.
    const silent = await browser.request(authorization({ prompt: 'none' }))
    assert.ok(new URL(silent.headers.get('location')!).searchParams.get('code'), 'the refresh kept the session')
    // Its cookie lasts until the session's maximum after the login, not the idle limit from now, so that a session
    // kept by refreshes alone is not lost with its cookie.
    const cookie = silent.headers.getSetCookie().find((line) => line.startsWith('gatehouse_oidc_session='))!
    const expires = Date.parse(/expires=([^;]+)/.exec(cookie)![1]!)
    assert.ok(Math.abs(expires - (loggedInAt + MAX * 1000)) <= 3000, `cookie ${cookie}, expected about ${new Date(loggedInAt + MAX * 1000).toUTCString()}`)
    wait(IDLE + WINDOW + 5)
    assert.equal(await authorize(browser, { prompt: 'none' }), 'login_required')
  })

  it('ends an active session at the maximum after the login', async () => {
    const { browser, code } = await signedIn()
    let { body: tokens } = await redeem(code)
    const step = IDLE - 10
    let active = 0
    for (; active + step < MAX; active += step) {
      wait(step)
      assert.equal(await authorize(browser, { prompt: 'none' }), 'code', `active, ${active + step} s after the login`)
      const refreshed = await refresh(tokens.refresh_token)
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
      tokens = refreshed.body
    }
    // Idle far less than the limit, but past the maximum.
    wait(MAX - active + 30)
    assert.equal(await authorize(browser, { prompt: 'none' }), 'login_required', `${(gw.app.bus.clock.now() - realNow()) / 1000} s ahead`)
    assert.equal(await authorize(browser), 'login form')
  })

  it('does not keep a session past its maximum a second at a time, however often the browser asks', async () => {
    const loggedInAt = gw.app.bus.clock.now()
    const { browser } = await signedIn()
    /** Moves the clock to this many seconds after the login began. */
    const moveTo = (seconds: number) => { ahead += loggedInAt + seconds * 1000 - gw.app.bus.clock.now() }
    for (let at = IDLE - 10; at < MAX - 2; at += IDLE - 10) {
      moveTo(at)
      assert.equal(await authorize(browser, { prompt: 'none' }), 'code', `active, ${at} s after the login`)
    }
    // oidc-provider saves a session it loads for at least a second: asked every half second, it was kept past its end.
    const answers: string[] = []
    for (let at = MAX - 1.5; at <= MAX + 4; at += 0.5) {
      moveTo(at)
      answers.push(await authorize(browser, { prompt: 'none' }))
    }
    assert.equal(answers[0], 'code', answers.join(', '))
    assert.equal(answers.at(-1), 'login_required', answers.join(', '))
  })
})
