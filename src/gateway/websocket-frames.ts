import { randomBytes } from 'node:crypto'

/**
 * Where the frames of one direction of a tunnelled WebSocket begin and end (RFC 6455 §5.2), so that the gateway can
 * put a close frame of its own into the stream without cutting a frame in two. Only headers are read: a payload is
 * skipped by its length, never kept, so the state is a header's 14 bytes and a count whatever the frames' sizes.
 * Extensions (permessage-deflate) change payloads, not framing, and control frames are never compressed.
 */
export class FrameBoundaries {
  /** The longest header: 2 bytes, a 64-bit length, a masking key. */
  readonly #header = Buffer.alloc(14)
  #headerBytes = 0
  #headerLength = 2
  /** Payload bytes of the current frame still to come; Infinity for a length past 2^53, which never ends in practice. */
  #payloadLeft = 0
  #closeSeen = false

  /** A close frame has begun: the closing handshake is under way in this direction, and nothing may follow it (§5.5.1). */
  get closeSeen(): boolean {
    return this.#closeSeen
  }

  /** Between two frames: what comes next is a frame's first byte. */
  get atBoundary(): boolean {
    return this.#headerBytes === 0 && this.#payloadLeft === 0
  }

  /**
   * Reads `chunk` as the stream's next bytes. With `stopAtBoundary`, stops at the first boundary (at once if already
   * at one) and returns how many bytes come before it; otherwise reads it all. Returns `chunk.length` if no boundary
   * came.
   */
  advance(chunk: Buffer, stopAtBoundary = false): number {
    let at = 0
    while (at < chunk.length) {
      if (stopAtBoundary && this.atBoundary) return at
      if (this.#payloadLeft > 0) {
        const skipped = Math.min(this.#payloadLeft, chunk.length - at)
        this.#payloadLeft -= skipped
        at += skipped
        continue
      }
      this.#header[this.#headerBytes++] = chunk[at++]!
      if (this.#headerBytes === 2) this.#headerLength = headerLength(this.#header)
      if (this.#headerBytes === this.#headerLength) {
        if ((this.#header[0]! & 0x0f) === CLOSE_OPCODE) this.#closeSeen = true
        this.#payloadLeft = payloadLength(this.#header)
        this.#headerBytes = 0
      }
    }
    return at
  }
}

const CLOSE_OPCODE = 0x8

/** A header's length from its first two bytes: the extended length's 2 or 8 bytes, and a masking key's 4. */
function headerLength(header: Buffer): number {
  const length7 = header[1]! & 0x7f
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (header[1]! & 0x80 ? 4 : 0)
}

function payloadLength(header: Buffer): number {
  const length7 = header[1]! & 0x7f
  if (length7 === 126) return header.readUInt16BE(2)
  if (length7 !== 127) return length7
  const high = header.readUInt32BE(2)
  return high > 0x1fffff ? Infinity : high * 2 ** 32 + header.readUInt32BE(6)
}

/** A control frame's payload is at most 125 bytes (RFC 6455 §5.5): the code's 2, and this much of a reason. */
const MAX_REASON_BYTES = 123

/**
 * A close frame (RFC 6455 §5.5.1) with `code` and `reason`: unmasked from the gateway as the client's server, masked
 * (with a fresh key, §5.3) from the gateway as the service's client.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
  payload.writeUInt16BE(code)
  payload.write(reason, 2)
  if (payload.length > 2 + MAX_REASON_BYTES) throw new RangeError(`a close reason is at most ${MAX_REASON_BYTES} bytes`)
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload])
  const key = randomBytes(4)
  for (let i = 0; i < payload.length; i++) payload[i]! ^= key[i % 4]!
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), key, payload])
}
