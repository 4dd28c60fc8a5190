import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as connectTls } from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { openConnections } from '../helpers/raw-client.ts'

const SEND_SECONDS = 1
/** The API documentation's script: open to all, and the largest of the gateway's own answers (about 1.7 MB). */
const LARGE_ANSWER = '/api/gateway/v1/docs/static/swagger-ui-bundle.js'
/**
 * Answers asked for at once on one connection (pipelined), more than the kernel's socket buffers take (at most
 * 4 MB sent, and the client's receive buffer): the last of them waits in the gateway's memory, as one large answer
 * does over a real network, where the buffers hold far less than on loopback.
 */
const PIPELINED = 6

function pipelinedRequests(count: number): string {
  return `GET ${LARGE_ANSWER} HTTP/1.1\r\nHost: gw\r\n\r\n`.repeat(count)
}

function connectTo(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Asks for more than the buffers take on `client`, reads nothing, and sees the gateway cut the connection. */
async function assertCutOff(gw: TestGateway, logLines: Record<string, unknown>[], client: Socket): Promise<void> {
  client.on('error', () => {})
  try {
    client.pause()
    client.write(pipelinedRequests(PIPELINED))
    // Without the bound the connection, and what waits on it, stays for as long as the client likes: Node's
    // keep-alive timeout starts only once an answer is sent whole, and request_seconds ends once a request arrived.
    const deadline = Date.now() + (SEND_SECONDS + 10) * 1000
    const cutLines = (): Record<string, unknown>[] => logLines.filter((line) => line.path === LARGE_ANSWER && line.incomplete === true)
    // The request's log line is written when its answer's stream closes, which can come a turn after the socket's count drops.
    while (((await openConnections(gw.server.server)) > 0 || cutLines().length === 0) && Date.now() < deadline) await sleep(100)
    assert.equal(await openConnections(gw.server.server), 0, 'the gateway still holds the connection of a client that reads nothing')
    const cut = cutLines()
    assert.equal(cut.length, 1, JSON.stringify(cut))
    assert.equal(cut[0]!.closed_by, 'gateway')
  } finally {
    client.destroy()
  }
}

describe('a client that leaves the gateway\'s own answer unread (server.timeouts.send_seconds)', () => {
  let gw: TestGateway
  let size: number
  let answerBytes: number
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    gw = await startGateway({ logLines, config: { server: { host: '127.0.0.1', port: 0, timeouts: { headers_seconds: 10, request_seconds: 300, send_seconds: SEND_SECONDS } } } })
    // Asked for on a connection of its own that closes after it, so that the tests below find the gateway holding none.
    const client = await connectTo(gw.url)
    const chunks: Buffer[] = []
    client.on('data', (chunk: Buffer) => chunks.push(chunk))
    client.write(`GET ${LARGE_ANSWER} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
    await new Promise((resolve) => client.once('close', resolve))
    const answer = Buffer.concat(chunks)
    assert.match(answer.subarray(0, 20).toString(), /^HTTP\/1\.1 200 /)
    size = answer.byteLength - answer.indexOf('\r\n\r\n') - 4
    // Each of the kept-alive answers below has these header fields, with Keep-Alive besides Connection.
    answerBytes = answer.byteLength + 'keep-alive\r\nKeep-Alive: timeout=72'.length - 'close'.length
    assert.ok(size > 1_000_000, `the answer has ${size} bytes`)
    assert.equal(await openConnections(gw.server.server), 0)
  })
  after(() => gw.close())

  it('is cut off once it has read nothing for send_seconds, and the gateway no longer holds the answer', async () => {
    await assertCutOff(gw, logLines, await connectTo(gw.url))
  })

  it('keeps sending to a client that reads slowly, for longer than send_seconds in all', async () => {
    const client = await connectTo(gw.url)
    try {
      const count = 3
      const started = Date.now()
      let received = 0
      const ended = new Promise<void>((resolve) => client.once('close', () => resolve()))
      client.on('error', () => {})
      client.on('data', (chunk: Buffer) => {
        received += chunk.length
        // A slow reader: a pause after each chunk, so the answers take seconds to arrive.
        client.pause()
        setTimeout(() => client.resume(), 25)
        if (received >= count * answerBytes) client.end()
      })
      client.write(pipelinedRequests(count))
      await Promise.race([ended, sleep(60_000, undefined, { ref: false })])
      assert.equal(received, count * answerBytes)
      assert.ok(Date.now() - started > SEND_SECONDS * 1000, `read all within ${Date.now() - started} ms, too fast to show a slow reader is not cut`)
    } finally {
      client.destroy()
    }
  })
})

describe('a client that leaves the gateway\'s own answer unread over HTTPS', () => {
  let gw: TestGateway
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    const certificate = selfSignedCertificate(mkdtempSync(join(tmpdir(), 'unread-answers-')), '127.0.0.1')
    const tls = { cert_file: certificate.cert, key_file: certificate.key }
    gw = await startGateway({ logLines, config: { server: { host: '127.0.0.1', port: 0, tls, timeouts: { headers_seconds: 10, request_seconds: 300, send_seconds: SEND_SECONDS } } } })
  })
  after(() => gw.close())

  it('is cut off too: a TLS socket is closed, as Node cannot reset one', async () => {
    const { hostname, port } = new URL(gw.url)
    const client = connectTls({ host: hostname, port: Number(port), rejectUnauthorized: false })
    await new Promise((resolve, reject) => client.once('secureConnect', resolve).once('error', reject))
    await assertCutOff(gw, logLines, client)
  })
})
