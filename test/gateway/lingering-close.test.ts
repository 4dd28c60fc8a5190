import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { it } from 'node:test'
import { startGateway } from '../helpers/gateway.ts'

/** Sends raw bytes, collects the answer until the first chunk, then goes away without reading the rest. */
function sendAndLeave(url: URL, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname)
    let received = ''
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1')
      socket.destroy()
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve(received))
    socket.write(bytes)
  })
}

it('a refused WebSocket upgrade whose client left with its body unread does not hold the gateway open when it closes', async () => {
  const gw = await startGateway({})
  const body = 'x'.repeat(70_000)
  let answer = ''
  try {
    answer = await sendAndLeave(new URL(gw.url), `GET /ui/ HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  } finally {
    const closed = await Promise.race([gw.close().then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 5000).unref())])
    assert.equal(closed, true, 'the gateway closed within 5 s')
  }
  // Not a WebSocket place: the web interface sends a browser to log in, and the connection is closed after it.
  assert.match(answer, /^HTTP\/1\.1 302 [^]*\r\nConnection: close\r\n/i, 'the upgrade is answered before the connection closes')
})
