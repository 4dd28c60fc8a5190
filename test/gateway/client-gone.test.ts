import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { rawClient } from '../helpers/raw-client.ts'
import { ADMIN_PASSWORD, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const CONNECTIONS = 2

/**
 * A client that leaves while its request is judged: its credentials are verified off the event loop (argon2id), so
 * its connection can close before the request would take one of the service's upstream connections. Each such
 * request used to keep one for good, as nothing was left to give it back, and a few of them made the service answer
 * 503 upstream_busy to everyone; on a public path a wrong password did it, without an account.
 */
describe('a client that leaves while its request is judged', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream
  const logLines: Record<string, any>[] = []

  before(async () => {
    upstream = await startRecordingUpstream()
    const pool = { connections: CONNECTIONS, per_client: CONNECTIONS, wait_seconds: 1 }
    gw = await startGateway({
      logLines,
      config: {
        server: { host: '127.0.0.1', port: 0 },
        services: [
          { name: 'lean', prefix: '/lean/', upstream: upstream.url, accepts: ['basic'], public_paths: ['/lean/open/*'], pool },
          // A service with CORS takes the general path.
          { name: 'general', prefix: '/general/', upstream: upstream.url, accepts: ['basic'], public_paths: ['/general/open/*'], pool, cors: { allowed_origins: ['https://app.example'] } },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  let address = 0
  /** Sends a request from an address of its own (so its credentials are verified afresh) and leaves at once. */
  async function sendAndLeave(request: string): Promise<void> {
    const client = await rawClient(gw.url, `127.0.2.${++address}`, request)
    await sleep(5)
    client.socket.destroy()
  }

  for (const prefix of ['lean', 'general']) {
    it(`keeps the service's upstream connections for the clients still there (${prefix})`, async () => {
      const right = basic('admin', ADMIN_PASSWORD)
      const wrong = basic('nobody', 'not-the-password')
      for (let i = 0; i < CONNECTIONS * 2; i++) {
        await sendAndLeave(`GET /${prefix}/private HTTP/1.1\r\nHost: gw\r\nAuthorization: ${right}\r\n\r\n`)
        await sendAndLeave(`GET /${prefix}/open/x HTTP/1.1\r\nHost: gw\r\nAuthorization: ${wrong}\r\n\r\n`)
        await sendAndLeave(`POST /${prefix}/private HTTP/1.1\r\nHost: gw\r\nAuthorization: ${right}\r\nContent-Length: 3\r\n\r\nabc`)
      }
      // Past the verifications of those that left.
      await sleep(2000)
      for (let i = 0; i < CONNECTIONS + 1; i++) {
        const response = await gw.fetch(`/${prefix}/open/after`)
        assert.equal(response.status, 200, `${prefix}: ${await response.text()}`)
      }
    })
  }

  it('judges a request whose client reset the connection meanwhile without failing: the connection\'s address stays known', async () => {
    const right = basic('admin', ADMIN_PASSWORD)
    const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
    const requests = [
      // An escape in the path takes the request past the lean path, to Fastify's router; so do an upgrade and CORS.
      `GET /lean/priv%61te HTTP/1.1\r\nHost: gw\r\nAuthorization: ${right}\r\n\r\n`,
      `GET /lean/socket HTTP/1.1\r\nHost: gw\r\nAuthorization: ${right}\r\n${upgrade}\r\n`,
      `GET /lean/open/socket HTTP/1.1\r\nHost: gw\r\n${upgrade}\r\n`,
      `GET /general/private HTTP/1.1\r\nHost: gw\r\nAuthorization: ${right}\r\n\r\n`,
    ]
    const before = logLines.length
    const { hostname, port } = new URL(gw.url)
    // From another process, which resets each connection a few milliseconds after sending, as a client that gives
    // up does: often before the gateway, busy with the others, has taken the connection.
    const client = `
import socket, struct, sys, time
for request in sys.argv[3:]:
    for wait in (0, 0.001, 0.003, 0.005) * 5:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        s.sendall(request.encode())
        time.sleep(wait)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.close()
`
    await promisify(execFile)('python3', ['-c', client, hostname, port, ...requests])
    await sleep(500)
    const failures = logLines.slice(before).filter((line) => line.level >= 50 || line.code === 'internal_error' || line.statusCode >= 500)
    assert.deepEqual(failures.map((line) => `${line.msg} ${line.code ?? ''} ${line.err?.message ?? ''}`), [])
  })
})
