import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { Browser, linksTo, type Page } from '../helpers/browser.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, decodeJwtPart, REALM, realmUrl, realmWith, tokenRequest } from '../helpers/oidc.ts'
import { SSO } from '../helpers/sso.ts'
import { startUpstreamIdp, type IdpUser, type UpstreamIdp } from '../helpers/upstream-idp.ts'

// A realm's login page offers the gateway's upstream providers: the browser signs in there and comes back to the
// realm's login, which its new gateway session finishes. Every step is a real HTTP request of a cookie-keeping client.

const person = (sub: string, username: string): IdpUser => ({
  sub,
  password: `${username}-upstream-pw`,
  claims: { preferred_username: username, email: `${username}@corp.example`, given_name: username, family_name: 'Upstream' },
})

describe('a realm login through an upstream provider', () => {
  let corp: UpstreamIdp
  let gw: TestGateway

  before(async () => {
    corp = await startUpstreamIdp({ alice: person('sub-alice', 'alice'), bob: person('sub-bob', 'bob') })
    gw = await startGateway({
      config: {
        realms: realmWith([
          { client_id: 'guarded', public_client: true, redirect_uris: [CLIENT_REDIRECT], access: [{ allow: { users: ['alice'] } }] },
          { client_id: 'tv', public_client: true, device_authorization_grant: true },
        ]),
        sso: [corp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret' })],
        // Takes the realm's tokens and no gateway session: the gateway sends a browser to the realm's login.
        services: [{ name: 'realm-app', prefix: '/realm-app/', upstream: 'builtin:demo', accepts: ['oidc'], oidc: { realm: REALM, client_id: 'end-users' } }],
      },
    })
    corp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [`${gw.url}${SSO}corp/callback/`] })
  })
  after(async () => {
    await gw?.close()
    await corp?.close()
  })

  /** An authorization request of a browser application, with its PKCE verifier. */
  function authorization(extra: Record<string, string> = {}, clientId = 'end-users') {
    const verifier = randomBytes(32).toString('base64url')
    const url = realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({
      client_id: clientId, redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256', ...extra,
    })}`)
    return { url, verifier, clientId }
  }
  const toClient = { stopBefore: (url: string) => url.startsWith(CLIENT_REDIRECT) }

  /** The realm login page's "Sign in with Corp ID" link. */
  function corpLink(page: Page): string {
    const [link] = linksTo(page.body, /Sign in with Corp ID/)
    assert.ok(link, 'the realm\'s login page offers "Sign in with Corp ID"')
    return new URL(link, page.url).href
  }

  /**
   * Follows "Sign in with Corp ID" to the provider's login form: through the gateway's sign-in, which is to come back
   * to this login's page. Returns that form and the gateway's sign-in URL it went through.
   */
  async function openCorpLogin(browser: Browser, page: Page): Promise<{ providerLogin: Page; start: URL }> {
    const providerLogin = await browser.navigate(corpLink(page))
    assert.match(providerLogin.body, /name="password"/, 'the provider asks for the password')
    const start = new URL(browser.hops.findLast((hop) => new URL(hop.url).pathname === `${SSO}corp/`)!.url)
    assert.equal(start.searchParams.get('next'), new URL(page.url).pathname, 'the sign-in comes back to this login')
    return { providerLogin, start }
  }

  /**
   * Follows "Sign in with Corp ID" through the provider's forms (its consent, when it asks) and back, to where the
   * browser leaves for the client.
   */
  async function signInThroughCorp(browser: Browser, page: Page, login: string): Promise<Page & { stoppedAt?: string; start: URL }> {
    const { providerLogin, start } = await openCorpLogin(browser, page)
    const signedIn = await browser.submit(providerLogin, { username: login, password: corp.users.get(login)!.password }, toClient)
    const back = /name="decision"/.test(signedIn.body) ? await browser.submit(signedIn, { decision: 'allow' }, toClient) : signedIn
    return { ...back, start }
  }

  async function tokensFor(code: string, request: { verifier: string; clientId: string }) {
    const answer = await tokenRequest(gw, { grant_type: 'authorization_code', client_id: request.clientId, code, redirect_uri: CLIENT_REDIRECT, code_verifier: request.verifier })
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    return answer.body
  }

  it('offers each upstream provider on the login page, and finishes the login with the sign-in that comes back', async () => {
    const browser = new Browser()
    const request = authorization()
    const page = await browser.navigate(request.url, toClient)
    assert.match(new URL(page.url).pathname, /\/login-actions\//)
    const back = await signInThroughCorp(browser, page, 'alice')
    assert.ok(back.stoppedAt, `the login went on to the client: ${back.url} ${back.body.slice(0, 300)}`)
    const code = new URL(back.stoppedAt).searchParams.get('code')
    assert.ok(code)
    const tokens = await tokensFor(code, request)
    const alice = (await gw.store.users.findByUsername('alice'))!
    assert.equal(alice.source, 'sso')
    const idToken = decodeJwtPart(tokens.id_token, 1)
    assert.equal(idToken.sub, String(alice.id))
    assert.equal(idToken.acr, '1', 'the person signed in during this authorization')
    // Signed in at the gateway and the realm alike: the next authorization needs no page.
    assert.ok((await browser.navigate(authorization().url, toClient)).stoppedAt)
  })

  it('asks the provider for a fresh login when the client asks for one, and takes the sign-in that brings it', async () => {
    const browser = new Browser()
    const first = await browser.navigate(authorization().url, toClient)
    assert.ok((await signInThroughCorp(browser, first, 'bob')).stoppedAt)

    for (const extra of [{ prompt: 'login' }, { max_age: '0' }] as Record<string, string>[]) {
      const request = authorization(extra)
      const page = await browser.navigate(request.url, toClient)
      assert.equal(page.stoppedAt, undefined, `${JSON.stringify(extra)}: the gateway session does not answer a fresh login`)
      // The provider, where the browser is signed in already, asks for the password again.
      const back = await signInThroughCorp(browser, page, 'bob')
      assert.equal(back.start.searchParams.get('prompt'), 'login', 'the provider is asked for a fresh login')
      assert.ok(back.stoppedAt, `${JSON.stringify(extra)}: ${back.url} ${back.body.slice(0, 300)}`)
      const tokens = await tokensFor(new URL(back.stoppedAt).searchParams.get('code')!, request)
      assert.ok(decodeJwtPart(tokens.id_token, 1).auth_time >= Math.floor(Date.now() / 1000) - 5)
    }
  })

  it('takes for a fresh login no sign-in begun another way that the provider answered with its own session', async () => {
    const browser = new Browser()
    assert.ok((await signInThroughCorp(browser, await browser.navigate(authorization().url, toClient), 'bob')).stoppedAt)

    for (const extra of [{ prompt: 'login' }, { max_age: '0' }] as Record<string, string>[]) {
      const request = authorization(extra)
      const page = await browser.navigate(request.url, toClient)
      assert.equal(page.stoppedAt, undefined)
      // The login has sent the browser to the provider (its link), but the sign-in comes from the gateway's own start,
      // without prompt=login: the provider's session answers it, nobody logs in.
      await browser.navigate(corpLink(page), { stopBefore: (url) => url.startsWith(corp.issuer) })
      const silent = await browser.navigate(`${gw.url}${SSO}corp/?next=${encodeURIComponent(new URL(page.url).pathname)}`, toClient)
      assert.ok(browser.hops.some((hop) => new URL(hop.url).pathname === `${SSO}corp/callback/` && hop.status === 302), 'the provider signed the browser in silently')
      assert.equal(silent.stoppedAt, undefined, `${JSON.stringify(extra)}: the silent sign-in finished the fresh login`)
      assert.equal(silent.response.status, 200)
      assert.match(new URL(silent.url).pathname, /\/login-actions\//)
      assert.match(silent.body, /name="password"/, 'the login page again')
      // Its link asks the provider for a fresh login, which finishes it.
      const back = await signInThroughCorp(browser, silent, 'bob')
      assert.ok(back.stoppedAt, `${JSON.stringify(extra)}: ${back.url} ${back.body.slice(0, 300)}`)
      await tokensFor(new URL(back.stoppedAt).searchParams.get('code')!, request)
    }
  })

  it('takes a gateway session older than max_age for no login, and the sign-in made on its page for one', async () => {
    const browser = new Browser()
    assert.ok((await signInThroughCorp(browser, await browser.navigate(authorization().url, toClient), 'alice')).stoppedAt)
    const alice = (await gw.store.users.findByUsername('alice'))!
    // The gateway session was opened ten minutes ago.
    await gw.store.database.db.updateTable('sessions').set((eb) => ({ created_at: eb('created_at', '-', 600_000) })).where('user_id', '=', alice.id).execute()
    gw.app.sessions.forgetUser(alice.id)
    // And so was the realm's browser session, which took its login time from it.
    const { instance: provider } = await gw.app.oidc.get(REALM)!.provider()
    const realmSession = (await provider.Session.find(browser.cookie(gw.url, 'gatehouse_oidc_session')!))!
    realmSession.loginTs = realmSession.loginTs! - 600
    await realmSession.persist()
    const request = authorization({ max_age: '300' })
    const page = await browser.navigate(request.url, toClient)
    assert.equal(page.stoppedAt, undefined, 'a sign-in older than max_age asks for the login')
    const back = await signInThroughCorp(browser, page, 'alice')
    assert.ok(back.stoppedAt, back.body.slice(0, 300))
    const tokens = await tokensFor(new URL(back.stoppedAt).searchParams.get('code')!, request)
    assert.ok(decodeJwtPart(tokens.id_token, 1).auth_time >= Math.floor(Date.now() / 1000) - 5)
  })

  it('brings a browser that a service sent to the realm\'s login back to the page it asked for, signed in through the provider', async () => {
    const browser = new Browser()
    const page = await browser.navigate(`${gw.url}/realm-app/files/a.csv?x=1`)
    assert.match(new URL(page.url).pathname, /\/login-actions\//)
    const back = await signInThroughCorp(browser, page, 'alice')
    assert.equal(back.url, `${gw.url}/realm-app/files/a.csv?x=1`)
    assert.equal(JSON.parse(back.body).identity.username, 'alice')
  })

  it('takes no other prompt than login at the gateway\'s sign-in', async () => {
    const response = await gw.fetch(`${SSO}corp/?prompt=none`, { headers: { accept: 'application/json' } })
    assert.equal(response.status, 400)
    assert.equal(((await response.json()) as { code: string }).code, 'invalid')
  })

  it('shows the login page for a provider it does not have', async () => {
    const browser = new Browser()
    const page = await browser.navigate(authorization().url, toClient)
    const other = await browser.navigate(`${page.url}?provider=elsewhere`, toClient)
    assert.equal(other.response.status, 200)
    assert.equal(other.url, `${page.url}?provider=elsewhere`, 'no redirect')
    assert.match(other.body, /name="password"/)
  })

  it('does not finish a login that expired while the person signed in at the provider; the sign-in stands', async () => {
    const browser = new Browser()
    const page = await browser.navigate(authorization().url, toClient)
    const { providerLogin } = await openCorpLogin(browser, page)
    const { instance: provider } = await gw.app.oidc.get(REALM)!.provider()
    await (await provider.Interaction.find(new URL(page.url).pathname.split('/').pop()!))!.destroy()
    const signedIn = await browser.submit(providerLogin, { username: 'alice', password: corp.users.get('alice')!.password }, toClient)
    const back = /name="decision"/.test(signedIn.body) ? await browser.submit(signedIn, { decision: 'allow' }, toClient) : signedIn
    assert.equal(back.stoppedAt, undefined)
    assert.equal(back.response.status, 400)
    assert.match(back.body, /Login expired/)
    // The application starting again finds the browser signed in.
    assert.ok((await browser.navigate(authorization().url, toClient)).stoppedAt)
  })

  it('comes back to the realm\'s login from the gateway\'s login page a refused sign-in lands on', async () => {
    await gw.app.accounts.create({ username: 'carol', password: 'carol-local-password' })
    const browser = new Browser()
    const request = authorization({ prompt: 'login' })
    const page = await browser.navigate(request.url, toClient)
    const { providerLogin } = await openCorpLogin(browser, page)
    const consent = await browser.submit(providerLogin, { username: 'alice', password: corp.users.get('alice')!.password }, toClient)
    const refused = await browser.submit(consent, { decision: 'deny' }, toClient)
    assert.equal(refused.response.status, 401)
    assert.equal(new URL(refused.url).pathname, `${SSO}corp/callback/`)
    assert.match(refused.body, /name="next" value="[^"]*\/login-actions\//, 'the gateway\'s login page keeps the realm\'s login as next')
    const back = await browser.submit(refused, { username: 'carol', password: 'carol-local-password' }, toClient)
    assert.ok(back.stoppedAt, back.body.slice(0, 300))
    const tokens = await tokensFor(new URL(back.stoppedAt).searchParams.get('code')!, request)
    assert.equal(decodeJwtPart(tokens.id_token, 1).sub, String((await gw.store.users.findByUsername('carol'))!.id))
  })

  describe('kc_idp_hint', () => {
    it('sends the browser straight to the provider it names, whose sign-in comes back to finish the login', async () => {
      const browser = new Browser()
      const request = authorization({ kc_idp_hint: 'corp' })
      const providerLogin = await browser.navigate(request.url, toClient)
      assert.equal(new URL(providerLogin.url).origin, new URL(corp.issuer).origin, 'no login page on the way')
      const login = browser.hops.find((hop) => new URL(hop.url).pathname.includes('/login-actions/'))!
      assert.equal(login.status, 303)
      const start = new URL(browser.hops.find((hop) => new URL(hop.url).pathname === `${SSO}corp/`)!.url)
      assert.equal(start.searchParams.get('next'), new URL(login.url).pathname)
      assert.equal(start.searchParams.get('prompt'), null)
      const signedIn = await browser.submit(providerLogin, { username: 'bob', password: corp.users.get('bob')!.password }, toClient)
      const back = /name="decision"/.test(signedIn.body) ? await browser.submit(signedIn, { decision: 'allow' }, toClient) : signedIn
      assert.ok(back.stoppedAt, back.body.slice(0, 300))
      const tokens = await tokensFor(new URL(back.stoppedAt).searchParams.get('code')!, request)
      assert.equal(decodeJwtPart(tokens.id_token, 1).sub, String((await gw.store.users.findByUsername('bob'))!.id))
    })

    it('sends it once: the login page asked for again is shown', async () => {
      const browser = new Browser()
      await browser.navigate(authorization({ kc_idp_hint: 'corp' }).url, toClient)
      const login = browser.hops.find((hop) => new URL(hop.url).pathname.includes('/login-actions/'))!
      const again = await browser.navigate(login.url, toClient)
      assert.equal(again.response.status, 200)
      assert.equal(again.url, login.url)
      assert.match(again.body, /name="password"/)
    })

    it('shows the login page for an empty hint or one naming no provider, as Keycloak goes on to its form', async () => {
      for (const hint of ['', 'github', 'CORP', 'corp ']) {
        const browser = new Browser()
        const page = await browser.navigate(authorization({ kc_idp_hint: hint }).url, toClient)
        assert.equal(page.response.status, 200, hint)
        assert.match(new URL(page.url).pathname, /\/login-actions\//, hint)
        assert.ok(linksTo(page.body, /Sign in with Corp ID/).length)
      }
    })

    it('goes nowhere with prompt=none: login_required, as without it', async () => {
      const browser = new Browser()
      const answer = await browser.navigate(authorization({ kc_idp_hint: 'corp', prompt: 'none' }).url, toClient)
      assert.ok(answer.stoppedAt)
      assert.equal(new URL(answer.stoppedAt).searchParams.get('error'), 'login_required')
      assert.deepEqual(browser.hops.map((hop) => new URL(hop.url).pathname), [`/realms/${REALM}/protocol/openid-connect/auth`])
    })

    it('sends no browser anywhere for a device authorization, which the browser did not ask for', async () => {
      const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', scope: 'openid', kc_idp_hint: 'corp' }) })
      assert.equal(started.status, 200)
      const { user_code: userCode } = await started.json() as { user_code: string }
      const browser = new Browser()
      const confirm = await browser.submit(await browser.navigate(realmUrl(gw, '/device')), { user_code: userCode })
      assert.match(confirm.body, /Confirm device login/)
      const login = await browser.submit(confirm, {})
      assert.equal(login.response.status, 200)
      assert.match(new URL(login.url).pathname, /\/login-actions\//)
      assert.ok(browser.hops.every((hop) => new URL(hop.url).origin === gw.url))
    })

    it('is passed over by a session that answers the login, and asks the provider for a fresh login with prompt=login', async () => {
      const browser = new Browser()
      assert.ok((await signInThroughCorp(browser, await browser.navigate(authorization().url, toClient), 'alice')).stoppedAt)
      const hops = browser.hops.length
      assert.ok((await browser.navigate(authorization({ kc_idp_hint: 'corp' }).url, toClient)).stoppedAt)
      assert.ok(browser.hops.slice(hops).every((hop) => new URL(hop.url).origin === gw.url), 'signed in by its session, never sent to the provider')

      const request = authorization({ kc_idp_hint: 'corp', prompt: 'login' })
      const providerLogin = await browser.navigate(request.url, toClient)
      assert.equal(new URL(providerLogin.url).origin, new URL(corp.issuer).origin)
      assert.equal(new URL(browser.hops.findLast((hop) => new URL(hop.url).pathname === `${SSO}corp/`)!.url).searchParams.get('prompt'), 'login')
      const back = await browser.submit(providerLogin, { username: 'alice', password: corp.users.get('alice')!.password }, toClient)
      assert.ok(back.stoppedAt, back.body.slice(0, 300))
      await tokensFor(new URL(back.stoppedAt).searchParams.get('code')!, request)
    })
  })

  it('refuses the sign-in to a client whose access rules do not let its person in', async () => {
    const browser = new Browser()
    const page = await browser.navigate(authorization({}, 'guarded').url, toClient)
    const back = await signInThroughCorp(browser, page, 'bob')
    assert.ok(back.stoppedAt)
    assert.equal(new URL(back.stoppedAt).searchParams.get('error'), 'access_denied')
  })

  it('still refuses a single sign-on account at the password form', async () => {
    const browser = new Browser()
    const page = await browser.navigate(authorization().url, toClient)
    const refused = await browser.submit(page, { username: 'alice', password: 'alice-upstream-pw' }, toClient)
    assert.equal(refused.stoppedAt, undefined)
    assert.match(refused.body, /Invalid username or password\./)
    assert.ok(linksTo(refused.body, /Sign in with Corp ID/).length, 'the refused form offers the provider still')
  })
})
