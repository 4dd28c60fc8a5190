import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BROWSER_ACCEPT } from '../helpers/browser.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

describe('the error page a browser gets', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await gw.app.accounts.create({ username: 'gina', password: 'gina-password' })
  })
  after(() => gw.close())

  const page = async (path: string, headers: Record<string, string> = {}) => {
    const response = await gw.fetch(path, { headers: { accept: BROWSER_ACCEPT, ...headers } })
    return { status: response.status, type: response.headers.get('content-type') ?? '', html: await response.text() }
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
})
