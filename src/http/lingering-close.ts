import type { Duplex } from 'node:stream'

/** How long a connection being closed still reads what its client sends, waiting for it to close too. */
const LINGER_MS = 3000

/**
 * Closes a connection after its last answer, as nginx's lingering close does: half-close, then read and drop what
 * the client still sends until it closes too, for at most a few seconds. Destroying at once with unread bytes
 * would reset the connection, and the client could lose the answer just sent; ending without reading leaves a
 * paused socket that never sees the client's close, open for good (and a server closing for shutdown with it).
 */
export function lingeringClose(socket: Duplex): void {
  socket.end()
  socket.resume()
  setTimeout(() => socket.destroy(), LINGER_MS).unref()
}
