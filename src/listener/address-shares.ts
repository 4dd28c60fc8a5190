import type { Server, Socket } from 'node:net'
import { clientKey } from '../directory/lockout.ts'

/**
 * `server.max_connections_per_address`: one client address (an IPv6 one by its /64, as the pool's shares and lockout
 * count it) holds at most `most` of the open connections, so that a single host cannot take all of
 * `server.max_connections` from everyone else. A connection beyond it is closed as it arrives, without a byte, as
 * Node closes one beyond `max_connections`. The count is the socket's peer, before any forwarding header is read:
 * a trusted proxy (`exempt`) carries many clients' connections and is not counted. It costs a Map update when a
 * connection opens and another when it closes.
 */
export function limitConnectionsPerAddress(server: Server, most: number, exempt: (address: string) => boolean): void {
  if (most === 0) return
  const open = new Map<string, number>()
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress
    // A socket already gone has no address, and nothing to count.
    if (address === undefined || exempt(address)) return
    const key = clientKey(address)
    const count = open.get(key) ?? 0
    if (count >= most) return void socket.destroy()
    open.set(key, count + 1)
    socket.once('close', () => {
      const left = open.get(key)! - 1
      if (left === 0) open.delete(key)
      else open.set(key, left)
    })
  })
}
