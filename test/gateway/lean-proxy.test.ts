import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { requestFrom } from '../helpers/from-address.ts'
import { adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * A service whose requests the test holds: `/hang` is never answered until released, `/early` answers before reading
 * the request body; everything else is answered at once.
 */
async function heldUpstream(): Promise<{ url: string; server: Server; hanging: IncomingMessage[]; gone: Promise<void>[]; release(): void }> {
  const hanging: IncomingMessage[] = []
  const responses: ServerResponse[] = []
  const gone: Promise<void>[] = []
  const server = createServer((request, response) => {
    if (request.url!.endsWith('/hang')) {
      hanging.push(request)
      responses.push(response)
      gone.push(once(response, 'close').then(() => undefined))
      return
    }
    if (request.url!.endsWith('/early')) {
      response.writeHead(413, { 'content-type': 'application/json' }).end('{"too":"big"}')
      return
    }
    request.resume()
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    hanging,
    gone,
    release: () => {
      for (const response of responses.splice(0)) response.writeHead(200).end('released')
    },
  }
}

/** Raw HTTP/1.1 on one socket, so a test controls the Host header and sees the connection's fate. */
function rawExchange(base: string, text: string): Promise<string> {
  const { port } = new URL(base)
  const socket = connect(Number(port), '127.0.0.1')
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk) => (received += chunk))
  socket.write(text)
  return new Promise((resolve) => {
    socket.on('data', () => {
      if (/\r\n\r\n[\s\S]*\}$/.test(received)) {
        socket.destroy()
        resolve(received)
      }
    })
    socket.on('close', () => resolve(received))
  })
}

describe('the lean proxy path', () => {
  let gw: TestGateway
  let upstream: Awaited<ReturnType<typeof heldUpstream>>

  before(async () => {
    upstream = await heldUpstream()
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.2'] },
        services: [
          { name: 'held', prefix: '/held/', upstream: upstream.url, accepts: ['basic'], pool: { connections: 1, per_client: 1, wait_seconds: 0.5 } },
          { name: 'guarded', prefix: '/guarded/', upstream: upstream.url, accepts: ['basic'], access: [{ deny: { networks: ['203.0.113.0/24'] } }, { allow: { users: ['admin'] } }] },
          // Under a path the gateway routes itself: Fastify's router chooses, as it always has.
          { name: 'nested', prefix: '/realms/nested/', upstream: upstream.url, accepts: ['basic'] },
        ],
      },
    })
  })
  after(async () => {
    upstream.release()
    await gw.close()
    upstream.server.closeAllConnections()
    upstream.server.close()
  })

  it('refuses a bad or repeated Host with 400 invalid_host at a service and at the gateway API alike', async () => {
    for (const path of ['/held/x', '/api/gateway/v1/ping/']) {
      for (const hosts of ['Host: bad host!\r\n', 'Host: a.example\r\nHost: b.example\r\n']) {
        const answer = await rawExchange(gw.url, `GET ${path} HTTP/1.1\r\n${hosts}Authorization: ${adminAuth.authorization}\r\n\r\n`)
        assert.match(answer, /^HTTP\/1\.1 400 /, `${path} with ${JSON.stringify(hosts)}`)
        assert.equal(JSON.parse(answer.split('\r\n\r\n')[1]!).code, 'invalid_host')
      }
    }
  })

  it('judges the client address a trusted proxy forwards, and only a trusted proxy\'s', async () => {
    const forwarded = { ...adminAuth, 'x-forwarded-for': '203.0.113.9' }
    const viaProxy = await requestFrom('127.0.0.2', `${gw.url}/guarded/x`, { headers: forwarded })
    assert.equal(viaProxy.status, 403)
    assert.equal(viaProxy.json().code, 'access_denied')
    assert.equal((await requestFrom('127.0.0.3', `${gw.url}/guarded/x`, { headers: forwarded })).status, 200)
  })

  it('closes the client connection when the service answers before it has read the request body', async () => {
    const answer = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const outgoing = httpRequest(`${gw.url}/held/early`, { method: 'POST', headers: { ...adminAuth, 'content-length': String(4 * 1024 * 1024) } }, (response) => {
        response.resume()
        resolve({ status: response.statusCode!, connection: response.headers.connection })
      })
      outgoing.on('error', reject)
      outgoing.write(Buffer.alloc(64 * 1024))
    })
    assert.equal(answer.status, 413)
    assert.equal(answer.connection, 'close')
  })

  it('gives up the upstream request, and its share of the pool, when the client goes away', async () => {
    const outgoing = httpRequest(`${gw.url}/held/hang`, { headers: adminAuth })
    outgoing.on('error', () => {})
    outgoing.end()
    while (upstream.hanging.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    outgoing.destroy()
    await upstream.gone[0]
    // The pool has one connection: the next request gets it instead of waiting for 503 upstream_busy.
    const next = await gw.fetch('/held/x', { headers: adminAuth })
    assert.equal(next.status, 200)
  })

  it('serves a service under a path the gateway also routes', async () => {
    const response = await gw.fetch('/realms/nested/x', { headers: adminAuth })
    assert.equal(response.status, 200)
    assert.deepEqual(await response.json(), { ok: true })
  })

  it('closes each connection after its answer once the server drains', async () => {
    const { port } = new URL(gw.url)
    const socket = connect(Number(port), '127.0.0.1')
    let received = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => (received += chunk))
    const hanging = upstream.hanging.length
    socket.write(`GET /held/hang HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: ${adminAuth.authorization}\r\n\r\n`)
    while (upstream.hanging.length === hanging) await new Promise((resolve) => setTimeout(resolve, 10))
    const closed = gw.server.close()
    socket.write(`GET /held/x HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: ${adminAuth.authorization}\r\n\r\n`)
    upstream.release()
    await once(socket, 'close')
    await closed
    const responses = received.split(/(?=HTTP\/1\.1 )/)
    assert.equal(responses.length, 2, received)
    assert.match(responses[0]!, /^HTTP\/1\.1 200 [\s\S]*released/)
    assert.match(responses[1]!, /^HTTP\/1\.1 200 [\s\S]*\r\nconnection: close\r\n/i)
  })
})
