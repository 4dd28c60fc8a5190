import assert from 'node:assert/strict'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'
import { freePort } from '../helpers/free-port.ts'
import { rawClient } from '../helpers/raw-client.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const PROXY = '127.0.0.2'
const CLIENT = '127.0.0.3'

describe('request ids', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream
  let early: Server
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    // Paths with `/hang` are never answered: the gateway's 504, or a request holding the service's one connection.
    upstream = await startRecordingUpstream((request, response) => {
      if (request.url!.includes('/hang')) return
      // Paths with `/partial` begin an answer and never finish it.
      if (request.url!.includes('/partial')) {
        response.writeHead(200, { 'content-type': 'application/json' }).write('{"begun":')
        return
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
    // A service that begins its answer at once, before it reads the request's body (which it never does).
    early = createServer((_request, response) => void response.writeHead(200, { 'content-type': 'text/plain' }).write('begun'))
    await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', resolve))
    // A port nothing listens on: every request there is the gateway's 502.
    const closedPort = await freePort()
    gw = await startGateway({
      logLines,
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: [PROXY] },
        services: [
          { name: 'rec', prefix: '/rec/', upstream: upstream.url, public_paths: ['/rec/open/*'], timeouts: { response_seconds: 0.5 } },
          { name: 'down', prefix: '/down/', upstream: `http://127.0.0.1:${closedPort}`, public_paths: ['/down/*'] },
          { name: 'ruled', prefix: '/ruled/', upstream: upstream.url, access: [{ allow: { methods: ['GET', 'POST'] } }] },
          { name: 'early', prefix: '/early/', upstream: `http://127.0.0.1:${(early.address() as AddressInfo).port}`, public_paths: ['/early/*'], pool: { body_buffer_kb: 0 } },
          { name: 'held', prefix: '/held/', upstream: upstream.url, public_paths: ['/held/*'], pool: { connections: 1, per_client: 1, wait_seconds: 0.3 }, timeouts: { response_seconds: 3 } },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
    early.closeAllConnections()
    early.close()
  })

  /** The line logged for the request that got `id`, once the response has ended. */
  async function loggedLine(id: string): Promise<Record<string, unknown> | undefined> {
    for (let i = 0; i < 1000 && !logLines.some((line) => line.reqId === id && line.msg === 'request'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    return logLines.find((line) => line.reqId === id && line.msg === 'request')
  }

  it('gives each request an id of its own, echoed to the client, passed to the service and logged', async () => {
    const first = await requestFrom(CLIENT, gw.url + '/rec/open/a')
    const second = await requestFrom(CLIENT, gw.url + '/rec/open/b')
    const id = first.headers['x-request-id'] as string
    assert.match(id, UUID)
    assert.notEqual(second.headers['x-request-id'], id)
    assert.equal(upstream.seen.find((seen) => seen.url === '/rec/open/a')?.headers['x-request-id'], id)
    assert.equal((await loggedLine(id))?.path, '/rec/open/a')
  })

  it('takes a well-formed id from a trusted proxy, so one id follows the request through every hop', async () => {
    const answered = await requestFrom(PROXY, gw.url + '/rec/open/from-proxy', { headers: { 'x-request-id': 'edge-4f2a.17:0' } })
    assert.equal(answered.headers['x-request-id'], 'edge-4f2a.17:0')
    assert.equal(upstream.seen.find((seen) => seen.url === '/rec/open/from-proxy')?.headers['x-request-id'], 'edge-4f2a.17:0')
    assert.equal((await loggedLine('edge-4f2a.17:0'))?.path, '/rec/open/from-proxy')
  })

  it('replaces what any other client says, and what a proxy says that is no fit for a log line', async () => {
    const cases: [string, string][] = [[CLIENT, 'chosen-by-client'], [PROXY, 'x'.repeat(129)], [PROXY, 'has spaces "and quotes"'], [PROXY, 'ünïcode']]
    for (const [from, given] of cases) {
      const path = `/rec/open/replaced-${logLines.length}`
      const answered = await requestFrom(from, gw.url + path, { headers: { 'x-request-id': given } })
      const id = answered.headers['x-request-id'] as string
      assert.match(id, UUID, `${from} ${given}`)
      assert.equal(upstream.seen.find((seen) => seen.url === path)?.headers['x-request-id'], id, 'the service gets the id the gateway used, not the one sent')
    }
  })

  it('carries one id on every answer of a proxied request: the service\'s, and the gateway\'s own refusals, redirects and failures', async () => {
    const wrongPassword = { authorization: `Basic ${Buffer.from('admin:not-the-password').toString('base64')}` }
    const form = { ...adminAuth, 'content-type': 'application/x-www-form-urlencoded' }
    // Holds the one connection to the `held` service: the next request there waits for it, and is refused.
    const holding = requestFrom(CLIENT, gw.url + '/held/hang').catch(() => undefined)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const cases: [path: string, init: { method?: string; headers?: Record<string, string>; body?: string }, status: number][] = [
      ['/rec/open/answered', {}, 200],
      ['/rec/open/answered', { method: 'HEAD' }, 200],
      ['/rec/private', {}, 401],
      ['/rec/private', { headers: wrongPassword }, 401],
      ['/rec/private', { headers: { accept: 'text/html' } }, 302],
      ['/ruled/x', { method: 'DELETE', headers: adminAuth }, 403],
      // A form naming the method its rules refuse, judged once its body is read.
      ['/ruled/x', { method: 'POST', headers: form, body: '_method=DELETE' }, 403],
      ['/down/x', {}, 502],
      ['/held/x', {}, 503],
      ['/rec/open/hang', {}, 504],
    ]
    for (const [path, init, status] of cases) {
      const answered = await requestFrom(CLIENT, gw.url + path, init)
      assert.equal(answered.status, status, path)
      // Node joins repeated fields with a comma: one id alone matches.
      const id = answered.headers['x-request-id'] as string
      assert.match(id, UUID, `${path} ${status}`)
      assert.equal((await loggedLine(id))?.status, status, path)
    }
    await holding
    // A body the parser refuses after the head was read: Node's own answer, with the request's id too (a trusted
    // proxy's, so that the id is known to be this request's).
    const client = await rawClient(gw.url, PROXY, 'POST /rec/open/x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: edge-raw.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')
    await client.closed
    assert.match(client.received(), /^HTTP\/1\.1 400 /)
    assert.match(client.received(), /\r\nx-request-id: edge-raw\.1\r\n/i)
    // Its line names the answer the client got, not the one the gateway was going to give.
    const line = await loggedLine('edge-raw.1')
    assert.deepEqual([line?.method, line?.path, line?.status, line?.code, line?.incomplete], ['POST', '/rec/open/x', 400, 'bad_request', undefined])
  })

  it('passes a client\'s trace context on to the service as it was sent, from any client', async () => {
    const traceContext = {
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
      baggage: 'userId=alice', 'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7', 'x-cloud-trace-context': '105445aa7843bc8bf206b12000100000/1;o=1',
    }
    for (const from of [CLIENT, PROXY]) {
      const path = `/rec/open/traced-${from}`
      assert.equal((await requestFrom(from, gw.url + path, { headers: traceContext })).status, 200)
      const seen = upstream.seen.find((request) => request.url === path)!.headers
      assert.deepEqual(Object.fromEntries(Object.keys(traceContext).map((name) => [name, seen[name]])), traceContext, from)
    }
  })

  it('logs the trace id of a well-formed traceparent with the request, so a trace finds its line, and none of any other', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const cases: [traceparent: string, logged: string | undefined][] = [
      [`00-${traceId}-00f067aa0ba902b7-01`, traceId],
      // A later version may add fields; version 00 may not, nor may any be ff, nor an id be all zeros.
      [`01-${traceId}-00f067aa0ba902b7-01-later`, traceId],
      [`00-${traceId}-00f067aa0ba902b7-01-later`, undefined],
      [`ff-${traceId}-00f067aa0ba902b7-01`, undefined],
      [`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, undefined],
      [`00-${traceId}-${'0'.repeat(16)}-01`, undefined],
      [`00-${traceId.toUpperCase()}-00f067aa0ba902b7-01`, undefined],
      ['00-"},"user":"admin-00f067aa0ba902b7-01', undefined],
    ]
    // The lean path, the general one (the gateway's API) and a request refused as it arrives.
    for (const path of ['/rec/open/traced', '/api/gateway/v1/ping/']) {
      for (const [traceparent, logged] of cases) {
        const answered = await requestFrom(CLIENT, gw.url + path, { headers: { traceparent } })
        const line = await loggedLine(answered.headers['x-request-id'] as string)
        assert.equal(line?.path, path)
        assert.equal(line?.trace_id, logged, `${path} ${traceparent}`)
      }
    }
    const refused = await rawClient(gw.url, PROXY, `POST /rec/open/x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: traced-arrival\r\nExpect: bogus\r\ntraceparent: 00-${traceId}-00f067aa0ba902b7-01\r\n\r\n`)
    await refused.closed
    assert.deepEqual([(await loggedLine('traced-arrival'))?.status, (await loggedLine('traced-arrival'))?.trace_id], [417, traceId])
  })

  it('names the id in the body of every refusal, JSON or a browser\'s page, so that what a user pastes finds its log line', async () => {
    const cases: [path: string, init: { method?: string; headers?: Record<string, string> }, status: number][] = [
      ['/down/x', {}, 502],
      ['/rec/private', {}, 401],
      ['/ruled/x', { method: 'DELETE', headers: adminAuth }, 403],
      ['/nowhere/x', {}, 404],
      ['/api/gateway/v1/no-such-thing/', { headers: adminAuth }, 404],
      ['/rec/open/hang', {}, 504],
    ]
    for (const [path, init, status] of cases) {
      const answered = await requestFrom(CLIENT, gw.url + path, init)
      assert.equal(answered.status, status, path)
      const body = answered.json()
      assert.equal(body.request_id, answered.headers['x-request-id'], path)
      assert.equal((await loggedLine(body.request_id))?.code, body.code, path)
    }
    const page = await requestFrom(CLIENT, gw.url + '/down/x', { headers: { accept: 'text/html' } })
    assert.equal(page.status, 502)
    assert.ok(page.body.includes(`<code>${page.headers['x-request-id']}</code>`), 'the page shows the id')
    // Refused as it arrives, before any route: Node's parser gave up on its body.
    const client = await rawClient(gw.url, PROXY, 'POST /rec/open/x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: edge-body.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')
    await client.closed
    assert.equal(JSON.parse(client.received().slice(client.received().indexOf('\r\n\r\n') + 4)).request_id, 'edge-body.1')
  })

  it('logs a request whose client leaves before its answer (499, as nginx) or in the middle of it', async () => {
    const sent = (id: string, target: string, rest = '\r\n'): string => `${target} HTTP/1.1\r\nHost: gw\r\nX-Request-Id: ${id}\r\n${rest}`
    // Waiting for the service, on the lean path and on Fastify's (which takes paths with escapes); a service's answer, begun.
    const cases: [id: string, bytes: string, status: number][] = [
      ['left.proxied', sent('left.proxied', 'GET /rec/open/hang-left'), 499],
      ['left.routed', sent('left.routed', 'GET /rec/open/hang%2Dleft'), 499],
      ['left.partial', sent('left.partial', 'GET /rec/open/partial'), 200],
    ]
    for (const [id, bytes, status] of cases) {
      const client = await rawClient(gw.url, PROXY, bytes)
      if (status === 200) {
        for (let i = 0; i < 200 && !client.received().includes('"begun":'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
        assert.match(client.received(), /^HTTP\/1\.1 200 /, id)
      } else {
        await new Promise((resolve) => setTimeout(resolve, 150))
        assert.equal(client.received(), '', id)
      }
      client.socket.destroy()
      const line = await loggedLine(id)
      assert.deepEqual([line?.status, line?.incomplete], [status, true], id)
    }
    // A body broken off by the client: the parser's 400 (nginx logs 400 too), on the gateway's own API as on the proxy.
    const cut = await rawClient(gw.url, PROXY, sent('left.api', 'POST /api/gateway/v1/users/', `Authorization: ${adminAuth.authorization}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user`))
    await new Promise((resolve) => setTimeout(resolve, 150))
    cut.socket.end()
    const line = await loggedLine('left.api')
    assert.deepEqual([line?.status, line?.code, line?.incomplete], [400, 'bad_request', undefined])
    // The rest of a body found malformed while the service's answer was under way: the gateway cuts that answer.
    const streaming = await rawClient(gw.url, PROXY, sent('cut.early', 'POST /early/upload', 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n'))
    for (let i = 0; i < 200 && !streaming.received().includes('begun'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    assert.match(streaming.received(), /^HTTP\/1\.1 200 /)
    streaming.socket.write('not a chunk size\r\n\r\n')
    await streaming.closed
    const cutLine = await loggedLine('cut.early')
    assert.deepEqual([cutLine?.status, cutLine?.incomplete, cutLine?.closed_by, cutLine?.code], [200, true, 'gateway', 'bad_request'])
    // A client that closes its side in the middle of its body, once the service's answer began, left: no cut of the gateway's.
    for (const [id, framing] of [['left.upload-chunked', 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n'], ['left.upload-length', 'Content-Length: 100\r\n\r\nhello']]) {
      const uploading = await rawClient(gw.url, PROXY, sent(id!, 'POST /early/upload', framing))
      for (let i = 0; i < 200 && !uploading.received().includes('begun'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
      uploading.socket.end()
      const leftLine = await loggedLine(id!)
      assert.deepEqual([leftLine?.status, leftLine?.incomplete, leftLine?.closed_by, leftLine?.code], [200, true, undefined, undefined], id)
    }
    // An answer sent whole says nothing of the kind.
    const whole = await requestFrom(PROXY, gw.url + '/rec/open/whole', { headers: { 'x-request-id': 'whole.1' } })
    assert.equal(whole.status, 200)
    assert.deepEqual([(await loggedLine('whole.1'))?.status, (await loggedLine('whole.1'))?.incomplete], [200, undefined])
  })

  it('logs a sound request cut because the one pipelined behind it timed out as cut by the gateway, with no code of that one\'s', async () => {
    const held: ServerResponse[] = []
    const slow = createServer((_request, response) => void held.push(response))
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
    const lines: Record<string, unknown>[] = []
    const strict = await startGateway({
      logLines: lines,
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: [PROXY], timeouts: { headers_seconds: 1, request_seconds: 1 } },
        services: [{ name: 'slow', prefix: '/slow/', upstream: `http://127.0.0.1:${(slow.address() as AddressInfo).port}`, public_paths: ['/slow/*'], timeouts: { response_seconds: 30 } }],
      },
    })
    try {
      const client = await rawClient(strict.url, PROXY, 'GET /slow/first HTTP/1.1\r\nHost: gw\r\nX-Request-Id: sound.1\r\n\r\nGET /slow/second HTTP/1.1\r\nHost: g')
      await client.closed
      let line: Record<string, unknown> | undefined
      for (let i = 0; i < 200 && !(line = lines.find((logged) => logged.reqId === 'sound.1' && logged.msg === 'request')); i++) await new Promise((resolve) => setTimeout(resolve, 10))
      assert.deepEqual([line?.status, line?.incomplete, line?.closed_by, line?.code], [444, true, 'gateway', undefined])
    } finally {
      for (const response of held) response.destroy()
      slow.closeAllConnections()
      slow.close()
      await strict.close()
    }
  })

  it('carries an id on the gateway API, its errors and the realms, as on the proxied path', async () => {
    for (const [path, headers] of [['/api/gateway/v1/me/', adminAuth], ['/api/gateway/v1/no-such-thing/', adminAuth], ['/rec/private', {}], ['/realms/platform/.well-known/openid-configuration', {}]] as const) {
      const answered = await requestFrom(CLIENT, gw.url + path, { headers: { ...headers } })
      const id = answered.headers['x-request-id'] as string
      assert.match(id, UUID, path)
      assert.equal((await loggedLine(id))?.status, answered.status, path)
    }
  })
})
