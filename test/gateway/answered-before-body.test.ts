import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { answerOf } from '../helpers/raw-client.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const BODY_BYTES = 16 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 'x')

interface Upload {
  /** Body bytes the client wrote before the connection failed under it (all of them when it did not). */
  sent: number
  /** How writing failed (EPIPE, ECONNRESET), if it did. */
  writeError: string | undefined
  /** Everything the client received before the connection closed. */
  answer: string
}

/**
 * Sends a request with a large body at the speed the connection takes it, as clients do that read their answer only
 * once the body is sent (fetch, Node's http, requests), and collects what comes back until the connection closes.
 */
function upload(url: string, path: string): Promise<Upload> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    const result: Upload = { sent: 0, writeError: undefined, answer: '' }
    socket.on('data', (chunk) => { result.answer += chunk.toString('latin1') })
    socket.on('error', (error: NodeJS.ErrnoException) => { result.writeError ??= error.code })
    socket.on('close', () => resolve(result))
    socket.write(`POST ${path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BODY_BYTES}\r\n\r\n`)
    const send = (): void => {
      while (result.sent < BODY_BYTES && !socket.destroyed) {
        result.sent += CHUNK.length
        if (!socket.write(CHUNK)) return void socket.once('drain', send)
      }
      // The whole body is sent: the client now waits for the gateway to close.
    }
    send()
  })
}

/**
 * A service that answers a large upload before it has read all of it (413 for a body it will not take, 401 before
 * looking at it) or fails while receiving it: the client is still sending. Its connection used to be reset under
 * the answer, as the gateway destroyed the client's request with the body the service left unread; clients that
 * write their body before they read (fetch, Node's http) failed with EPIPE, most of the time without the answer.
 */
describe('a service that answers or fails before the request body\'s end', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream

  before(async () => {
    upstream = await startRecordingUpstream()
    upstream.server.removeAllListeners('request')
    upstream.server.on('request', (request, response) => {
      if (request.url!.endsWith('/refuses')) {
        response.writeHead(413, { 'content-type': 'application/json' }).end('{"detail":"too large for the service"}')
        return
      }
      // Fails part-way through the body: its connection closes under the request.
      let received = 0
      request.on('data', (chunk: Buffer) => {
        received += chunk.length
        if (received > 256 * 1024) request.socket.destroy()
      })
    })
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0 },
        services: [
          { name: 'lean', prefix: '/lean/', upstream: upstream.url, public_paths: ['/lean/*'] },
          // A service with CORS is served by the general path.
          { name: 'general', prefix: '/general/', upstream: upstream.url, public_paths: ['/general/*'], cors: { allowed_origins: ['https://app.example'] } },
          // Every body streamed from its first byte.
          { name: 'streamed', prefix: '/streamed/', upstream: upstream.url, public_paths: ['/streamed/*'], pool: { body_buffer_kb: 0 } },
          // More of a body read first than the connection to the service takes before its answer.
          { name: 'held', prefix: '/held/', upstream: upstream.url, public_paths: ['/held/*'], pool: { body_buffer_kb: 8192 } },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  for (const service of ['lean', 'general', 'streamed', 'held']) {
    it(`(${service}) passes on the service's early answer, reads the rest of the body to drop it, then closes the connection`, async () => {
      const { sent, writeError, answer } = await upload(gw.url, `/${service}/refuses`)
      assert.equal(writeError, undefined, `the client's body was taken to its end (${sent} of ${BODY_BYTES} bytes sent)`)
      assert.equal(answerOf(answer).status, 413)
      assert.match(answer, /\r\nconnection: close\r\n/i)
      assert.ok(answer.includes('{"detail":"too large for the service"}'), answer)
    })

    it(`(${service}) answers 502 to a body the service failed part-way through, without resetting the connection under it`, async () => {
      const { sent, writeError, answer } = await upload(gw.url, `/${service}/fails`)
      assert.equal(writeError, undefined, `the client's body was taken to its end (${sent} of ${BODY_BYTES} bytes sent)`)
      assert.equal(answerOf(answer).status, 502)
      assert.equal(answerOf(answer).code, 'upstream_unavailable')
    })
  }

  it('serves the next requests: the connections to the service are not left half-written', async () => {
    for (const service of ['lean', 'general', 'streamed', 'held']) {
      const response = await gw.fetch(`/${service}/refuses`, { method: 'POST', body: 'small' })
      assert.equal(response.status, 413)
    }
  })
})
