import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, ADMIN_PASSWORD, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { setCookie } from '../helpers/session.ts'

const ORIGIN = 'https://gateway.example'
const LOGIN = '/api/gateway/v1/login/'
const BROWSER = { accept: 'text/html,application/xhtml+xml' }
const FORWARD_AUTH = '/api/gateway/v1/authz/forward-auth/'

/**
 * A proxy in front publishes the gateway at `server.public_url`: with a path (`/edge/`), it takes that path off
 * before forwarding, so the gateway receives `/web/page` for the client's `/edge/web/page`. Every address the gateway
 * writes for the client must then start with the path again, or the client leaves the gateway; without a path, none
 * changes. Each case runs against both.
 */
for (const published of ['/edge', '']) {
  describe(`the gateway's own redirects, published at ${ORIGIN}${published}/`, () => {
    let gw: TestGateway

    before(async () => {
      gw = await startGateway({
        config: {
          server: { host: '127.0.0.1', port: 0, public_url: `${ORIGIN}${published}/`, trusted_proxies: ['127.0.0.1'] },
          services: [
            { name: 'web', prefix: '/web/', upstream: 'builtin:demo', accepts: ['basic', 'session'], unauthenticated: 'redirect' },
            // Takes the realm's tokens and no gateway session: a browser is sent to the realm's login.
            { name: 'realm-app', prefix: '/realm-app/', upstream: 'builtin:demo', accepts: ['oidc', 'basic'], oidc: { realm: 'platform', client_id: 'end-users' } },
          ],
          // Its button on the login page is all these tests ask of it: the provider is never reached.
          sso: [{ name: 'corp', label: 'Corp', issuer: 'https://idp.example', client_id: 'gatehouse', client_secret: 'corp-client-secret' }],
        },
      })
    })
    after(() => gw.close())

    /** Where the client lands: the answer's Location resolved against the address the client asked for, `path` under the published path. */
    async function landing(response: Response, asked: string): Promise<URL> {
      assert.ok([301, 302, 303].includes(response.status), `a redirect, not ${response.status}: ${await response.text()}`)
      return new URL(response.headers.get('location')!, ORIGIN + published + asked)
    }
    const loginFor = (next: string) => `${published}${LOGIN}?next=${encodeURIComponent(next)}`

    it('sends a browser from a service to the login page under the published path, to come back to the page it asked for', async () => {
      const to = await landing(await gw.fetch('/web/page?x=1', { headers: BROWSER }), '/web/page?x=1')
      assert.equal(to.origin, ORIGIN)
      assert.equal(to.pathname + to.search, loginFor(`${published}/web/page?x=1`))
    })

    it('sends a browser a forward-auth question is about to the login page there too, to come back to the page as the proxy received it', async () => {
      const answer = await gw.fetch(FORWARD_AUTH, { headers: { ...BROWSER, 'x-forwarded-uri': '/web/page', 'x-forwarded-method': 'GET' } })
      const to = await landing(answer, FORWARD_AUTH)
      assert.equal(to.pathname + to.search, loginFor('/web/page'))
    })

    it('sends a browser from the web interface to the login page, and from the start page to the web interface', async () => {
      const toLogin = await landing(await gw.fetch('/ui/tokens', { headers: BROWSER }), '/ui/tokens')
      assert.equal(toLogin.pathname + toLogin.search, loginFor(`${published}/ui/tokens`))
      assert.equal((await landing(await gw.fetch('/'), '/')).pathname, `${published}/ui/`)
      assert.equal((await landing(await gw.fetch('/ui'), '/ui')).pathname, `${published}/ui/`)
    })

    it('posts the login form to the login under the published path, offers single sign-on there, and says where the login is', async () => {
      const page = await (await gw.fetch(`${LOGIN}?next=${encodeURIComponent(`${published}/web/page`)}`, { headers: BROWSER })).text()
      const action = /<form method="post" action="([^"]+)"/.exec(page)?.[1]
      assert.ok(action)
      assert.equal(new URL(action.replaceAll('&amp;', '&'), ORIGIN + published + LOGIN).pathname, `${published}${LOGIN}`)
      const sso = /<a class="sso" href="([^"]+)">Sign in with Corp/.exec(page)?.[1]
      assert.ok(sso)
      const start = new URL(sso.replaceAll('&amp;', '&'), ORIGIN + published + LOGIN)
      assert.equal(start.pathname + start.search, `${published}/api/gateway/v1/login/sso/corp/?next=${encodeURIComponent(`${published}/web/page`)}`)
      const described = await json(await gw.fetch(LOGIN, { headers: { accept: 'application/json' } }))
      assert.equal(new URL(described.login_url, ORIGIN + published + LOGIN).pathname, `${published}${LOGIN}`)
    })

    it('lists the login and each single sign-on start under the published path in ui_auth/, as a client addresses them', async () => {
      const uiAuth = await json(await gw.fetch('/api/gateway/v1/ui_auth/'))
      const base = ORIGIN + published + '/api/gateway/v1/ui_auth/'
      assert.equal(new URL(uiAuth.login_url, base).pathname, `${published}${LOGIN}`)
      assert.deepEqual(uiAuth.ssos.map((sso: { login_url: string }) => new URL(sso.login_url, base).pathname), [`${published}/api/gateway/v1/login/sso/corp/`])
    })

    it('sends a browser on after logging in: to its next page, or to the web interface', async () => {
      const form = async (next?: string) => {
        const first = await gw.fetch(LOGIN)
        const token = setCookie(first, 'csrftoken')!.value
        return gw.fetch(LOGIN, {
          method: 'POST',
          headers: { ...BROWSER, 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: ORIGIN + published + LOGIN },
          body: new URLSearchParams({ username: 'admin', password: ADMIN_PASSWORD, ...(next ? { next } : {}) }).toString(),
        })
      }
      assert.equal((await landing(await form(), LOGIN)).pathname, `${published}/ui/`)
      assert.equal((await landing(await form(`${published}/web/page`), LOGIN)).pathname, `${published}/web/page`)
    })

    it('tells a program logging in without a next the API root under the published path', async () => {
      const first = await gw.fetch(LOGIN)
      const token = setCookie(first, 'csrftoken')!.value
      const answer = await json(await gw.fetch(LOGIN, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: ORIGIN + published + LOGIN },
        body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
      }))
      assert.equal(new URL(answer.next, ORIGIN + published + LOGIN).pathname, `${published}/api/gateway/v1/`)
    })

    it('sends a browser logging out to the login page, and a program to the API root', async () => {
      assert.equal((await landing(await gw.fetch('/api/gateway/v1/logout/', { headers: BROWSER }), '/api/gateway/v1/logout/')).pathname, `${published}${LOGIN}`)
      assert.equal((await landing(await gw.fetch('/api/gateway/v1/logout/'), '/api/gateway/v1/logout/')).pathname, `${published}/api/`)
    })

    it('adds the slash to an API path without it, under the published path', async () => {
      const to = await landing(await gw.fetch('/api/gateway/v1/users?page=2', { headers: adminAuth }), '/api/gateway/v1/users?page=2')
      assert.equal(to.pathname + to.search, `${published}/api/gateway/v1/users/?page=2`)
    })

    it('adds the slash to a service\'s prefix asked for without it, under the published path', async () => {
      const to = await landing(await gw.fetch('/web?x=1', { headers: BROWSER, redirect: 'manual' }), '/web?x=1')
      assert.equal(to.pathname + to.search, `${published}/web/?x=1`)
    })

    it('sends a browser to the realm\'s login under the published path, and the realm\'s login page and cookies stay there', async () => {
      const toRealm = await landing(await gw.fetch('/realm-app/page', { headers: BROWSER }), '/realm-app/page')
      assert.equal(toRealm.pathname, `${published}/realms/platform/protocol/openid-connect/auth`)
      assert.equal(new URL(toRealm.searchParams.get('redirect_uri')!).pathname, `${published}/realms/platform/gatehouse/callback`)
      assert.equal(Buffer.from(toRealm.searchParams.get('state')!, 'base64url').toString(), `${published}/realm-app/page`)
      const asked = toRealm.pathname.slice(published.length) + toRealm.search
      const authorization = await gw.fetch(asked, { headers: BROWSER })
      const toLogin = await landing(authorization, asked)
      assert.match(toLogin.pathname, new RegExp(`^${published}/realms/platform/login-actions/`))
      assertRealmCookies(authorization)
      const page = await (await gw.fetch(toLogin.pathname.slice(published.length), { headers: { ...BROWSER, cookie: cookiesOf(authorization) } })).text()
      const action = /<form method="post" action="([^"]+)"/.exec(page)?.[1]
      assert.equal(action, toLogin.pathname)
      // Its "Sign in with" goes through the gateway's sign-in there, to come back to this very page.
      const sso = /<a class="sso" href="([^"]+)">Sign in with Corp/.exec(page)?.[1]
      assert.equal(sso, `${toLogin.pathname}?provider=corp`)
      const chosen = await gw.fetch(`${toLogin.pathname.slice(published.length)}?provider=corp`, { headers: { ...BROWSER, cookie: cookiesOf(authorization) } })
      const toSso = await landing(chosen, toLogin.pathname)
      assert.equal(toSso.pathname, `${published}/api/gateway/v1/login/sso/corp/`)
      assert.equal(toSso.searchParams.get('next'), toLogin.pathname)
      assert.equal(toSso.searchParams.get('prompt'), 'login', 'the gateway asks its realm for a fresh login')
    })

    it('sends a browser from the realm\'s account endpoint to the web interface\'s account page, and clears the realm\'s cookies at logout at their path', async () => {
      assert.equal((await landing(await gw.fetch('/realms/platform/account', { headers: BROWSER }), '/realms/platform/account')).pathname, `${published}/ui/account`)
      assertRealmCookies(await gw.fetch('/api/gateway/v1/logout/', { headers: BROWSER }))
    })

    /** A response sets (or clears) realm cookies, each under the realm's path as the browser addresses it. */
    function assertRealmCookies(response: Response): void {
      const realmCookies = response.headers.getSetCookie().filter((header) => /^(gatehouse_oidc|KEYCLOAK)/i.test(header))
      assert.ok(realmCookies.length > 0, `realm cookies: ${response.headers.getSetCookie().join(' | ')}`)
      for (const header of realmCookies) {
        const path = /;\s*path=([^;]+)/i.exec(header)?.[1]
        assert.ok(path?.startsWith(`${published}/realms/platform/`), `a realm cookie under the realm's published path: ${header}`)
      }
    }
    const cookiesOf = (response: Response) => response.headers.getSetCookie().map((header) => header.split(';', 1)[0]).join('; ')
  })
}
