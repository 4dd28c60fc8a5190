import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import { adminAuth, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { closeAtServer, eventually, rawClient, type RawClient } from '../helpers/raw-client.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

/**
 * WebSockets through the gateway with a hostile client or a service that misbehaves: what reaches the service, what
 * the client is answered, and what the gateway holds meanwhile.
 */

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const acceptFor = (key: string) => createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function scrape(gw: TestGateway): Promise<string> {
  return (await gw.fetch('/metrics')).text()
}

/** An upgrade as raw bytes, for what a WebSocket client would never send. */
function upgradeRequest(path: string, extra: string[] = []): string {
  return [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${KEY}`, ...extra, '', ''].join('\r\n')
}

/** Everything the gateway sends a raw client until it closes the connection (or `ms` pass). */
async function answerTo(gw: TestGateway, bytes: string, ms = 3000): Promise<{ text: string; closed: boolean }> {
  const client = await rawClient(gw.url, '127.0.0.1', bytes)
  try {
    await Promise.race([client.closed, sleep(ms)])
    return { text: client.received(), closed: client.socket.closed }
  } finally {
    client.socket.destroy()
  }
}

/**
 * A service whose answer to a handshake is chosen by the path's last segment: what a broken or hostile service may
 * answer. It keeps the handshakes it got, and counts its connections still open.
 */
async function scriptedService(): Promise<{ url: string; server: Server; handshakes: string[]; open: () => number; flooded: () => number }> {
  const handshakes: string[] = []
  /** What the flooding answer has handed its socket so far. */
  let floodedBytes = 0
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    socket.once('data', (data) => {
      const text = String(data)
      handshakes.push(text)
      const path = /^GET (\S+)/.exec(text)?.[1] ?? ''
      const accept = acceptFor(/sec-websocket-key: (\S+)/i.exec(text)?.[1] ?? '')
      const switching = (fields: string) => socket.write(`HTTP/1.1 101 Switching Protocols\r\n${fields}\r\n`)
      switch (path.split('/').at(-1)) {
        case 'silent': return
        case 'slow-ok': {
          setTimeout(() => switching(`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`), 500)
          return void socket.on('data', (bytes) => handshakes.push(`carried: ${bytes}`))
        }
        case 'ok': {
          switching(`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`)
          return void socket.on('data', (bytes) => handshakes.push(`carried: ${bytes}`))
        }
        case 'wrong-accept': return switching(`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor('AAAAAAAAAAAAAAAAAAAAAA==')}\r\n`)
        case 'no-accept': return switching('Upgrade: websocket\r\nConnection: Upgrade\r\n')
        case 'h2c': return switching(`Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`)
        case 'unasked-protocol': return switching(`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: admin\r\n`)
        case 'unasked-extension': return switching(`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Extensions: x-webkit-deflate-frame\r\n`)
        case 'upgrade-only': return switching(`Upgrade: websocket\r\nSec-WebSocket-Accept: ${accept}\r\n`)
        case 'connection-only': return switching(`Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`)
        case 'status-600': return void socket.write('HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n')
        case 'plain': return void socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nplain')
        case 'gzip-coded': return void socket.end('HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n')
        case 'streaming': return void socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nstream\r\n')
        case 'not-reading': {
          switching(`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`)
          return void socket.pause()
        }
        case 'flooding': {
          switching(`Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n`)
          const chunk = Buffer.alloc(1 << 20, 0x61)
          // Writes while the gateway takes them, and stops when it does not: how much it took is the measure.
          const pump = () => {
            do floodedBytes += chunk.length
            while (!socket.destroyed && socket.write(chunk))
          }
          socket.on('drain', pump)
          return pump()
        }
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, handshakes, open: () => sockets.size, flooded: () => floodedBytes }
}

/** A service that answers every handshake and never ends its side of a connection, whatever the other side does. */
async function stubbornService(): Promise<{ url: string; open: () => number; ended: () => number; close: () => void }> {
  const sockets = new Set<Socket>()
  let ended = 0
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.once('end', () => ended++)
    socket.on('error', () => socket.destroy())
    socket.once('data', (data) => {
      const accept = acceptFor(/sec-websocket-key: (\S+)/i.exec(String(data))?.[1] ?? '')
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: () => sockets.size,
    ended: () => ended,
    // Its own ends, which it never closes: closed here when the test is done.
    close: () => {
      for (const socket of sockets) socket.destroy()
      server.close()
    },
  }
}

describe('WebSockets with hostile clients and misbehaving services', () => {
  let gw: TestGateway
  let service: Awaited<ReturnType<typeof scriptedService>>
  let stubborn: Awaited<ReturnType<typeof stubbornService>>
  let negotiating: WebSocketServer
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    service = await scriptedService()
    stubborn = await stubbornService()
    negotiating = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true, handleProtocols: (offered) => [...offered].at(-1) ?? false })
    await once(negotiating, 'listening')
    negotiating.on('connection', (socket) => socket.send(socket.protocol))
    gw = await startGateway({
      logLines,
      config: {
        services: [
          {
            name: 'scripted', prefix: '/scripted/', upstream: service.url, public_paths: ['/scripted/open/*'], timeouts: { response_seconds: 1 },
            access: [{ deny: { paths: ['/scripted/admin/*'] } }, { allow: { superuser: true } }],
          },
          { name: 'patient', prefix: '/patient/', upstream: service.url, public_paths: ['/patient/*'], timeouts: { response_seconds: 60 } },
          { name: 'guarded', prefix: '/guarded/', upstream: service.url, accepts: ['token'], timeouts: { response_seconds: 60 } },
          { name: 'negotiating', prefix: '/negotiating/', upstream: `http://127.0.0.1:${(negotiating.address() as AddressInfo).port}`, public_paths: ['/negotiating/*'] },
          { name: 'stubborn', prefix: '/stubborn/', upstream: stubborn.url, public_paths: ['/stubborn/*'] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    service.server.close()
    stubborn.close()
    negotiating.close()
  })

  it('closes both connections within seconds when the client ends its side and the service never ends its own', async () => {
    const clients: RawClient[] = []
    try {
      for (let i = 0; i < 5; i++) clients.push(await rawClient(gw.url, '127.0.0.60', upgradeRequest('/stubborn/events')))
      for (const client of clients) assert.match(await eventually(() => client.received(), (text) => text.includes('\r\n\r\n'), 3000), /^HTTP\/1\.1 101 /)
      assert.equal(stubborn.open(), 5)
      const started = performance.now()
      for (const client of clients) client.socket.end()
      // The gateway closes its end of each client's connection (the client's closed stands for it: the client ended
      // its own side, and waits for the gateway's) and of each service connection with it.
      await Promise.race([Promise.all(clients.map((client) => client.closed)), sleep(6000)])
      const ms = performance.now() - started
      assert.ok(clients.every((client) => client.socket.closed), 'the clients\' connections are closed')
      assert.ok(ms < 4000, `closed after ${Math.round(ms)} ms, not at the idle timeout`)
      assert.equal(await eventually(() => stubborn.ended(), (count) => count === 5, 2000), 5, 'the service\'s connections are ended')
    } finally {
      for (const client of clients) client.socket.destroy()
    }
  })

  it('refuses a 101 from the service that is not the handshake the client asked for with 502 upstream_handshake_invalid, and closes the service\'s connection', async () => {
    for (const answer of ['wrong-accept', 'no-accept', 'h2c', 'unasked-protocol', 'unasked-extension', 'upgrade-only', 'connection-only', 'status-600']) {
      const { text, closed } = await answerTo(gw, upgradeRequest(`/scripted/open/${answer}`))
      assert.match(text, /^HTTP\/1\.1 502 /, answer)
      assert.match(text, /"code":"upstream_handshake_invalid"/, answer)
      assert.ok(closed, `${answer}: the client's connection is closed after the answer`)
    }
    assert.equal(await eventually(service.open, (count) => count === 0, 2000), 0, 'no connection to the service is left open')
  })

  it('lets through the protocol and extension the service picks from those the client offered', async () => {
    const socket = new WebSocket(`${gw.url.replace('http:', 'ws:')}/negotiating/events/`, ['chat', 'superchat'], { perMessageDeflate: true })
    const [greeting] = await once(socket, 'message')
    assert.equal(String(greeting), 'superchat')
    assert.equal(socket.protocol, 'superchat')
    assert.match(socket.extensions, /permessage-deflate/)
    socket.close()
  })

  it('answers 504 upstream_timeout when the service does not answer the handshake within timeouts.response_seconds, and closes both connections', async () => {
    const started = performance.now()
    const { text, closed } = await answerTo(gw, upgradeRequest('/scripted/open/silent'), 5000)
    const ms = performance.now() - started
    assert.match(text, /^HTTP\/1\.1 504 /)
    assert.match(text, /"code":"upstream_timeout"/)
    assert.ok(ms >= 900 && ms < 3000, `answered after ${Math.round(ms)} ms`)
    assert.ok(closed)
    assert.equal(await eventually(service.open, (count) => count === 0, 2000), 0)
  })

  it('closes the service\'s connection within a second when a client leaves while the service has not yet answered its upgrade', async () => {
    const ways = [(socket: Socket) => socket.end(), (socket: Socket) => socket.end('bytes pipelined before leaving'), (socket: Socket) => socket.destroy()]
    for (const leave of ways) {
      const reached = service.handshakes.length
      const client = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/patient/silent'))
      await eventually(() => service.handshakes.length, (count) => count === reached + 1, 2000)
      assert.equal(service.open(), 1, 'the service holds the handshake unanswered')
      const left = performance.now()
      leave(client.socket)
      assert.equal(await eventually(service.open, (count) => count === 0, 2000), 0)
      const ms = performance.now() - left
      assert.ok(ms < 1000, `the service's connection was closed ${Math.round(ms)} ms after the client left`)
      const abandoned = await eventually(() => logLines.find((line) => line.msg === 'websocket closed' && line.closed_by === 'client_before_answer' && line.ms === undefined && line.path === '/patient/silent'), Boolean, 2000)
      assert.ok(abandoned, 'a log line says why')
      // Its request line says the client left before its answer, as nginx's 499 does.
      const lines = logLines.filter((line) => line.msg === 'request' && line.reqId === abandoned?.reqId)
      assert.deepEqual(lines.map((line) => [line.status, line.incomplete]), [[499, true]], 'one request line, never answered')
      logLines.splice(logLines.indexOf(abandoned!), 1)
    }
    assert.match(await scrape(gw), new RegExp(`^gatehouse_websockets_closed_total\\{service="patient",reason="client_before_answer"\\} ${ways.length}$`, 'm'))
  })

  it('refuses with 400 invalid_upgrade a client that sends more than 64 KiB before the service answers its upgrade, and closes the service\'s connection', async () => {
    const reached = service.handshakes.length
    const client = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/patient/silent'))
    await eventually(() => service.handshakes.length, (count) => count === reached + 1, 2000)
    // RFC 6455 §4.1: a client waits for the answer before it sends more. This one sends 70 KiB and closes its side.
    client.socket.end(Buffer.alloc(70 * 1024, 0x61))
    await Promise.race([client.closed, sleep(5000)])
    assert.match(client.received(), /^HTTP\/1\.1 400 /)
    assert.match(client.received(), /"code":"invalid_upgrade"/)
    assert.ok(client.socket.closed)
    assert.equal(await eventually(service.open, (count) => count === 0, 2000), 0, 'the service\'s connection is closed, not held until timeouts.response_seconds')
    assert.equal(service.handshakes.length, reached + 1, 'none of those bytes reached the service')
  })

  it('counts the bytes sent in one write with the upgrade\'s headers among those 64 KiB', async () => {
    const reached = service.handshakes.length
    // Node hands what came in the headers' reads to the upgrade apart (its `head`): this client's 70 KiB mostly did.
    const client = await rawClient(gw.url, '127.0.0.1', Buffer.concat([Buffer.from(upgradeRequest('/patient/silent')), Buffer.alloc(70 * 1024, 0x61)]))
    await Promise.race([client.closed, sleep(5000)])
    assert.match(client.received(), /^HTTP\/1\.1 400 /)
    assert.match(client.received(), /"code":"invalid_upgrade"/)
    assert.equal(await eventually(service.open, (count) => count === 0, 2000), 0, 'the service\'s connection is closed, not held until timeouts.response_seconds')
    assert.ok(service.handshakes.length <= reached + 1, 'none of those bytes reached the service')
  })

  it('still carries the bytes a client pipelines behind an upgrade while the service takes its time to answer', async () => {
    const reached = service.handshakes.length
    const pipelined = 'first frame bytes'
    const client = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/patient/slow-ok'))
    try {
      await eventually(() => service.handshakes.length, (count) => count === reached + 1, 2000)
      client.socket.write(pipelined)
      await eventually(client.received, (text) => text.includes('\r\n\r\n'), 3000)
      assert.match(client.received(), /^HTTP\/1\.1 101 /)
      assert.equal(await eventually(() => service.handshakes[reached + 1], Boolean, 2000), `carried: ${pipelined}`)
    } finally {
      client.socket.destroy()
    }
  })

  it('judges an upgrade again when the service answers it: a token revoked meanwhile gets its socket closed at once, and its bytes never reach the service', async () => {
    const created = await createToken(gw, adminAuth)
    const reached = service.handshakes.length
    // Client frames are masked; with a key of zeros their payload reads as it is, wherever it is carried.
    const frame = (text: string) => Buffer.concat([Buffer.from([0x81, 0x80 | text.length, 0, 0, 0, 0]), Buffer.from(text)])
    const client = await rawClient(gw.url, '127.0.0.1', Buffer.concat([Buffer.from(upgradeRequest('/guarded/slow-ok', [`Authorization: Bearer ${created.token}`])), frame('sent-with-the-upgrade')]))
    try {
      await eventually(() => service.handshakes.length, (count) => count === reached + 1, 2000)
      assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
      client.socket.write(frame('sent-after-revocation'))
      await eventually(client.received, (text) => text.includes('credential revoked'), 5000)
      assert.match(client.received(), /^HTTP\/1\.1 101 /)
      assert.ok(client.received().includes('credential revoked'), 'the client is sent a close frame saying why')
      await sleep(200)
      const carried = service.handshakes.slice(reached + 1).join('')
      assert.ok(!carried.includes('sent-'), `the service got the client's frames: ${JSON.stringify(carried)}`)
      const line = await eventually(() => logLines.find((entry) => entry.msg === 'websocket closed' && entry.path === '/guarded/slow-ok'), Boolean, 3000)
      assert.equal(line?.closed_by, 'credential_revoked')
    } finally {
      client.socket.destroy()
    }
  })

  it('relays an answer other than 101 as an ordinary response and then closes the client\'s connection', async () => {
    const { text, closed } = await answerTo(gw, upgradeRequest('/scripted/open/plain'))
    assert.match(text, /^HTTP\/1\.1 200 /)
    assert.match(text, /\r\n\r\nplain$/)
    assert.ok(closed, 'no half-open connection: the client is not left waiting for a 101')
  })

  it('answers 502 upstream_unavailable to such an answer in a transfer coding besides chunked, which would reach the client still coded', async () => {
    const { text, closed } = await answerTo(gw, upgradeRequest('/scripted/open/gzip-coded'))
    assert.match(text, /^HTTP\/1\.1 502 /, text)
    assert.match(text, /"code":"upstream_unavailable"/)
    assert.ok(closed, 'the client\'s connection is closed after the answer')
  })

  it('closes the service\'s connection when a client leaves while a streamed answer to its upgrade is relayed', async () => {
    const client = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/scripted/open/streaming'))
    await eventually(client.received, (text) => text.includes('stream'), 2000)
    assert.match(client.received(), /^HTTP\/1\.1 200 /)
    assert.ok(service.open() >= 1)
    client.socket.destroy()
    assert.equal(await eventually(service.open, (count) => count === 0, 2000), 0)
  })

  it('cuts a relayed answer to an upgrade that stalls for timeouts.response_seconds: the client\'s connection and the service\'s', async () => {
    const client = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/scripted/open/streaming'))
    try {
      await eventually(client.received, (text) => text.includes('stream'), 2000)
      const started = Date.now()
      await Promise.race([client.closed, new Promise((resolve) => setTimeout(resolve, 4000))])
      assert.ok(Date.now() - started < 3500, 'the client\'s connection is closed within about a second of the service\'s pause')
      assert.equal(await eventually(service.open, (count) => count === 0, 2000), 0, 'and the service\'s')
    } finally {
      client.socket.destroy()
    }
  })

  it('never passes the X-Gatehouse-* fields a client sends with an upgrade, anonymous or signed in', async () => {
    const forged = ['X-Gatehouse-User: admin', 'X-Gatehouse-User-Id: 1', 'X-Gatehouse-Auth-Method: session', 'X-Gatehouse-Identity: forged', 'X-Gatehouse-Teams: Automation']
    const anonymous = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/scripted/open/ok', forged))
    await eventually(anonymous.received, (text) => text.includes('\r\n\r\n'), 2000)
    anonymous.socket.destroy()
    assert.doesNotMatch(service.handshakes.at(-1)!, /x-gatehouse-/i)
    const { token } = await createToken(gw, adminAuth)
    const signedIn = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/scripted/ok', [...forged, `Authorization: Bearer ${token}`]))
    await eventually(signedIn.received, (text) => text.includes('\r\n\r\n'), 2000)
    signedIn.socket.destroy()
    const seen = service.handshakes.at(-1)!
    assert.match(seen, /\r\nx-gatehouse-user: admin\r\n/)
    assert.match(seen, /\r\nx-gatehouse-auth-method: token\r\n/)
    assert.doesNotMatch(seen, /forged|x-gatehouse-teams|x-gatehouse-auth-method: session/i)
  })

  it('refuses an upgrade to a path the service\'s access rules refuse with 403 before any contact with the service', async () => {
    const reached = service.handshakes.length
    const { token } = await createToken(gw, adminAuth)
    const { text, closed } = await answerTo(gw, upgradeRequest('/scripted/admin/ok', [`Authorization: Bearer ${token}`]))
    assert.match(text, /^HTTP\/1\.1 403 /)
    assert.match(text, /"code":"access_denied"/)
    assert.ok(closed)
    assert.equal(service.handshakes.length, reached, 'nothing reached the service')
  })

  it('answers a WebSocket upgrade to a path of the gateway\'s own as an ordinary request, and closes the connection', async () => {
    const { text, closed } = await answerTo(gw, upgradeRequest('/api/gateway/v1/ping/'))
    assert.match(text, /^HTTP\/1\.1 /)
    assert.doesNotMatch(text, /^HTTP\/1\.1 101 /)
    assert.ok(closed)
  })

  it('answers only a refused upgrade when a client pipelines another request behind it, and closes the connection', async () => {
    const reached = service.handshakes.length
    const { text, closed } = await answerTo(gw, upgradeRequest('/scripted/private/ok') + 'GET /scripted/open/plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    assert.match(text, /^HTTP\/1\.1 401 /)
    assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, 'the pipelined request is not served')
    assert.ok(closed)
    assert.equal(service.handshakes.length, reached, 'nothing reached the service')
  })

  it('answers an upgrade pipelined behind requests still being answered once their answers are sent, without taking the process down', async () => {
    const plain = 'GET /scripted/open/plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
    // Twenty: so many that the connection is read no further meanwhile (src/listener/node-server.ts).
    for (const ahead of [plain, plain + plain, plain.repeat(20)]) {
      const client = await rawClient(gw.url, '127.0.0.1', ahead + upgradeRequest('/scripted/open/ok'))
      try {
        const text = await eventually(client.received, (received) => /\r\n\r\n$/.test(received) && /HTTP\/1\.1 101 /.test(received), 5000)
        const answers = text.match(/HTTP\/1\.1 \d+/g)
        assert.deepEqual(answers, [...ahead.match(/GET/g)!.map(() => 'HTTP/1.1 200'), 'HTTP/1.1 101'], 'each answer whole and in order, the 101 last')
        client.socket.write('after the answers')
        assert.equal(await eventually(() => service.handshakes.at(-1), (last) => last === 'carried: after the answers', 2000), 'carried: after the answers')
      } finally {
        client.socket.destroy()
      }
    }
    assert.equal((await gw.fetch('/api/gateway/v1/ping/')).status, 200)
  })

  it('carries bytes a client pipelines behind an allowed upgrade to the service as the socket\'s, never as a request of the gateway\'s', async () => {
    const reached = service.handshakes.length
    const smuggled = 'GET /scripted/admin/ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
    const client = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/scripted/open/ok') + smuggled)
    try {
      await eventually(() => service.handshakes.length, (count) => count === reached + 2, 2000)
      assert.match(service.handshakes[reached]!, /^GET \/scripted\/open\/ok /)
      assert.equal(service.handshakes[reached + 1], `carried: ${smuggled}`)
      assert.equal(client.received().match(/HTTP\/1\.1 /g)?.length, 1, 'one answer: the 101')
    } finally {
      client.socket.destroy()
    }
  })

  it('refuses an upgrade with both Content-Length and Transfer-Encoding before any contact with the service', async () => {
    const reached = service.handshakes.length
    const { text, closed } = await answerTo(gw, upgradeRequest('/scripted/open/ok', ['Content-Length: 5', 'Transfer-Encoding: chunked']) + '0\r\n\r\n')
    assert.match(text, /^HTTP\/1\.1 400 /)
    assert.ok(closed)
    assert.equal(service.handshakes.length, reached)
  })

  it('stops reading from a side whose other side does not read: a slow reader cannot make the gateway buffer without bound', async () => {
    // The service floods a client that reads nothing: the service soon cannot write any more.
    // Kernel buffers aside (a few MiB on loopback), what the gateway holds is its streams' high-water marks; carrying
    // what it reads without waiting for the writes would take tens of MiB a second here.
    const buffersBefore = process.memoryUsage().arrayBuffers
    const slowClient = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/scripted/open/flooding'))
    try {
      slowClient.socket.pause()
      // Until the service has been unable to write for a second (it would go on for as long as the gateway took what
      // it wrote), or five seconds have passed.
      const giveUpAt = performance.now() + 5000
      let flooded = service.flooded()
      let quietSince = performance.now()
      while (performance.now() - quietSince < 1000 && performance.now() < giveUpAt) {
        await sleep(50)
        if (service.flooded() !== flooded) [flooded, quietSince] = [service.flooded(), performance.now()]
      }
      const held = (process.memoryUsage().arrayBuffers - buffersBefore) / 2 ** 20
      assert.ok(held < 16, `${Math.round(held)} MiB more of buffers held`)
    } finally {
      slowClient.socket.destroy()
    }
    // A client floods a service that reads nothing: the client soon cannot write any more.
    const flooding = await rawClient(gw.url, '127.0.0.1', upgradeRequest('/scripted/open/not-reading'))
    try {
      await eventually(flooding.received, (text) => text.includes('\r\n\r\n'), 2000)
      const chunk = Buffer.alloc(1 << 20, 0x62)
      let written = 0
      // Until the gateway has taken nothing for a second, or two seconds have passed.
      const until = performance.now() + 2000
      let drained = true
      while (performance.now() < until && written < 512 && drained) {
        if (flooding.socket.write(chunk)) written++
        else drained = await Promise.race([once(flooding.socket, 'drain').then(() => (written++, true)), sleep(1000).then(() => false)])
      }
      assert.ok(written < 32, `the gateway took ${written} MiB for a service that reads nothing`)
    } finally {
      flooding.socket.destroy()
    }
  })

  it('logs an opened socket\'s request line with status 101 and its close with the reason, and never the token', async () => {
    const { token } = await createToken(gw, adminAuth)
    const socket = new WebSocket(`${gw.url.replace('http:', 'ws:')}/negotiating/logged/?access_token=${token}`, { headers: bearer(token) })
    await once(socket, 'message')
    const opened = await eventually(() => logLines.find((line) => line.msg === 'request' && line.path === '/negotiating/logged/'), Boolean, 2000)
    assert.equal(opened?.status, 101)
    assert.equal(opened?.user, 'admin')
    assert.equal(opened?.auth, 'token')
    const whileOpen = await scrape(gw)
    assert.match(whileOpen, /^gatehouse_websockets_open\{service="negotiating"\} 1$/m)
    assert.match(whileOpen, /^gatehouse_requests_total\{service="negotiating",method="read",status="1xx",auth="token"\} 1$/m)
    // Its connection dropped, without a closing handshake (after which the service would close first).
    socket.terminate()
    const closed = await eventually(() => logLines.find((line) => line.msg === 'websocket closed' && line.reqId === opened?.reqId), Boolean, 2000)
    assert.equal(closed?.closed_by, 'client')
    assert.equal(closed?.path, '/negotiating/logged/', 'without the query, where some clients put a token')
    assert.equal(typeof closed?.ms, 'number')
    assert.ok(!JSON.stringify(logLines).includes(token.slice(-16)), 'no token in any log line')
    assert.equal(logLines.filter((line) => line.msg === 'request' && line.reqId === opened?.reqId).length, 1, 'one request line')
    const afterClose = await scrape(gw)
    assert.match(afterClose, /^gatehouse_websockets_open\{service="negotiating"\} 0$/m)
    assert.match(afterClose, /^gatehouse_websockets_closed_total\{service="negotiating",reason="client"\} 1$/m)
  })

  it('logs and counts a socket closed for its revoked credential as credential_revoked', async () => {
    const created = await createToken(gw, adminAuth)
    const socket = new WebSocket(`${gw.url.replace('http:', 'ws:')}/negotiating/revoked/`, { headers: bearer(created.token) })
    await once(socket, 'message')
    assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
    await once(socket, 'close')
    const closed = await eventually(() => logLines.find((line) => line.msg === 'websocket closed' && line.path === '/negotiating/revoked/'), Boolean, 2000)
    assert.equal(closed?.closed_by, 'credential_revoked')
    assert.match(await scrape(gw), /^gatehouse_websockets_closed_total\{service="negotiating",reason="credential_revoked"\} 1$/m)
  })
})

