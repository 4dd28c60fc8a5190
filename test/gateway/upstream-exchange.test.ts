import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { eventually, exchange, rawClient } from '../helpers/raw-client.ts'
import type { Dispatcher } from 'undici'
import { UpstreamExchange, type ExchangeEnds } from '../../src/gateway/upstream-exchange.ts'

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
  // Codings besides chunked, which the gateway does not take off: the client would get the body still coded.
  'gzip-then-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'chunked-then-gzip': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok',
  'identity-coding': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok',
  'not-http': 'this is not http\r\n\r\n',
  'closed-at-once': '',
}
/** Answers whose headers are sound and whose body breaks off: the upstream closes the connection after these bytes. */
const CUT = {
  'cut-length': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this',
  'cut-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
}
/** Answers whose head is sound and whose body never starts: the upstream closes the connection, or resets it (`-reset`). */
const HEAD_ONLY = {
  'head-only-length': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-From: service\r\n\r\n',
  'head-only-chunked': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-From: service\r\n\r\n',
  'head-only-length-reset': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-From: service\r\n\r\n',
  'head-only-chunked-reset': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-From: service\r\n\r\n',
}

/** The gateway, once `upstream` listens, with a service in front of it on each path: the lean one and the general. */
async function gatewayInFrontOf(upstream: Server, service: Record<string, unknown> = {}, logLines?: Record<string, unknown>[]): Promise<TestGateway> {
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  return startGateway({
    ...(logLines ? { logLines } : {}),
    config: {
      services: [
        { name: 'lean', prefix: '/lean/', upstream: url, public_paths: ['/lean/*'], ...service },
        // A service with CORS takes the general path.
        { name: 'general', prefix: '/general/', upstream: url, public_paths: ['/general/*'], cors: { allowed_origins: ['https://app.example'] }, ...service },
      ],
    },
  })
}

describe('what the client gets of a misbehaving upstream', () => {
  let gw: TestGateway
  let upstream: Server
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    upstream = createServer((socket) => {
      socket.on('error', () => {})
      socket.once('data', (data) => {
        const name = /^\S+ \/\w+\/([\w-]+)/.exec(String(data))?.[1] ?? ''
        const answer = MALFORMED[name] ?? CUT[name as keyof typeof CUT] ?? HEAD_ONLY[name as keyof typeof HEAD_ONLY] ?? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
        socket.write(answer)
        setTimeout(() => (name.endsWith('-reset') ? socket.resetAndDestroy() : socket.destroy()), 50)
      })
    })
    gw = await gatewayInFrontOf(upstream, {}, logLines)
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
      // The request's line says who cut it, and why: without, it read as a client that went away.
      for (const [answer, name] of [[byLength, 'cut-length'], [chunked, 'cut-chunked']]) {
        const id = /\r\nx-request-id: ([^\r\n]+)\r\n/i.exec(answer!)?.[1]
        const line = await eventually(() => logLines.find((entry) => entry.reqId === id && entry.msg === 'request'), Boolean, 2000)
        assert.deepEqual([line?.status, line?.incomplete, line?.closed_by, line?.code], [200, true, 'gateway', 'upstream_unavailable'], `${prefix} ${name}`)
      }
    }
    const after = await gw.fetch('/lean/fine')
    assert.equal(after.status, 200, 'the gateway serves on')
    assert.equal(await after.text(), 'ok')
  })

  it('answers 502 upstream_unavailable where the upstream broke off after its head, before its body\'s first byte, on either path', async () => {
    for (const prefix of ['lean', 'general']) {
      for (const name of Object.keys(HEAD_ONLY)) {
        const response = await exchange(gw.url, `GET /${prefix}/${name} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
        assert.match(response, /^HTTP\/1\.1 502 Bad Gateway\r\n/, `${prefix} ${name}: ${JSON.stringify(response)}`)
        assert.doesNotMatch(response, /\r\nx-from:/i, `${prefix} ${name}: nothing of the service's head`)
        assert.equal(JSON.parse(response.split('\r\n\r\n')[1]!).code, 'upstream_unavailable', `${prefix} ${name}`)
      }
    }
  })

  it('resets the connection of an HTTP/1.0 client whose answer the upstream broke off, where a close would mark its end', async () => {
    for (const prefix of ['lean', 'general']) {
      // Past the close of the connection an earlier answer came on (this upstream answers once on each), which the
      // pool would otherwise send this request on.
      await sleep(100)
      const { received, error } = await endOf(gw.url, `GET /${prefix}/cut-chunked HTTP/1.0\r\nHost: gw\r\n\r\n`)
      // Neither a length nor chunks: the answer ends where the connection does.
      assert.doesNotMatch(received, /\r\n(content-length|transfer-encoding):/i, prefix)
      assert.ok(received.endsWith('\r\n\r\nhello'), `${prefix}: ${JSON.stringify(received)}`)
      assert.equal(error, 'ECONNRESET', `${prefix}: the client is told the answer is not whole`)
    }
  })
})

