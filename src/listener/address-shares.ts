import type { Server, Socket } from 'node:net'
import { clientKey } from '../directory/lockout.ts'

/** Which cap refused a connection: the listener's total, or one address's share of it. */
export type ConnectionCap = 'max_connections' | 'max_connections_per_address'

export interface ConnectionCapsOptions {
  /** `server.max_connections`: the most open connections each listener takes. */
  most: number
  /** `server.max_connections_per_address`; 0: no limit. */
  perAddress: number
  /** A trusted proxy carries many clients' connections and is not held to one address's share. */
  exempt: (address: string) => boolean
  /** Every refused connection, for the metrics. */
  counted: (cap: ConnectionCap) => void
  /** A refused connection from an address not warned of in the last minute. */
  warned: (cap: ConnectionCap, address: string) => void
}

const WARN_EVERY_MS = 60_000
/** The most addresses remembered as warned of: a flood from many addresses must not grow the memory without bound. */
const MOST_WARNED = 1000

/**
 * `server.max_connections` and `server.max_connections_per_address`, for every listener put under them (the
 * gateway's port and the plain-HTTP port that redirects to HTTPS). One client address (an IPv6 one by its /64, as
 * the pool's shares and lockout count it) holds at most `perAddress` of the open connections across them, so that
 * a single host cannot take all of `max_connections` from everyone else. A connection beyond either cap is closed
 * as it arrives, without a byte (Node closes one beyond `maxConnections` itself and tells of it with `drop`). The
 * share counts the socket's peer, before any forwarding header is read. It costs a Map update when a connection
 * opens and another when it closes.
 *
 * Each refusal is counted; a warning names the address, at most once a minute for each, so that an operator
 * learns which host hit the cap without a line per refused connection.
 */
export class ConnectionCaps {
  readonly #options: ConnectionCapsOptions
  readonly #open = new Map<string, number>()
  /** When each address was last warned of. */
  readonly #warnedAt = new Map<string, number>()

  constructor(options: ConnectionCapsOptions) {
    this.#options = options
  }

  /** Puts `server`'s connections under the caps. */
  cap(server: Server): void {
    server.maxConnections = this.#options.most
    server.on('drop', (peer?: { remoteAddress?: string }) => this.#refused('max_connections', peer?.remoteAddress))
    if (this.#options.perAddress > 0) server.on('connection', (socket: Socket) => this.#share(socket))
  }

  #share(socket: Socket): void {
    const address = socket.remoteAddress
    // A socket already gone has no address, and nothing to count.
    if (address === undefined || this.#options.exempt(address)) return
    const key = clientKey(address)
    const count = this.#open.get(key) ?? 0
    if (count >= this.#options.perAddress) {
      socket.destroy()
      return this.#refused('max_connections_per_address', address)
    }
    this.#open.set(key, count + 1)
    socket.once('close', () => {
      const left = this.#open.get(key)! - 1
      if (left === 0) this.#open.delete(key)
      else this.#open.set(key, left)
    })
  }

  #refused(cap: ConnectionCap, address: string | undefined): void {
    this.#options.counted(cap)
    if (address === undefined) return
    const key = clientKey(address)
    const now = performance.now()
    const last = this.#warnedAt.get(key)
    if (last !== undefined && now - last < WARN_EVERY_MS) return
    if (last === undefined && this.#warnedAt.size >= MOST_WARNED) {
      for (const [warned, at] of this.#warnedAt) if (now - at >= WARN_EVERY_MS) this.#warnedAt.delete(warned)
      // Still a thousand addresses warned of within the minute: the metric counts the rest.
      if (this.#warnedAt.size >= MOST_WARNED) return
    }
    this.#warnedAt.set(key, now)
    this.#options.warned(cap, address)
  }
}

const capsOfServer = new WeakMap<Server, ConnectionCaps>()

/** The gateway's port, under caps other listeners of the same gateway share (`underSameCaps`). */
export function capConnections(server: Server, caps: ConnectionCaps): void {
  caps.cap(server)
  capsOfServer.set(server, caps)
}

/** Puts `listener` under the caps of the gateway port `gateway`, when it has any. */
export function underSameCaps(listener: Server, gateway: Server): void {
  capsOfServer.get(gateway)?.cap(listener)
}
