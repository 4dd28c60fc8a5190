import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'

/**
 * Closes a client's connection under an answer the gateway gives up on, with a reset, which also drops what the kernel
 * still holds for the client. Node cannot reset a TLS socket (its handle is no TCP one: resetAndDestroy throws
 * ERR_INVALID_HANDLE_TYPE, and from a timer that ended the process), so over HTTPS the connection is closed.
 */
export function cutConnection(socket: Socket): void {
  if (socket instanceof TLSSocket) socket.destroy()
  else socket.resetAndDestroy()
}
