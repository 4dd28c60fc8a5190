import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import type { Writable } from 'node:stream'
import * as ws from 'ws'
import { closeFrame, FrameBoundaries } from '../../src/gateway/websocket-frames.ts'

/** The WebSocket library's own framing, which its type definitions leave out. */
const { Receiver, Sender } = ws as unknown as {
  Receiver: new (options: { isServer: boolean }) => Writable
  Sender: { frame(data: Buffer, options: object): Buffer[] }
}

/** One frame's bytes as a WebSocket library writes them. */
function frame(payloadLength: number, options: { mask: boolean; opcode?: number; fin?: boolean; rsv1?: boolean }): Buffer {
  const parts = Sender.frame(Buffer.alloc(payloadLength, 0x81), { opcode: options.opcode ?? 2, fin: options.fin ?? true, mask: options.mask, rsv1: options.rsv1 ?? false, readOnly: false })
  return Buffer.concat(parts)
}

/** Every offset at which `boundaries` says a frame begins, reading `stream` in chunks of `chunkSize`. */
function boundariesFound(stream: Buffer, chunkSize: number): number[] {
  const boundaries = new FrameBoundaries()
  const found: number[] = []
  let offset = 0
  for (let start = 0; start < stream.length; start += chunkSize) {
    let rest = stream.subarray(start, start + chunkSize)
    while (rest.length) {
      // At a boundary the next byte is a header's first: read it, to look for the next boundary.
      const read = boundaries.atBoundary ? (found.push(offset), boundaries.advance(rest.subarray(0, 1))) : boundaries.advance(rest, true)
      offset += read
      rest = rest.subarray(read)
    }
  }
  if (boundaries.atBoundary) found.push(stream.length)
  return found
}

/** The close code and reason a WebSocket library reads from `bytes`, as the server (masked) or the client. */
async function closeRead(bytes: Buffer, byServer: boolean): Promise<{ code: number; reason: string }> {
  const receiver = new Receiver({ isServer: byServer })
  const concluded = once(receiver, 'conclude')
  receiver.write(bytes)
  const [code, reason] = await concluded
  return { code, reason: String(reason) }
}

describe('WebSocket frame boundaries', () => {
  for (const mask of [false, true]) {
    it(`finds where each ${mask ? 'masked (client)' : 'unmasked (service)'} frame begins, whatever the payload length's form and however the bytes are split`, () => {
      // 7-bit lengths (0, 1, 125), 16-bit (126, 65535), 64-bit (65536, 200000); a compressed fragment, a continuation, a ping.
      const frames = [
        frame(0, { mask }), frame(1, { mask }), frame(125, { mask }), frame(126, { mask }), frame(65535, { mask }), frame(65536, { mask }),
        frame(300, { mask, fin: false, rsv1: true }), frame(9, { mask, opcode: 9 }), frame(200_000, { mask, opcode: 0 }), frame(3, { mask, opcode: 1 }),
      ]
      const stream = Buffer.concat(frames)
      const expected = [0]
      for (const bytes of frames) expected.push(expected.at(-1)! + bytes.length)
      for (const chunkSize of [1, 2, 3, 7, 13, 1000, 65536, stream.length]) {
        assert.deepEqual(boundariesFound(stream, chunkSize), expected, `in chunks of ${chunkSize}`)
      }
    })
  }

  it('reads a whole chunk without stopping unless asked to, and stops at once when asked at a boundary', () => {
    const stream = Buffer.concat([frame(10, { mask: false }), frame(20, { mask: false })])
    const boundaries = new FrameBoundaries()
    assert.equal(boundaries.advance(stream.subarray(0, 5)), 5)
    assert.equal(boundaries.atBoundary, false)
    assert.equal(boundaries.advance(stream.subarray(5), true), 12 - 5, 'stops where the first frame ends')
    assert.equal(boundaries.atBoundary, true)
    assert.equal(boundaries.advance(stream.subarray(12), true), 0, 'already at one')
    assert.equal(boundaries.advance(stream.subarray(12)), stream.length - 12)
    assert.equal(boundaries.atBoundary, true)
  })

  it('tells when a close frame has gone by', () => {
    const boundaries = new FrameBoundaries()
    boundaries.advance(Buffer.concat([frame(5, { mask: true }), frame(0, { mask: true, opcode: 9 })]))
    assert.equal(boundaries.closeSeen, false, 'not for data or a ping')
    boundaries.advance(closeFrame(1000, 'bye', true))
    assert.equal(boundaries.closeSeen, true)
  })

  it('never reaches a boundary inside a frame whose length is past 2^53 bytes', () => {
    const header = Buffer.from([0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    const boundaries = new FrameBoundaries()
    assert.equal(boundaries.advance(header), header.length)
    const payload = Buffer.alloc(1 << 16)
    assert.equal(boundaries.advance(payload, true), payload.length)
    assert.equal(boundaries.atBoundary, false)
  })

  it('makes close frames a WebSocket library reads: unmasked for the client, masked for the service', async () => {
    assert.deepEqual(await closeRead(closeFrame(1008, 'credential revoked', false), false), { code: 1008, reason: 'credential revoked' })
    assert.deepEqual(await closeRead(closeFrame(1001, 'shutting down', true), true), { code: 1001, reason: 'shutting down' })
    const masked = closeFrame(1013, 'database unavailable', true)
    assert.equal(masked[1]! & 0x80, 0x80, 'the mask bit is set')
    assert.doesNotMatch(masked.toString('latin1'), /database/, 'the payload is masked')
    assert.throws(() => closeFrame(1000, 'x'.repeat(124), false), RangeError)
  })
})
