import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { eventually, rawClient } from '../helpers/raw-client.ts'

/**
 * HTTP/1.1 pipelining (RFC 9112 §9.3.2): requests a client sends one behind the other on a connection, without
 * waiting for the answers, which must come back in order.
 */
describe('pipelined requests', () => {
  let gw: TestGateway
  let upstream: Server
  /** Requests the service holds at once, and the most it ever held. */
  let holding = 0
  let mostHeld = 0

  before(async () => {
    upstream = createServer((request, response) => {
      mostHeld = Math.max(mostHeld, ++holding)
      let bytes = 0
      request.on('data', (chunk: Buffer) => (bytes += chunk.length))
      // `/slow/late...`: an answer that takes longer than a client has to send its headers.
      request.on('end', () => setTimeout(() => {
        holding--
        response.end(`answer to ${request.url}${bytes ? ` with ${bytes} bytes` : ''}`)
      }, request.url!.startsWith('/slow/late') ? 3000 : 50))
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, timeouts: { headers_seconds: 1 } },
        services: [{ name: 'slow', prefix: '/slow/', upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, public_paths: ['/slow/*'] }],
      },
    })
  })
  after(async () => {
    await gw.close()
    upstream.closeAllConnections()
    upstream.close()
  })

  it('handles a connection\'s pipelined requests one after the other, each answered in order', async () => {
    mostHeld = 0
    const requests = Array.from({ length: 10 }, (_, i) => `GET /slow/${i} HTTP/1.1\r\nHost: gw\r\n\r\n`).join('')
    const client = await rawClient(gw.url, '127.0.0.1', requests)
    try {
      const text = await eventually(client.received, (received) => received.includes('answer to /slow/9'), 10_000)
      assert.deepEqual(text.match(/answer to \/slow\/\d+/g), Array.from({ length: 10 }, (_, i) => `answer to /slow/${i}`))
      assert.equal(mostHeld, 1, 'the service never had more than one of them at once')
    } finally {
      client.socket.destroy()
    }
  })

  it('reads a pipelined request\'s body when its turn comes, however much of it arrived before', async () => {
    const body = 'x'.repeat(300_000)
    const client = await rawClient(gw.url, '127.0.0.1', `GET /slow/a HTTP/1.1\r\nHost: gw\r\n\r\nPOST /slow/b HTTP/1.1\r\nHost: gw\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /slow/c HTTP/1.1\r\nHost: gw\r\n\r\n`)
    try {
      const text = await eventually(client.received, (received) => received.includes('answer to /slow/c'), 10_000)
      assert.deepEqual(text.match(/answer to [^H]+/g), ['answer to /slow/a', `answer to /slow/b with ${body.length} bytes`, 'answer to /slow/c'])
    } finally {
      client.socket.destroy()
    }
  })

  it('reads on while a few pipelined requests wait, so that a request whose headers come in two parts meanwhile is not cut off', async () => {
    const client = await rawClient(gw.url, '127.0.0.1', 'GET /slow/late HTTP/1.1\r\nHost: gw\r\n\r\nGET /slow/b HTTP/1.1\r\nHost: gw\r\n\r\nGET /slow/c HTTP/1.1\r\nHo')
    try {
      await sleep(200)
      client.socket.write('st: gw\r\n\r\n')
      const text = await eventually(client.received, (received) => received.includes('answer to /slow/c') || client.socket.closed, 10_000)
      assert.deepEqual(text.match(/answer to \/slow\/[a-z]+/g), ['answer to /slow/late', 'answer to /slow/b', 'answer to /slow/c'])
    } finally {
      client.socket.destroy()
    }
  })

  it('reads no further while pipelined requests wait, so that one connection cannot make the gateway hold thousands at once', async () => {
    let parsed = 0
    const count = () => parsed++
    gw.server.server.prependListener('request', count)
    const client = await rawClient(gw.url, '127.0.0.2', 'GET /slow/x HTTP/1.1\r\nHost: gw\r\n\r\n'.repeat(50_000))
    try {
      await sleep(2000)
      assert.ok(parsed < 3000, `${parsed} of 50,000 requests taken in`)
      assert.ok((await gw.fetch('/slow/other')).ok, 'other clients are served meanwhile')
    } finally {
      client.socket.destroy()
      gw.server.server.off('request', count)
    }
  })
})
