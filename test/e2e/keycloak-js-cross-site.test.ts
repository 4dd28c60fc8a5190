import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { chromium, type BrowserContext } from 'playwright-core'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { CHROMIUM } from '../helpers/chromium.ts'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { startKeycloakJsApp, type KeycloakJsApp } from '../helpers/keycloak-js-app.ts'
import { realmWith } from '../helpers/oidc.ts'

/**
 * keycloak-js on another site than the realm's (the app at http://127.0.0.1, the realm at https://localhost), in a
 * Chromium that lets frames of other sites have their cookies, as Chrome does by default: the realm's session
 * cookies are SameSite=Lax, which a hidden frame of another site's page does not carry.
 */
describe('keycloak-js on another site than the realm', () => {
  let gw: TestGateway
  let app: KeycloakJsApp
  let browser: BrowserContext
  let realmUrl = ''

  before(async () => {
    const certificate = selfSignedCertificate(tempDir(), 'localhost')
    app = await startKeycloakJsApp(() => realmUrl, (url) => ({
      'login-required': { onLoad: 'login-required' },
      'silent-check-sso': { onLoad: 'check-sso', silentCheckSsoRedirectUri: `${url}/silent-check-sso.html` },
    }))
    gw = await startGateway({ tls: certificate, config: { realms: realmWith([{ client_id: 'spa', public_client: true, redirect_uris: [`${app.url}/*`], post_logout_redirect_uris: ['+'], web_origins: ['+'] }]) } })
    realmUrl = gw.url.replace('127.0.0.1', 'localhost')
    gw.app.publicUrl = realmUrl
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com', firstName: 'Alice', lastName: 'Liddell' })
    // A profile whose cookie settings let other sites' frames keep theirs (Playwright's contexts block them).
    const profile = tempDir()
    mkdirSync(join(profile, 'Default'))
    writeFileSync(join(profile, 'Default', 'Preferences'), JSON.stringify({ profile: { cookie_controls_mode: 0, block_third_party_cookies: false } }))
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, ignoreHTTPSErrors: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'] })
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
    await app?.close()
  })

  it('signs a browser with a realm session in with check-sso and a silentCheckSsoRedirectUri, where the hidden frame carries no session', async () => {
    const login = await browser.newPage()
    await login.goto(`${app.url}/login-required`)
    await login.waitForURL((url) => url.pathname.includes('/login-actions/'))
    await login.fill('#username', 'alice')
    await login.fill('#password', 'alice-password')
    await login.click('button[type=submit]')
    await login.waitForFunction('window.initResult !== undefined', undefined, { timeout: 20_000 })
    assert.deepEqual(await login.evaluate('window.initResult'), { authenticated: true })

    const page = await browser.newPage()
    await page.goto(`${app.url}/silent-check-sso`)
    await page.waitForFunction('window.initResult !== undefined', undefined, { timeout: 20_000 })
    assert.deepEqual(await page.evaluate('window.initResult'), { authenticated: true })
    assert.equal(await page.evaluate('keycloak.tokenParsed.preferred_username'), 'alice')
  })
})
