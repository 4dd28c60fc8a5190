import assert from 'node:assert/strict'
import { connect, type Server, type Socket } from 'node:net'
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

/**
 * The connections `server` holds open. It counts one closed as it destroys it, and runs that socket's close
 * listeners (a per-address share among them) before any later connection can reach it.
 */
export function openConnections(server: Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count))))
}

/** Polls `server`'s open connections until `done` holds of their number; fails after `ms`. */
export async function untilConnections(server: Server, done: (count: number) => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  let count = await openConnections(server)
  while (!done(count)) {
    assert.ok(Date.now() < deadline, `${what}: the server holds ${count} connections`)
    await sleep(20)
    count = await openConnections(server)
  }
}

/** Destroys `clients` and waits until `server` has seen them close: a client's own socket closing says nothing of when it does. */
export async function closeAtServer(server: Server, clients: RawClient[]): Promise<void> {
  const before = await openConnections(server)
  for (const client of clients) client.socket.destroy()
  await Promise.all(clients.map((client) => client.closed))
  await untilConnections(server, (count) => count <= before - clients.length, `${clients.length} closed connection(s) not yet seen closed`)
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

/** The answer's status, X-Request-Id and error code, read from the raw bytes. */
export function answerOf(raw: string): { status: number; id: string | undefined; code: string | undefined } {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(raw)?.[1])
  const id = /\r\nx-request-id: ([^\r\n]+)\r\n/i.exec(raw)?.[1]
  const code = /"code":"([^"]+)"/.exec(raw)?.[1]
  return { status, id, code }
}
