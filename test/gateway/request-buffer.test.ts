import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { requestFrom } from '../helpers/from-address.ts'
import { closeAtServer, eventually, rawClient } from '../helpers/raw-client.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const post = (path: string, length: number | 'chunked') =>
  `POST ${path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/octet-stream\r\n${length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n\r\n`

describe('request bodies read before they take an upstream connection', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream
  /** What the service received of each body: its length and SHA-256, by path. */
  const digests = new Map<string, { bytes: number; sha256: string; headers: Record<string, unknown> }>()

  before(async () => {
    upstream = await startRecordingUpstream()
    upstream.server.removeAllListeners('request')
    upstream.server.on('request', async (request, response) => {
      upstream.active.most = Math.max(upstream.active.most, ++upstream.active.now)
      response.once('close', () => upstream.active.now--)
      const hash = createHash('sha256')
      let bytes = 0
      try {
        for await (const chunk of request) {
          hash.update(chunk as Buffer)
          bytes += (chunk as Buffer).length
        }
      } catch {
        return
      }
      digests.set(request.url!, { bytes, sha256: hash.digest('hex'), headers: request.headers })
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes }))
    })
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, body_buffers_mb: 1, timeouts: { headers_seconds: 5, request_seconds: 20 } },
        services: [
          // The defaults: bodies up to 64 KiB whole.
          { name: 'lean', prefix: '/lean/', upstream: upstream.url, public_paths: ['/lean/*'], pool: { connections: 4, per_client: 1, wait_seconds: 0.3 } },
          // A service with CORS is served by the general path.
          { name: 'general', prefix: '/general/', upstream: upstream.url, public_paths: ['/general/*'], cors: { allowed_origins: ['https://app.example'] }, pool: { connections: 4, per_client: 1, wait_seconds: 0.3 } },
          { name: 'small', prefix: '/small/', upstream: upstream.url, public_paths: ['/small/*'], pool: { body_buffer_kb: 1 } },
          { name: 'large', prefix: '/large/', upstream: upstream.url, public_paths: ['/large/*'], pool: { body_buffer_kb: 1024 } },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  for (const service of ['lean', 'general']) {
    it(`(${service} path) holds no upstream connection while 200 clients dribble small bodies, and forwards each once whole`, async () => {
      const body = randomBytes(1000)
      upstream.active.most = upstream.active.now
      const dribblers = await Promise.all(Array.from({ length: 200 }, (_, i) =>
        rawClient(gw.url, `127.0.1.${(i % 50) + 1}`, Buffer.concat([Buffer.from(post(`/${service}/slow/${i}`, body.length)), body.subarray(0, 10)]))))
      try {
        await sleep(300)
        assert.equal(upstream.active.most, 0, 'no dribbling request reached the service')
        // With 4 connections and a share of 1, streamed dribblers would have left nothing for anyone else.
        for (let i = 0; i < 5; i++) {
          const asked = Date.now()
          const response = await requestFrom('127.0.0.1', `${gw.url}/${service}/legitimate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
          assert.equal(response.status, 200, response.body)
          assert.equal(response.json().bytes, 7)
          // Well within the dribblers' request timeout (20 s), when a connection they held would come free; a
          // request that found none free would be told the service is busy after 0.3 s instead.
          assert.ok(Date.now() - asked < 3000, `answered after ${Date.now() - asked} ms`)
        }
        // The rest of ten bodies arrives: each is forwarded whole, in one piece with its length.
        for (const client of dribblers.slice(0, 10)) client.socket.write(body.subarray(10))
        const answered = await eventually(() => dribblers.slice(0, 10).filter((client) => client.received().startsWith('HTTP/1.1 200 ')).length, (n) => n === 10, 5000)
        assert.equal(answered, 10)
        const seen = digests.get(`/${service}/slow/3`)!
        assert.equal(seen.bytes, 1000)
        assert.equal(seen.sha256, createHash('sha256').update(body).digest('hex'))
        assert.equal(seen.headers['content-length'], '1000')
      } finally {
        for (const client of dribblers) client.socket.destroy()
      }
    })
  }

  it('forwards a chunked body under the bound whole, with its length', async () => {
    const client = await rawClient(gw.url, '127.0.0.1', post('/lean/chunked', 'chunked') + '5\r\nhello\r\n')
    await sleep(200)
    assert.equal(upstream.active.now, 0, 'not forwarded before its last chunk')
    client.socket.write('6\r\n world\r\n0\r\n\r\n')
    await eventually(() => client.received(), (text) => text.includes('{"bytes":11}'), 3000)
    assert.match(client.received(), /^HTTP\/1\.1 200 /)
    const seen = digests.get('/lean/chunked')!
    assert.equal(seen.headers['content-length'], '11')
    assert.equal(seen.headers['transfer-encoding'], undefined)
    client.socket.destroy()
  })

  for (const service of ['lean', 'general']) {
    it(`(${service} path) refuses a body with a transfer coding besides chunked, which would reach the service still coded`, async () => {
      for (const coding of ['gzip, chunked', 'deflate,chunked']) {
        const client = await rawClient(gw.url, '127.0.0.1', `POST /${service}/coded HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: ${coding}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`)
        const received = await eventually(() => client.received(), (text) => text.includes('}'), 3000)
        assert.match(received, /^HTTP\/1\.1 400 /, coding)
        assert.match(received, /"code":"bad_request"/, coding)
        client.socket.destroy()
      }
      assert.equal(digests.has(`/${service}/coded`), false)
    })
  }

  it('reads a larger body\'s first body_buffer_kb before forwarding it, then streams the rest as it comes', async () => {
    const body = randomBytes(5000)
    for (const [name, head] of [['length', post('/small/big', body.length)], ['chunked', post('/small/big-chunked', 'chunked')]] as const) {
      const frame = (part: Buffer) => name === 'chunked' ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part
      const client = await rawClient(gw.url, '127.0.0.1', Buffer.concat([Buffer.from(head), frame(body.subarray(0, 500))]))
      await sleep(200)
      assert.equal(upstream.active.now, 0, `${name}: not forwarded with 500 bytes of it read`)
      client.socket.write(frame(body.subarray(500, 1500)))
      assert.equal(await eventually(() => upstream.active.now, (now) => now === 1, 2000), 1, `${name}: forwarded once 1 KiB was read, before the body ended`)
      client.socket.write(Buffer.concat([frame(body.subarray(1500)), Buffer.from(name === 'chunked' ? '0\r\n\r\n' : '')]))
      await eventually(() => client.received(), (text) => text.includes('{"bytes":5000}'), 3000)
      assert.match(client.received(), /^HTTP\/1\.1 200 /, name)
      assert.equal(digests.get(name === 'chunked' ? '/small/big-chunked' : '/small/big')!.sha256, createHash('sha256').update(body).digest('hex'), name)
      client.socket.destroy()
    }
  })

  it('streams a body that would take the bodies held past server.body_buffers_mb, and has the budget back once clients go away', async () => {
    const total = 2 * 1024 * 1024
    const first = await rawClient(gw.url, '127.0.0.30', Buffer.concat([Buffer.from(post('/large/first', total)), randomBytes(700 * 1024)]))
    await sleep(300)
    assert.equal(upstream.active.now, 0, 'the first 700 KiB are held within the 1 MiB budget')
    const second = await rawClient(gw.url, '127.0.0.31', Buffer.concat([Buffer.from(post('/large/second', total)), randomBytes(400 * 1024)]))
    assert.equal(await eventually(() => upstream.active.now, (now) => now === 1, 2000), 1, 'the second body, past the budget, is streamed at once')
    // Seen closed by the gateway, whose answers to them, as they close, give the budget back.
    await closeAtServer(gw.server.server, [first, second])
    assert.equal(await eventually(() => upstream.active.now, (now) => now === 0, 2000), 0)
    const third = await rawClient(gw.url, '127.0.0.32', Buffer.concat([Buffer.from(post('/large/third', total)), randomBytes(900 * 1024)]))
    await sleep(300)
    assert.equal(upstream.active.now, 0, 'the budget the gone clients held is free again')
    third.socket.destroy()
  })

  it('answers a body cut off by request_seconds 408 without ever forwarding it', async () => {
    const quick = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, timeouts: { headers_seconds: 1, request_seconds: 1 } },
        services: [{ name: 'svc', prefix: '/svc/', upstream: upstream.url, public_paths: ['/svc/*'] }],
      },
    })
    try {
      const before = upstream.active.most
      const client = await rawClient(quick.url, '127.0.0.1', post('/svc/never', 100) + 'x')
      await client.closed
      assert.match(client.received(), /^HTTP\/1\.1 408 /)
      assert.equal(digests.has('/svc/never'), false)
      assert.equal(upstream.active.most, before)
    } finally {
      await quick.close()
    }
  })
})
