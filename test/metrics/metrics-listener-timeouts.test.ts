import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { rawClient, type RawClient } from '../helpers/raw-client.ts'

/** Whether the listener closed `client` within `ms`. */
async function closedWithin(client: RawClient, ms: number): Promise<boolean> {
  await Promise.race([client.closed, sleep(ms)])
  return client.socket.closed
}

describe('the separate metrics listener (metrics.port)', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, timeouts: { headers_seconds: 1, request_seconds: 2 } }, metrics: { port: 0 } } })
  })
  after(() => gw.close())

  it('closes a connection that never finishes its headers after server.timeouts.headers_seconds, as the gateway\'s port does', async () => {
    const clients: RawClient[] = []
    try {
      // The gateway's port, for comparison: one second for the headers, checked every second.
      const gateway = await rawClient(gw.url, '127.0.0.1', 'GET /healthz HTTP/1.1\r\n')
      clients.push(gateway)
      const metrics = await rawClient(gw.app.metrics.listenerUrl!, '127.0.0.1', 'GET /metrics HTTP/1.1\r\n')
      clients.push(metrics)
      // Generous for a loaded machine, and still far below Node's own defaults (60 s, checked every 30 s).
      assert.ok(await closedWithin(gateway, 15_000), 'the gateway\'s port closed its slow client')
      assert.ok(await closedWithin(metrics, 15_000), 'the metrics listener closed its slow client too')
      // The gateway's answer names the request's id, which its log line has; the metrics listener gives none.
      assert.match(gateway.received(), /^HTTP\/1\.1 408 [^]*\r\nX-Request-Id: ([^\r]+)\r\n[^]*\r\n\r\n\{"code":"request_timeout","detail":"[^"]+","request_id":"\1"\}$/)
      assert.match(metrics.received(), /^HTTP\/1\.1 408 [^]*\r\n\r\n\{"code":"request_timeout","detail":"[^"]+"\}$/)
    } finally {
      for (const client of clients) client.socket.destroy()
    }
  })

  it('answers a request that is not valid HTTP with the gateway\'s JSON 400, as the gateway\'s port does', async () => {
    const client = await rawClient(gw.app.metrics.listenerUrl!, '127.0.0.1', 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Line\r\n\r\n')
    await client.closed
    assert.match(client.received(), /^HTTP\/1\.1 400 [^]*\r\n\r\n\{"code":"bad_request","detail":"[^"]+"\}$/)
  })
})
