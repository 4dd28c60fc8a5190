import type { ServerResponse } from 'node:http'
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
  closing.add(socket)
  socket.end()
  socket.resume()
  setTimeout(() => socket.destroy(), LINGER_MS).unref()
}

/** Connections `lingeringClose` is closing: what still arrives on them is only to be dropped. */
const closing = new WeakSet<object>()

export function lingering(socket: object): boolean {
  return closing.has(socket)
}

/**
 * Has `response` be its connection's last, closed by `lingeringClose` once it is written: for an answer given while
 * the client may still be sending (a body refused part-way, a request pipelined behind a refused one). Node closes a
 * connection that is not kept alive with the socket's `destroySoon` as soon as the answer is written, which resets it
 * when the client's bytes are still arriving; that one step is replaced, on this socket only.
 */
export function closeLingeringAfter(response: ServerResponse): void {
  response.shouldKeepAlive = false
  const socket = response.socket as (Duplex & { destroySoon?: () => void }) | null
  if (!socket) return
  lastAnswered.add(socket)
  socket.destroySoon = () => lingeringClose(socket)
}

/**
 * Connections whose last answer is given (`closeLingeringAfter`). What the client sends on them is read to be
 * dropped, and Node's parser still makes requests of it: one pipelined behind a body refused part-way was judged,
 * forwarded and acted on by the service, and its answer lost with the connection, unlogged. No request parsed on such
 * a connection is taken (src/listener/node-server.ts, src/gateway/websocket.ts).
 */
const lastAnswered = new WeakSet<object>()

export function answeredLast(socket: object | null): boolean {
  return socket !== null && lastAnswered.has(socket)
}
