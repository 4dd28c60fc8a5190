import assert from 'node:assert/strict'
import { connect } from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { eventually, rawClient } from '../helpers/raw-client.ts'

describe('HTTPS clients that never finish the TLS handshake', () => {
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    const { cert, key } = selfSignedCertificate(tempDir(), '127.0.0.1')
    gw = await startGateway({ tls: { cert, key }, logLines, config: { server: { host: '127.0.0.1', port: 0, public_url: 'https://127.0.0.1', tls: { cert_file: cert, key_file: key }, timeouts: { headers_seconds: 2 } } } })
    assert.match(gw.url, /^https:/)
  })
  after(() => gw.close())

  it('are closed once server.timeouts.headers_seconds runs out, as a client that never finishes its headers is, not after Node\'s 120 s', { timeout: 60_000 }, async () => {
    // One sends nothing, one a few bytes of a ClientHello that never ends.
    const clients = await Promise.all([Buffer.alloc(0), Buffer.from([0x16, 0x03, 0x01])].map((bytes) => rawClient(gw.url.replace('https:', 'http:'), '127.0.0.1', bytes)))
    const started = performance.now()
    const within = new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 10_000).unref())
    try {
      for (const client of clients) {
        assert.equal(await Promise.race([client.closed.then(() => 'closed' as const), within]), 'closed', 'still open 10 s later')
      }
    } finally {
      clients.forEach((client) => client.socket.destroy())
    }
    const elapsed = performance.now() - started
    assert.ok(elapsed >= 1500, 'not before its time')
    // Closed at once: no HTTP answer can be written where no handshake finished, nor held for it to be read.
    assert.ok(elapsed < 4000, `closed ${Math.round(elapsed)} ms later, past the 2 s limit and a second`)
    assert.deepEqual(clients.map((client) => client.received()), ['', ''])
    // No request was made: none is logged (nor counted, which goes with the line) as the gateway's 400.
    assert.deepEqual(logLines.filter((line) => line.status === 400), [])
  })

  it('answers a request sent in plain HTTP with a 400 in plain HTTP, as nginx does, and closes the connection', async () => {
    const client = await rawClient(gw.url.replace('https:', 'http:'), '127.0.0.1', 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n')
    try {
      await Promise.race([client.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open 5 s later')), 5000).unref())])
    } finally {
      client.socket.destroy()
    }
    const [head, body] = client.received().split('\r\n\r\n')
    assert.match(head!, /^HTTP\/1\.1 400 Bad Request\r\n/)
    assert.match(head!, /\r\nContent-Type: application\/json; charset=utf-8\r\n/)
    const answer = JSON.parse(body!) as { code: string; detail: string; request_id: string }
    assert.equal(answer.code, 'bad_request')
    assert.match(answer.detail, /HTTPS only.*plain HTTP/)
    assert.match(head!, new RegExp(`\\r\\nX-Request-Id: ${answer.request_id}\\r\\n`))
    // A request of its own, logged once with the id it was answered with.
    const lines = await eventually(() => logLines.filter((line) => line.reqId === answer.request_id), (found) => found.length > 0, 5000)
    assert.deepEqual(lines.map((line) => line.status), [400])
  })

  it('may not renegotiate a TLS 1.2 connection, as nginx allows none', async () => {
    const { port } = new URL(gw.url)
    const socket = connect({ host: '127.0.0.1', port: Number(port), maxVersion: 'TLSv1.2', rejectUnauthorized: false })
    try {
      await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject))
      // Renegotiated, the connection goes on serving; refused, the server closes it.
      const outcome = await new Promise<string>((resolve) => {
        socket.once('error', (error) => resolve(`error ${error.message}`))
        socket.once('close', () => resolve('closed'))
        socket.renegotiate({ rejectUnauthorized: false }, (error) => {
          if (error) return resolve(`error ${error.message}`)
          socket.once('data', (chunk) => resolve(String(chunk).split('\r\n')[0]!))
          socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        })
      })
      assert.doesNotMatch(outcome, /^HTTP\/1\.1 200/, 'the renegotiation went through')
    } finally {
      socket.destroy()
    }
  })
})
