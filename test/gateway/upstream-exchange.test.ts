import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { exchange } from '../helpers/raw-client.ts'

/** Answers that break HTTP/1.1's framing or syntax, by the last segment of the path asked for. */
const MALFORMED: Record<string, string> = {
  'bad-header-line': 'HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 2\r\n\r\nok',
  'obsolete-folding': 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok',
  'bare-lf': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
  'two-lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!',
  'length-and-chunked': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'control-character': 'HTTP/1.1 200 OK\r\nX-A: a\u0001b\r\nContent-Length: 2\r\n\r\nok',
  'status-below-100': 'HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok',
  'switching-unasked': 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n',
  'not-http': 'this is not http\r\n\r\n',
  'closed-at-once': '',
}
/** Answers whose headers are sound and whose body breaks off: the upstream closes the connection after these bytes. */
const CUT = {
  'cut-length': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this',
  'cut-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
}

describe('what the client gets of a misbehaving upstream', () => {
  let gw: TestGateway
  let upstream: Server

  before(async () => {
    upstream = createServer((socket) => {
      socket.on('error', () => {})
      socket.once('data', (data) => {
        const name = /^\S+ \/\w+\/([\w-]+)/.exec(String(data))?.[1] ?? ''
        const answer = MALFORMED[name] ?? CUT[name as keyof typeof CUT] ?? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
        socket.write(answer)
        setTimeout(() => socket.destroy(), 50)
      })
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
    gw = await startGateway({
      config: {
        services: [
          { name: 'lean', prefix: '/lean/', upstream: url, public_paths: ['/lean/*'] },
          // A service with CORS takes the general path.
          { name: 'general', prefix: '/general/', upstream: url, public_paths: ['/general/*'], cors: { allowed_origins: ['https://app.example'] } },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    upstream.close()
  })

  it('answers 502 upstream_unavailable to an answer that is not valid HTTP, on either path', async () => {
    for (const prefix of ['lean', 'general']) {
      for (const name of Object.keys(MALFORMED)) {
        const response = await exchange(gw.url, `GET /${prefix}/${name} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
        assert.match(response, /^HTTP\/1\.1 502 Bad Gateway\r\n/, `${prefix} ${name}`)
        assert.equal(JSON.parse(response.split('\r\n\r\n')[1]!).code, 'upstream_unavailable', `${prefix} ${name}`)
      }
    }
  })

  it('cuts the client\'s response short where the upstream broke off its body, so it cannot pass for whole', async () => {
    for (const prefix of ['lean', 'general']) {
      const byLength = await exchange(gw.url, `GET /${prefix}/cut-length HTTP/1.1\r\nHost: gw\r\n\r\n`)
      assert.match(byLength, /^HTTP\/1\.1 200 OK\r\n/, prefix)
      assert.match(byLength, /\r\ncontent-length: 100\r\n/i, prefix)
      assert.ok(byLength.endsWith('\r\n\r\nonly this'), `${prefix}: ${JSON.stringify(byLength)}`)
      const chunked = await exchange(gw.url, `GET /${prefix}/cut-chunked HTTP/1.1\r\nHost: gw\r\n\r\n`)
      assert.match(chunked, /^HTTP\/1\.1 200 OK\r\n/, prefix)
      assert.ok(chunked.endsWith('\r\n\r\n5\r\nhello\r\n'), `${prefix}: no last chunk: ${JSON.stringify(chunked)}`)
    }
    const after = await gw.fetch('/lean/fine')
    assert.equal(after.status, 200, 'the gateway serves on')
    assert.equal(await after.text(), 'ok')
  })
})
