import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { gatewayBackends } from '../helpers/backends.ts'
import { Browser } from '../helpers/browser.ts'
import { adminAuth, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, decodeJwtPart, passwordLogin, REALM, realmUrl, realmWith, SERVICE_SECRET, testRealms, tokenRequest } from '../helpers/oidc.ts'
import { DELIVERY_TIMEOUT_MS } from '../../src/oidc/backchannel-logout.ts'

/** What a back-channel logout receiver got. */
interface Received {
  path: string
  contentType: string | undefined
  form: URLSearchParams
  /** Set when the gateway closed the request (it answered, or gave up). */
  closedAt?: number
}

/** An application's back-channel logout endpoint on 127.0.0.1: records every POST; `/hang` never answers. */
class Receiver {
  readonly received: Received[] = []
  readonly #server: Server
  readonly #hanging = new Set<ServerResponse>()
  url = ''

  constructor() {
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const entry: Received = { path: req.url ?? '', contentType: req.headers['content-type'], form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')) }
        this.received.push(entry)
        res.on('close', () => (entry.closedAt = Date.now()))
        if (req.url === '/hang') this.#hanging.add(res)
        else res.writeHead(200, { 'cache-control': 'no-store' }).end()
      })
    })
  }

  async start(): Promise<void> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  /** The first request to `path`, once it has come (polled, with a deadline for a loaded machine). */
  async next(path: string, seen = 0, deadlineMs = 30_000): Promise<Received> {
    const until = Date.now() + deadlineMs
    for (;;) {
      const found = this.received.filter((entry) => entry.path === path)[seen]
      if (found) return found
      if (Date.now() > until) throw new Error(`no logout token came to ${path}`)
      await sleep(50)
    }
  }

  count(path: string): number {
    return this.received.filter((entry) => entry.path === path).length
  }

  async stop(): Promise<void> {
    for (const res of this.#hanging) res.destroy()
    this.#server.closeAllConnections()
    this.#server.close()
  }
}

