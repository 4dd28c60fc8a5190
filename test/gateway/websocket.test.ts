import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer as createHttpServer } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { eventually, rawClient } from '../helpers/raw-client.ts'
import { refusedUpgrade as refused } from '../helpers/websocket.ts'
import { login } from '../helpers/session.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

/** A TCP server that only counts the connections that reach it: what a malformed upgrade must never do. */
async function countingUpstream(): Promise<{ url: string; connections: () => number; server: Server }> {
  let connections = 0
  const server = createServer((socket) => {
    connections++
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections, server }
}

/** Opens a WebSocket and resolves with it and its first message (the demo service describes the upgrade it got). */
async function open(url: string, headers: Record<string, string> = {}, localAddress?: string): Promise<{ ws: WebSocket; first: any }> {
  const ws = new WebSocket(url, { headers, localAddress })
  const [data] = await once(ws, 'message')
  return { ws, first: JSON.parse(String(data)) }
}

/** A raw upgrade request, for handshakes a WebSocket client would never send. */
async function rawUpgrade(base: string, lines: string[]): Promise<string> {
  const { port } = new URL(base)
  const socket = connect(Number(port), '127.0.0.1')
  await once(socket, 'connect')
  socket.end(lines.join('\r\n') + '\r\n\r\n')
  let answer = ''
  for await (const chunk of socket) answer += chunk
  return answer
}

async function closesWithin(ws: WebSocket, ms: number): Promise<number> {
  const started = performance.now()
  await Promise.race([
    once(ws, 'close'),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms)),
  ])
  return performance.now() - started
}

/**
 * A service that answers upgrades under `/base/refuse/` with a redirect to its own address and cookies for its own
 * paths (and one of the gateway's), and accepts the others with such cookies: what the gateway must rewrite on the way.
 */
