import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'

const COOKIE_SECRET = 'UpstreamCookie-secret-7f3a'
const BODY_SECRET = 'UpstreamBodyToken-secret-9c1e'

/** Answers that undici's parser refuses part-way, with what a service may send after the fault: a cookie, tokens. */
const MALFORMED = {
  'header-value': `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Debug: a\x01b\r\nSet-Cookie: sessionid=${COOKIE_SECRET}\r\nContent-Length: 48\r\n\r\n{"access_token":"${BODY_SECRET}"}`,
  'chunk-size': `HTTP/1.1 200 OK\r\nSet-Cookie: sessionid=${COOKIE_SECRET}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{"access_token":"${BODY_SECRET}"}\r\n0\r\n\r\n`,
  'status-line': `HTTP/1.1 2x0 OK\r\nSet-Cookie: sessionid=${COOKIE_SECRET}\r\n\r\n{"access_token":"${BODY_SECRET}"}`,
} as const

/**
 * undici's error for an answer it cannot parse keeps the rest of that answer (`data`), and the gateway logged the
 * error whole, at warn: a service's cookies and tokens went to the log of every request to it.
 */
describe('a service\'s answer that cannot be parsed', () => {
  let gw: TestGateway
  let upstream: Server
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    upstream = createServer((socket) => {
      socket.once('data', (request) => {
        const kind = /^\S+ \/raw\/([\w-]+)/.exec(String(request))?.[1] as keyof typeof MALFORMED
        socket.end(MALFORMED[kind] ?? MALFORMED['header-value'])
      })
      socket.on('error', () => {})
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const { port } = upstream.address() as { port: number }
    gw = await startGateway({ logLines, config: { services: [{ name: 'raw', prefix: '/raw/', upstream: `http://127.0.0.1:${port}`, public_paths: ['/raw/*'] }] } })
  })
  after(async () => {
    await gw.close()
    upstream.close()
  })

  it('is answered 502 and logged with why, and nothing of what the service sent', async () => {
    for (const [kind, method] of [['header-value', 'GET'], ['chunk-size', 'GET'], ['status-line', 'GET'], ['header-value', 'POST']] as const) {
      const response = await gw.fetch(`/raw/${kind}`, method === 'POST' ? { method, headers: { 'content-type': 'application/json' }, body: '{"a":1}' } : {})
      assert.equal(response.status, 502, `${method} ${kind}`)
      assert.equal((await json(response)).code, 'upstream_unavailable', `${method} ${kind}`)
      const reqId = response.headers.get('x-request-id')
      const line = logLines.find((entry) => entry.reqId === reqId && entry.msg === 'response errored')
      assert.ok(line, `${method} ${kind}: the failure is logged`)
      assert.equal((line.err as { type?: string }).type, 'HTTPParserError', `${method} ${kind}`)
    }
    const logged = JSON.stringify(logLines)
    assert.ok(!logged.includes(COOKIE_SECRET), 'no cookie of the service in the log')
    assert.ok(!logged.includes(BODY_SECRET), 'no token of the service in the log')
  })
})
