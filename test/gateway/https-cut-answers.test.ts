import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect } from 'node:tls'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { openConnections } from '../helpers/raw-client.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const RESPONSE_SECONDS = 1
/** Far more than the kernel's buffers and the gateway's take while the client reads nothing. */
const ANSWER_MB = 64

/** The gateway's answer to a ping, as written, on a connection of its own. */
async function pingOverTls(host: string, port: number): Promise<string> {
  const socket = connect({ host, port, rejectUnauthorized: false })
  let answer = ''
  socket.on('data', (chunk) => (answer += chunk))
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject))
  socket.write('GET /api/gateway/v1/ping/ HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')
  await new Promise((resolve) => socket.once('close', resolve))
  return answer
}

describe('a proxied answer cut over HTTPS', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    upstream = await startRecordingUpstream((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      const chunk = Buffer.alloc(1024 * 1024)
      let sent = 0
      const more = (): void => {
        while (sent < ANSWER_MB) {
          sent++
          if (!response.write(chunk)) return void response.once('drain', more)
        }
        response.end()
      }
      more()
    })
    const certificate = selfSignedCertificate(mkdtempSync(join(tmpdir(), 'https-cut-')), '127.0.0.1')
    gw = await startGateway({
      logLines,
      config: {
        server: { host: '127.0.0.1', port: 0, tls: { cert_file: certificate.cert, key_file: certificate.key } },
        services: [{ name: 'svc', prefix: '/svc/', upstream: upstream.url, public_paths: ['/svc/*'], timeouts: { response_seconds: RESPONSE_SECONDS } }],
      },
    })
  })
  after(async () => {
    await gw.close()
    upstream.server.close()
  })

  it('closes the connection of a client that reads nothing for response_seconds, and the gateway serves on', async () => {
    // Node cannot reset a TLS socket: the reset threw in a timer, which ended the gateway's process.
    const { hostname, port } = new URL(gw.url)
    const client = connect({ host: hostname, port: Number(port), rejectUnauthorized: false })
    client.on('error', () => {})
    try {
      await new Promise((resolve, reject) => client.once('secureConnect', resolve).once('error', reject))
      client.pause()
      client.write('GET /svc/large HTTP/1.1\r\nHost: gw\r\n\r\n')
      const deadline = Date.now() + (RESPONSE_SECONDS + 10) * 1000
      const cutLines = (): Record<string, unknown>[] => logLines.filter((line) => line.path === '/svc/large' && line.incomplete === true)
      // The access log line is written when the answer's stream closes, which can come a turn after the socket's count drops.
      while (((await openConnections(gw.server.server)) > 0 || cutLines().length === 0) && Date.now() < deadline) await sleep(100)
      assert.equal(await openConnections(gw.server.server), 0, 'the gateway still holds the connection of a client that reads nothing')
      const cut = cutLines()
      assert.equal(cut.length, 1, JSON.stringify(cut))
      assert.equal(cut[0]!.closed_by, 'gateway')
      assert.match(await pingOverTls(hostname, Number(port)), /^HTTP\/1\.1 200 /)
    } finally {
      client.destroy()
    }
  })
})
