import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import * as ws from 'ws'
import WebSocket, { WebSocketServer } from 'ws'
import { adminAuth, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { eventually } from '../helpers/raw-client.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

/**
 * When the gateway closes a WebSocket itself, both ends get a close frame saying why, after the frame in flight
 * towards each of them, never inside it.
 */

/** The WebSocket library's own framing, which its type definitions leave out. */
const { Receiver, Sender } = ws as unknown as {
  Receiver: new (options: { isServer: boolean }) => Writable
  Sender: { frame(data: Buffer, options: object): Buffer[] }
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const acceptFor = (key: string) => createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A binary frame of `payload` as a client (masked) or a server sends it. */
function binaryFrame(payload: Buffer, masked: boolean): Buffer {
  return Buffer.concat(Sender.frame(Buffer.from(payload), { opcode: 2, fin: true, mask: masked, readOnly: false }))
}

interface Read {
  messages: string[]
  close?: { code: number; reason: string }
}

/** What a WebSocket library reads from raw `bytes`: messages, then a close frame's code and reason. */
function readFrames(bytes: Buffer, byServer: boolean): Read {
  const read: Read = { messages: [] }
  const receiver = new Receiver({ isServer: byServer })
  receiver.on('message', (data: Buffer) => read.messages.push(String(data)))
  receiver.on('conclude', (code: number, reason: Buffer) => (read.close = { code, reason: String(reason) }))
  receiver.on('error', () => undefined)
  receiver.write(bytes)
  return read
}

/** A connection's raw bytes, with those after the head of an HTTP answer or request, once it has one. */
function recording(socket: Socket): { all: () => Buffer; afterHead: () => Buffer } {
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  const all = () => Buffer.concat(chunks)
  return { all, afterHead: () => all().subarray(all().indexOf('\r\n\r\n') + 4) }
}

/**
 * A service that switches and then sends the first half of a frame: under `/finishing/`, it sends the rest once a
 * close frame reaches it, under `/timed/` 400 ms later, otherwise never; under `/quiet/` it sends nothing. Its connections are kept, with what each
 * received after the handshake.
 */
async function halfFrameService(): Promise<{ url: string; server: Server; connections: { socket: Socket; received: () => Buffer }[] }> {
  const connections: { socket: Socket; received: () => Buffer }[] = []
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy())
    const recorded = recording(socket)
    connections.push({ socket, received: recorded.afterHead })
    const frame = binaryFrame(Buffer.from('a message in two halves'), false)
    socket.once('data', (handshake) => {
      const key = /sec-websocket-key: (\S+)/i.exec(String(handshake))![1]!
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`)
      if (/\/quiet\//.test(String(handshake))) return
      socket.write(frame.subarray(0, 10))
      if (/\/timed\//.test(String(handshake))) return void setTimeout(() => socket.writable && socket.write(frame.subarray(10)), 400)
      if (!/\/finishing\//.test(String(handshake))) return
      const finish = () => {
        if (!readFrames(recorded.afterHead(), true).close) return
        socket.off('data', finish)
        socket.write(frame.subarray(10))
      }
      socket.on('data', finish)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, connections }
}

/** A WebSocket service (permessage-deflate if offered) that greets, echoes, and keeps the messages and close each socket got. */
async function recordingService(): Promise<{ url: string; server: WebSocketServer; sockets: Read[] }> {
  const sockets: Read[] = []
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true })
  await once(server, 'listening')
  server.on('connection', (socket) => {
    const read: Read = { messages: [] }
    sockets.push(read)
    socket.send('greeting')
    socket.on('message', (data) => {
      read.messages.push(String(data))
      socket.send(data)
    })
    socket.on('close', (code, reason) => (read.close = { code, reason: String(reason) }))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, sockets }
}

/** A WebSocket opened over a raw connection, once the gateway has answered 101, with all it receives. */
async function rawUpgrade(gw: TestGateway, path: string, token: string): Promise<{ socket: Socket; received: ReturnType<typeof recording> }> {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
  socket.on('error', () => undefined)
  const received = recording(socket)
  await once(socket, 'connect')
  socket.write([`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${KEY}`, `Authorization: Bearer ${token}`, '', ''].join('\r\n'))
  const head = await eventually(() => String(received.all()), (text) => text.includes('\r\n\r\n'), 3000)
  assert.match(head, /^HTTP\/1\.1 101 /)
  return { socket, received }
}

async function closeOf(socket: WebSocket, ms: number): Promise<{ code: number; reason: string }> {
  const [code, reason] = await Promise.race([once(socket, 'close'), sleep(ms).then(() => assert.fail(`still open after ${ms} ms`))])
  return { code, reason: String(reason) }
}

describe('WebSockets the gateway closes', () => {
  let gw: TestGateway
  let service: Awaited<ReturnType<typeof recordingService>>
  let halves: Awaited<ReturnType<typeof halfFrameService>>
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    service = await recordingService()
    halves = await halfFrameService()
    gw = await startGateway({
      logLines,
      config: {
        services: [
          { name: 'feed', prefix: '/feed/', upstream: service.url, accepts: ['token'] },
          { name: 'halves', prefix: '/halves/', upstream: halves.url, accepts: ['token'] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    service.server.close()
    halves.server.close()
  })

  async function revoke(id: number): Promise<void> {
    assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
  }

  it('sends the client and the service a close frame 1008 "credential revoked" when the socket\'s token is revoked, compressed tunnels too', async () => {
    const created = await createToken(gw, adminAuth)
    const socket = new WebSocket(`${gw.url.replace('http:', 'ws:')}/feed/events/`, { headers: bearer(created.token), perMessageDeflate: true })
    const [greeting] = await once(socket, 'message')
    assert.equal(String(greeting), 'greeting')
    assert.match(socket.extensions, /permessage-deflate/)
    socket.send('x'.repeat(10_000))
    const [echo] = await once(socket, 'message')
    assert.equal(String(echo), 'x'.repeat(10_000))
    const closed = closeOf(socket, 5000)
    await revoke(created.id)
    assert.deepEqual(await closed, { code: 1008, reason: 'credential revoked' })
    const atService = service.sockets.at(-1)!
    assert.deepEqual(await eventually(() => atService.close, Boolean, 3000), { code: 1008, reason: 'credential revoked' })
    const line = await eventually(() => logLines.find((entry) => entry.msg === 'websocket closed' && entry.path === '/feed/events/'), Boolean, 3000)
    assert.equal(line?.closed_by, 'credential_revoked')
    // How long the close frames' exchange took, from the gateway's decision: part of the time the socket was open.
    assert.equal(typeof line?.closing_ms, 'number')
    assert.ok(Number(line.closing_ms) >= 0 && Number(line.closing_ms) <= Number(line.ms), JSON.stringify(line))
    assert.match(await (await gw.fetch('/metrics')).text(), /^gatehouse_websockets_closed_total\{service="feed",reason="credential_revoked"\} 1$/m)
  })

  it('puts the close frame to the client after the frame the service is in the middle of sending', async () => {
    const created = await createToken(gw, adminAuth)
    const socket = new WebSocket(`${gw.url.replace('http:', 'ws:')}/halves/finishing/`, { headers: bearer(created.token) })
    const messages: string[] = []
    socket.on('message', (data) => messages.push(String(data)))
    await once(socket, 'upgrade')
    const closed = closeOf(socket, 5000)
    await revoke(created.id)
    assert.deepEqual(await closed, { code: 1008, reason: 'credential revoked' })
    assert.deepEqual(messages, ['a message in two halves'], 'the whole frame, then the close frame')
    const atService = readFrames(halves.connections.at(-1)!.received(), true)
    assert.deepEqual(atService.close, { code: 1008, reason: 'credential revoked' }, 'the service is sent a masked close frame')
  })

  it('sends the service nothing more of a client whose token is revoked in the middle of a frame, and cuts the service\'s connection there', async () => {
    const created = await createToken(gw, adminAuth)
    const { socket: client, received } = await rawUpgrade(gw, '/feed/events/', created.token)
    await eventually(() => readFrames(received.afterHead(), false).messages, (messages) => messages.length === 1, 3000)
    const frame = binaryFrame(Buffer.from('sent in two halves'), true)
    client.write(frame.subarray(0, 8))
    const atService = await eventually(() => service.sockets.at(-1), Boolean, 3000)
    await revoke(created.id)
    await eventually(() => readFrames(received.afterHead(), false).close, Boolean, 5000)
    assert.deepEqual(readFrames(received.afterHead(), false).close, { code: 1008, reason: 'credential revoked' }, 'the client is told why')
    client.write(frame.subarray(8))
    assert.deepEqual(await eventually(() => atService!.close, Boolean, 3000), { code: 1006, reason: '' }, 'the service\'s connection is cut, without a frame')
    assert.deepEqual(atService?.messages, [], 'the rest of the frame, sent after the revocation, never reached the service')
    await Promise.race([once(client, 'close'), sleep(5000)])
    assert.ok(client.closed, 'the gateway closes the client\'s connection after the closing handshake')
  })

  it('still sends the client the frame in flight towards it, then its close frame, when both directions are in the middle of one', async () => {
    const created = await createToken(gw, adminAuth)
    const { socket: client, received } = await rawUpgrade(gw, '/halves/timed/', created.token)
    client.write(binaryFrame(Buffer.from('the client\'s half frame'), true).subarray(0, 8))
    await sleep(100)
    await revoke(created.id)
    await Promise.race([once(client, 'close'), sleep(3000)])
    const read = readFrames(received.afterHead(), false)
    assert.deepEqual(read.messages, ['a message in two halves'])
    assert.deepEqual(read.close, { code: 1008, reason: 'credential revoked' })
  })

  it('sends the service no close frame after the client\'s own, whose closing handshake is under way, and still tells the client why', async () => {
    const created = await createToken(gw, adminAuth)
    const before = halves.connections.length
    const client = await rawUpgrade(gw, '/halves/quiet/', created.token)
    const connection = await eventually(() => halves.connections[before], Boolean, 3000)
    const payload = Buffer.from([0x03, 0xe8, ...Buffer.from('bye')])
    const clientsClose = Buffer.concat(Sender.frame(payload, { opcode: 8, fin: true, mask: true, readOnly: false }))
    client.socket.write(clientsClose)
    await eventually(() => readFrames(connection!.received(), true).close, Boolean, 3000)
    await revoke(created.id)
    await eventually(() => readFrames(client.received.afterHead(), false).close, Boolean, 5000)
    assert.deepEqual(readFrames(client.received.afterHead(), false).close, { code: 1008, reason: 'credential revoked' })
    await Promise.race([once(connection!.socket, 'close'), sleep(5000)])
    assert.ok(connection!.socket.closed, 'the gateway closes the service\'s connection')
    assert.deepEqual(connection!.received(), clientsClose, 'the client\'s close frame, and nothing after it')
  })

  it('cuts both connections, as without a close frame, when the frame in flight does not end within a second', async () => {
    const created = await createToken(gw, adminAuth)
    const socket = new WebSocket(`${gw.url.replace('http:', 'ws:')}/halves/stalled/`, { headers: bearer(created.token) })
    await once(socket, 'upgrade')
    const connection = halves.connections.at(-1)!
    const closed = closeOf(socket, 6000)
    await revoke(created.id)
    const { code } = await closed
    assert.equal(code, 1006, 'the frame could not be finished: the connection drops')
    await Promise.race([once(connection.socket, 'close'), sleep(3000)])
    assert.ok(connection.socket.closed, 'the service\'s connection is closed too')
    const line = await eventually(() => logLines.find((entry) => entry.msg === 'websocket closed' && entry.path === '/halves/stalled/'), Boolean, 3000)
    assert.equal(line?.closed_by, 'credential_revoked')
  })
})