/** Kept apart: its cap would hold the sockets of the tests above. */
describe('WebSockets under the per-address connection cap', () => {
  it('counts each open socket against server.max_connections_per_address, and takes a new one once one closes', async () => {
    const service = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await once(service, 'listening')
    service.on('connection', (socket) => socket.send('{}'))
    const gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, max_connections: 50, max_connections_per_address: 2 }, services: [{ name: 'feed', prefix: '/feed/', upstream: `http://127.0.0.1:${(service.address() as AddressInfo).port}`, public_paths: ['/feed/*'] }] } })
    const clients: RawClient[] = []
    const open = async () => {
      const client = await rawClient(gw.url, '127.0.0.41', upgradeRequest('/feed/events/'))
      clients.push(client)
      return client
    }
    const switched = (client: RawClient) => client.received().startsWith('HTTP/1.1 101 ')
    try {
      const held = [await open(), await open()]
      assert.equal((await eventually(() => held.filter(switched), (found) => found.length === 2, 2000)).length, 2)
      const refused = await open()
      await Promise.race([refused.closed, sleep(2000)])
      assert.ok(refused.socket.closed, 'a third socket from the address is closed as it arrives')
      assert.equal(refused.received(), '')
      await closeAtServer(gw.server.server, [held[0]!])
      const later = await open()
      assert.ok(switched(await eventually(() => later, switched, 2000)))
    } finally {
      for (const client of clients) client.socket.destroy()
      await gw.close()
      service.close()
    }
  })
})

