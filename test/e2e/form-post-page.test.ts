import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, openPage } from '../helpers/chromium.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { REALM, realmUrl, realmWith } from '../helpers/oidc.ts'

/**
 * The form_post page under its Content-Security-Policy in a real browser: its script runs, its form posts the answer
 * to the client's redirect URI, and the client's own redirect after that post, to another origin, is followed.
 */
describe('the form_post page in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  let client: Server
  let clientUrl: string
  /** The origin the client sends the browser on to once it has the answer: another origin than its redirect URI's. */
  let appOrigin: string
  const posted: URLSearchParams[] = []

  before(async () => {
    client = createServer((request, response) => {
      if (request.method === 'POST' && request.url === '/callback') {
        let body = ''
        request.setEncoding('utf8').on('data', (chunk) => (body += chunk)).on('end', () => {
          posted.push(new URLSearchParams(body))
          response.writeHead(303, { location: `${appOrigin}/signed-in` }).end()
        })
        return
      }
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>App</title><p>Back at the app.</p>')
    })
    await new Promise<void>((resolve) => client.listen(0, '127.0.0.1', resolve))
    const { port } = client.address() as AddressInfo
    clientUrl = `http://127.0.0.1:${port}`
    appOrigin = `http://localhost:${port}`
    gw = await startGateway({ config: { realms: realmWith([{ client_id: 'form-post-app', redirect_uris: [`${clientUrl}/callback`] }]) } })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    browser = await launchChromium()
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
    client?.close()
  })

  it('posts the code to the client\'s redirect URI with the page\'s policy in place, and follows the client on to another origin', async () => {
    const { page, context, problems } = await openPage(browser)
    try {
      const policies: string[] = []
      // The login's end resumes the authorization (`.../auth/<id>`), which answers with the form_post page.
      page.on('response', (response) => {
        if (new URL(response.url()).pathname.startsWith(`/realms/${REALM}/protocol/openid-connect/auth/`)) policies.push(response.headers()['content-security-policy'] ?? 'none')
      })
      const params = { client_id: 'form-post-app', response_type: 'code', response_mode: 'form_post', scope: 'openid', state: 'st-chromium', redirect_uri: `${clientUrl}/callback`, code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }
      await page.goto(realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams(params)}`))
      await page.fill('#username', 'alice')
      await page.fill('#password', 'alice-password')
      await Promise.all([page.waitForURL(`${appOrigin}/signed-in`), page.click('button[type=submit]')])
      assert.equal(posted.length, 1)
      assert.equal(posted[0]!.get('state'), 'st-chromium')
      assert.ok(posted[0]!.get('code'), 'the code reached the client')
      assert.equal(policies.length, 1, 'the page was answered with its policy')
      assert.match(policies[0]!, /^default-src 'none'; script-src 'sha256-/)
      assert.deepEqual(problems, [], 'no script or form the policy refused')
    } finally {
      await context.close()
    }
  })
})
