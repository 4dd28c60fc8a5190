import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { requestFrom } from '../helpers/from-address.ts'
import { closeAtServer, eventually, rawClient, untilConnections, type RawClient } from '../helpers/raw-client.ts'
import { ADMIN_PASSWORD, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const ATTACKERS = ['127.0.0.10', '127.0.0.11', '127.0.0.12', '127.0.0.13']
const CONNECTIONS = 64
const PER_CLIENT = 4
/** The most the attackers can hold: beyond their share only while half the pool is free, then each up to its share. */
const MOST_HELD = CONNECTIONS / 2 + ATTACKERS.length * (PER_CLIENT - 1)
const HEADERS_SECONDS = 1
const REQUEST_SECONDS = 6

describe('slow clients', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream

  before(async () => {
    upstream = await startRecordingUpstream()
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, timeouts: { headers_seconds: HEADERS_SECONDS, request_seconds: REQUEST_SECONDS } },
        // Bodies streamed as they come (no body_buffer_kb), as a body larger than the bound is: the pool's shares are what holds.
        services: [{ name: 'svc', prefix: '/svc/', upstream: upstream.url, public_paths: ['/svc/*'], pool: { connections: CONNECTIONS, per_client: PER_CLIENT, wait_seconds: 0.5, body_buffer_kb: 0 } }],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  it('keeps a service available to others while 1,000 connections dribble request bodies, and cuts them off in time', async () => {
    // Dribblers that reached the service, counted as they arrive: the ones held there are cut at request_seconds,
    // which a loaded machine may reach before the count below is taken.
    let forwarded = 0
    upstream.server.on('request', (request) => void (request.url === '/svc/upload' && forwarded++))
    const dribblers: RawClient[] = []
    for (let i = 0; i < 1000; i += 50) {
      dribblers.push(...await Promise.all(Array.from({ length: 50 }, (_, j) => rawClient(gw.url, ATTACKERS[(i + j) % ATTACKERS.length]!,
        'POST /svc/upload HTTP/1.1\r\nHost: gw\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\nx'))))
    }
    const connected = Date.now()
    const dribble = setInterval(() => {
      for (const client of dribblers) if (!client.socket.destroyed) client.socket.write('x')
    }, 1000)
    try {
      await sleep(300)
      for (let i = 0; i < 20; i++) {
        const asked = Date.now()
        const response = await requestFrom('127.0.0.1', `${gw.url}/svc/legitimate/${i}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
        assert.equal(response.status, 200, response.body)
        // Well within the dribblers' request timeout, which is when their connections would otherwise come free.
        assert.ok(Date.now() - asked < 3000, `answered after ${Date.now() - asked} ms`)
      }
      // Once half the pool is taken, each attacking address holds at most its share of the service's connections;
      // the other requests wait for half a second and are told the service is busy.
      assert.ok(upstream.active.most <= MOST_HELD + 1, `the upstream had ${upstream.active.most} requests at once`)
      const toldBusy = () => dribblers.filter((client) => client.received().startsWith('HTTP/1.1 503 ') && client.received().includes('"code":"upstream_busy"'))
      const busy = await eventually(toldBusy, (found) => found.length + forwarded === 1000, 10_000)
      assert.equal(busy.length + forwarded, 1000, `${busy.length} told busy, ${forwarded} forwarded`)
      assert.match(busy[0]!.received(), /\r\nretry-after: 1\r\n/i)
      // None is held past the request timeout, plus Node's once-a-second check, plus the time this one process takes
      // to answer and close 1,000 connections and see them closed: a second on a quiet machine, three or four on one
      // that runs at a third of its speed. Without the timeout they would be held as long as they dribble, for good.
      await Promise.all(dribblers.map((client) => client.closed))
      assert.ok(Date.now() - connected < (REQUEST_SECONDS + 1 + 5) * 1000, `the last dribbler was cut ${Date.now() - connected} ms after all had connected`)
      // The service's side of the last ones closes a moment after the clients' own.
      assert.equal(await eventually(() => upstream.active.now, (now) => now === 0, 3000), 0)
    } finally {
      clearInterval(dribble)
      for (const client of dribblers) client.socket.destroy()
    }
  })

  it('gives a client\'s upstream connections back when it goes away in the middle of its bodies', async () => {
    const request = 'POST /svc/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\nxxxx'
    for (let round = 0; round < 3; round++) {
      const clients = await Promise.all(Array.from({ length: 4 }, () => rawClient(gw.url, '127.0.0.20', request)))
      assert.equal(await eventually(() => upstream.active.now, (now) => now === 4, 2000), 4, `round ${round}: all four forwarded`)
      for (const client of clients) client.socket.destroy()
      assert.equal(await eventually(() => upstream.active.now, (now) => now === 0, 2000), 0, `round ${round}: all four given back`)
    }
  })

  it('answers 408 and closes a connection whose headers do not arrive in time', async () => {
    const started = Date.now()
    const client = await rawClient(gw.url, '127.0.0.1', 'GET /svc/x HTTP/1.1\r\nHost: gw\r\nX-Slow: ')
    const dribble = setInterval(() => client.socket.write('a'), 200)
    await client.closed
    clearInterval(dribble)
    assert.ok(Date.now() - started < (HEADERS_SECONDS + 2) * 1000, `closed after ${Date.now() - started} ms`)
    assert.match(client.received(), /^HTTP\/1\.1 408 .*"code":"request_timeout"/s)
  })
})

describe('the connection cap', () => {
  it('closes connections beyond server.max_connections as they arrive, and takes new ones once some close', async () => {
    const gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, max_connections: 5 } } })
    try {
      const held = await Promise.all(Array.from({ length: 5 }, () => rawClient(gw.url, '127.0.0.1', 'GET /api/ HTTP/1.1\r\nHost: gw\r\n\r\n')))
      const answered = await eventually(() => held.filter((client) => client.received().startsWith('HTTP/1.1 200 ')).length, (count) => count === 5, 5000)
      assert.equal(answered, 5)
      const refused = await rawClient(gw.url, '127.0.0.1', 'GET /api/ HTTP/1.1\r\nHost: gw\r\n\r\n')
      await refused.closed
      assert.equal(refused.received(), '')
      await closeAtServer(gw.server.server, [held[0]!])
      const later = await rawClient(gw.url, '127.0.0.1', 'GET /api/ HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')
      await later.closed
      assert.match(later.received(), /^HTTP\/1\.1 200 /)
      for (const client of held) client.socket.destroy()
    } finally {
      await gw.close()
    }
  })
})

describe('the cap on one address\'s connections', () => {
  const ask = 'GET /api/ HTTP/1.1\r\nHost: gw\r\n\r\n'
  const served = (client: RawClient) => client.received().startsWith('HTTP/1.1 200 ')

  it('closes a connection beyond server.max_connections_per_address from one address, serves other addresses, and takes it again once one closes', async () => {
    const gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, max_connections: 50, max_connections_per_address: 3, trusted_proxies: ['127.0.0.32'] } } })
    const clients: RawClient[] = []
    try {
      const held = await Promise.all(Array.from({ length: 3 }, () => rawClient(gw.url, '127.0.0.30', ask)))
      clients.push(...held)
      assert.ok((await eventually(() => held.filter(served).length, (count) => count === 3, 2000)) === 3)
      const refused = await rawClient(gw.url, '127.0.0.30', ask)
      clients.push(refused)
      await Promise.race([refused.closed, sleep(2000)])
      assert.ok(refused.socket.closed, 'the connection over the share is closed as it arrives')
      assert.equal(refused.received(), '')
      const other = await rawClient(gw.url, '127.0.0.31', ask)
      clients.push(other)
      assert.ok(served(await eventually(() => other, served, 2000)))
      // A trusted proxy carries many clients' connections: it is not held to one address's share.
      const proxied = await Promise.all(Array.from({ length: 5 }, () => rawClient(gw.url, '127.0.0.32', ask)))
      clients.push(...proxied)
      assert.equal(await eventually(() => proxied.filter(served).length, (count) => count === 5, 2000), 5)
      await closeAtServer(gw.server.server, [held[0]!])
      const later = await rawClient(gw.url, '127.0.0.30', ask)
      clients.push(later)
      assert.ok(served(await eventually(() => later, served, 2000)))
    } finally {
      for (const client of clients) client.socket.destroy()
      await gw.close()
    }
  })

  it('counts the connections either cap refuses in metrics, and warns once a minute per address, naming it', async () => {
    const logLines: Record<string, unknown>[] = []
    const gw = await startGateway({ logLines, config: { server: { host: '127.0.0.1', port: 0, max_connections: 6, max_connections_per_address: 2 } } })
    const clients: RawClient[] = []
    const open = async (from: string) => {
      const client = await rawClient(gw.url, from, ask)
      clients.push(client)
      return client
    }
    const refusedAsItArrives = async (client: RawClient) => {
      await Promise.race([client.closed, sleep(2000)])
      assert.ok(client.socket.closed)
      assert.equal(client.received(), '')
    }
    try {
      const held = [await open('127.0.0.34'), await open('127.0.0.34')]
      assert.equal((await eventually(() => held.filter(served), (found) => found.length === 2, 2000)).length, 2)
      for (let i = 0; i < 3; i++) await refusedAsItArrives(await open('127.0.0.34'))
      const others = [await open('127.0.0.35'), await open('127.0.0.35'), await open('127.0.0.36'), await open('127.0.0.36')]
      assert.equal((await eventually(() => others.filter(served), (found) => found.length === 4, 2000)).length, 4)
      // Six open: server.max_connections refuses the seventh, whatever its address.
      await refusedAsItArrives(await open('127.0.0.37'))
      await refusedAsItArrives(await open('127.0.0.37'))
      for (const client of clients) client.socket.destroy()
      // Else the scrape's own connection may find the caps still full.
      await untilConnections(gw.server.server, (count) => count === 0, 'the clients closed')
      const scraped = await (await gw.fetch('/metrics')).text()
      assert.match(scraped, /^gatehouse_connections_refused_total\{reason="max_connections_per_address"\} 3$/m)
      assert.match(scraped, /^gatehouse_connections_refused_total\{reason="max_connections"\} 2$/m)
      const warnings = logLines.filter((line) => line.level === 40 && String(line.msg).startsWith('connection refused'))
      assert.deepEqual(warnings.map((line) => [line.address, line.limit]), [['127.0.0.34', 'server.max_connections_per_address'], ['127.0.0.37', 'server.max_connections']])
    } finally {
      for (const client of clients) client.socket.destroy()
      await gw.close()
    }
  })

  it('takes any number from one address with max_connections_per_address 0', async () => {
    const gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, max_connections_per_address: 0 } } })
    const clients: RawClient[] = []
    try {
      clients.push(...await Promise.all(Array.from({ length: 6 }, () => rawClient(gw.url, '127.0.0.33', ask))))
      assert.equal(await eventually(() => clients.filter(served).length, (count) => count === 6, 2000), 6)
    } finally {
      for (const client of clients) client.socket.destroy()
      await gw.close()
    }
  })
})

describe('a client that stops reading its answer', () => {
  const RESPONSE_SECONDS = 1
  let gw: TestGateway
  let upstream: RecordingUpstream
  let answersOpen = 0

  before(async () => {
    // An answer far larger than every buffer between the service and the client: it waits on the client to read.
    upstream = await startRecordingUpstream((_request, response) => {
      answersOpen++
      response.on('close', () => answersOpen--)
      response.writeHead(200, { 'content-type': 'application/octet-stream' })
      const chunk = Buffer.alloc(1 << 16)
      let sent = 0
      const more = () => {
        while (!response.destroyed && sent < 1 << 30) {
          sent += chunk.length
          if (!response.write(chunk)) return void response.once('drain', more)
        }
        response.end()
      }
      more()
    })
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0 },
        services: [{ name: 'svc', prefix: '/svc/', upstream: upstream.url, public_paths: ['/svc/public/*'], timeouts: { response_seconds: RESPONSE_SECONDS } }],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  for (const [path, headers] of [['/svc/public/big', ''], ['/svc/big', `Authorization: Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}\r\n`]] as const) {
    it(`is cut off once it has read nothing for the service's response_seconds, and the service's connection with it (${path})`, async () => {
      const { port } = new URL(gw.url)
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`))
      socket.on('error', () => undefined)
      let received = 0
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
      const firstBytes = await new Promise<string>((resolve) => socket.once('data', (data) => resolve(data.toString('latin1'))))
      socket.pause()
      assert.match(firstBytes, /^HTTP\/1\.1 200 /)
      const started = Date.now()
      try {
        assert.equal(await eventually(() => answersOpen, (open) => open === 0, 30_000), 0, 'the service\'s connection was closed')
        assert.ok(Date.now() - started >= RESPONSE_SECONDS * 1000 - 100)
        // What the kernel's buffers held is still to read, and then the connection's end: the answer was cut short.
        socket.on('data', (data: Buffer) => (received += data.length))
        socket.resume()
        await closed
        assert.ok(received < 1 << 29, `the client received ${received >> 20} MiB`)
      } finally {
        socket.destroy()
      }
    })
  }
})