/**
 * An upgrade is read as any other request from a trusted proxy (src/http/request-entry.ts): the client address its
 * X-Forwarded-For names with a port is that address (Azure's Application Gateway writes `ip:port`), and
 * X-Forwarded-Proto is `http` or `https` in lower case. Read raw, `203.0.113.7:5678` was no address at all: no
 * `networks` rule matched it, and the lockout counted nothing against it.
 */
describe('WebSockets behind a trusted proxy', () => {
  let gw: TestGateway
  let service: Awaited<ReturnType<typeof scriptedService>>
  const PROXY = '127.0.0.42'

  before(async () => {
    service = await scriptedService()
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: [PROXY] },
        services: [{
          name: 'fenced', prefix: '/fenced/', upstream: service.url, accepts: ['basic', 'token'],
          access: [{ deny: { networks: ['203.0.113.0/24'] } }, { allow: { superuser: true } }],
        }],
      },
    })
  })
  after(async () => {
    await gw.close()
    service.server.close()
  })

  it('refuses an upgrade from a network the rules deny, written with a port, before any contact with the service', async () => {
    const { token } = await createToken(gw, adminAuth)
    const reached = service.handshakes.length
    for (const forwardedFor of ['203.0.113.7:5678', '203.0.113.7', '198.51.100.1, 203.0.113.7:80']) {
      const client = await rawClient(gw.url, PROXY, upgradeRequest('/fenced/ok', [`Authorization: Bearer ${token}`, `X-Forwarded-For: ${forwardedFor}`]))
      await Promise.race([client.closed, sleep(3000)])
      client.socket.destroy()
      assert.match(client.received(), /^HTTP\/1\.1 403 [^]*"code":"access_denied"/, forwardedFor)
    }
    assert.equal(service.handshakes.length, reached, 'nothing reached the service')
  })

  it('tells the service the client\'s address without its port and the scheme in lower case, as for any request', async () => {
    const { token } = await createToken(gw, adminAuth)
    const client = await rawClient(gw.url, PROXY, upgradeRequest('/fenced/ok', [`Authorization: Bearer ${token}`, 'X-Forwarded-For: 198.51.100.9:4433', 'X-Forwarded-Proto: HTTPS']))
    await eventually(client.received, (text) => text.includes('\r\n\r\n'), 2000)
    client.socket.destroy()
    assert.match(client.received(), /^HTTP\/1\.1 101 /)
    const seen = service.handshakes.at(-1)!
    assert.match(seen, /\r\nx-forwarded-for: 198\.51\.100\.9, 127\.0\.0\.42\r\n/i)
    assert.match(seen, /\r\nx-forwarded-proto: https\r\n/i)
  })

  it('counts failed passwords against the forwarded address, written with a port, and throttles it', async () => {
    await gw.app.settings.update({ login_failures_per_address: 3, login_address_window_seconds: 300, login_failures_before_lockout: 100 })
    const codes: string[] = []
    for (let attempt = 0; attempt < 5; attempt++) {
      const wrong = `Basic ${Buffer.from(`spray-${attempt}:Summer2024!`).toString('base64')}`
      const client = await rawClient(gw.url, PROXY, upgradeRequest('/fenced/ok', [`Authorization: ${wrong}`, `X-Forwarded-For: 192.0.2.77:${5000 + attempt}`]))
      await Promise.race([client.closed, sleep(5000)])
      client.socket.destroy()
      codes.push(/"code":"([a-z_]+)"/.exec(client.received())?.[1] ?? client.received().slice(0, 40))
    }
    assert.deepEqual(codes, ['invalid_credentials', 'invalid_credentials', 'invalid_credentials', 'login_throttled', 'login_throttled'])
  })

  it('counts failed passwords from a client the proxy names by no address (`unknown`) under that name, rather than not at all', async () => {
    await gw.app.settings.update({ login_failures_per_address: 3, login_address_window_seconds: 300, login_failures_before_lockout: 100 })
    const codes: string[] = []
    for (let attempt = 0; attempt < 5; attempt++) {
      const answer = await requestFrom(PROXY, `${gw.url}/api/gateway/v1/me/`, { headers: { authorization: basic(`unknown-${attempt}`, 'Summer2024!'), 'x-forwarded-for': 'unknown' } })
      codes.push(answer.json().code)
    }
    assert.deepEqual(codes, ['invalid_credentials', 'invalid_credentials', 'invalid_credentials', 'login_throttled', 'login_throttled'])
  })
})
