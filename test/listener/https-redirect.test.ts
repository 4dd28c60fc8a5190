import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { createHttpsRedirect } from '../../src/listener/https-redirect.ts'
import { rawClient } from '../helpers/raw-client.ts'

describe('the plain-HTTP redirect port', () => {
  const server = createHttpsRedirect({ httpsPort: 8443 })
  let url: string

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it('closes a connection whose headers never end within about its 10 seconds, not Node\'s 30 s check later', { timeout: 60_000 }, async () => {
    const started = performance.now()
    const client = await rawClient(url, '127.0.0.1', 'GET / HTTP/1.1\r\nHost: gateway.example\r\n')
    await client.closed
    const seconds = (performance.now() - started) / 1000
    assert.match(client.received(), /^HTTP\/1\.1 408 /)
    assert.match(client.received(), /\r\n\r\n\{"code":"request_timeout","detail":"[^"]+"\}$/)
    assert.ok(seconds >= 9 && seconds < 13, `closed after ${seconds.toFixed(1)} s`)
  })

  it('answers a request that is not valid HTTP with the gateway\'s JSON 400, as its HTTPS port does', async () => {
    const client = await rawClient(url, '127.0.0.1', 'GET / HTTP/1.1\r\nHost: gateway.example\r\nBad Header Line\r\n\r\n')
    await client.closed
    assert.match(client.received(), /^HTTP\/1\.1 400 /)
    assert.match(client.received(), /\r\n\r\n\{"code":"bad_request","detail":"[^"]+"\}$/)
  })

  it('answers a request without Host, or with two, with the JSON 400 its HTTPS port gives', async () => {
    for (const head of ['GET /x HTTP/1.1\r\n\r\n', 'GET /x HTTP/1.1\r\nHost: gateway.example\r\nHost: evil.example\r\n\r\n']) {
      const client = await rawClient(url, '127.0.0.1', head)
      await client.closed
      assert.match(client.received(), /^HTTP\/1\.1 400 /, head)
      assert.match(client.received(), /\r\n\r\n\{"code":"bad_request","detail":"[^"]+"\}$/, head)
    }
    const one = await rawClient(url, '127.0.0.1', 'GET /x?y=1 HTTP/1.1\r\nHost: gateway.example\r\n\r\n')
    await one.closed
    assert.match(one.received(), /^HTTP\/1\.1 308 [^]*\r\nlocation: https:\/\/gateway\.example:8443\/x\?y=1\r\n/i)
  })
})
