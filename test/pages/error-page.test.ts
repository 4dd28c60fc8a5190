import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import { BROWSER_ACCEPT } from '../helpers/browser.ts'
import { basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('the error page a browser gets', () => {
  let gw: TestGateway
  before(async () => {
    const demo = loadConfigFile(demoConfigFile)
    // A service nothing answers for, whose 502 the proxy writes itself.
    gw = await startGateway({ config: { services: [...demo.services, { name: 'down', prefix: '/down/', upstream: 'http://127.0.0.1:1', accepts: ['basic'] }] } })
    await gw.app.accounts.create({ username: 'gina', password: 'gina-password' })
  })
  after(() => gw.close())

  const page = async (path: string, headers: Record<string, string> = {}) => {
    const response = await gw.fetch(path, { headers: { accept: BROWSER_ACCEPT, ...headers } })
    return { status: response.status, type: response.headers.get('content-type') ?? '', headers: response.headers, html: await response.text() }
  }

  it('names the error in words, says what happened, and links back to the start', async () => {
    const cases = [
      { path: '/nowhere/', status: 404, words: 'Not Found', code: 'not_found' },
      { path: '/api/gateway/v1/settings/', headers: { authorization: basic('gina', 'gina-password') }, status: 403, words: 'Forbidden', code: 'permission_denied' },
    ]
    for (const { path, headers, status, words, code } of cases) {
      const { status: answered, type, html } = await page(path, headers)
      assert.equal(answered, status, path)
      assert.match(type, /^text\/html/, path)
      assert.match(html, new RegExp(`<title>${status} ${words} · Gatehouse</title>`), path)
      assert.match(html, new RegExp(`<h1>${words}</h1>`), path)
      assert.match(html, new RegExp(`<code>${code}</code>`), path)
      const link = /<a href="([^"]*)">Go to the start page<\/a>/.exec(html)?.[1]
      assert.ok(link, path)
      assert.equal(new URL(link, gw.url + path).href, `${gw.url}/`, `${path}: the link leads to the start page`)
      assert.doesNotMatch(html, /\bat .+:\d+:\d+/, `${path}: no stack trace`)
    }
  })

  it('says so as a page when a browser\'s cookies grew too large to read, and as JSON to programs', async () => {
    // The services share the gateway's origin: their cookies alone can grow a browser's Cookie header past the limit.
    const cookie = `grown=${'x'.repeat(20_000)}`
    for (const path of ['/ui/account', '/api/controller/v2/hosts/']) {
      const { status, type, headers, html } = await page(path, { cookie })
      assert.equal(status, 431, path)
      assert.match(type, /^text\/html/, path)
      assert.match(html, /<title>431 Request Header Fields Too Large · Gatehouse<\/title>/, path)
      assert.match(html, /<code>headers_too_large<\/code>/, path)
      assert.equal(headers.get('x-frame-options'), 'DENY', path)
      assert.match(headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, path)
      const link = /<a href="([^"]*)">Go to the start page<\/a>/.exec(html)?.[1]
      assert.equal(new URL(link!, gw.url + path).href, `${gw.url}/`, `${path}: the link leads to the start page`)
      const program = await gw.fetch(path, { headers: { accept: 'application/json', cookie } })
      assert.equal(program.status, 431, path)
      assert.equal((await json(program)).code, 'headers_too_large', path)
    }
  })

  it('may not be framed and runs no script, on the gateway\'s own routes and in front of a service alike', async () => {
    // A 404 of the router, a refusal of the API, and a refusal on the proxy's own path to a service.
    for (const [path, headers] of [['/nowhere/', {}], ['/api/gateway/v1/settings/', { authorization: basic('gina', 'gina-password') }], ['/down/x', { authorization: basic('gina', 'gina-password') }]] as const) {
      const { status, type, headers: answered } = await page(path, headers)
      assert.ok(status >= 400, `${path}: ${status}`)
      assert.match(type, /^text\/html/, path)
      assert.equal(answered.get('x-frame-options'), 'DENY', path)
      const csp = answered.get('content-security-policy') ?? ''
      for (const directive of ["default-src 'none'", "script-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) assert.ok(csp.includes(directive), `${path}: ${directive} in ${csp}`)
      assert.equal(answered.get('x-content-type-options'), 'nosniff', path)
    }
  })

  it('is kept by no cache, and says it varies by Accept, for browsers and programs alike', async () => {
    // The router's 404, a refusal of the API, and the proxy's own 502 in front of a service: a shared cache may keep
    // a 404 it was given no lifetime for, and hand a browser's page to a program asking the same URL.
    const cases = [['/nowhere/', {}], ['/api/gateway/v1/settings/', { authorization: basic('gina', 'gina-password') }], ['/down/x', { authorization: basic('gina', 'gina-password') }]] as const
    for (const [path, headers] of cases) {
      for (const accept of [BROWSER_ACCEPT, 'application/json']) {
        const response = await gw.fetch(path, { headers: { accept, ...headers } })
        await response.arrayBuffer()
        assert.ok(response.status >= 400, `${path}: ${response.status}`)
        assert.equal(response.headers.get('cache-control'), 'no-store', `${path} (${accept})`)
        assert.ok((response.headers.get('vary') ?? '').split(',').some((name) => name.trim().toLowerCase() === 'accept'), `${path} (${accept}): vary ${response.headers.get('vary')}`)
      }
    }
  })
})
