import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, openPage, pageDrawn } from '../helpers/chromium.ts'
import { codeBlocks, replaced } from '../helpers/docs.ts'
import { ADMIN_PASSWORD, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { startCaddy } from '../helpers/caddy.ts'
import { freePort } from '../helpers/free-port.ts'
import { startNginx } from '../helpers/nginx.ts'

const PATH = '/edge'
const PAGES = ['account', 'tokens', 'sessions', 'access', 'admin/users', 'admin/users/1', 'admin/tokens', 'admin/sessions', 'admin/applications', 'admin/settings', 'admin/services', 'admin/activity']

/**
 * The web interface behind nginx and Caddy configured as docs/edge.md says, publishing the gateway under /edge/ and
 * forwarding nothing else: every page, script, API call, link and redirect of a whole visit (login, pages, a new
 * token, logout) must stay under the path, or it reaches the proxy instead of the gateway.
 */
const PROXIES = {
  nginx: async (dir: string, port: number, gateway: string) => {
    const documented = codeBlocks('docs/edge.md', 'nginx').find((block) => block.section === 'Published under a path')
    const location = replaced(documented!.code, [['127.0.0.1:8080', gateway]])
    return startNginx(dir, 'nginx-edge', `server {\n listen 127.0.0.1:${port};\n ${location}\n location / { return 404; }\n}`)
  },
  // Caddy answers what no handler takes with an empty 200, which the requests' paths would still show.
  caddy: async (dir: string, port: number, gateway: string) => {
    const [documented] = codeBlocks('docs/edge.md', 'caddy')
    return startCaddy(dir, port, replaced(documented!.code, [['example.com', `http://127.0.0.1:${port}`], ['127.0.0.1:8080', gateway]]))
  },
}

// One browser for both proxies: each visit has a context of its own.
let browser: Browser
before(async () => {
  browser = await launchChromium()
})
after(async () => {
  await browser?.close()
})

for (const [proxyName, startProxy] of Object.entries(PROXIES)) describe(`the web interface published under a path by ${proxyName} forwarding only that path`, () => {
  let gw: TestGateway
  let proxy: ChildProcess
  let edge: string
  const dir = tempDir('gatehouse-ui-path-')

  before(async () => {
    const port = await freePort()
    edge = `http://127.0.0.1:${port}${PATH}`
    gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, public_url: `${edge}/` } } })
    proxy = await startProxy(dir, port, new URL(gw.url).host)
  })
  after(async () => {
    proxy?.kill()
    await gw?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('logs in, shows every page, creates a token and logs out without leaving the path', async () => {
    const { page, context, problems, failedResponses } = await openPage(browser)
    const outside: string[] = []
    page.on('request', (request) => {
      const url = new URL(request.url())
      if (url.protocol.startsWith('http') && !url.pathname.startsWith(`${PATH}/`)) outside.push(`${request.method()} ${url.pathname}`)
    })
    try {
      await page.goto(`${edge}/ui/tokens`)
      const login = new URL(page.url())
      assert.equal(login.pathname, `${PATH}/api/gateway/v1/login/`)
      assert.equal(login.searchParams.get('next'), `${PATH}/ui/tokens`)
      await page.fill('#username', 'admin')
      await page.fill('#password', ADMIN_PASSWORD)
      await Promise.all([page.waitForURL(`${edge}/ui/tokens`), page.click('button[type=submit]')])
      await page.getByRole('heading', { name: 'My tokens', level: 1 }).waitFor()

      // A write through the session: the CSRF token and the API under the path.
      await page.getByLabel('Description').fill('behind the proxy')
      await page.getByRole('button', { name: 'Create token' }).click()
      assert.match(await page.locator('#new-token-value').inputValue(), /^gatehouse_pat_/)

      // Every menu link changes the page in place, at its address under the path.
      for (const name of PAGES.filter((p) => !p.includes('/1'))) {
        const link = page.getByRole('navigation').locator(`a[href="${PATH}/ui/${name}"]`)
        await link.click()
        await page.waitForURL(`${edge}/ui/${name}`)
        await pageDrawn(page)
        assert.equal(await page.locator('main .form-error').count(), 0, `${name} shows no error`)
        assert.equal(await link.getAttribute('aria-current'), 'page', `${name} is marked in the menu`)
      }
      assert.deepEqual(await page.locator('.service .badge.off').allInnerTexts(), [], 'the services page reached the gateway and its services')

      // A link inside a page, and every page loaded afresh at its address.
      await page.goto(`${edge}/ui/admin/users`)
      await page.getByRole('link', { name: 'admin', exact: true }).click()
      await page.waitForURL(`${edge}/ui/admin/users/1`)
      for (const name of PAGES) {
        await page.goto(`${edge}/ui/${name}`)
        await pageDrawn(page)
        assert.equal(await page.locator('main .form-error').count(), 0, `${name} loaded afresh shows no error`)
      }

      await Promise.all([page.waitForURL((url) => url.pathname === `${PATH}/api/gateway/v1/login/`), page.getByRole('button', { name: 'Log out' }).click()])
      await page.goto(`${edge}/ui/account`)
      assert.equal(new URL(page.url()).pathname, `${PATH}/api/gateway/v1/login/`, 'logged out')

      assert.deepEqual(outside, [], 'no request left the path')
      assert.deepEqual(failedResponses, [])
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }
  })

  it('links an error page to the start page under the path, however deep the page', async () => {
    for (const path of ['/nowhere', '/api/gateway/v1/nowhere/', '/ui/assets/js/nowhere.js']) {
      const response = await fetch(`${edge}${path}`, { headers: { accept: 'text/html' } })
      assert.equal(response.status, 404, path)
      const link = /<a href="([^"]*)">Go to the start page/.exec(await response.text())?.[1]
      assert.ok(link, path)
      assert.equal(new URL(link, `${edge}${path}`).href, `${edge}/`, path)
    }
  })
})
