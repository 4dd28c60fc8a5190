import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import { adminAuth, spawnGateway, tempDir, type GatewayProcess } from '../helpers/gateway.ts'

/** An upstream that holds every request until the test lets it answer. */
class SlowUpstream {
  readonly server: Server
  readonly #held: ServerResponse[] = []
  #arrived: (() => void)[] = []

  constructor() {
    this.server = createServer((_request: IncomingMessage, response: ServerResponse) => {
      this.#held.push(response)
      for (const resolve of this.#arrived.splice(0)) resolve()
    })
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`
  }

  /** Resolves once `count` requests are being held. */
  async arrival(count = 1): Promise<void> {
    while (this.#held.length < count) await new Promise<void>((resolve) => this.#arrived.push(resolve))
  }

  answerAll(): void {
    for (const response of this.#held.splice(0)) response.end('slow answer')
  }

  close(): void {
    for (const response of this.#held.splice(0)) response.destroy()
    this.server.close()
    this.server.closeAllConnections()
  }
}

interface Outcome {
  status?: number
  body?: string
  error?: string
}

function fetchThrough(url: string, agent: Agent | false = false): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(url, { agent }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (body += chunk))
      response.on('end', () => resolve({ status: response.statusCode!, body }))
      response.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }))
    })
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }))
    req.end()
  })
}

/** A WebSocket service that greets each socket, keeps it open, and keeps the close code and reason of each that closed. */
async function startWebSocketService(): Promise<{ url: string; server: WebSocketServer; closes: { code: number; reason: string }[] }> {
  const closes: { code: number; reason: string }[] = []
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  server.on('connection', (socket) => {
    socket.send('hello')
    socket.on('close', (code, reason) => closes.push({ code, reason: String(reason) }))
  })
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server, closes }
}

async function startBehindGateway(upstream: string, graceSeconds: number, events = 'http://127.0.0.1:9'): Promise<GatewayProcess> {
  const dir = tempDir()
  const config = join(dir, 'gatehouse.yaml')
  writeFileSync(config, JSON.stringify({
    server: { shutdown_grace_seconds: graceSeconds },
    services: [
      { name: 'slow', prefix: '/slow/', upstream, public_paths: ['/slow/*'] },
      { name: 'events', prefix: '/events/', upstream: events, accepts: ['basic'], public_paths: ['/events/open/*'] },
    ],
  }))
  return spawnGateway(['--config', config, '--data-dir', join(dir, 'data')], { GATEHOUSE_LOG_LEVEL: 'info' })
}

function exited(gateway: GatewayProcess): Promise<number | null> {
  return gateway.process.exitCode !== null ? Promise.resolve(gateway.process.exitCode) : once(gateway.process, 'exit').then(([code]) => code as number | null)
}

async function shuttingDown(gateway: GatewayProcess): Promise<void> {
  for (let i = 0; i < 500 && !logged(gateway).some((line) => String(line.msg).startsWith('shutting down')); i++) await sleep(20)
}

function logged(gateway: GatewayProcess): { msg?: string; [key: string]: unknown }[] {
  return gateway.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line))
}

describe('shutdown drains requests in flight', () => {
  let upstream: SlowUpstream
  let upstreamUrl: string
  before(async () => {
    upstream = new SlowUpstream()
    upstreamUrl = await upstream.start()
  })
  after(() => upstream?.close())

  it('on SIGTERM stops accepting, closes idle connections, finishes the slow request in flight, then exits 0', async () => {
    const gateway = await startBehindGateway(upstreamUrl, 60)
    const keepAlive = new Agent({ keepAlive: true })
    try {
      assert.equal((await fetchThrough(`${gateway.url}/healthz`, keepAlive)).status, 200)
      const [idle] = Object.values(keepAlive.freeSockets).flat()
      assert.ok(idle, 'a kept-alive connection')
      const idleClosed = once(idle, 'close')

      const inFlight = fetchThrough(`${gateway.url}/slow/report`)
      await upstream.arrival()
      gateway.process.kill('SIGTERM')

      await idleClosed
      let refused: Outcome = {}
      for (let i = 0; i < 100 && refused.error !== 'ECONNREFUSED'; i++) {
        refused = await fetchThrough(`${gateway.url}/healthz`)
        if (refused.error !== 'ECONNREFUSED') await sleep(20)
      }
      assert.equal(refused.error, 'ECONNREFUSED')
      assert.equal(gateway.process.exitCode, null, 'still running while a request is in flight')

      upstream.answerAll()
      assert.deepEqual(await inFlight, { status: 200, body: 'slow answer' })
      assert.equal(await exited(gateway), 0)
      const messages = logged(gateway).map((line) => line.msg)
      assert.ok(messages.includes('shutting down: no new connections; finishing the requests in flight'))
      assert.ok(messages.includes('stopped'))
      assert.ok(!messages.includes('requests still in flight were cut'))
      // Finished within the grace period: an ordinary line.
      const line = logged(gateway).find((logged) => logged.msg === 'request' && logged.path === '/slow/report')
      assert.deepEqual([line?.status, line?.incomplete, line?.closed_by], [200, undefined, undefined])
    } finally {
      keepAlive.destroy()
      await gateway.stop()
    }
  })

  it('serves a request that reaches a busy connection during the drain, then closes that connection; /readyz says 503', async () => {
    const gateway = await startBehindGateway(upstreamUrl, 60)
    const { port } = new URL(gateway.url)
    const sockets = [connect(Number(port), '127.0.0.1'), connect(Number(port), '127.0.0.1')]
    try {
      const received = sockets.map((socket) => {
        let text = ''
        socket.setEncoding('utf8')
        socket.on('data', (chunk) => (text += chunk))
        return once(socket, 'close').then(() => text.split(/(?=HTTP\/1\.1 )/))
      })
      for (const socket of sockets) socket.write('GET /slow/first HTTP/1.1\r\nHost: gateway.test\r\n\r\n')
      await upstream.arrival(2)
      gateway.process.kill('SIGTERM')
      await shuttingDown(gateway)
      sockets[0]!.write('GET /api/gateway/v1/ping/ HTTP/1.1\r\nHost: gateway.test\r\n\r\n')
      sockets[1]!.write('GET /readyz HTTP/1.1\r\nHost: gateway.test\r\n\r\n')
      upstream.answerAll()
      const [ping, readyz] = await Promise.all(received)
      for (const responses of [ping!, readyz!]) {
        assert.equal(responses.length, 2, responses.join(''))
        assert.match(responses[0]!, /^HTTP\/1\.1 200 [\s\S]*slow answer$/)
        assert.match(responses[1]!, /\r\nconnection: close\r\n/i)
      }
      assert.match(ping![1]!, /^HTTP\/1\.1 200 /)
      assert.equal(JSON.parse(ping![1]!.split('\r\n\r\n')[1]!).status, 'good')
      assert.match(readyz![1]!, /^HTTP\/1\.1 503 /)
      assert.equal(JSON.parse(readyz![1]!.split('\r\n\r\n')[1]!).code, 'not_ready')
      assert.equal(await exited(gateway), 0)
    } finally {
      for (const socket of sockets) socket.destroy()
      await gateway.stop()
    }
  })

  it('cuts a request still in flight when the grace period ends, and exits 0', async () => {
    const gateway = await startBehindGateway(upstreamUrl, 0.5)
    try {
      const inFlight = fetchThrough(`${gateway.url}/slow/never`)
      await upstream.arrival()
      gateway.process.kill('SIGTERM')
      const outcome = await inFlight
      assert.ok(outcome.error, `the request was cut, not answered: ${JSON.stringify(outcome)}`)
      assert.equal(await exited(gateway), 0)
      const cut = logged(gateway).find((line) => line.msg === 'requests still in flight were cut')
      assert.equal(cut?.connections, 1)
      // Its request line says the gateway closed it unanswered (as nginx's 444), not that its client left.
      const line = logged(gateway).find((logged) => logged.msg === 'request' && logged.path === '/slow/never')
      assert.deepEqual([line?.status, line?.incomplete, line?.closed_by], [444, true, 'gateway'])
    } finally {
      upstream.close()
      upstream = new SlowUpstream()
      upstreamUrl = await upstream.start()
      await gateway.stop()
    }
  })

  it('cuts at once on a second signal instead of waiting out the grace period', async () => {
    const gateway = await startBehindGateway(upstreamUrl, 3600)
    try {
      const inFlight = fetchThrough(`${gateway.url}/slow/never`)
      await upstream.arrival()
      gateway.process.kill('SIGTERM')
      await shuttingDown(gateway)
      gateway.process.kill('SIGINT')
      // Far below the hour of grace: only the second signal can end it this soon.
      const code = await Promise.race([exited(gateway), sleep(30_000, 'still running', { ref: false })])
      assert.equal(code, 0)
      assert.ok((await inFlight).error)
    } finally {
      await gateway.stop()
    }
  })

  it('logs an upgrade the service had not answered yet when shutdown began as cut by the gateway, not as left by its client', async () => {
    // A service that takes the connection and never answers the handshake.
    const held: Socket[] = []
    const silent = createNetServer((socket) => {
      held.push(socket)
      socket.resume()
    })
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const gateway = await startBehindGateway(upstreamUrl, 3600, `http://127.0.0.1:${(silent.address() as AddressInfo).port}`)
    const client = connect(Number(new URL(gateway.url).port), '127.0.0.1')
    try {
      client.on('error', () => {})
      client.write('GET /events/open/pending HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
      for (let i = 0; i < 250 && held.length === 0; i++) await sleep(20)
      assert.equal(held.length, 1, 'the service holds the handshake')
      gateway.process.kill('SIGTERM')
      assert.equal(await exited(gateway), 0)
      const lines = logged(gateway).filter((line) => line.path === '/events/open/pending')
      const request = lines.find((line) => line.msg === 'request')
      assert.deepEqual([request?.status, request?.incomplete, request?.closed_by], [444, true, 'gateway'])
      assert.equal(lines.find((line) => line.msg === 'websocket closed')?.closed_by, 'shutdown')
    } finally {
      client.destroy()
      for (const socket of held) socket.destroy()
      silent.close()
      await gateway.stop()
    }
  })

  it('closes open WebSockets, anonymous and signed in, when shutdown begins, and exits 0 without waiting out the grace period', async () => {
    const service = await startWebSocketService()
    const gateway = await startBehindGateway(upstreamUrl, 3600, service.url)
    const base = gateway.url.replace('http:', 'ws:')
    const sockets = [new WebSocket(`${base}/events/open/feed`), new WebSocket(`${base}/events/feed`, { headers: adminAuth })]
    try {
      await Promise.all(sockets.map((socket) => once(socket, 'message')))
      const closed = sockets.map((socket) => once(socket, 'close'))
      gateway.process.kill('SIGTERM')
      // Far below the hour of grace (and enough for a busy machine): a WebSocket has no end of its own to wait for.
      const code = await Promise.race([exited(gateway), sleep(30_000, 'still running', { ref: false })])
      assert.equal(code, 0, gateway.output())
      for (const [code, reason] of await Promise.all(closed)) assert.deepEqual({ code, reason: String(reason) }, { code: 1001, reason: 'shutting down' }, 'each client is told why')
      for (let i = 0; i < 100 && service.closes.length < 2; i++) await sleep(20)
      assert.deepEqual(service.closes, [{ code: 1001, reason: 'shutting down' }, { code: 1001, reason: 'shutting down' }], 'and so is the service')
      assert.ok(!logged(gateway).some((line) => line.msg === 'requests still in flight were cut'))
      assert.deepEqual(logged(gateway).filter((line) => line.msg === 'websocket closed').map((line) => line.closed_by), ['shutdown', 'shutdown'])
    } finally {
      for (const socket of sockets) socket.terminate()
      await gateway.stop()
      for (const client of service.server.clients) client.terminate()
      service.server.close()
    }
  })
})
