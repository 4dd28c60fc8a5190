import assert from 'node:assert/strict'
import { get } from 'node:http'
import { createServer, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'

/** What the service answers, by the path's last part. */
const ANSWERS: Record<string, string> = {
  fine: 'HTTP/1.1 200 Totally Fine\r\nContent-Length: 2\r\n\r\nok',
  weird: 'HTTP/1.1 599 Weird Status\r\nContent-Length: 0\r\n\r\n',
  empty: 'HTTP/1.1 201 \r\nContent-Length: 0\r\n\r\n',
  plain: 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n',
  // A head, then nothing: the gateway answers 502 itself.
  broken: 'HTTP/1.1 200 Fine So Far\r\nContent-Length: 10\r\n\r\n',
}

function statusLine(url: string): Promise<{ status: number; reason: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (response) => {
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode!, reason: response.statusMessage! }))
    }).on('error', reject)
  })
}

/** A proxy passes the service's reason phrase on, as nginx's proxy_pass does; Node wrote its own words for each status. */
describe('a service\'s reason phrase', () => {
  let gw: TestGateway
  let upstream: Server

  before(async () => {
    upstream = createServer((socket) => {
      socket.once('data', (request) => {
        const kind = /^\S+ \/raw\/(\w+)/.exec(String(request))?.[1] ?? 'plain'
        if (kind === 'broken') socket.write(ANSWERS.broken!, () => setTimeout(() => socket.destroy(), 50))
        else socket.end(ANSWERS[kind])
      })
      socket.on('error', () => {})
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const { port } = upstream.address() as { port: number }
    gw = await startGateway({ config: { services: [{ name: 'raw', prefix: '/raw/', upstream: `http://127.0.0.1:${port}`, public_paths: ['/raw/*'] }] } })
  })
  after(async () => {
    await gw.close()
    upstream.close()
  })

  it('reaches the client as the service wrote it, on both of the proxy\'s paths (one for a path with escapes)', async () => {
    for (const tail of ['', '%2Dx']) {
      assert.deepEqual(await statusLine(`${gw.url}/raw/fine${tail}`), { status: 200, reason: 'Totally Fine' }, tail)
      assert.deepEqual(await statusLine(`${gw.url}/raw/weird${tail}`), { status: 599, reason: 'Weird Status' }, tail)
      assert.deepEqual(await statusLine(`${gw.url}/raw/empty${tail}`), { status: 201, reason: '' }, tail)
      assert.deepEqual(await statusLine(`${gw.url}/raw/plain${tail}`), { status: 404, reason: 'Not Found' }, tail)
    }
  })

  it('is not the reason of the gateway\'s own answer when the service breaks off after its head', async () => {
    assert.deepEqual(await statusLine(`${gw.url}/raw/broken`), { status: 502, reason: 'Bad Gateway' })
  })
})
