import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { compileErrors, validate } from '@readme/openapi-parser'
import Fastify from 'fastify'
import type { Browser, Locator, Page } from 'playwright-core'
import { answersForApi } from '../../src/api/methods.ts'
import { registerGatewayApi } from '../../src/api/register.ts'
import { registerForwardAuth } from '../../src/gateway/forward-auth.ts'
import { launchChromium, logIn, openPage, screenshot } from '../helpers/chromium.ts'
import { ADMIN_PASSWORD, adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

const DOCUMENT = '/api/gateway/v1/openapi.json'

describe('the API described', () => {
  let gw: TestGateway
  let document: any
  before(async () => {
    gw = await startGateway()
    const response = await gw.fetch(DOCUMENT)
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/)
    document = await response.json()
  })
  after(() => gw.close())

  it('is a valid OpenAPI 3.1 document', async () => {
    assert.equal(document.openapi, '3.1.0')
    const result = await validate(structuredClone(document))
    assert.ok(result.valid, compileErrors(result))
  })

  it('lists every route of the gateway API with its method, and nothing else', async () => {
    // The routes as registered: the gateway API and its forward-authentication endpoints alone on a bare server.
    const registered = new Set<string>()
    const bare = Fastify()
    bare.addHook('onRoute', (route) => {
      // The routes that answer other methods and spellings of the API's paths (405, the slash) are not the API.
      if (answersForApi(route.config)) return
      for (const method of [route.method].flat()) {
        // The versioned API's root is announced without its slash, though it answers with it (Fastify's prefixTrailingSlash).
        const url = route.url === '/api/gateway/v1' ? '/api/gateway/v1/' : route.url
        if (method !== 'HEAD') registered.add(`${method} ${url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{*}')}`)
      }
    })
    await registerGatewayApi(bare, gw.app)
    await registerForwardAuth(bare, gw.app)
    await bare.ready()
    await bare.close()
    const described = new Set(Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations as object).filter((method) => method !== 'head').map((method) => `${method.toUpperCase()} ${path}`)))
    assert.ok(registered.size > 30, `${registered.size} routes`)
    assert.deepEqual([...registered].filter((route) => !described.has(route)), [], 'registered but not described')
    assert.deepEqual([...described].filter((route) => !registered.has(route)), [], 'described but not part of the gateway API')
  })

  it('describes parameters and bodies from the route schemas, and which routes need no credentials', () => {
    const users = document.paths['/api/gateway/v1/users/']
    assert.deepEqual(users.get.parameters.map((p: any) => p.name).sort(), ['page', 'page_size'])
    const created = users.post.requestBody.content['application/json'].schema
    assert.deepEqual(created.required, ['username'])
    assert.ok(created.properties.password && created.properties.is_superuser)
    assert.equal(document.paths['/api/gateway/v1/users/{id}/'].get.parameters[0].in, 'path')
    assert.deepEqual(document.paths['/api/gateway/v1/ping/'].get.security, [])
    assert.equal(document.paths['/api/gateway/v1/users/'].get.security, undefined, 'the document-wide credentials apply')
    assert.deepEqual(Object.keys(document.components.securitySchemes).sort(), ['basic', 'bearer', 'session'])
  })

  it('answers without credentials, and is the same for a signed-in caller', async () => {
    assert.deepEqual(await json(await gw.fetch(DOCUMENT, { headers: adminAuth })), document)
  })

  describe('the interactive reference', () => {
    let browser: Browser
    before(async () => {
      browser = await launchChromium()
    })
    after(() => browser?.close())

    it('renders in Chromium from files served by the gateway, under a strict content security policy', async () => {
      const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
      const requested = new Set<string>()
      page.on('request', (request) => void requested.add(new URL(request.url()).origin))
      try {
        const response = await page.goto(`${gw.url}/api/gateway/v1/docs/`)
        assert.equal(response?.status(), 200)
        assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'none'/)
        await page.getByText('Gatehouse gateway API').first().waitFor()
        await page.locator('.opblock-summary-path').first().waitFor()
        await screenshot(page, 'api-reference')
        // swagger-ui renders a long list of operations (150 entries and up, tags included) as a virtual list: only
        // those near the view are in the page, so each is looked for by scrolling down to it.
        const described = new Set(Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations as object).map((method) => `${method.toUpperCase()} ${path}`)))
        assert.ok(described.size > 30, `${described.size} operations`)
        const rendered = await scrollThroughOperations(page, described.size)
        assert.ok(rendered.has('GET /api/gateway/v1/activitystream/'))
        assert.ok(rendered.has('OPTIONS /api/gateway/v1/teams/{id}/users/'))
        assert.deepEqual([...described].filter((operation) => !rendered.has(operation)), [], 'described but not rendered')
        assert.deepEqual([...requested], [gw.url], 'nothing is fetched from anywhere else')
        assert.deepEqual(problems, [])
        assert.deepEqual(failedResponses, [])
      } finally {
        await context.close()
      }
    })

    /**
     * A browser asked for Basic credentials shows its own password dialog, and keeps sending what was typed there to
     * the origin. Playwright's httpCredentials stand for someone who types the password into that dialog: were the page
     * asked, the call would be answered 200 with them.
     */
    it('shows the 401 of an operation tried out without credentials, without the browser asking for a password', async () => {
      const context = await browser.newContext({ httpCredentials: { username: 'admin', password: ADMIN_PASSWORD } })
      const challenges: string[] = []
      try {
        const page = await context.newPage()
        page.on('response', (response) => {
          if (new URL(response.url()).pathname === '/api/gateway/v1/me/') challenges.push(`${response.status()} ${response.headers()['www-authenticate'] ?? ''}`)
        })
        const { operation, status } = await tryOut(page, `${gw.url}/api/gateway/v1/docs/`, 'get_api_gateway_v1_me_')
        assert.equal(status, '401')
        assert.match(await operation.locator('.live-responses-table tr.response .response-col_description').first().innerText(), /"not_authenticated"/)
        assert.deepEqual(challenges, ['401 Bearer realm="Gatehouse"'], 'no Basic challenge for the browser to answer')

        // Credentials given in the Authorize dialog are sent as before. The Authorize button is at the top: back to the
        // operation afterwards, which swagger-ui draws again once in view.
        const atOperation = await page.evaluate<number>('window.scrollY')
        await page.locator('.auth-wrapper .btn.authorize').click()
        const dialog = page.getByRole('dialog', { name: 'Available authorizations' })
        await dialog.getByLabel('Username:').fill('admin')
        await dialog.getByLabel('Password:').fill(ADMIN_PASSWORD)
        await dialog.getByRole('button', { name: 'Authorize', exact: true }).first().click()
        await dialog.getByRole('button', { name: 'Close', exact: true }).first().click()
        await page.evaluate(`window.scrollTo(0, ${atOperation})`)
        await operation.locator('.execute').click()
        await page.waitForFunction(() => document.querySelector('#operations-default-get_api_gateway_v1_me_ .live-responses-table tr.response .response-col_status')?.textContent?.trim() === '200')
        assert.deepEqual(challenges.slice(1), ['200 '])
      } finally {
        await context.close()
      }
    })

    it('tries an unsafe operation with the browser\'s session, its CSRF token sent as the web interface sends it', async () => {
      const { page, context, problems, failedResponses } = await openPage(browser, 'desktop')
      try {
        await logIn(page, gw.url, 'admin', ADMIN_PASSWORD)
        const sent: (string | undefined)[] = []
        page.on('request', (request) => {
          if (new URL(request.url()).pathname === '/api/gateway/v1/session/') sent.push(request.headers()['x-csrftoken'])
        })
        assert.equal((await tryOut(page, `${gw.url}/api/gateway/v1/docs/`, 'post_api_gateway_v1_session_')).status, '200')
        const { cookies } = await context.storageState()
        assert.deepEqual(sent, [cookies.find((cookie) => cookie.name === 'csrftoken')?.value])
        // swagger-ui's own warning on a link to an operation (`post_api_...`), which it reads all the same.
        assert.deepEqual(problems.filter((line) => !/^console: Deprecated: escaping deep link whitespace with `_`/.test(line)), [])
        assert.deepEqual(failedResponses, [])
      } finally {
        await context.close()
      }
    })

    it('keeps the keyboard inside the Authorize dialog while it is open, and gives focus back to the button that opened it', async () => {
      const { page, context, problems } = await openPage(browser, 'desktop')
      try {
        await page.goto(`${gw.url}/api/gateway/v1/docs/`)
        const authorize = page.locator('.auth-wrapper .btn.authorize')
        await authorize.focus()
        await page.keyboard.press('Enter')
        const dialog = page.getByRole('dialog', { name: 'Available authorizations' })
        await dialog.getByRole('heading', { name: 'Available authorizations' }).waitFor()
        assert.equal(await focused(page), 'in the dialog: input Username:', 'focus moves to the first control of the dialog\'s content')

        const controls = await dialog.locator('.modal-ux').evaluate((box) => box.querySelectorAll('button, input').length)
        assert.ok(controls > 5, `${controls} controls`)
        const forward: string[] = []
        for (let step = 0; step < controls * 2; step++) {
          await page.keyboard.press('Tab')
          forward.push(await focused(page))
        }
        assert.deepEqual(forward.filter((where) => !where.startsWith('in the dialog')), [], 'Tab never leaves the dialog')
        assert.deepEqual(forward.slice(controls), forward.slice(0, controls), 'Tab goes round the dialog\'s controls')
        assert.equal(forward[controls - 1], 'in the dialog: input Username:')
        await page.keyboard.press('Shift+Tab')
        assert.equal(await focused(page), forward.at(-2), 'Shift-Tab goes back')
        await page.keyboard.press('Shift+Tab')
        await page.keyboard.press('Shift+Tab')
        assert.equal(await focused(page), forward.at(-4))

        await page.keyboard.press('Escape')
        await dialog.waitFor({ state: 'detached' })
        assert.equal(await focused(page), 'outside: button Authorize', 'Escape closes the dialog, and focus is back on Authorize')

        // Opened from an operation's lock, closed with its Close button: focus is back on that lock.
        await page.locator('.opblock-summary-path').first().waitFor()
        const lock = page.locator('.opblock .authorization__btn').first()
        await lock.focus()
        await page.keyboard.press('Enter')
        await dialog.getByRole('heading', { name: 'Available authorizations' }).waitFor()
        assert.match(await focused(page), /^in the dialog: /)
        await dialog.getByRole('button', { name: 'Close', exact: true }).last().focus()
        await page.keyboard.press('Enter')
        await dialog.waitFor({ state: 'detached' })
        assert.equal(await lock.evaluate((button) => button === document.activeElement), true, 'focus is back on the lock that opened the dialog')
        assert.deepEqual(problems, [])
      } finally {
        await context.close()
      }
    })
  })
})

