import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'

/**
 * Requests a client pipelined on a connection that shutdown finds busy: each is answered in turn, and only the last
 * one waiting says `Connection: close` (RFC 9112 §9.6: no request after that one is processed, and the client knows
 * which were). Every answer said it before, so those behind the first were never answered.
 */
describe('shutdown with pipelined requests waiting', () => {
  let held: ServerResponse | undefined
  const arrived: string[] = []
  const upstream = createServer((request, response) => {
    arrived.push(request.url!)
    if (request.url!.endsWith('/held')) held = response
    else response.end(`answer to ${request.url}`)
  })
  let gateway: GatewayProcess

  before(async () => {
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const dir = tempDir()
    const config = join(dir, 'gatehouse.yaml')
    writeFileSync(config, JSON.stringify({
      server: { shutdown_grace_seconds: 60 },
      services: [{ name: 'svc', prefix: '/svc/', upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, public_paths: ['/svc/*'] }],
    }))
    gateway = await spawnGateway(['--config', config, '--data-dir', join(dir, 'data')], { GATEHOUSE_LOG_LEVEL: 'info' })
  })
  after(async () => {
    await gateway?.stop()
    upstream.closeAllConnections()
    upstream.close()
  })

  it('answers every request already received on a busy connection, the last one with Connection: close, then exits 0', async () => {
    const { port } = new URL(gateway.url)
    const socket = connect(Number(port), '127.0.0.1')
    try {
      let text = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk) => (text += chunk))
      const closed = once(socket, 'close')
      socket.write('GET /svc/held HTTP/1.1\r\nHost: gateway.test\r\n\r\n')
      for (let i = 0; i < 500 && !held; i++) await sleep(20)
      assert.ok(held, 'the first request reached the service')
      gateway.process.kill('SIGTERM')
      for (let i = 0; i < 500 && !gateway.output().includes('shutting down'); i++) await sleep(20)
      // Proxied on the lean path, then the gateway's own API (Fastify's), then a proxied percent-encoded path (Fastify's).
      socket.write('GET /svc/second HTTP/1.1\r\nHost: gateway.test\r\n\r\n'
        + 'GET /api/gateway/v1/ping/ HTTP/1.1\r\nHost: gateway.test\r\n\r\n'
        + 'GET /svc/%66ourth HTTP/1.1\r\nHost: gateway.test\r\n\r\n')
      // Parsed and waiting behind the first before it is answered.
      await sleep(300)
      held.end('first answer')
      await closed
      const responses = text.split(/(?=HTTP\/1\.1 \d{3} )/)
      assert.equal(responses.length, 4, text)
      assert.match(responses[0]!, /^HTTP\/1\.1 200 [\s\S]*first answer$/)
      assert.match(responses[1]!, /^HTTP\/1\.1 200 [\s\S]*answer to \/svc\/second$/)
      assert.match(responses[2]!, /^HTTP\/1\.1 200 [\s\S]*"pong"/)
      assert.match(responses[3]!, /^HTTP\/1\.1 200 [\s\S]*answer to \/svc\/%66ourth$/)
      for (const response of responses.slice(0, 3)) assert.doesNotMatch(response, /\r\nconnection: close\r\n/i, response)
      assert.match(responses[3]!, /\r\nconnection: close\r\n/i)
      const code = gateway.process.exitCode ?? (await once(gateway.process, 'exit'))[0]
      assert.equal(code, 0)
    } finally {
      socket.destroy()
    }
  })
})
