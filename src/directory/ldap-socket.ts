import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

/**
 * The most a directory may send on one connection, which serves one lookup: ldapts holds each message whole before
 * it parses it, and a search's entries all until the search ends, so a directory (or whoever answers at its address)
 * sending one endless message, or entries without end, would fill the memory before the lookup's deadline. Gatehouse
 * asks for little: the listed attributes of at most two entries, and at most MAX_GROUPS group DNs (ldap.ts), each
 * well under a kilobyte, so these bounds are far above any real answer.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024
export const MAX_CONNECTION_BYTES = 8 * 1024 * 1024

/**
 * ldapts' `createConnection` and `createSecureConnection` (its documented way to supply the transport), making
 * sockets that are cut once a message announces more than `MAX_MESSAGE_BYTES`, read from its header before the
 * message arrives, or the connection has brought more than `MAX_CONNECTION_BYTES`. The lookup then fails as one
 * the directory did not answer (`directory_unavailable`).
 */
export const boundedConnections = {
  createConnection: ((...args: Parameters<typeof netConnect>) => bounded(netConnect(...args), 'connect')) as typeof netConnect,
  createSecureConnection: ((...args: Parameters<typeof tlsConnect>) => bounded(tlsConnect(...args), 'secureConnect')) as typeof tlsConnect,
}

/**
 * Counts what arrives from the moment ldapts starts to read (its own `data` listener is added on the same event, after
 * this one, so nothing is read before the count starts, and the socket is not made to flow any earlier).
 */
function bounded<S extends Socket>(socket: S, readyEvent: 'connect' | 'secureConnect'): S {
  socket.once(readyEvent, () => {
    const messages = new MessageLengths()
    let received = 0
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
      const problem = received > MAX_CONNECTION_BYTES ? `the directory sent more than ${MAX_CONNECTION_BYTES} bytes on one connection` : messages.check(chunk)
      if (problem) socket.destroy(new Error(problem))
    })
  })
  return socket
}

/**
 * Follows the LDAP messages in a stream by their BER headers (RFC 4511 §5.1: a SEQUENCE of definite length) and
 * says when one announces more than MAX_MESSAGE_BYTES, or a length no message may have.
 */
class MessageLengths {
  /** What of the current message's content is still to come. */
  #remaining = 0
  /** The bytes of a header that is still arriving. */
  #header: number[] = []

  check(chunk: Buffer): string | undefined {
    let offset = 0
    while (offset < chunk.length) {
      if (this.#remaining > 0) {
        const taken = Math.min(this.#remaining, chunk.length - offset)
        this.#remaining -= taken
        offset += taken
        continue
      }
      this.#header.push(chunk[offset++]!)
      const length = this.#announcedLength()
      if (length === undefined) continue
      if (length > MAX_MESSAGE_BYTES) return `the directory announced a message of ${length} bytes, more than ${MAX_MESSAGE_BYTES}`
      this.#remaining = length
      this.#header = []
    }
    return undefined
  }

  /** The content length the header announces; undefined while it is incomplete; Infinity for an indefinite or overlong one. */
  #announcedLength(): number | undefined {
    const [, first] = this.#header
    if (first === undefined) return undefined
    if (first < 0x80) return first
    const bytes = first & 0x7f
    if (bytes === 0 || bytes > 4) return Infinity
    if (this.#header.length < 2 + bytes) return undefined
    return this.#header.slice(2).reduce((length, byte) => length * 256 + byte, 0)
  }
}
