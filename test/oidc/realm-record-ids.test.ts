import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, CookieJar, REALM, realmUrl, realmWith, submitForm } from '../helpers/oidc.ts'

const SESSION_COOKIE = 'gatehouse_oidc_session'
const PASSWORD = 'alice-password-long'
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
/** The wrong user codes one browser session may type (src/oidc/user-code-guesses.ts). */
const WRONG_GUESSES_PER_SESSION = 10

/** The realm's authorization request for the public client, as a browser is sent it. */
function authorization(gw: TestGateway): string {
  const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url')
  return realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' })}`)
}

/** A browser holding only the realm's session cookie: no gateway session signs it in. */
function realmSessionOnly(value: string): CookieJar {
  const jar = new CookieJar()
  jar.store(new Response(null, { headers: { 'set-cookie': `${SESSION_COOKIE}=${value}` } }))
  return jar
}

const cookieOf = (jar: CookieJar) => /(?:^|; )gatehouse_oidc_session=([^;]+)/.exec(jar.header())?.[1]

/** Signs alice in at the realm's login page; the realm session cookie's value and the code the browser was given. */
async function signIn(gw: TestGateway): Promise<{ cookie: string; code: string }> {
  const jar = new CookieJar()
  const page = await browse(gw, jar, authorization(gw))
  assert.equal(page.response.status, 200)
  const login = /(?:^|; )gatehouse_oidc_interaction=([^;]+)/.exec(jar.header())?.[1]
  assert.ok(login, 'the login under way has its cookie')
  const stored = await recordsText(gw)
  assert.ok(stored.includes('"Interaction"') && !stored.includes(login), 'the login under way is stored, without its cookie\'s value')
  const done = await submitForm(gw, jar, page, { username: 'alice', password: PASSWORD })
  assert.ok(done.url.startsWith(CLIENT_REDIRECT), `signed in: ${done.url}`)
  const cookie = cookieOf(jar)
  assert.ok(cookie, 'the realm set its session cookie')
  return { cookie, code: new URL(done.url).searchParams.get('code')! }
}

/** Whether the realm signs a browser with this session cookie in without its login form. */
async function signedInBy(gw: TestGateway, cookie: string): Promise<boolean> {
  const { response, url } = await browse(gw, realmSessionOnly(cookie), authorization(gw))
  if (url.startsWith(CLIENT_REDIRECT)) return new URL(url).searchParams.has('code')
  assert.match(await response.text(), /name="password"/, 'the login form')
  return false
}

/** Every id and payload of the realm's records, as one text. */
async function recordsText(gw: TestGateway): Promise<string> {
  const rows = await gw.store.database.db.selectFrom('oidc_records').selectAll().execute()
  return JSON.stringify(rows)
}

for (const backend of gatewayBackends) {
  describe(`realm records whose id is a secret, on ${backend.name}`, () => {
    let gw: TestGateway
    before(async () => {
      gw = await backend.start({ config: { realms: realmWith([{ client_id: 'tv', public_client: true, device_authorization_grant: true }]) } })
      await gw.app.accounts.create({ username: 'alice', password: PASSWORD })
    })
    after(() => gw?.close())

    it('keeps neither the realm session cookie nor the authorization code in the database, and the session still signs its browser in', async () => {
      const { cookie, code } = await signIn(gw)
      const stored = await recordsText(gw)
      assert.ok(stored.includes('"Session"'), 'the session was stored')
      assert.ok(!stored.includes(cookie), 'the session cookie is nowhere in the table')
      assert.ok(!stored.includes(code), 'the authorization code is nowhere in the table')
      assert.equal(await signedInBy(gw, cookie), true, 'authorized without the login form')
      assert.equal(await signedInBy(gw, createHash('sha256').update(cookie).digest('base64url')), false, 'the stored key is no cookie')
    })

    it('keeps no user code of a device login, as it is typed or as it is stored, and the login still completes', async () => {
      const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', scope: 'openid' }) })
      const { device_code: deviceCode, user_code: userCode } = await started.json() as { device_code: string; user_code: string }
      // As oidc-provider keeps it: the letters alone (WDJB-MJHT as WDJBMJHT).
      const normalised = userCode.replace(/-/g, '')
      const absent = async (when: string) => {
        const stored = await recordsText(gw)
        assert.ok(stored.includes('"DeviceCode"'), `the device code is stored (${when})`)
        for (const value of [userCode, normalised, deviceCode]) assert.ok(!stored.includes(value), `${value} is nowhere in the table (${when})`)
      }
      await absent('pending')

      // A wrong code is still a wrong guess: a browser that typed too many is refused even the right one.
      const wrongCode = userCode === 'BCDF-GHJK' ? 'BCDF-GHJL' : 'BCDF-GHJK'
      const guesser = new CookieJar()
      let guessed = await browse(gw, guesser, realmUrl(gw, '/device'))
      for (let i = 0; i < WRONG_GUESSES_PER_SESSION; i++) {
        guessed = await submitForm(gw, guesser, guessed, { user_code: wrongCode })
        assert.match(await guessed.response.clone().text(), /That code is not valid or has expired/)
      }
      assert.equal((await submitForm(gw, guesser, guessed, { user_code: userCode })).response.status, 429)

      // Another browser types it in lower case and without its dash, and it is found.
      const jar = new CookieJar()
      const wrong = await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: wrongCode })
      assert.match(await wrong.response.clone().text(), /That code is not valid or has expired/)
      const confirm = await submitForm(gw, jar, wrong, { user_code: normalised.toLowerCase() })
      const confirmPage = await confirm.response.clone().text()
      assert.match(confirmPage, /Confirm device login/)
      assert.ok(confirmPage.includes(`<code>${userCode}</code>`), 'the page shows the code as the device does')
      await absent('being confirmed')
      const login = await submitForm(gw, jar, confirm, {})
      const done = await submitForm(gw, jar, login, { username: 'alice', password: PASSWORD })
      assert.match(await done.response.text(), /Device login complete/)
      await absent('approved')
      // Typed again once approved, it is no longer valid.
      const again = await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
      assert.match(await again.response.text(), /That code is not valid or has expired/)

      const polled = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', grant_type: DEVICE_GRANT, device_code: deviceCode }) })
      const tokens = await polled.json() as { access_token?: string }
      assert.equal(polled.status, 200, JSON.stringify(tokens))
      assert.ok(tokens.access_token)
      await absent('redeemed')
    })

    it('ends the session at a logout at the realm', async () => {
      const { cookie } = await signIn(gw)
      const jar = realmSessionOnly(cookie)
      const confirm = await browse(gw, jar, realmUrl(gw, '/protocol/openid-connect/logout'))
      assert.equal(confirm.response.status, 200)
      const loggedOut = await submitForm(gw, jar, confirm, { logout: 'yes' })
      assert.equal(loggedOut.response.status, 200)
      assert.equal(cookieOf(jar), undefined, 'the realm took its session cookie back')
      assert.equal(await signedInBy(gw, cookie), false)
    })

    it('ends the session at the realm\'s logout-all', async () => {
      const { cookie } = await signIn(gw)
      assert.equal(await signedInBy(gw, cookie), true)
      const answer = await gw.fetch(`/admin/realms/${REALM}/logout-all`, { method: 'POST', headers: adminAuth })
      assert.equal(answer.status, 200)
      assert.equal(await signedInBy(gw, cookie), false)
    })
  })
}