async function cookieSettingUpstream(): Promise<{ url: string; server: Server; handshakes: string[] }> {
  const handshakes: string[] = []
  const server = createServer((socket) => {
    socket.once('data', (data) => {
      handshakes.push(String(data))
      const [, path] = /^GET (\S+)/.exec(String(data)) ?? []
      const { port } = server.address() as AddressInfo
      const cookies = 'Set-Cookie: sid=1; Path=/base/; HttpOnly\r\nSet-Cookie: gateway_sessionid=planted; Path=/\r\n'
      if (path!.startsWith('/base/refuse/')) {
        socket.end(`HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:${port}/base/login/?next=x\r\nContent-Location: /base/refuse/\r\n${cookies}Content-Length: 0\r\nConnection: close\r\n\r\n`)
        return
      }
      const key = /sec-websocket-key: (\S+)/i.exec(String(data))![1]!
      const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${cookies}\r\n`)
    })
    socket.on('error', () => socket.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, handshakes }
}

/** A WebSocket service that greets, echoes, and keeps the close code and reason of each socket that closed at its end. */
async function echoingService(): Promise<{ url: string; server: WebSocketServer; closes: { code: number; reason: string }[] }> {
  const closes: { code: number; reason: string }[] = []
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  server.on('connection', (socket) => {
    socket.send('{}')
    socket.on('message', (data) => socket.send(data))
    socket.on('close', (code, reason) => closes.push({ code, reason: String(reason) }))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, closes }
}

/**
 * A WebSocket service that counts the upgrades reaching it: it refuses those under `/refuse/` with 403, never answers
 * those under `/slow/`, closes those under `/bye/` once open, and greets (then keeps open) the others. Ordinary
 * requests get 200.
 */
async function boundedService(): Promise<{ url: string; upgrades: () => number; close: () => void }> {
  let upgrades = 0
  const connections = new Set<Socket>()
  const sockets = new WebSocketServer({ noServer: true })
  const server = createHttpServer((_, response) => response.end('ok'))
  server.on('connection', (socket) => {
    connections.add(socket)
    socket.on('close', () => connections.delete(socket))
  })
  server.on('upgrade', (request, socket: Socket, head) => {
    upgrades++
    socket.on('error', () => socket.destroy())
    const path = request.url!
    if (path.startsWith('/refuse/')) return void socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
    if (path.startsWith('/slow/')) return
    sockets.handleUpgrade(request, socket, head, (opened) => {
      opened.send('{}')
      if (path.startsWith('/bye/')) opened.close(1000)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades: () => upgrades,
    close: () => {
      for (const socket of connections) socket.destroy()
      server.close()
    },
  }
}

/** `attempt` again while the gateway answers 503 upstream_busy, for up to two seconds: a place comes free as a socket's connections close. */
async function onceFree<T>(attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 2000
  for (;;) {
    try {
      const outcome = await attempt()
      const refusal = outcome as { status?: number; body?: { code?: string } }
      if (refusal.status !== 503 || refusal.body?.code !== 'upstream_busy' || Date.now() > deadline) return outcome
    } catch (error) {
      if (!/503/.test(String(error)) || Date.now() > deadline) throw error
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('WebSockets through the gateway', () => {
  let gw: TestGateway
  let counting: Awaited<ReturnType<typeof countingUpstream>>
  let cookieSetting: Awaited<ReturnType<typeof cookieSettingUpstream>>
  let echoing: Awaited<ReturnType<typeof echoingService>>
  let bounded: Awaited<ReturnType<typeof boundedService>>
  let ws: string

  before(async () => {
    counting = await countingUpstream()
    echoing = await echoingService()
    cookieSetting = await cookieSettingUpstream()
    bounded = await boundedService()
    gw = await startGateway({
      config: {
        services: [
          { name: 'rewritten', prefix: '/rewritten/', upstream: `${cookieSetting.url}/base`, strip_prefix: true, public_paths: ['/rewritten/*'] },
          { name: 'eda', prefix: '/api/eda/', upstream: 'builtin:demo', accepts: ['basic', 'session', 'token'], public_paths: ['/api/eda/open/'] },
          { name: 'counted', prefix: '/counted/', upstream: counting.url, accepts: ['basic', 'token'], public_paths: ['/counted/open/'] },
          { name: 'bounded', prefix: '/bounded/', upstream: bounded.url, strip_prefix: true, public_paths: ['/bounded/*'], pool: { websockets: 3, websockets_per_client: 2 } },
          { name: 'user-share', prefix: '/user-share/', upstream: bounded.url, strip_prefix: true, accepts: ['token'], pool: { websockets: 3, websockets_per_client: 1 } },
          { name: 'per-user', prefix: '/per-user/', upstream: bounded.url, strip_prefix: true, accepts: ['token'], pool: { websockets: 3, websockets_per_client: 2, websockets_per_user: 1 } },
          { name: 'quiet', prefix: '/quiet/', upstream: echoing.url, public_paths: ['/quiet/*'], timeouts: { websocket_idle_seconds: 1 } },
          // As docs/tokens.md suggests for sockets whose messages change things: read tokens open none.
          { name: 'streams', prefix: '/api/streams/', upstream: 'builtin:demo', accepts: ['token'], access: [{ deny: { paths: ['/api/streams/ws/*'], scopes: ['read'] } }, { allow: {} }] },
        ],
      },
    })
    ws = gw.url.replace('http:', 'ws:')
  })
  after(async () => {
    await gw.close()
    counting.server.close()
    cookieSetting.server.close()
    echoing.server.close()
    bounded.close()
  })

  it('tunnels an authenticated upgrade to the service with the verified identity, and carries messages both ways', async () => {
    const { token } = await createToken(gw, adminAuth)
    const { ws: socket, first } = await open(`${ws}/api/eda/v1/events/?job=7`, bearer(token))
    assert.equal(first.path, '/api/eda/v1/events/')
    assert.deepEqual(first.query, { job: '7' })
    assert.equal(first.identity.username, 'admin')
    assert.equal(first.identity.auth_method, 'token')
    assert.equal(first.identity.verified, true, 'X-Gatehouse-Identity verified at the service')
    assert.equal(first.headers.authorization, null, 'the credential the gateway consumed is not passed on')
    socket.send('job event 1')
    const [echo] = await once(socket, 'message')
    assert.equal(String(echo), 'job event 1')
    socket.close()
  })

  it('answers an upgrade without credentials with the service\'s 401 and challenges', async () => {
    const { status, body, headers } = await refused(`${ws}/api/eda/v1/events/`)
    assert.equal(status, 401)
    assert.equal(body.code, 'not_authenticated')
    assert.match(String(headers['www-authenticate']), /Basic/)
  })

  it('refuses wrong credentials with 401 and a read of the service\'s public path opens anonymously', async () => {
    const wrong = await refused(`${ws}/api/eda/v1/events/`, { authorization: 'Basic ' + Buffer.from('admin:wrong-password').toString('base64') })
    assert.equal(wrong.status, 401)
    assert.equal(wrong.body.code, 'invalid_credentials')
    const { ws: socket, first } = await open(`${ws}/api/eda/open/`)
    assert.equal(first.identity, null)
    socket.close()
  })

  it('merges runs of slashes in an upgrade\'s path as in any other request\'s', async () => {
    const { ws: socket, first } = await open(`${ws}/api/eda//open/`)
    assert.equal(first.path, '/api/eda/open/')
    assert.equal(first.identity, null)
    socket.close()
  })

  it('closes an open socket within a second of its token being revoked', async () => {
    const created = await createToken(gw, adminAuth)
    const { ws: socket } = await open(`${ws}/api/eda/v1/events/`, bearer(created.token))
    const revoked = await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })
    assert.equal(revoked.status, 204)
    const ms = await closesWithin(socket, 1500)
    assert.ok(ms < 1000, `closed after ${Math.round(ms)} ms`)
  })

  it('closes an open socket within a second of its session being ended, and keeps the others open', async () => {
    const session = await login(gw, 'admin', 'admin-test-password')
    const other = await createToken(gw, adminAuth)
    const { ws: bySession } = await open(`${ws}/api/eda/v1/events/`, { cookie: session.cookie })
    const { ws: byToken } = await open(`${ws}/api/eda/v1/events/`, bearer(other.token))
    const closed = once(bySession, 'close')
    const ended = await gw.fetch('/api/gateway/v1/logout/', { method: 'POST', headers: { cookie: session.cookie, 'x-csrftoken': session.csrf, referer: gw.url + '/' } })
    assert.ok(ended.status < 400, `logout answered ${ended.status}`)
    await closesWithin(bySession, 1500)
    const [code, reason] = await closed
    assert.deepEqual({ code, reason: String(reason) }, { code: 1008, reason: 'credential revoked' }, 'the client is told why')
    await new Promise((resolve) => setTimeout(resolve, 1100))
    assert.equal(byToken.readyState, WebSocket.OPEN, 'a socket whose credential is still good stays open')
    byToken.close()
  })

  it('closes an open socket within a second of its caller losing what the service was told of: write scope, a flag, a team; gaining one closes nothing', async () => {
    const created = await call(gw, 'POST', 'users/', { username: 'wanda', password: 'wanda-password-1', is_superuser: true })
    assert.equal(created.status, 201)
    const wanda = { authorization: basic('wanda', 'wanda-password-1') }
    const closedWith = async (socket: WebSocket, change: () => Promise<void>) => {
      const closed = once(socket, 'close')
      await change()
      await closesWithin(socket, 1500)
      const [code, reason] = await closed
      return { code, reason: String(reason) }
    }
    const narrowed = { code: 1008, reason: 'access narrowed' }
    // A token narrowed to read: the service was told `scope: write`.
    const token = await createToken(gw, wanda)
    const { ws: byToken } = await open(`${ws}/api/eda/v1/events/`, bearer(token.token))
    assert.deepEqual(await closedWith(byToken, async () => {
      assert.equal((await call(gw, 'PATCH', `tokens/${token.id}/`, { scope: 'read' }, wanda)).status, 200)
    }), narrowed)
    // Becoming a member of a team closes nothing; leaving it closes the socket the service was told the team on.
    const { team } = await createOrgAndTeam(gw, 'Sockets', 'Streamers')
    const { ws: byBasic } = await open(`${ws}/api/eda/v1/events/`, wanda)
    const member = await grant(gw, 'wanda', 'Team Member', team)
    assert.equal(member.status, 201)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    assert.equal(byBasic.readyState, WebSocket.OPEN, 'a team gained closes nothing')
    byBasic.close()
    const { ws: asMember, first: told } = await open(`${ws}/api/eda/v1/events/`, wanda)
    assert.deepEqual(told.identity.teams?.map((t: { name: string }) => t.name), ['Streamers'])
    assert.deepEqual(await closedWith(asMember, async () => {
      assert.equal((await call(gw, 'DELETE', `role_user_assignments/${member.body.id}/`)).status, 204)
    }), narrowed)
    // The superuser flag taken away.
    const { ws: asSuperuser } = await open(`${ws}/api/eda/v1/events/`, wanda)
    assert.deepEqual(await closedWith(asSuperuser, async () => {
      assert.equal((await call(gw, 'PATCH', `users/${created.body.id}/`, { is_superuser: false })).status, 200)
    }), narrowed)
  })

  it('lets a read token open a socket, as a GET, unless an access rule keeps read tokens off the service\'s sockets', async () => {
    const read = await createToken(gw, adminAuth, { scope: 'read' })
    const write = await createToken(gw, adminAuth)
    const { ws: asRead } = await open(`${ws}/api/eda/v1/events/`, bearer(read.token))
    asRead.close()
    const refusedRead = await refused(`${ws}/api/streams/ws/jobs/`, bearer(read.token))
    assert.deepEqual([refusedRead.status, refusedRead.body.code], [403, 'access_denied'])
    const { ws: asWrite } = await open(`${ws}/api/streams/ws/jobs/`, bearer(write.token))
    asWrite.close()
    assert.equal((await gw.fetch('/api/streams/v1/jobs/', { headers: bearer(read.token) })).status, 200, 'the rest of the service still reads')
  })

  it('refuses a session-authenticated upgrade from another site\'s page (cross-site WebSocket hijacking)', async () => {
    const session = await login(gw, 'admin', 'admin-test-password')
    const { status, body } = await refused(`${ws}/api/eda/v1/events/`, { cookie: session.cookie, origin: 'https://evil.example' })
    assert.equal(status, 403)
    assert.equal(body.code, 'csrf_origin_mismatch')
    const { ws: socket, first } = await open(`${ws}/api/eda/v1/events/`, { cookie: session.cookie, origin: gw.url })
    assert.equal(first.identity.auth_method, 'session')
    socket.close()
  })

  it('refuses an upgrade with the Basic credentials a browser keeps from another site\'s page, and takes it from scripts and our own', async () => {
    const basic = { authorization: 'Basic ' + Buffer.from('admin:admin-test-password').toString('base64') }
    const { status, body } = await refused(`${ws}/api/eda/v1/events/`, { ...basic, origin: 'https://evil.example' })
    assert.equal(status, 403)
    assert.equal(body.code, 'csrf_origin_mismatch')
    for (const origin of [{}, { origin: gw.url }] as Record<string, string>[]) {
      const { ws: socket, first } = await open(`${ws}/api/eda/v1/events/`, { ...basic, ...origin })
      assert.equal(first.identity.auth_method, 'basic')
      socket.close()
    }
    const { token } = await createToken(gw, adminAuth)
    const { ws: socket, first } = await open(`${ws}/api/eda/v1/events/`, { ...bearer(token), origin: 'https://elsewhere.example' })
    assert.equal(first.identity.auth_method, 'token', 'a bearer token is no ambient credential: a page must have it to send it')
    socket.close()
  })

  it('never passes a malformed upgrade to the service', async () => {
    const upgrade = (extra: string[]) => rawUpgrade(gw.url, ['GET /counted/open/ HTTP/1.1', `Host: 127.0.0.1`, 'Connection: Upgrade', 'Upgrade: websocket', ...extra])
    const noKey = await upgrade(['Sec-WebSocket-Version: 13'])
    assert.match(noKey, /^HTTP\/1\.1 400 /)
    assert.match(noKey, /"code":"invalid_upgrade"/)
    const shortKey = await upgrade(['Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: c2hvcnQ='])
    assert.match(shortKey, /^HTTP\/1\.1 400 /)
    const oldVersion = await upgrade(['Sec-WebSocket-Version: 8', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='])
    assert.match(oldVersion, /^HTTP\/1\.1 426 /)
    assert.match(oldVersion, /sec-websocket-version: 13/i)
    const withBody = await upgrade(['Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Content-Length: 5', '', 'hello'])
    assert.match(withBody, /^HTTP\/1\.1 400 /)
    const post = await rawUpgrade(gw.url, ['POST /counted/open/ HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='])
    assert.match(post, /^HTTP\/1\.1 400 /)
    const unsafe = await rawUpgrade(gw.url, ['GET /counted/open/%2e%2e/x HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='])
    assert.match(unsafe, /^HTTP\/1\.1 400 /)
    assert.equal(counting.connections(), 0, 'nothing reached the service')
  })

  it('rewrites a refusal from the service as any response from it: its address, its paths, and none of the gateway\'s cookies', async () => {
    const { status, headers } = await refused(`${ws}/rewritten/refuse/`)
    assert.equal(status, 302)
    assert.equal(headers.location, `${gw.url}/rewritten/login/?next=x`)
    assert.equal(headers['content-location'], '/rewritten/refuse/')
    assert.deepEqual(headers['set-cookie'], ['sid=1; Path=/rewritten/; HttpOnly'])
  })

  it('rewrites the cookies of the service\'s 101 the same way', async () => {
    const socket = new WebSocket(`${ws}/rewritten/events/`)
    try {
      const [response] = await once(socket, 'upgrade')
      assert.deepEqual(response.headers['set-cookie'], ['sid=1; Path=/rewritten/; HttpOnly'])
    } finally {
      socket.terminate()
    }
  })

  it('answers an opened socket\'s 101 with its request id, the one the service was sent, as every other answer', async () => {
    const socket = new WebSocket(`${ws}/rewritten/request-id/`)
    try {
      const [response] = await once(socket, 'upgrade')
      const id = response.headers['x-request-id']
      assert.match(String(id), /^[0-9a-f-]{36}$/)
      const handshake = cookieSetting.handshakes.find((text) => text.startsWith('GET /base/request-id/'))!
      assert.equal(/^x-request-id: (\S+)$/im.exec(handshake)?.[1], id)
    } finally {
      socket.terminate()
    }
  })

  it('opens the socket at the service without the identity headers of other authenticating proxies', async () => {
    const socket = new WebSocket(`${ws}/rewritten/events/`, { headers: { 'Remote-User': 'admin', 'X-Forwarded-User': 'admin', 'X-Auth-Request-Email': 'admin@example.com', 'X-Username-Hint': 'kept' } })
    try {
      await once(socket, 'upgrade')
      const handshake = cookieSetting.handshakes.at(-1)!
      assert.match(handshake, /^GET \/base\/events\/ /)
      assert.doesNotMatch(handshake, /remote-user|x-forwarded-user|x-auth-request/i)
      assert.match(handshake, /x-username-hint: kept/i)
      assert.match(handshake, /x-request-id: [0-9a-f-]{36}\r\n/i, 'the upgrade has a request id of its own, as every request')
    } finally {
      socket.terminate()
    }
  })

  it('opens the socket at the service without any field spelled with an underscore (X_Gatehouse_User, X_CSRFToken)', async () => {
    const socket = new WebSocket(`${ws}/rewritten/events/`, { headers: { X_Gatehouse_User: 'admin', X_CSRFToken: 'forged', X_Request_Id: 'forged', Api_Key: 'k', 'X-Api-Key': 'kept' } })
    try {
      await once(socket, 'upgrade')
      const handshake = cookieSetting.handshakes.at(-1)!
      const names = handshake.split('\r\n').slice(1).map((line) => line.slice(0, line.indexOf(':')))
      assert.deepEqual(names.filter((name) => name.includes('_')), [])
      assert.match(handshake, /x-api-key: kept/i, 'fields spelled with dashes pass')
    } finally {
      socket.terminate()
    }
  })

  it('opens a socket asked for with an absolute-form target at the target\'s path, its host in place of Host', async () => {
    const handshake = ['GET http://public.example/rewritten//events/ HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '', '']
    const client = await rawClient(gw.url, '127.0.0.1', handshake.join('\r\n'))
    try {
      const answer = await eventually(client.received, (text) => text.includes('\r\n\r\n'), 3000)
      assert.match(answer, /^HTTP\/1\.1 101 /)
      const seen = cookieSetting.handshakes.at(-1)!
      assert.match(seen, /^GET \/base\/events\/ HTTP\/1\.1\r\n/)
      assert.match(seen, /\r\nx-forwarded-host: public\.example\r\n/i)
    } finally {
      client.socket.destroy()
    }
  })

  it('keeps a socket open while either side sends, and closes both sides once neither has for timeouts.websocket_idle_seconds', async () => {
    const { ws: socket } = await open(`${ws}/quiet/events/`)
    // Twice the idle time, with a message (and its echo) every 300 ms: traffic keeps it open.
    for (let sent = 0; sent < 7; sent++) {
      socket.send(`event ${sent}`)
      const [echo] = await once(socket, 'message')
      assert.equal(String(echo), `event ${sent}`)
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    assert.equal(socket.readyState, WebSocket.OPEN)
    const closed = once(socket, 'close')
    const quietFor = await closesWithin(socket, 3000)
    assert.ok(quietFor > 500, `closed after ${Math.round(quietFor)} ms of quiet, before its idle time`)
    const [code, reason] = await closed
    assert.deepEqual({ code, reason: String(reason) }, { code: 1001, reason: 'idle timeout' })
    assert.deepEqual(await eventually(() => echoing.closes, (closes) => closes.length === 1, 2000), [{ code: 1001, reason: 'idle timeout' }], 'the service\'s end is closed too, and told why')
  })

  it('answers 502 when the service does not take the connection', async () => {
    const { status, body } = await refused(`${ws}/counted/open/`)
    assert.equal(status, 502)
    assert.equal(body.code, 'upstream_unavailable')
  })

  describe('bounds on a service\'s sockets, apart from its pool', () => {
    const busy = (answer: { status: number; body: any; headers: Record<string, unknown> }) => {
      assert.equal(answer.status, 503)
      assert.equal(answer.body.code, 'upstream_busy')
      assert.equal(answer.headers['retry-after'], '1')
    }

    it('refuses one client\'s socket past pool.websockets_per_client with 503 upstream_busy, never sent to the service, and takes one again once one closes', async () => {
      const before = bounded.upgrades()
      const first = await open(`${ws}/bounded/events/`)
      const second = await open(`${ws}/bounded/events/`)
      busy(await refused(`${ws}/bounded/events/`))
      assert.equal(bounded.upgrades(), before + 2, 'the refused upgrade never reached the service')
      first.ws.close()
      await once(first.ws, 'close')
      const third = await onceFree(() => open(`${ws}/bounded/events/`))
      assert.equal(bounded.upgrades(), before + 3)
      second.ws.close()
      third.ws.close()
      await Promise.all([once(second.ws, 'close'), once(third.ws, 'close')])
    })

    it('refuses a socket past pool.websockets from any address, while the service\'s ordinary requests still pass', async () => {
      const opened = await onceFree(async () => [await open(`${ws}/bounded/events/`), await open(`${ws}/bounded/events/`), await open(`${ws}/bounded/events/`, {}, '127.0.0.2')])
      const before = bounded.upgrades()
      busy(await refused(`${ws}/bounded/events/`, {}, '127.0.0.3'))
      busy(await refused(`${ws}/bounded/events/`, {}, '127.0.0.2'))
      assert.equal(bounded.upgrades(), before, 'nothing reached the service')
      const ordinary = await gw.fetch('/bounded/status/')
      assert.equal(ordinary.status, 200, 'the sockets take none of the pool\'s connections')
      await Promise.all(opened.map(({ ws: socket }) => {
        socket.close()
        return once(socket, 'close')
      }))
    })

    it('gives a place back when the service refuses the upgrade, when it closes the socket, and when the client leaves before the service answers', async () => {
      for (let i = 0; i < 3; i++) {
        const answer = await onceFree(() => refused(`${ws}/bounded/refuse/`))
        assert.equal(answer.status, 403)
      }
      for (let i = 0; i < 3; i++) {
        const { ws: socket } = await onceFree(() => open(`${ws}/bounded/bye/`))
        await once(socket, 'close')
      }
      for (let i = 0; i < 3; i++) {
        const reached = bounded.upgrades()
        const client = await onceFree(async () => {
          const handshake = ['GET /bounded/slow/ HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '', '']
          const sent = await rawClient(gw.url, '127.0.0.1', handshake.join('\r\n'))
          await eventually(() => bounded.upgrades() > reached || sent.received() !== '', Boolean, 2000)
          if (sent.received().startsWith('HTTP/1.1 503 ')) {
            sent.socket.destroy()
            throw new Error('503 upstream_busy')
          }
          return sent
        })
        assert.equal(bounded.upgrades(), reached + 1)
        client.socket.destroy()
      }
      // Had any of them kept its place, this client could not open two; the bound still holds after them.
      const opened = [await onceFree(() => open(`${ws}/bounded/events/`)), await onceFree(() => open(`${ws}/bounded/events/`))]
      busy(await refused(`${ws}/bounded/events/`))
      for (const { ws: socket } of opened) socket.close()
      await Promise.all(opened.map(({ ws: socket }) => once(socket, 'close')))
    })

    it('bounds one user\'s sockets from any address with pool.websockets_per_user', async () => {
      const { token } = await createToken(gw, adminAuth)
      const mine = await open(`${ws}/per-user/events/`, bearer(token))
      const before = bounded.upgrades()
      busy(await refused(`${ws}/per-user/events/`, bearer(token), '127.0.0.2'))
      assert.equal(bounded.upgrades(), before)
      mine.ws.close()
      await once(mine.ws, 'close')
      const elsewhere = await onceFree(() => open(`${ws}/per-user/events/`, bearer(token), '127.0.0.2'))
      elsewhere.ws.close()
      await once(elsewhere.ws, 'close')
    })

    it('bounds one user\'s sockets from any address by websockets_per_client when websockets_per_user is unset', async () => {
      // Without it, one account opened a client's share from each address it had, until `websockets` was taken.
      const { token } = await createToken(gw, adminAuth)
      const mine = await onceFree(() => open(`${ws}/user-share/events/`, bearer(token)))
      const before = bounded.upgrades()
      busy(await refused(`${ws}/user-share/events/`, bearer(token), '127.0.0.2'))
      busy(await refused(`${ws}/user-share/events/`, bearer(token), '127.0.0.3'))
      assert.equal(bounded.upgrades(), before, 'the refused upgrades never reached the service')
      mine.ws.close()
      await once(mine.ws, 'close')
      const elsewhere = await onceFree(() => open(`${ws}/user-share/events/`, bearer(token), '127.0.0.2'))
      elsewhere.ws.close()
      await once(elsewhere.ws, 'close')
    })

    it('gives a place back when a revocation closes the socket', async () => {
      const revoked = await createToken(gw, adminAuth)
      const { ws: socket } = await onceFree(() => open(`${ws}/per-user/events/`, bearer(revoked.token)))
      const { token } = await createToken(gw, adminAuth)
      busy(await refused(`${ws}/per-user/events/`, bearer(token), '127.0.0.2'))
      assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${revoked.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
      await closesWithin(socket, 1500)
      const reopened = await onceFree(() => open(`${ws}/per-user/events/`, bearer(token), '127.0.0.2'))
      reopened.ws.close()
      await once(reopened.ws, 'close')
    })
  })

  it('serves other upgrades (h2c) as ordinary HTTP/1.1 requests', async () => {
    const answer = await rawUpgrade(gw.url, ['GET /api/gateway/v1/ping/ HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQAAP__'])
    assert.match(answer, /^HTTP\/1\.1 200 /)
    const ping = await json(await gw.fetch('/api/gateway/v1/ping/'))
    assert.ok(ping.status)
  })
})
