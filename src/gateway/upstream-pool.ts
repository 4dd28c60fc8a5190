import type { GatewayRequest } from '../http/gateway-request.ts'
import { clientKey } from '../directory/lockout.ts'
import { UpstreamBusy } from '../errors.ts'
import { Shares } from './shares.ts'

interface Waiter {
  readonly client: string
  state: 'waiting' | 'granted' | 'gone'
  readonly grant: () => void
}

export interface PoolLimits {
  /** Upstream connections the service may have open at once; the undici pool gets the same number. */
  readonly connections: number
  /** The most of them one client (an IPv4 address, or an IPv6 /64) may hold at once while half the pool is taken. */
  readonly perClient: number
  /** The longest a request waits for a free connection before it is answered 503 upstream_busy. */
  readonly waitMs: number
}

/**
 * Admission to one service's upstream connections. A proxied request holds a connection from the moment it is
 * forwarded until its response has been sent, so a client that never finishes its request body holds one for as
 * long as the server lets it (`server.timeouts`). Without a bound, 128 such requests took a whole service offline:
 * here, once half the pool is taken, no client takes more than its share, and a request that finds no connection
 * free for its client waits at most `waitMs`, first come first served among the clients that may take one, then
 * gets 503.
 * All in memory, and constant time unless requests are waiting.
 */
export class UpstreamPool {
  readonly #limits: PoolLimits
  readonly #held = new Map<string, number>()
  #inUse = 0
  #waiting: Waiter[] = []
  /** Waiters that gave up but are still in the list: it is compacted once they are half of it. */
  #gone = 0

  constructor(limits: PoolLimits) {
    this.#limits = limits
  }

  get connections(): number {
    return this.#limits.connections
  }

  /**
   * Admits a request of `client`: it holds a connection from now (undefined returned) or from when the returned
   * promise resolves, until the listener given to `onceClosed` runs (its response was sent, or the client went
   * away). The promise rejects with UpstreamBusy after the pool's wait, or when the client went away first.
   */
  admit(client: string, service: string, onceClosed: (listener: () => void) => void): Promise<void> | undefined {
    const held = this.#held.get(client) ?? 0
    if (this.#mayTake(held)) {
      this.#take(client, held)
      onceClosed(() => this.#release(client))
      return undefined
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { client, state: 'waiting', grant: () => {
        clearTimeout(timer)
        resolve()
      } }
      const giveUp = (): void => {
        waiter.state = 'gone'
        clearTimeout(timer)
        if (++this.#gone > this.#waiting.length / 2) this.#forgetGone()
        reject(new UpstreamBusy(service))
      }
      const timer = setTimeout(giveUp, this.#limits.waitMs)
      this.#waiting.push(waiter)
      onceClosed(() => {
        if (waiter.state === 'granted') this.#release(client)
        else if (waiter.state === 'waiting') giveUp()
      })
    })
  }

  /**
   * Gives back a connection `client` held, and hands free ones to the waiting clients that may take one, in the
   * order they came. (A client that finds a connection it may take never waits: everyone waiting then may not, so
   * taking it passes nobody.)
   */
  #release(client: string): void {
    const held = this.#held.get(client) ?? 0
    if (held <= 1) this.#held.delete(client)
    else this.#held.set(client, held - 1)
    this.#inUse--
    if (this.#waiting.length) this.#admitWaiting()
  }

  /**
   * A client under its share may take any free connection. Beyond its share it may still take one while more than
   * half of the pool is free: a burst of quick requests from one address is not queued when nobody else needs the
   * connections, and the other half stays for everyone else, each up to their share.
   */
  #mayTake(held: number): boolean {
    if (this.#inUse >= this.#limits.connections) return false
    return held < this.#limits.perClient || this.#inUse < this.#limits.connections / 2
  }

  #take(client: string, held: number): void {
    this.#held.set(client, held + 1)
    this.#inUse++
  }

  #admitWaiting(): void {
    for (const waiter of this.#waiting) {
      if (this.#inUse >= this.#limits.connections) break
      if (waiter.state !== 'waiting') continue
      const held = this.#held.get(waiter.client) ?? 0
      if (!this.#mayTake(held)) continue
      this.#take(waiter.client, held)
      waiter.state = 'granted'
      waiter.grant()
    }
    this.#forgetGone()
  }

  #forgetGone(): void {
    this.#waiting = this.#waiting.filter((waiter) => waiter.state === 'waiting')
    this.#gone = 0
  }
}

export interface TunnelBounds {
  /** WebSockets the service may have open at once. */
  readonly total: number
  /** The most of them one client (as for the pool: an IPv4 address, or an IPv6 /64) may hold at once. */
  readonly perClient: number
  /** The most of them one signed-in user may hold at once, from any addresses; undefined: no bound of its own. */
  readonly perUser: number | undefined
}

/**
 * Admission of a service's WebSockets, apart from its pool: a socket holds its connection to the service for as long
 * as it is open, hours perhaps, so sockets taken from the pool would starve the service's ordinary requests, and
 * without a bound of their own one client (anonymous, on a public path) opened as many as
 * `server.max_connections_per_address` let it, each one a connection to the service. A tunnel past a bound is
 * refused 503 upstream_busy at once, before anything reaches the service: a socket frees its place only when it
 * closes, so waiting for one would mostly be waiting in vain.
 */
export class TunnelLimits {
  readonly #byClient: Shares
  readonly #byUser: Shares | undefined

  constructor(bounds: TunnelBounds) {
    this.#byClient = new Shares(bounds.total, bounds.perClient)
    this.#byUser = bounds.perUser === undefined ? undefined : new Shares(Infinity, bounds.perUser)
  }

  /**
   * Admits a tunnel of `client` (`poolClient`) and, when signed in, of `user`: returns how to give its place back,
   * which does so once however often it is called. Throws UpstreamBusy, taking nothing, past a bound.
   */
  admit(client: string, user: number | undefined, service: string): () => void {
    const busy = () => new UpstreamBusy(service, `The service "${service}" takes no more WebSockets from this client now; try again later.`)
    if (!this.#byClient.take(1, client)) throw busy()
    const userKey = user === undefined || !this.#byUser ? undefined : String(user)
    if (userKey !== undefined && !this.#byUser!.take(1, userKey)) {
      this.#byClient.give(1, client)
      throw busy()
    }
    let held = true
    return () => {
      if (!held) return
      held = false
      this.#byClient.give(1, client)
      if (userKey !== undefined) this.#byUser!.give(1, userKey)
    }
  }
}

/** Who a request counts as for the shares: its client address, an IPv6 one by its /64 as lockout counts it. */
export function poolClient(request: GatewayRequest): string {
  return clientKey(request.ip)
}
