import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { answerOf } from '../helpers/raw-client.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

const BODY_BYTES = 16 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 'x')
/** The fields of a WebSocket handshake: Node hands such a request to its upgrade path (src/gateway/websocket.ts). */
const HANDSHAKE = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'

/**
 * Sends `head`, then a large body at the speed the connection takes it, as clients do that read their answer only
 * once the body is sent (fetch, Node's http, requests), and collects what comes back until the connection closes.
 */
function upload(url: string, head: string): Promise<{ writeError: string | undefined; answer: string }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname)
    const result = { writeError: undefined as string | undefined, answer: '' }
    let sent = 0
    socket.on('data', (chunk) => { result.answer += chunk.toString('latin1') })
    socket.on('error', (error: NodeJS.ErrnoException) => { result.writeError ??= error.code })
    socket.on('close', () => resolve(result))
    socket.write(head)
    const send = (): void => {
      while (sent < BODY_BYTES && socket.writable) {
        sent += CHUNK.length
        if (!socket.write(CHUNK)) return void socket.once('drain', send)
      }
    }
    send()
  })
}

/**
 * The requests refused as they arrive, before the gateway routes them, whose body is never taken (Node's parser refuses
 * some itself), and the WebSocket handshakes refused on Node's upgrade path: the connection closes after the answer.
 * Closed at once while the client's body was still arriving, it was reset under the answer: the client's write failed
 * (EPIPE) and, often, the answer was never read.
 */
describe('a refusal on arrival while the client is still sending its body', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  for (const [what, head, status, code] of [
    ['a request line of HTTP/2.0', `POST /api/gateway/v1/ping/ HTTP/2.0\r\nHost: gw\r\nContent-Length: ${BODY_BYTES}\r\n\r\n`, 505, 'http_version_not_supported'],
    ['an HTTP/1.0 request with a Transfer-Encoding', `POST /api/gateway/v1/ping/ HTTP/1.0\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n${BODY_BYTES.toString(16)}\r\n`, 400, 'bad_request'],
    ['an Expect other than 100-continue', `POST /api/gateway/v1/ping/ HTTP/1.1\r\nHost: gw\r\nExpect: something-else\r\nContent-Length: ${BODY_BYTES}\r\n\r\n`, 417, 'expectation_failed'],
    ['a head Node\'s parser refuses: Content-Length twice', `POST /api/gateway/v1/ping/ HTTP/1.1\r\nHost: gw\r\nContent-Length: ${BODY_BYTES}\r\nContent-Length: ${BODY_BYTES + 1}\r\n\r\n`, 400, 'bad_request'],
    ['a WebSocket handshake with a request line of HTTP/2.0', `GET /api/controller/v2/ping/ HTTP/2.0\r\nHost: gw\r\n${HANDSHAKE}Content-Length: ${BODY_BYTES}\r\n\r\n`, 505, 'http_version_not_supported'],
    ['a WebSocket handshake with a body', `GET /api/controller/v2/ping/ HTTP/1.1\r\nHost: gw\r\n${HANDSHAKE}Content-Length: ${BODY_BYTES}\r\n\r\n`, 400, 'invalid_upgrade'],
    ['a head Node\'s parser refuses: too large', `POST /api/gateway/v1/ping/ HTTP/1.1\r\nHost: gw\r\nX-Large: ${'a'.repeat(20_000)}\r\nContent-Length: ${BODY_BYTES}\r\n\r\n`, 431, 'headers_too_large'],
  ] as const) {
    it(`is read whole by the client, the connection closed without a reset (${what})`, async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const { writeError, answer } = await upload(gw.url, head)
        assert.equal(writeError, undefined, `the connection was not reset under the client (attempt ${attempt + 1})`)
        assert.deepEqual([answerOf(answer).status, answerOf(answer).code], [status, code], answer.slice(0, 400))
        assert.match(answer, /\r\nconnection: close\r\n/i, 'the answer says it is the last')
        assert.ok(answer.endsWith('}'), `the whole answer was read (attempt ${attempt + 1}): ${answer.slice(-200)}`)
      }
    })
  }
})
