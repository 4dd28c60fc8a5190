import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { parseScrape, sampleValue } from '../helpers/prometheus.ts'
import { answerOf, eventually, exchange, rawClient } from '../helpers/raw-client.ts'

const HEADERS_SECONDS = 1
/** Credentials every request below carries, in its header fields and its query: none may reach a log line. */
const PASSWORD = 'arrival-secret-password'
const AUTHORIZATION = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`
const QUERY_TOKEN = 'arrival-query-token'

describe('requests refused as they arrive', () => {
  let gw: TestGateway
  const logLines: Record<string, any>[] = []

  before(async () => {
    gw = await startGateway({
      logLines,
      config: { server: { host: '127.0.0.1', port: 0, timeouts: { headers_seconds: HEADERS_SECONDS, request_seconds: 5 } } },
    })
  })
  after(() => gw.close())

  /** The refusals counted so far: every one below is a write (a head that could not be read has no method to read). */
  const requestsCounted = async (): Promise<number> => {
    const samples = parseScrape(await (await gw.fetch('/metrics')).text())
    return sampleValue(samples, 'gatehouse_requests_total', { service: 'gateway', method: 'write', status: '4xx', auth: 'none' })
  }

  /** The one request line with this id, once it is written (when the answer's connection closes). */
  const lineOf = async (id: string | undefined): Promise<Record<string, any>> => {
    assert.ok(id, 'the answer carries X-Request-Id')
    const lines = await eventually(() => logLines.filter((line) => line.msg === 'request' && line.reqId === id), (found) => found.length > 0, 2000)
    assert.equal(lines.length, 1, `one request line for ${id}`)
    const line = lines[0]!
    const text = JSON.stringify(line)
    for (const secret of [PASSWORD, AUTHORIZATION.slice('Basic '.length), QUERY_TOKEN]) assert.ok(!text.includes(secret), `no credential in ${text}`)
    return line
  }

  /**
   * Asserts that the answer `send` gets (its raw bytes) was the refusal expected, that it has one request line naming
   * it, under its X-Request-Id, and that it was counted once; returns the answer's id.
   */
  const refusedAndLogged = async (send: () => Promise<string>, expected: { status: number; code: string; method?: string; path?: string }): Promise<string> => {
    const before = await requestsCounted()
    const answer = answerOf(await send())
    assert.equal(answer.status, expected.status)
    assert.equal(answer.code, expected.code)
    const line = await lineOf(answer.id)
    assert.deepEqual(
      { method: line.method, path: line.path, status: line.status, code: line.code, service: line.service },
      { method: expected.method, path: expected.path, status: expected.status, code: expected.code, service: 'gateway' },
    )
    assert.equal(await requestsCounted(), before + 1)
    return answer.id!
  }

  it('logs a target without its fragment, which a URL copied from a browser may hold a token in, refused on arrival or not', async () => {
    for (const head of [`GET /api/gateway/v1/x#access_token=${QUERY_TOKEN} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`, `POST /api/gateway/v1/x#access_token=${QUERY_TOKEN} HTTP/1.1\r\nHost: gw\r\nExpect: bogus\r\nContent-Length: 0\r\n\r\n`]) {
      const line = await lineOf(answerOf(await exchange(gw.url, head)).id)
      assert.equal(line.path, '/api/gateway/v1/x')
    }
  })

  it('logs and counts an HTTP/1.0 request refused for its Transfer-Encoding', async () => {
    await refusedAndLogged(
      () => exchange(gw.url, `POST /api/controller/x?token=${QUERY_TOKEN} HTTP/1.0\r\nHost: gw\r\nAuthorization: ${AUTHORIZATION}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`),
      { status: 400, code: 'bad_request', method: 'POST', path: '/api/controller/x' },
    )
  })

  for (const version of ['HTTP/2.0', 'HTTP/0.9']) {
    it(`logs an ${version} request line refused 505, which Node's parser takes and would serve as HTTP/1.1`, async () => {
      // Counted as a 5xx read: refusedAndLogged's count is of 4xx writes.
      const answer = answerOf(await exchange(gw.url, `GET /api/controller/x?token=${QUERY_TOKEN} ${version}\r\nHost: gw\r\nAuthorization: ${AUTHORIZATION}\r\n\r\n`))
      assert.deepEqual([answer.status, answer.code], [505, 'http_version_not_supported'])
      const line = await lineOf(answer.id)
      assert.deepEqual(
        { method: line.method, path: line.path, status: line.status, code: line.code, service: line.service },
        { method: 'GET', path: '/api/controller/x', status: 505, code: 'http_version_not_supported', service: 'gateway' },
      )
    })

    it(`refuses an ${version} WebSocket handshake 505 as well, which Node hands to its upgrade path rather than its requests'`, async () => {
      const handshake = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
      for (const path of ['/api/gateway/v1/ping/', '/realms/master/.well-known/openid-configuration']) {
        const text = await exchange(gw.url, `GET ${path} ${version}\r\nHost: gw\r\n${handshake}\r\n`)
        const answer = answerOf(text)
        assert.deepEqual([answer.status, answer.code], [505, 'http_version_not_supported'], `${path}: ${text.slice(0, 200)}`)
        const line = await lineOf(answer.id)
        assert.deepEqual([line.path, line.status, line.code], [path, 505, 'http_version_not_supported'])
      }
    })
  }

  it('logs and counts a request refused 417 for an Expect other than 100-continue, whose answer carries its id', async () => {
    await refusedAndLogged(
      () => exchange(gw.url, `POST /api/gateway/v1/x?access_token=${QUERY_TOKEN} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${AUTHORIZATION}\r\nExpect: bogus\r\nContent-Length: 5\r\n\r\nhello`),
      { status: 417, code: 'expectation_failed', method: 'POST', path: '/api/gateway/v1/x' },
    )
  })

  it('logs and counts a CONNECT refused 400, whose answer carries its id, without the userinfo of its target', async () => {
    await refusedAndLogged(
      () => exchange(gw.url, `CONNECT admin:${PASSWORD}@127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nProxy-Authorization: ${AUTHORIZATION}\r\n\r\n`),
      { status: 400, code: 'bad_request', method: 'CONNECT', path: '127.0.0.1:22' },
    )
  })

  it('logs and counts a head the parser cannot read, without a byte of it, whose answer carries its id', async () => {
    await refusedAndLogged(
      () => exchange(gw.url, `GET /api/controller/x?token=${QUERY_TOKEN} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${AUTHORIZATION}\r\nBad Header: x\r\n\r\n`),
      { status: 400, code: 'bad_request' },
    )
  })

  it('logs and counts a head that did not arrive in time, but not a connection that sent nothing', async () => {
    const linesBefore = logLines.length
    const idle = await rawClient(gw.url, '127.0.0.1', '')
    const id = await refusedAndLogged(async () => {
      const slow = await rawClient(gw.url, '127.0.0.1', `GET /api/controller/x?token=${QUERY_TOKEN} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${AUTHORIZATION}\r\n`)
      await Promise.all([idle.closed, slow.closed])
      return slow.received()
    }, { status: 408, code: 'request_timeout' })
    // Both are answered; only the one that began a request is one.
    const idleAnswer = answerOf(idle.received())
    assert.equal(idleAnswer.status, 408)
    assert.equal(idleAnswer.id, undefined, 'no id for a request that never began')
    const lines = logLines.slice(linesBefore).filter((line) => line.msg === 'request' && line.status === 408)
    assert.deepEqual(lines.map((line) => line.reqId), [id])
  })
})