/** Signs the browser in to `clientId` at the realm's login page (or silently, when it has a session) and redeems the code. */
async function signInAt(gw: TestGateway, browser: Browser, clientId: string): Promise<{ id_token: string; refresh_token: string }> {
  const verifier = randomBytes(32).toString('base64url')
  const authorize = `${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
    client_id: clientId, redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid', nonce: 'n-0S6_WzA2Mj',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
  })}`
  const stop = { stopBefore: (url: string) => url.startsWith(CLIENT_REDIRECT) }
  let page = await browser.navigate(authorize, stop)
  if (!page.stoppedAt) page = await browser.submit(page, { username: 'alice', password: 'alice-password-long' }, stop)
  const code = new URL(page.stoppedAt!).searchParams.get('code')!
  const tokens = await tokenRequest(gw, { client_id: clientId, grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
  assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
  return tokens.body
}

for (const backend of gatewayBackends) {
  describe(`back-channel logout, on ${backend.name}`, () => {
    let gw: TestGateway
    const receiver = new Receiver()
    const logLines: Record<string, unknown>[] = []
    let aliceId = 0

    before(async () => {
      await receiver.start()
      gw = await backend.start({
        logLines,
        config: {
          realms: realmWith([
            { client_id: 'app', redirect_uris: [CLIENT_REDIRECT], post_logout_redirect_uris: ['+'], backchannel_logout_uri: `${receiver.url}/app` },
            { client_id: 'other-app', redirect_uris: [CLIENT_REDIRECT], backchannel_logout_uri: `${receiver.url}/other-app` },
            { client_id: 'slow-app', redirect_uris: [CLIENT_REDIRECT], post_logout_redirect_uris: ['+'], backchannel_logout_uri: `${receiver.url}/hang` },
            { client_id: 'script', public_client: true, direct_access_grants: true, backchannel_logout_uri: `${receiver.url}/script` },
            { client_id: 'intranet', redirect_uris: [CLIENT_REDIRECT], backchannel_logout_uri: `${receiver.url}/intranet` },
            { client_id: 'wiki', redirect_uris: [CLIENT_REDIRECT], backchannel_logout_uri: `${receiver.url}/wiki` },
          ]),
        },
      })
      aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password-long' })).id
    })
    after(async () => {
      await gw.close()
      await receiver.stop()
    })

    const signIn = (browser: Browser, clientId: string) => signInAt(gw, browser, clientId)

    /** Logs the browser out at the end-session endpoint, as the application sends it there; resolves when the browser is back. */
    async function logOutAtRealm(browser: Browser, clientId: string): Promise<void> {
      const confirm = await browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/logout')}?${new URLSearchParams({ client_id: clientId, post_logout_redirect_uri: CLIENT_REDIRECT })}`)
      const back = await browser.submit(confirm, { logout: 'yes' }, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
      assert.ok(back.stoppedAt, 'the browser is sent back to the application')
    }

    /** The logout token's claims, verified as an application verifies it: the realm's JWKS, issuer, audience. */
    async function verifiedLogoutToken(received: Received, clientId: string): Promise<Record<string, unknown>> {
      assert.equal(received.contentType, 'application/x-www-form-urlencoded')
      assert.deepEqual([...received.form.keys()], ['logout_token'])
      const token = received.form.get('logout_token')!
      const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(realmUrl(gw, '/protocol/openid-connect/certs'))), {
        issuer: realmUrl(gw), audience: clientId, typ: 'logout+jwt', requiredClaims: ['iat', 'exp', 'jti'],
      })
      assert.equal(protectedHeader.alg, 'RS256')
      return payload as Record<string, unknown>
    }

    it('advertises back-channel logout in discovery', async () => {
      const discovery = await (await gw.fetch(`/realms/${REALM}/.well-known/openid-configuration`)).json() as Record<string, unknown>
      assert.equal(discovery.backchannel_logout_supported, true)
      assert.equal(discovery.backchannel_logout_session_supported, true)
    })

    it('sends every client of the session a signed logout token when the browser logs out at the end-session endpoint', async () => {
      const browser = new Browser()
      const { id_token: idToken } = await signIn(browser, 'app')
      const { id_token: otherIdToken } = await signIn(browser, 'other-app')
      const sid = decodeJwtPart(idToken, 1).sid
      assert.ok(sid)
      assert.equal(decodeJwtPart(otherIdToken, 1).sid, sid, 'one browser session, one sid')
      const [before, otherBefore] = [receiver.count('/app'), receiver.count('/other-app')]

      await logOutAtRealm(browser, 'app')

      for (const [path, clientId, seen] of [['/app', 'app', before], ['/other-app', 'other-app', otherBefore]] as const) {
        const claims = await verifiedLogoutToken(await receiver.next(path, seen), clientId)
        assert.equal(claims.sub, String(aliceId))
        assert.equal(claims.sid, sid, 'the sid of the session\'s ID tokens')
        assert.deepEqual(claims.events, { 'http://schemas.openid.net/event/backchannel-logout': {} })
        assert.equal(claims.nonce, undefined, 'a logout token never carries a nonce (§2.4)')
        assert.equal(claims.aud, clientId)
        assert.equal((claims.exp as number) - (claims.iat as number), 120)
        assert.equal(typeof claims.jti, 'string')
      }
    })

    it('sends the logout token when a browser without the session brings its id_token_hint to the end-session endpoint', async () => {
      const browser = new Browser()
      const { id_token: idToken } = await signIn(browser, 'app')
      const seen = receiver.count('/app')
      const elsewhere = new Browser()
      const page = await elsewhere.navigate(`${realmUrl(gw, '/protocol/openid-connect/logout')}?${new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: CLIENT_REDIRECT })}`)
      const back = await elsewhere.submit(page, {}, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
      assert.ok(back.stoppedAt, 'the browser is sent back to the application')
      const claims = await verifiedLogoutToken(await receiver.next('/app', seen), 'app')
      assert.equal(claims.sid, decodeJwtPart(idToken, 1).sid)
    })

    it('sends the logout token when the session ends otherwise: the account disabled by an administrator', async () => {
      const browser = new Browser()
      const { id_token: idToken } = await signIn(browser, 'app')
      const seen = receiver.count('/app')
      const disabled = await gw.fetch(`/api/gateway/v1/users/${aliceId}/`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: false }) })
      assert.equal(disabled.status, 200)
      try {
        const claims = await verifiedLogoutToken(await receiver.next('/app', seen), 'app')
        assert.equal(claims.sub, String(aliceId))
        assert.equal(claims.sid, decodeJwtPart(idToken, 1).sid)
      } finally {
        const enabled = await gw.fetch(`/api/gateway/v1/users/${aliceId}/`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ is_active: true }) })
        assert.equal(enabled.status, 200)
      }
    })

    it('sends the logout token when the browser\'s gateway session ends, which ends its realm session', async () => {
      const browser = new Browser()
      const { id_token: idToken } = await signIn(browser, 'app')
      const seen = receiver.count('/app')
      const csrf = browser.cookie(gw.url, 'csrftoken') ?? (await browser.request(`${gw.url}/api/gateway/v1/login/`), browser.cookie(gw.url, 'csrftoken'))!
      const logout = await browser.request(`${gw.url}/api/gateway/v1/logout/`, { method: 'POST', headers: { 'x-csrftoken': csrf, accept: 'application/json', referer: `${gw.url}/ui/` } })
      assert.equal(logout.status, 302)
      const claims = await verifiedLogoutToken(await receiver.next('/app', seen), 'app')
      assert.equal(claims.sid, decodeJwtPart(idToken, 1).sid)
    })

    it('answers the logout without waiting for a receiver that hangs, which is given up after the timeout and logged without the token', async () => {
      const browser = new Browser()
      await signIn(browser, 'slow-app')
      const seen = receiver.count('/hang')
      await logOutAtRealm(browser, 'slow-app')
      const loggedOutAt = Date.now()
      const hanging = await receiver.next('/hang', seen)
      const until = Date.now() + DELIVERY_TIMEOUT_MS + 30_000
      while (hanging.closedAt === undefined && Date.now() < until) await sleep(50)
      assert.ok(hanging.closedAt !== undefined, 'the gateway gave the request up')
      assert.ok(loggedOutAt < hanging.closedAt, 'the browser was answered before the delivery ended')
      const token = hanging.form.get('logout_token')!
      let line: Record<string, unknown> | undefined
      for (const deadline = Date.now() + 30_000; !line && Date.now() < deadline; await sleep(50)) {
        line = logLines.find((l) => l.outcome === 'timeout' && l.client_id === 'slow-app')
      }
      assert.ok(line, 'the failure is logged')
      assert.equal(line.realm, REALM)
      assert.ok(!JSON.stringify(logLines).includes(token), 'the token is never logged')
      const metrics = await (await gw.fetch('/metrics')).text()
      assert.match(metrics, new RegExp(`gatehouse_oidc_backchannel_logouts_total\\{realm="${REALM}",outcome="timeout"\\} [1-9]`))
      assert.match(metrics, new RegExp(`gatehouse_oidc_backchannel_logouts_total\\{realm="${REALM}",outcome="delivered"\\} [1-9]`))
      assert.equal(decodeProtectedHeader(token).typ, 'logout+jwt')
    })

    /** Logs a password login out as scripts do with Keycloak: its refresh token POSTed to the end-session endpoint. */
    async function logOutWithRefreshToken(clientId: string, refreshToken: string): Promise<void> {
      const logout = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/logout`, { method: 'POST', body: new URLSearchParams({ client_id: clientId, refresh_token: refreshToken }) })
      assert.equal(logout.status, 204)
    }

    it('tells the client of a password login that it ended, through a logout with its refresh token', async () => {
      const login = await passwordLogin(gw, 'alice', 'alice-password-long', { client_id: 'script' })
      const sid = decodeJwtPart(login.access_token, 1).sid
      assert.ok(sid)
      const seen = receiver.count('/script')
      await logOutWithRefreshToken('script', login.refresh_token)
      const claims = await verifiedLogoutToken(await receiver.next('/script', seen), 'script')
      assert.equal(claims.sub, String(aliceId))
      assert.equal(claims.sid, sid, 'the sid of the login\'s tokens')
      // Once ended, the same logout again is no error, and tells nothing: what comes next is the next login's end.
      await logOutWithRefreshToken('script', login.refresh_token)
      const next = await passwordLogin(gw, 'alice', 'alice-password-long', { client_id: 'script' })
      await logOutWithRefreshToken('script', next.refresh_token)
      const nextClaims = await verifiedLogoutToken(await receiver.next('/script', seen + 1), 'script')
      assert.equal(nextClaims.sid, decodeJwtPart(next.access_token, 1).sid)
      assert.equal(receiver.count('/script'), seen + 2)
    })

    it('tells the client of a password login that it ended, through a logout whose id_token_hint is its ID token', async () => {
      const login = await passwordLogin(gw, 'alice', 'alice-password-long', { client_id: 'script', scope: 'openid' })
      const sid = decodeJwtPart(login.id_token, 1).sid
      assert.ok(sid)
      const seen = receiver.count('/script')
      const elsewhere = new Browser()
      const page = await elsewhere.navigate(`${realmUrl(gw, '/protocol/openid-connect/logout')}?${new URLSearchParams({ id_token_hint: login.id_token })}`)
      const done = await elsewhere.submit(page, {})
      assert.match(done.body, /You are logged out\./)
      const claims = await verifiedLogoutToken(await receiver.next('/script', seen), 'script')
      assert.equal(claims.sub, String(aliceId))
      assert.equal(claims.sid, sid, 'the sid of the login\'s tokens')
      const refreshed = await tokenRequest(gw, { client_id: 'script', grant_type: 'refresh_token', refresh_token: login.refresh_token })
      assert.equal(refreshed.body.error, 'invalid_grant')
      await sleep(200)
      assert.equal(receiver.count('/script'), seen + 1, 'told once')
    })

    it('tells the client of each password login when the account\'s password changes', async () => {
      const first = await passwordLogin(gw, 'alice', 'alice-password-long', { client_id: 'script' })
      const second = await passwordLogin(gw, 'alice', 'alice-password-long', { client_id: 'script' })
      const sids = [first, second].map((login) => decodeJwtPart(login.access_token, 1).sid as string)
      assert.notEqual(sids[0], sids[1], 'each password login is a session of its own')
      // A refreshed login is told as well, once.
      const refreshedFirst = await tokenRequest(gw, { client_id: 'script', grant_type: 'refresh_token', refresh_token: first.refresh_token })
      assert.equal(refreshedFirst.status, 200)
      assert.equal(decodeJwtPart(refreshedFirst.body.access_token, 1).sid, sids[0])
      const seen = receiver.count('/script')
      await gw.app.accounts.update(aliceId, { password: 'alice-password-longer' })
      try {
        const told = [await receiver.next('/script', seen), await receiver.next('/script', seen + 1)]
        const claims = await Promise.all(told.map((received) => verifiedLogoutToken(received, 'script')))
        assert.deepEqual(claims.map((c) => c.sid).sort(), [...sids].sort())
        for (const c of claims) assert.equal(c.sub, String(aliceId))
        const refreshed = await tokenRequest(gw, { client_id: 'script', grant_type: 'refresh_token', refresh_token: first.refresh_token })
        assert.equal(refreshed.status, 400)
      } finally {
        await gw.app.accounts.update(aliceId, { password: 'alice-password-long' })
      }
    })

    it('ends the browser session, telling each of its clients, on a logout with the refresh token of one of its sign-ins', async () => {
      const browser = new Browser()
      const intranet = await signIn(browser, 'intranet')
      const wiki = await signIn(browser, 'wiki')
      const sid = decodeJwtPart(intranet.id_token, 1).sid
      const [intranetSeen, wikiSeen] = [receiver.count('/intranet'), receiver.count('/wiki')]
      await logOutWithRefreshToken('intranet', intranet.refresh_token)
      for (const [path, clientId, seen] of [['/intranet', 'intranet', intranetSeen], ['/wiki', 'wiki', wikiSeen]] as const) {
        const claims = await verifiedLogoutToken(await receiver.next(path, seen), clientId)
        assert.equal(claims.sid, sid, 'the browser session\'s sid')
        assert.equal(claims.sub, String(aliceId))
      }
      const refreshed = await tokenRequest(gw, { client_id: 'wiki', grant_type: 'refresh_token', refresh_token: wiki.refresh_token })
      assert.equal(refreshed.status, 400, 'the other sign-in of the session ended with it')
      assert.equal(refreshed.body.error, 'invalid_grant')
    })

    it('told each ended session\'s clients once: the end at the realm also ends the gateway session, which finds the realm session gone', () => {
      // Seconds after the earlier tests' ends (the hanging receiver's timeout): a second token would have come by now.
      assert.equal(receiver.count('/app'), 4)
      assert.equal(receiver.count('/other-app'), 1)
      assert.equal(receiver.count('/hang'), 1)
      assert.equal(receiver.count('/script'), 5)
      assert.equal(receiver.count('/intranet'), 1)
      assert.equal(receiver.count('/wiki'), 1)
    })

    it('a logout token passes for no access token: refused at a service, at userinfo and by introspection', async () => {
      const browser = new Browser()
      await signIn(browser, 'app')
      const seen = receiver.count('/app')
      await logOutAtRealm(browser, 'app')
      const token = (await receiver.next('/app', seen)).form.get('logout_token')!
      // Alice signed in again: her account and a session of hers are live while the token is shown.
      await signIn(new Browser(), 'app')
      const bearer = { authorization: `Bearer ${token}`, accept: 'application/json' }
      const service = await gw.fetch('/demo-app/pipelines/forecast/trials', { headers: bearer })
      assert.equal(service.status, 401)
      assert.equal(((await service.json()) as { code?: string }).code, 'invalid_token')
      const userinfo = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: bearer })
      assert.equal(userinfo.status, 401)
      const introspected = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token/introspect`, {
        method: 'POST', headers: { authorization: `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}` }, body: new URLSearchParams({ token }),
      })
      assert.equal(introspected.status, 200)
      assert.equal(((await introspected.json()) as { active?: boolean }).active, false)
    })
  })

  describe(`back-channel logout of a session saved without its realm, with several realms, on ${backend.name}`, () => {
    let gw: TestGateway
    const receiver = new Receiver()
    let aliceId = 0

    before(async () => {
      await receiver.start()
      gw = await backend.start({
        config: { realms: [...realmWith([{ client_id: 'legacy', redirect_uris: [CLIENT_REDIRECT], backchannel_logout_uri: `${receiver.url}/legacy` }]), { ...testRealms[0], name: 'elsewhere' }] },
      })
      aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password-long' })).id
    })
    after(async () => {
      await gw.close()
      await receiver.stop()
    })

    it('tells its clients in the one realm that has every client it signed in to', async () => {
      const { id_token: idToken } = await signInAt(gw, new Browser(), 'legacy')
      // As a version of Gatehouse that did not name the realm saved it.
      const db = gw.store.database.db
      const sessions = await db.selectFrom('oidc_records').select(['id', 'payload']).where('model', '=', 'Session').where('account_id', '=', String(aliceId)).execute()
      assert.equal(sessions.length, 1)
      const { gatehouseRealm, ...unnamed } = JSON.parse(sessions[0]!.payload) as Record<string, unknown>
      assert.equal(gatehouseRealm, REALM)
      await db.updateTable('oidc_records').set({ payload: JSON.stringify(unnamed) }).where('model', '=', 'Session').where('id', '=', sessions[0]!.id).execute()

      await gw.app.accounts.update(aliceId, { password: 'alice-password-longer' })
      const received = await receiver.next('/legacy')
      const { payload } = await jwtVerify(received.form.get('logout_token')!, createRemoteJWKSet(new URL(realmUrl(gw, '/protocol/openid-connect/certs'))), { issuer: realmUrl(gw), audience: 'legacy', typ: 'logout+jwt' })
      assert.equal(payload.sid, decodeJwtPart(idToken, 1).sid)
      assert.equal(payload.sub, String(aliceId))
    })
  })
}