/** What a raw client receives until its connection ends, and how it ended: closed (undefined), or reset. */
function endOf(url: string, bytes: string): Promise<{ received: string; error: string | undefined }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = createConnection(Number(port), hostname)
    let received = ''
    let error: string | undefined
    socket.on('data', (chunk) => (received += chunk))
    socket.on('error', (failure: NodeJS.ErrnoException) => (error = failure.code))
    socket.on('close', () => resolve({ received, error }))
    socket.write(bytes)
  })
}

describe('an answer without a body that says it has one (204 or 304 with a Content-Length)', () => {
  let gw: TestGateway
  let upstream: Server
  const connections = new Set<Socket>()

  before(async () => {
    // Sends the body anyway, late, as a broken service may: on a connection used again, those bytes would be read as
    // the answer to the next request sent on it, another client's. That request is answered a little later still.
    upstream = createServer((socket) => {
      connections.add(socket)
      socket.on('error', () => {})
      socket.on('data', (data) => {
        const name = /^\S+ \/\w+\/([\w-]+)/.exec(String(data))?.[1] ?? ''
        const status = { 'late-body-304': '304 Not Modified', 'late-body-204': '204 No Content' }[name]
        const chunkedStatus = { 'late-chunks-304': '304 Not Modified', 'late-chunks-204': '204 No Content' }[name]
        if (status) {
          socket.write(`HTTP/1.1 ${status}\r\nContent-Length: 69\r\n\r\n`)
          setTimeout(() => socket.writable && socket.write('HTTP/1.1 200 OK\r\nContent-Length: 9\r\nSet-Cookie: stolen=1\r\n\r\nPOISONED!'), 200)
        } else if (chunkedStatus) {
          // A chunked body's last chunk, as servers that send Transfer-Encoding with such an answer follow it.
          socket.write(`HTTP/1.1 ${chunkedStatus}\r\nTransfer-Encoding: chunked\r\n\r\n`)
          setTimeout(() => socket.writable && socket.write('0\r\n\r\n'), 200)
        } else {
          setTimeout(() => socket.writable && socket.write('HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nmine ok'), 400)
        }
      })
    })
    // One connection to the service: the next request waits for it, and is sent on it once the answer is through.
    gw = await gatewayInFrontOf(upstream, { pool: { connections: 1, per_client: 1, wait_seconds: 5 } })
  })
  after(async () => {
    await gw.close()
    for (const socket of connections) socket.destroy()
    upstream.close()
  })

  /**
   * Asks for each of `names` (a 204 or 304 whose service sends more after it) and, 50 ms later, for another path on
   * the one connection to the service, on either path: the answer passes on without a body, and the next request gets
   * its own answer, not the late bytes.
   */
  async function nextAnswerIsItsOwn(names: string[]): Promise<void> {
    for (const prefix of ['lean', 'general']) {
      for (const name of names) {
        const first = gw.fetch(`/${prefix}/${name}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
        const next = await gw.fetch(`/${prefix}/victim`)
        const answered = await first
        assert.equal(answered.status, Number(name.slice(-3)), `${prefix} ${name}`)
        assert.equal(await answered.text(), '', `${prefix} ${name}`)
        assert.equal(next.status, 200, `${prefix} ${name}: the late bytes were read as the next answer`)
        assert.equal(next.headers.get('set-cookie'), null, `${prefix} ${name}: the late bytes became the next answer`)
        assert.equal(await next.text(), 'mine ok', `${prefix} ${name}`)
      }
    }
  }

  it('passes the answer on without a body and closes that connection to the service, so nothing sent after it reaches another request, on either path', async () => {
    await nextAnswerIsItsOwn(['late-body-304', 'late-body-204'])
  })

  it('closes that connection after a 204 or 304 with a Transfer-Encoding too, so its chunked body\'s end is not read as the next answer, on either path', async () => {
    await nextAnswerIsItsOwn(['late-chunks-304', 'late-chunks-204'])
  })
})

/** Sound answers a strict reading could take for broken ones, by the last segment of the path asked for. */
const SOUND_BUT_ODD: Record<string, string> = {
  // RFC 9110 §8.6: a 304 may carry the length the 200 would have had, and has no body (ASP.NET MVC sends one).
  'not-modified-with-length': 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 42\r\n\r\n',
  // Several links in one field, as Rails and most servers send their hints (RFC 8288 §3: a comma-separated list).
  'hints-listed': 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style, </b.js>; rel=preload; as=script\r\n\r\n' +
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  // Connection in two fields is one list (RFC 9110 §5.3): the fields either names are the upstream's hop's only.
  'connection-fields': 'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: x-hop\r\nX-Hop: upstream only\r\nContent-Length: 2\r\n\r\nok',
  // A hint Node cannot send is left out, as nginx leaves out every hint; the answer itself goes through.
  'hints-unsendable': 'HTTP/1.1 103 Early Hints\r\nLink: not a link\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
}

describe('what the client gets of an odd but sound upstream answer', () => {
  let gw: TestGateway
  let upstream: Server

  before(async () => {
    // Answers every request on a connection, as a keep-alive server does.
    upstream = createServer((socket) => {
      socket.on('error', () => {})
      socket.on('data', (data) => {
        const name = /^\S+ \/\w+\/([\w-]+)/.exec(String(data))?.[1] ?? ''
        socket.write(SOUND_BUT_ODD[name] ?? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      })
    })
    gw = await gatewayInFrontOf(upstream)
  })
  after(async () => {
    await gw.close()
    upstream.close()
  })

  it('passes on a 304 that carries a Content-Length, on either path', async () => {
    for (const prefix of ['lean', 'general']) {
      const response = await exchange(gw.url, `GET /${prefix}/not-modified-with-length HTTP/1.1\r\nHost: gw\r\nIf-None-Match: "v1"\r\nConnection: close\r\n\r\n`)
      assert.match(response, /^HTTP\/1\.1 304 Not Modified\r\n/, `${prefix}: ${JSON.stringify(response)}`)
      assert.match(response, /\r\netag: "v1"\r\n/i, prefix)
      assert.ok(response.endsWith('\r\n\r\n'), `${prefix}: no body`)
    }
  })

  it('drops the fields an upstream\'s Connection names, when it sends Connection in more than one field', async () => {
    for (const prefix of ['lean', 'general']) {
      const response = await exchange(gw.url, `GET /${prefix}/connection-fields HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      assert.match(response, /^HTTP\/1\.1 200 OK\r\n/, prefix)
      assert.doesNotMatch(response, /\r\nx-hop:/i, `${prefix}: ${JSON.stringify(response)}`)
    }
  })

  it('passes on early hints that list several links, and the answer after hints it cannot send', async () => {
    for (const prefix of ['lean', 'general']) {
      const listed = await exchange(gw.url, `GET /${prefix}/hints-listed HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      assert.deepEqual([...listed.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['103', '200'], `${prefix}: ${JSON.stringify(listed)}`)
      assert.match(listed, /^HTTP\/1\.1 103 Early Hints\r\nlink: <\/a\.css>; rel=preload; as=style, <\/b\.js>; rel=preload; as=script\r\nx-request-id: [^\r]+\r\n\r\n/i, prefix)
      const unsendable = await exchange(gw.url, `GET /${prefix}/hints-unsendable HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      assert.match(unsendable, /^HTTP\/1\.1 200 OK\r\n/, `${prefix}: ${JSON.stringify(unsendable)}`)
      assert.ok(unsendable.endsWith('\r\n\r\nok'), prefix)
    }
  })
})

const HINT = 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style\r\n\r\n'
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

describe('the bound on what a service may send before its answer, and on what a client sends after it', () => {
  let gw: TestGateway
  let upstream: Server
  const sockets = new Set<Socket>()

  before(async () => {
    upstream = createServer((socket) => {
      sockets.add(socket)
      socket.on('error', () => {})
      // Each request on a connection, as a keep-alive server answers them; a request's body is not read.
      socket.on('data', (data) => {
        const name = /^[A-Z]+ \/\w+\/([\w-]+) HTTP/.exec(String(data))?.[1] ?? ''
        if (name === 'few-hints') socket.write(HINT.repeat(6) + OK)
        else if (name === 'hint-flood') socket.write(HINT.repeat(100) + OK)
        else if (name === 'endless-interim') {
          const timer = setInterval(() => socket.write('HTTP/1.1 102 Processing\r\n\r\n'), 200)
          socket.on('close', () => clearInterval(timer))
        }
        // `no-answer` reads nothing more of the request and answers nothing.
        else if (name === 'no-answer') socket.pause()
        // A head, then nothing of the body it announces.
        else if (name === 'head-then-stall') socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n')
      })
    })
    gw = await gatewayInFrontOf(upstream, { timeouts: { response_seconds: 1 } })
  })
  after(async () => {
    for (const socket of sockets) socket.destroy()
    await gw.close()
    upstream.close()
  })

  it('passes on a few early hints, and answers 502 to a service that sends more than 32 interim answers', async () => {
    for (const prefix of ['lean', 'general']) {
      const few = await exchange(gw.url, `GET /${prefix}/few-hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      assert.deepEqual([...few.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['103', '103', '103', '103', '200'], prefix)
      const flood = await exchange(gw.url, `GET /${prefix}/hint-flood HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      assert.deepEqual([...flood.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['103', '103', '103', '103', '502'], prefix)
      assert.equal(JSON.parse(flood.split('\r\n\r\n').at(-1)!).code, 'upstream_unavailable')
    }
  })

  it('answers 504 to a service that sends interim answers without end, within response_seconds of the first', async () => {
    for (const prefix of ['lean', 'general']) {
      const started = Date.now()
      const answer = await exchange(gw.url, `GET /${prefix}/endless-interim HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 5000)
      assert.match(answer, /^HTTP\/1\.1 504 /, prefix)
      assert.ok(Date.now() - started < 2500, `${prefix}: ${Date.now() - started} ms`)
    }
  })

  it('answers 504 upstream_timeout to a service that sends its head and no body within response_seconds, on either path', async () => {
    for (const prefix of ['lean', 'general']) {
      const started = Date.now()
      const answer = await exchange(gw.url, `GET /${prefix}/head-then-stall HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 5000)
      assert.match(answer, /^HTTP\/1\.1 504 /, `${prefix}: ${JSON.stringify(answer)}`)
      assert.equal(JSON.parse(answer.split('\r\n\r\n')[1]!).code, 'upstream_timeout', prefix)
      assert.ok(Date.now() - started < 2500, `${prefix}: ${Date.now() - started} ms`)
    }
  })

  it('closes the connection after a failure answered while the client is still sending its body', async () => {
    for (const prefix of ['lean', 'general']) {
      const client = await rawClient(gw.url, '127.0.0.1', `POST /${prefix}/no-answer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n${'x'.repeat(4 * 1024 * 1024)}`)
      try {
        const received = await eventually(client.received, (text) => text.includes('\r\n\r\n'), 5000)
        assert.match(received, /^HTTP\/1\.1 504 /, prefix)
        assert.match(received, /\r\nconnection: close\r\n/i, prefix)
        const answeredAt = Date.now()
        await Promise.race([client.closed, new Promise((resolve) => setTimeout(resolve, 6000))])
        assert.ok(Date.now() - answeredAt < 5000, `${prefix}: the connection is closed within a few seconds, not held`)
      } finally {
        client.socket.destroy()
      }
    }
  })
})

describe('the bound on a client that reads nothing of its answer', () => {
  const READ_MS = 1000

  /** A client's response whose buffer the test empties as the client would read it, and the dispatch's controller. */
  function slowClient() {
    const response = Object.assign(new EventEmitter(), {
      writableLength: 0,
      writableFinished: false,
      destroyed: false,
      setHeader() {},
      writeHead() {},
      write(chunk: Buffer) {
        response.writableLength += chunk.length
        return false
      },
      destroy() {
        response.destroyed = true
      },
      /** The client read `bytes` of what the gateway held. */
      read(bytes: number) {
        response.writableLength -= bytes
      },
    })
    const controller = { paused: false, pause() { controller.paused = true }, resume() { controller.paused = false }, abort() {} }
    const ends = { client: { complete: true, httpVersion: '1.1' }, response, readMs: READ_MS, responseHeaders: () => ({}), failed() {} }
    const upstreamExchange = new UpstreamExchange(ends as unknown as ExchangeEnds)
    const dispatch = controller as unknown as Dispatcher.DispatchController
    upstreamExchange.onRequestStart(dispatch)
    upstreamExchange.onResponseStart(dispatch, 200, {})
    upstreamExchange.onResponseData(dispatch, Buffer.alloc(64 << 10))
    return { response, controller }
  }

  it('cuts off a client that has read nothing for the service\'s response_seconds', (context) => {
    context.mock.timers.enable({ apis: ['setTimeout'] })
    const { response, controller } = slowClient()
    assert.ok(controller.paused)
    context.mock.timers.tick(READ_MS - 1)
    assert.equal(response.destroyed, false)
    context.mock.timers.tick(1)
    assert.equal(response.destroyed, true)
  })

  it('never cuts off a client reading slowly, however long what the gateway holds for it takes to drain', (context) => {
    context.mock.timers.enable({ apis: ['setTimeout'] })
    const { response, controller } = slowClient()
    // 1 KiB every half a bound: the 64 KiB held take 32 bounds to drain, and the client reads all along.
    for (let i = 0; i < 63; i++) {
      context.mock.timers.tick(READ_MS / 2)
      response.read(1024)
      assert.equal(response.destroyed, false, `cut off after ${i + 1} KiB`)
    }
    assert.ok(controller.paused)
    context.mock.timers.tick(READ_MS / 2)
    response.read(1024)
    response.emit('drain')
    assert.equal(controller.paused, false)
  })
})

describe('a kept-alive connection the service closes as the next request goes out on it', () => {
  let gw: TestGateway
  let upstream: Server
  const sockets = new Set<Socket>()
  /** Each request line the service read, in order. */
  const seen: string[] = []

  before(async () => {
    // Answers every request on a connection, but a `drop` one that is not the first on its connection: that connection
    // is closed (`-reset`: reset) without an answer, as a service whose keep-alive ran out as the request arrived does.
    upstream = createServer((socket) => {
      sockets.add(socket)
      socket.on('error', () => {})
      let requests = 0
      socket.on('data', (data) => {
        const line = String(data).split('\r\n', 1)[0]!
        seen.push(line)
        if (++requests > 1 && line.includes('/drop')) return void (line.includes('-reset') ? socket.resetAndDestroy() : socket.destroy())
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
      })
    })
    // One connection to the service: a request after another is sent on the connection the first was answered on. A
    // body past 1 KiB is streamed to the service.
    gw = await gatewayInFrontOf(upstream, { pool: { connections: 1, per_client: 1, body_buffer_kb: 1 } })
  })
  after(async () => {
    for (const socket of sockets) socket.destroy()
    await gw.close()
    upstream.close()
  })

  it('sends an idempotent request again on a new connection, once, on either path', async () => {
    for (const prefix of ['lean', 'general']) {
      for (const [method, name] of [['GET', 'drop'], ['PUT', 'drop-reset'], ['DELETE', 'drop']] as const) {
        assert.equal((await gw.fetch(`/${prefix}/warm`)).status, 200)
        seen.length = 0
        const response = await gw.fetch(`/${prefix}/${name}`, { method, ...(method === 'PUT' ? { body: 'same' } : {}) })
        assert.equal(response.status, 200, `${prefix} ${method} ${name}`)
        assert.equal(await response.text(), 'ok')
        assert.deepEqual(seen, [`${method} /${prefix}/${name} HTTP/1.1`, `${method} /${prefix}/${name} HTTP/1.1`], `${prefix} ${method} ${name}: the lost one, then the answered one`)
      }
    }
  })

  it('answers 502 upstream_unavailable to a POST or PATCH, which the service may have acted on, or a request whose body was streamed, and never sends it again, on either path', async () => {
    for (const prefix of ['lean', 'general']) {
      for (const [method, body] of [['POST', 'once'], ['PATCH', 'once'], ['PUT', 'x'.repeat(4096)]]) {
        assert.equal((await gw.fetch(`/${prefix}/warm`)).status, 200)
        seen.length = 0
        const response = await gw.fetch(`/${prefix}/drop`, { method, body })
        assert.equal(response.status, 502, `${prefix} ${method}`)
        assert.equal((await response.json() as { code: string }).code, 'upstream_unavailable')
        assert.deepEqual(seen, [`${method} /${prefix}/drop HTTP/1.1`], `${prefix} ${method}: sent once`)
      }
    }
  })
})
