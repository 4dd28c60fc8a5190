import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { rawClient } from '../helpers/raw-client.ts'

describe('HTTPS clients that never finish the TLS handshake', () => {
  let gw: TestGateway

  before(async () => {
    const { cert, key } = selfSignedCertificate(tempDir(), '127.0.0.1')
    gw = await startGateway({ tls: { cert, key }, config: { server: { host: '127.0.0.1', port: 0, public_url: 'https://127.0.0.1', tls: { cert_file: cert, key_file: key }, timeouts: { headers_seconds: 2 } } } })
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
    assert.ok(performance.now() - started >= 1500, 'not before its time')
  })
})
