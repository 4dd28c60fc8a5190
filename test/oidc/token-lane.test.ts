import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { REALM, SERVICE_SECRET, testRealms, TOKEN_PATH, tokenRequest } from '../helpers/oidc.ts'

const INTROSPECTION_PATH = `/realms/${REALM}/protocol/openid-connect/token/introspect`

interface RawAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One request as written, with headers fetch would not send (a second Host, a chunked body). */
function rawRequest(gw: TestGateway, path: string, headers: Record<string, string | string[]>, body: string | string[]): Promise<RawAnswer> {
  const url = new URL(gw.url)
  return new Promise((resolve, reject) => {
    // As raw pairs, so that a header may be sent twice.
    const pairs = Object.entries({ host: url.host, ...headers }).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).flatMap((one) => [name, one]))
    const request = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path, headers: pairs }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (text += chunk))
      response.on('end', () => resolve({ status: response.statusCode!, headers: withoutDate(response.headers), body: text }))
    })
    // A body refused as too large ends the connection: what the client sees then is the reset.
    request.on('error', (error: NodeJS.ErrnoException) => error.code === 'ECONNRESET' || error.code === 'EPIPE' ? resolve({ status: 0, headers: {}, body: 'reset' }) : reject(error))
    for (const chunk of Array.isArray(body) ? body : [body]) request.write(chunk)
    request.end()
  })
}

function withoutDate(headers: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> {
  const { date: _date, ...rest } = headers
  return rest
}

/**
 * The realms' token requests are taken before Fastify (src/oidc/token-lane.ts): what they are answered, logged and
 * counted must not tell them from the realm's other endpoints, which Fastify's route serves.
 */
function withIdPresence<T extends { headers?: Record<string, unknown>; body?: string }>(answer: T): T {
  const withHeader = answer.headers ? { ...answer, headers: { ...answer.headers, 'x-request-id': typeof answer.headers['x-request-id'] } } : answer
  return { ...withHeader, body: answer.body?.replace(/"request_id":"[^"]*"/, '"request_id":"(present)"') }
}

describe('the token endpoint off Fastify', () => {
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    gw = await startGateway({ config: { realms: testRealms }, logLines })
  })
  after(() => gw.close())

  it('refuses what it refuses before oidc-provider exactly as the Fastify route does', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    const cases: [Record<string, string | string[]>, string | string[]][] = [
      [form, `client_id=end-users&token=x${'y'.repeat(60 * 1024)}`],
      [{ ...form, 'transfer-encoding': 'chunked' }, ['client_id=end-users&token=', 'y'.repeat(40 * 1024), 'y'.repeat(40 * 1024)]],
      [form, 'client_id=end-users&token=a%00b'],
      [{ ...form, host: ['127.0.0.1', '127.0.0.1'] }, 'client_id=end-users&token=x'],
      [{ ...form, host: 'not a host' }, 'client_id=end-users&token=x'],
      // A field that is no media type: 415, as on every other realm endpoint.
      [{ 'content-type': '%%%/;;;' }, 'client_id=end-users&token=x'],
    ]
    for (const [headers, body] of cases) {
      const token = await rawRequest(gw, TOKEN_PATH, headers, body)
      const introspection = await rawRequest(gw, INTROSPECTION_PATH, headers, body)
      assert.ok(token.status >= 400 || token.body === 'reset', `${token.status} ${token.body}`)
      if (!String(headers['content-type']).startsWith('application/x-www-form-urlencoded')) assert.equal(token.status, 415, token.body)
      // Each answer carries its own request's id: they are alike in having one.
      assert.deepEqual(withIdPresence(token), withIdPresence(introspection))
    }
  })

  it('logs one request line per token request, with the realm as its place, and counts it', async () => {
    logLines.length = 0
    const { status } = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })
    assert.equal(status, 200)
    const lines = logLines.filter((line) => line.msg === 'request' && line.path === TOKEN_PATH)
    assert.equal(lines.length, 1)
    assert.equal(lines[0]!.status, 200)
    assert.equal(lines[0]!.place, `realms/${REALM}`)
    assert.equal(typeof lines[0]!.reqId, 'string')
    const metrics = await (await gw.fetch('/metrics')).text()
    assert.match(metrics, new RegExp(`gatehouse_requests_total\\{[^}]*service="realms/${REALM}"[^}]*method="write"[^}]*status="2xx"[^}]*\\} [1-9]`))
  })

  it('leaves to Fastify the token requests it does not take: an unknown realm, a query string', async () => {
    const unknown = await gw.fetch('/realms/nowhere/protocol/openid-connect/token', { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) })
    assert.equal(unknown.status, 404)
    assert.deepEqual(await unknown.json(), { error: 'Realm does not exist' })
    const withQuery = await gw.fetch(`${TOKEN_PATH}?x=1`, { method: 'POST', body: new URLSearchParams({ client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' }) })
    assert.equal(withQuery.status, 200)
  })
})
