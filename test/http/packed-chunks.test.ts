import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { exposedGc } from '../../src/cli/exposed-gc.ts'
import { PackedChunks } from '../../src/http/packed-chunks.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { REALM } from '../helpers/oidc.ts'
import { csrfToken, LOGIN } from '../helpers/session.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/** The chunks `add` and `flush` give, joined, for a body that came in `chunks`. */
function packedBody(chunks: Buffer[]): { body: Buffer; pieces: number } {
  const packed = new PackedChunks()
  const pieces: Buffer[] = []
  for (const chunk of chunks) pieces.push(...packed.add(chunk))
  pieces.push(...packed.flush())
  return { body: Buffer.concat(pieces), pieces: pieces.length }
}

describe('a body held whole, in pieces of about its size', () => {
  it('gives back every byte in order, keeping large chunks as they come and copying small ones into few blocks', () => {
    const small = Array.from({ length: 40_000 }, (_, i) => Buffer.from([i % 251]))
    const packedSmall = packedBody(small)
    assert.deepEqual(packedSmall.body, Buffer.concat(small))
    assert.ok(packedSmall.pieces <= 10, `${packedSmall.pieces} pieces for 40,000 one-byte chunks`)
    const mixed = [Buffer.from('a'), Buffer.alloc(5000, 0x62), Buffer.from('cd'), Buffer.alloc(1023, 0x65), Buffer.alloc(1024, 0x66), Buffer.from('g')]
    assert.deepEqual(packedBody(mixed).body, Buffer.concat(mixed))
    assert.deepEqual(packedBody([]).body, Buffer.alloc(0))
    const one = Buffer.from('{"username":"admin"}')
    assert.deepEqual(packedBody([one]), { body: one, pieces: 1 })
  })
})

/**
 * A client chooses the chunks its body comes in: one byte each, Node hands over a Buffer per byte, some 200 bytes of
 * heap for each. Kept as they came, bodies the limits counted as a few hundred kilobytes held over a hundred megabytes,
 * and a few hundred of them from one address ran the gateway out of heap.
 */
describe('bodies sent one byte per chunk', () => {
  const CONNECTIONS = 24
  /** Within the smallest of the three limits, the realms' 16 KiB. */
  const BYTES = 15_000
  const gc = exposedGc()
  let gw: TestGateway
  let upstream: RecordingUpstream
  const sockets: Socket[] = []

  before(async () => {
    upstream = await startRecordingUpstream((_request, response) => response.end('{}'))
    gw = await startGateway({ config: { services: [{ name: 'open', prefix: '/open/', upstream: upstream.url, public_paths: ['/open/*'] }] } })
  })
  after(async () => {
    for (const socket of sockets) socket.destroy()
    await gw.close()
    upstream.server.close()
  })

  /** Heap growth while CONNECTIONS clients each send BYTES one-byte chunks of a body they never end, to `path`. */
  async function heapHeldBy(path: string, headers: string): Promise<number> {
    gc()
    const before = process.memoryUsage().heapUsed
    const { host, port } = new URL(gw.url)
    const oneByteChunks = '1\r\na\r\n'.repeat(BYTES)
    const opened = await Promise.all(Array.from({ length: CONNECTIONS }, () => new Promise<Socket>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(`POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${headers}Transfer-Encoding: chunked\r\n\r\n${oneByteChunks}`, () => resolve(socket))
      }).on('error', reject)
      sockets.push(socket)
    })))
    // Every byte is on its way; the gateway reads them within a moment.
    await sleep(1500)
    gc()
    const held = process.memoryUsage().heapUsed - before
    for (const socket of opened) socket.destroy()
    await sleep(200)
    return held
  }

  const MOST = 20 * 1024 * 1024

  it('hold about their size on a service\'s path, waiting for the body whole', async () => {
    const held = await heapHeldBy('/open/x', 'Content-Type: application/octet-stream\r\n')
    assert.ok(held < MOST, `${CONNECTIONS} bodies of ${BYTES} bytes held ${Math.round(held / 1024 / 1024)} MB of heap`)
  })

  it('hold about their size at the gateway API\'s public login', async () => {
    const token = await csrfToken(gw)
    const held = await heapHeldBy(LOGIN, `Content-Type: application/x-www-form-urlencoded\r\nX-CSRFToken: ${token}\r\nCookie: csrftoken=${token}\r\nReferer: ${gw.url}${LOGIN}\r\n`)
    assert.ok(held < MOST, `${CONNECTIONS} bodies of ${BYTES} bytes held ${Math.round(held / 1024 / 1024)} MB of heap`)
  })

  it('hold about their size at a realm\'s token endpoint', async () => {
    const held = await heapHeldBy(`/realms/${REALM}/protocol/openid-connect/token`, 'Content-Type: application/x-www-form-urlencoded\r\n')
    assert.ok(held < MOST, `${CONNECTIONS} bodies of ${BYTES} bytes held ${Math.round(held / 1024 / 1024)} MB of heap`)
  })
})
