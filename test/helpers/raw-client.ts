import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export interface RawClient {
  socket: Socket
  received: () => string
  closed: Promise<void>
}

/** A TCP connection from `localAddress` that sends `bytes` first and records what comes back. */
export function rawClient(url: string, localAddress: string, bytes: string | Buffer): Promise<RawClient> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    let received = ''
    let markClosed: () => void
    const closed = new Promise<void>((done) => (markClosed = done))
    const socket = connect({ host: hostname, port: Number(port), localAddress }, () => {
      socket.write(bytes)
      resolve({ socket, received: () => received, closed })
    })
    socket.on('data', (chunk) => (received += chunk))
    socket.on('error', () => {})
    socket.on('close', () => markClosed())
    socket.once('error', reject)
  })
}

/**
 * Connections that send a request line and no end of headers: the listener waits for the rest, and each stays open
 * until it closes it (or `destroy` does). Every one opened is kept, to be destroyed after the test.
 */
export class HalfRequests {
  readonly clients: RawClient[] = []

  async open(url: string, localAddress: string, requestLine = 'GET / HTTP/1.1\r\n'): Promise<RawClient> {
    const client = await rawClient(url, localAddress, requestLine)
    this.clients.push(client)
    return client
  }

  destroy(): void {
    for (const client of this.clients) client.socket.destroy()
  }
}

/** Asserts the listener closed `client` as it arrived (within two seconds), without a byte. */
export async function closedUnanswered(client: RawClient): Promise<void> {
  await Promise.race([client.closed, sleep(2000)])
  assert.ok(client.socket.closed, 'closed as it arrives')
  assert.equal(client.received(), '')
}

/** Polls `read` until `done` holds of its result or `ms` have passed; returns the last result either way. */
export async function eventually<T>(read: () => T, done: (value: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms
  let value = read()
  while (!done(value) && Date.now() < deadline) {
    await sleep(20)
    value = read()
  }
  return value
}

/** Exact bytes over a raw socket, and everything the gateway sends back until it closes the connection. */
export function exchange(url: string, bytes: string, idleMs = 3000): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let received = ''
    const timer = setTimeout(() => reject(new Error(`connection still open after ${idleMs} ms; received:\n${received}`)), idleMs)
    socket.on('data', (chunk) => (received += chunk))
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(received)
    })
    socket.on('error', () => {})
    socket.write(bytes)
  })
}
