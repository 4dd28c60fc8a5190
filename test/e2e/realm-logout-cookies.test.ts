import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { Agent } from 'undici'
import { Browser, parseForm } from '../helpers/browser.ts'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { CLIENT_REDIRECT, realmUrl, testRealms } from '../helpers/oidc.ts'

/**
 * Logging out at the realm also ends the browser's gateway session and deletes its cookie. Over HTTPS that cookie was
 * set Secure at login; the one that deletes it must be too, or a browser keeps the Secure one (a cookie set over
 * HTTPS can only be replaced by one with the same attributes).
 */
describe('the realm logout deleting the gateway session cookie over HTTPS', () => {
  const certDir = tempDir()
  const certificate = selfSignedCertificate(certDir, 'gatehouse.test')
  const trusting = new Agent({ connect: { ca: readFileSync(certificate.cert, 'utf8') } })
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({
      tls: certificate,
      config: { realms: [{ ...testRealms[0], clients: testRealms[0]!.clients.map((c) => c.client_id === 'end-users' ? { ...c, post_logout_redirect_uris: [CLIENT_REDIRECT] } : c) }] },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
  })
  after(async () => {
    await gw?.close()
    await trusting.close()
    rmSync(certDir, { recursive: true, force: true })
  })

  it('deletes it with the Secure attribute the login set it with', async () => {
    const browser = new Browser(undefined, trusting)
    const loginPage = await browser.navigate(`${gw.url}/api/gateway/v1/login/`)
    const loginForm = parseForm(loginPage.body)
    // Over HTTPS the CSRF check wants the Referer a browser sends with the form.
    const signedIn = await browser.request(new URL(loginForm.action, loginPage.url).href, { form: { ...loginForm.fields, username: 'alice', password: 'alice-password' }, headers: { referer: loginPage.url } })
    assert.equal(signedIn.status, 302)
    assert.ok(browser.cookie(gw.url, 'gateway_sessionid'))
    const code = await browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/auth')}?${new URLSearchParams({
      client_id: 'end-users', redirect_uri: CLIENT_REDIRECT, response_type: 'code', scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    })}`, { stopBefore: (url) => url.startsWith(CLIENT_REDIRECT) })
    assert.ok(code.stoppedAt, 'the realm let the gateway session through without a login')

    const confirm = await browser.navigate(`${realmUrl(gw, '/protocol/openid-connect/logout')}?${new URLSearchParams({ client_id: 'end-users', post_logout_redirect_uri: CLIENT_REDIRECT })}`)
    const form = parseForm(confirm.body)
    const response = await browser.request(new URL(form.action, confirm.url).href, { form: { ...form.fields, logout: 'yes' } })
    assert.ok(response.status >= 300 && response.status < 400, `logout confirmed: ${response.status}`)
    const deletion = response.headers.getSetCookie().find((cookie) => cookie.startsWith('gateway_sessionid='))
    assert.ok(deletion, 'the gateway session cookie is deleted')
    assert.match(deletion, /^gateway_sessionid=;/)
    assert.match(deletion, /;\s*secure\b/i)
    assert.match(deletion, /;\s*httponly\b/i)
    assert.equal(browser.cookie(gw.url, 'gateway_sessionid'), undefined)
  })
})
