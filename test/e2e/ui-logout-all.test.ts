import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, logIn, openPage, screenshot } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, REALM, realmWith } from '../helpers/oidc.ts'

describe('signing everyone of a realm out from the web interface in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  let adminUrl: Server
  /** The paths the application's admin URL was POSTed. */
  const told: string[] = []

  before(async () => {
    adminUrl = createServer((req, res) => {
      told.push(req.url ?? '')
      req.resume().on('end', () => res.writeHead(204).end())
    })
    await new Promise<void>((resolve) => adminUrl.listen(0, '127.0.0.1', resolve))
    const shop = `http://127.0.0.1:${(adminUrl.address() as AddressInfo).port}/shop/`
    gw = await startGateway({
      config: {
        realms: realmWith([
          { client_id: 'shop', public_client: false, secret: 'shop-secret-0123456789', redirect_uris: [shop], admin_url: shop },
          // Nothing listens on the discard port: this one is not told.
          { client_id: 'gone', public_client: false, secret: 'gone-secret-0123456789', redirect_uris: [shop], admin_url: 'http://127.0.0.1:9/gone/?key=receivers-own' },
        ]),
      },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
    browser = await launchChromium()
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
    await new Promise((resolve) => adminUrl?.close(resolve))
  })

  it('asks first, then ends every token of the realm and shows which admin URLs were told', async () => {
    const alice = await passwordLogin(gw, 'alice', 'alice-password')
    const use = () => gw.fetch('/demo-app/pipelines/', { headers: { authorization: `Bearer ${alice.access_token}` } })
    assert.equal((await use()).status, 200)

    const { page, context, problems } = await openPage(browser)
    try {
      await logIn(page, gw.url, 'admin', ADMIN_PASSWORD, '/ui/admin/sessions')
      const signOut = page.getByRole('button', { name: `Sign out everyone of realm ${REALM}` })
      await signOut.click()
      await page.locator('dialog.confirm').getByRole('button', { name: 'Cancel' }).click()
      assert.equal((await use()).status, 200, 'nothing ends without the confirmation')

      await signOut.click()
      await page.locator('dialog.confirm').getByRole('button', { name: 'Sign out everyone' }).click()
      const answer = page.getByRole('region', { name: `Realm ${REALM}` }).getByRole('status')
      await answer.getByText('Admin URLs told:').waitFor()
      assert.deepEqual(await answer.locator('ul.told li').allTextContents(), [`http://127.0.0.1:${(adminUrl.address() as AddressInfo).port}/shop/`])
      assert.deepEqual(await answer.locator('ul.failed li').allTextContents(), ['http://127.0.0.1:9/gone/'], 'without the query, which may carry a key')
      assert.deepEqual(told, ['/shop/k_logout'])
      assert.equal((await use()).status, 401, 'the realm\'s token is refused')
      await page.getByRole('heading', { name: 'All sessions' }).waitFor()
      await screenshot(page, 'sessions-logout-all-desktop')
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })
})