/** Opens the reference at the operation `id` (as a link to it does), tries it out, and reads the status it shows. */
async function tryOut(page: Page, reference: string, id: string): Promise<{ operation: Locator; status: string }> {
  await page.goto(`${reference}#/default/${id}`)
  const operation = page.locator(`#operations-default-${id}`)
  await operation.locator('.try-out__btn').click()
  await operation.locator('.execute').click()
  const status = operation.locator('.live-responses-table tr.response .response-col_status').first()
  await status.waitFor()
  return { operation, status: (await status.innerText()).trim().split('\n')[0]! }
}

/** Where the keyboard's focus is: in or outside the Authorize dialog, and on what (its tag and name or label). */
async function focused(page: Page): Promise<string> {
  return page.evaluate<string>(`(() => {
    const element = document.activeElement
    const where = element.closest('[role=dialog]') ? 'in the dialog' : 'outside'
    const name = element.labels?.[0]?.textContent ?? element.getAttribute('aria-label') ?? element.textContent
    return where + ': ' + element.tagName.toLowerCase() + ' ' + name.trim()
  })()`)
}

/**
 * The operations (`GET /api/...`) swagger-ui renders as the page is scrolled from top to bottom, step by step, until
 * `expected` are seen or a generous deadline passes; each step waits for the operations in view to be drawn.
 */
async function scrollThroughOperations(page: Page, expected: number): Promise<Set<string>> {
  const rendered = new Set<string>()
  const deadline = Date.now() + 90_000
  await page.evaluate('window.scrollTo(0, 0)')
  while (rendered.size < expected && Date.now() < deadline) {
    const inView = await page.locator('.opblock-summary').evaluateAll((summaries) => summaries.map((summary) => {
      const method = summary.querySelector('.opblock-summary-method')?.textContent ?? ''
      const path = summary.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? ''
      return `${method.toUpperCase()} ${path}`
    }))
    for (const operation of inView) rendered.add(operation)
    const atBottom = await page.evaluate<boolean>(`(() => {
      const bottom = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1
      window.scrollBy(0, window.innerHeight / 2)
      return bottom
    })()`)
    // Past the bottom: start again from the top, for operations that were not drawn yet when they were in view.
    if (atBottom) await page.evaluate('window.scrollTo(0, 0)')
    await page.evaluate('new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))')
  }
  return rendered
}
