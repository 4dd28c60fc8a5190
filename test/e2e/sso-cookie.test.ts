import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { Agent } from 'undici'
import { Browser } from '../helpers/browser.ts'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { openProviderLogin, signInUpstream, SSO } from '../helpers/sso.ts'
import { startUpstreamIdp, type UpstreamIdp } from '../helpers/upstream-idp.ts'

// The sign-in cookie over real HTTPS and over plain HTTP. Over HTTPS it is `__Host-gateway_sso`: a browser accepts
// that name only from this very host, Secure, with Path=/ and no Domain, so a sibling subdomain cannot plant one.

const CALLBACK = `${SSO}corp/callback/`

describe('the single sign-on cookie', () => {
  const certDir = tempDir()
  const certificate = selfSignedCertificate(certDir, 'gatehouse.test')
  const trusting = new Agent({ connect: { ca: readFileSync(certificate.cert, 'utf8') } })
  let idp: UpstreamIdp
  let https: TestGateway
  let http: TestGateway
  /** Plain HTTP, published by a proxy under /edge/ that takes the path off (docs/edge.md). */
  let underPath: TestGateway

  before(async () => {
    idp = await startUpstreamIdp({
      alice: { sub: 'sub-alice', password: 'alice-pw', claims: { preferred_username: 'alice' } },
      mallory: { sub: 'sub-mallory', password: 'mallory-pw', claims: { preferred_username: 'mallory' } },
    })
    const sso = [idp.ssoConfig({ name: 'corp', label: 'Corp ID', client_id: 'gatehouse', client_secret: 'corp-secret' })]
    https = await startGateway({ tls: certificate, config: { sso } })
    http = await startGateway({ config: { sso } })
    underPath = await startGateway({ config: { sso, server: { host: '127.0.0.1', port: 0, public_url: 'http://gateway.example/edge/', trusted_proxies: ['127.0.0.1'] } } })
    idp.addClient({ client_id: 'gatehouse', client_secret: 'corp-secret', redirect_uris: [https.url + CALLBACK, http.url + CALLBACK] })
  })
  after(async () => {
    await https?.close()
    await http?.close()
    await underPath?.close()
    await idp?.close()
    await trusting.close()
    rmSync(certDir, { recursive: true, force: true })
  })

  /** Starts a sign-in as `login` and stops at the provider's redirect back; returns the browser, the start's Set-Cookie and the callback. */
  async function upToCallback(gw: TestGateway, login: string, password: string) {
    const browser = new Browser(undefined, gw === https ? trusting : undefined)
    const page = await openProviderLogin(gw, browser, 'Corp ID')
    const start = browser.hops.find((hop) => hop.url.startsWith(`${gw.url}${SSO}corp/`))!
    assert.equal(start.status, 302)
    const callback = await signInUpstream(gw, browser, page, login, password)
    return { browser, callback }
  }

  /** The Set-Cookie of one request to the gateway's start endpoint, as a browser receives it. */
  async function startCookie(gw: TestGateway): Promise<string[]> {
    const response = await fetch(`${gw.url}${SSO}corp/`, { redirect: 'manual', ...(gw === https ? { dispatcher: trusting } : {}) } as RequestInit)
    assert.equal(response.status, 302)
    return response.headers.getSetCookie()
  }

  it('is __Host-gateway_sso over HTTPS: Secure, Path=/, no Domain', async () => {
    const [cookie, ...more] = await startCookie(https)
    assert.deepEqual(more, [])
    assert.match(cookie!, /^__Host-gateway_sso=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/)
  })

  it('keeps the name gateway_sso over plain HTTP, where a browser refuses __Host- without Secure', async () => {
    const [cookie, ...more] = await startCookie(http)
    assert.deepEqual(more, [])
    assert.match(cookie!, /^gateway_sso=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/api\/gateway\/v1\/login\/sso\/; HttpOnly; SameSite=Lax$/)
  })

  it('over plain HTTP under a published path, is sent back to the callback as the browser addresses it', async () => {
    const response = await underPath.fetch(`${SSO}corp/`)
    assert.equal(response.status, 302)
    const callback = new URL(new URL(response.headers.get('location')!).searchParams.get('redirect_uri')!)
    assert.equal(callback.pathname, `/edge${CALLBACK}`)
    const [cookie, ...more] = response.headers.getSetCookie()
    assert.deepEqual(more, [])
    const path = /; Path=([^;]+)/.exec(cookie!)?.[1]
    assert.equal(path, `/edge${SSO}`)
    assert.ok(callback.pathname.startsWith(path!), 'the browser sends the cookie with the provider\'s redirect back (RFC 6265 5.1.4)')
  })

  for (const mode of ['https', 'http'] as const) {
    it(`signs a person in end to end over ${mode.toUpperCase()} and removes the cookie`, async () => {
      const gw = mode === 'https' ? https : http
      const name = mode === 'https' ? '__Host-gateway_sso' : 'gateway_sso'
      const { browser, callback } = await upToCallback(gw, 'alice', 'alice-pw')
      assert.ok(browser.cookie(gw.url, name), 'the sign-in is bound to this browser')
      const response = await browser.request(callback)
      assert.equal(response.status, 302)
      assert.ok(browser.cookie(gw.url, 'gateway_sessionid'), 'signed in')
      assert.equal(browser.cookie(gw.url, name), undefined, 'the sign-in cookie is gone')
      const me = await json(await browser.request(`${gw.url}/api/gateway/v1/me/`, { headers: { accept: 'application/json' } }))
      assert.equal(me.results[0].username, 'alice')
    })
  }

  it('over HTTPS ignores an unprefixed gateway_sso planted from a sibling subdomain (login CSRF)', async () => {
    // The attacker signs in as themselves and keeps the callback and their own sign-in key instead of using them.
    const attacker = await upToCallback(https, 'mallory', 'mallory-pw')
    const key = attacker.browser.cookie(https.url, '__Host-gateway_sso')!
    const victim = new Browser(undefined, trusting)
    const planted = await victim.request(attacker.callback, { headers: { cookie: `gateway_sso=${key}`, accept: 'application/json' } })
    assert.equal(planted.status, 400)
    assert.equal((await json(planted)).code, 'sso_login_unknown')
    assert.equal(victim.cookie(https.url, 'gateway_sessionid'), undefined, 'the victim is not signed in as the attacker')

    // The same key under the name only this host can set still finishes the sign-in: the refusal was the name's.
    const own = await attacker.browser.request(attacker.callback)
    assert.equal(own.status, 302)
    assert.ok(attacker.browser.cookie(https.url, 'gateway_sessionid'))
  })
})
