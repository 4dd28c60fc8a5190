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
