import assert from 'node:assert/strict'
import { decodeJwt } from 'jose'
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { eventually, rawClient } from '../helpers/raw-client.ts'

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  bytes: number
  trailers: Record<string, string | undefined>
}

/** An upstream that records what reached it; `/slow` never answers in time, `/big` streams 30 MiB back. */
async function recordingUpstream(): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = []
  const server = createServer(async (req, res) => {
    let bytes = 0
    for await (const chunk of req) bytes += (chunk as Buffer).length
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, bytes, trailers: req.trailers })
    if (req.url!.endsWith('/trailers')) {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, server-timing, set-cookie, content-type, location' })
      res.write('body')
      res.addTrailers({ 'x-checksum': 'sha256=abc', 'server-timing': 'db;dur=12', 'set-cookie': 'gateway_sessionid=planted', 'content-type': 'text/html', location: 'https://evil.example/' })
      return res.end()
    }
    if (req.url!.endsWith('/slow')) return setTimeout(() => res.end('late'), 2000)
    if (req.url!.endsWith('/own-id')) res.setHeader('x-request-id', 'service-7')
    if (req.url!.endsWith('/echoed-id')) res.setHeader('x-request-id', req.headers['x-request-id']!)
    if (req.url!.endsWith('/hints')) res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
    if (req.url!.endsWith('/processing')) res.writeProcessing()
    // Unasked: the gateway never forwards `Expect`. Some servers send it before every answer to a body.
    if (req.url!.endsWith('/continue')) res.writeContinue()
    if (req.url!.endsWith('/big')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'keep-alive': 'timeout=5', connection: 'keep-alive, x-upstream-private', 'x-upstream-private': 'hop' })
      const chunk = Buffer.alloc(1024 * 1024, 7)
      for (let i = 0; i < 30; i++) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r))
      return res.end()
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ bytes }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

/** A raw request, because fetch would normalise dot segments before sending them. */
function rawGet(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers }, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode!, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('the proxy', () => {
  let gw: TestGateway
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>
  const last = () => upstream.seen.at(-1)!

  before(async () => {
    upstream = await recordingUpstream()
    gw = await startGateway({
      config: {
        services: [
          { name: 'controller', prefix: '/api/controller/', upstream: 'builtin:demo', public_paths: ['/api/controller/v2/', '/api/controller/v2/ping/'] },
          { name: 'rec', prefix: '/rec/', upstream: `${upstream.url}/base`, strip_prefix: true, public_paths: ['/rec/open/*'], timeouts: { connect_seconds: 1, response_seconds: 0.5 } },
          { name: 'tokens-only', prefix: '/tokens-only/', upstream: upstream.url, accepts: ['token'], unauthenticated: '401' },
          { name: 'always-redirect', prefix: '/redirect/', upstream: upstream.url, unauthenticated: 'redirect' },
          { name: 'down', prefix: '/down/', upstream: 'http://127.0.0.1:9', public_paths: ['/down/*'] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    upstream.server.closeAllConnections()
    upstream.server.close()
  })

  it('strips the prefix, keeps the query and prepends the upstream base path', async () => {
    const response = await gw.fetch('/rec/open/a/b?x=1&y=%20', { headers: adminAuth })
    assert.equal(response.status, 200)
    assert.equal(last().url, '/base/open/a/b?x=1&y=%20')
  })

  it('streams request bodies far larger than the API body limit', async () => {
    const size = 20 * 1024 * 1024
    const response = await gw.fetch('/rec/open/upload', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(size, 1) })
    assert.equal(response.status, 200)
    assert.deepEqual(await json(response), { bytes: size })
  })

  it('streams large responses and drops the upstream\'s hop-by-hop headers', async () => {
    const response = await gw.fetch('/rec/open/big', { headers: adminAuth })
    assert.equal(response.status, 200)
    assert.equal((await response.arrayBuffer()).byteLength, 30 * 1024 * 1024)
    // Keep-Alive, if any, is the gateway's own connection's, never the upstream's.
    assert.notEqual(response.headers.get('keep-alive'), 'timeout=5')
    assert.equal(response.headers.get('x-upstream-private'), null)
  })

  it('sends the verified identity and X-Forwarded-*, and drops what the client spoofed or the gateway consumed', async () => {
    await rawGet(gw.url, '/rec/open/headers', {
      ...adminAuth,
      'x-gatehouse-user': 'mallory',
      'X-Gatehouse-Identity': 'forged',
      'x-gatehouse-anything': '1',
      cookie: 'gateway_sessionid=abc; theme=dark; csrftoken=xyz',
      connection: 'keep-alive, x-client-private',
      'x-client-private': 'hop',
    })
    const headers = last().headers
    assert.equal(headers['x-gatehouse-user'], 'admin')
    assert.notEqual(headers['x-gatehouse-identity'], 'forged')
    assert.equal(headers['x-gatehouse-auth-method'], 'basic')
    assert.equal(headers['x-gatehouse-anything'], undefined)
    assert.equal(headers.authorization, undefined)
    assert.equal(headers.cookie, 'theme=dark')
    assert.equal(headers['x-client-private'], undefined)
    assert.equal(headers['x-forwarded-for'], '127.0.0.1')
    assert.equal(headers['x-forwarded-proto'], 'http')
    assert.equal(headers['x-forwarded-host'], new URL(gw.url).host)
  })

  it('reuses an identity token for the same caller and service, and never hands it to another service', async () => {
    const identityFor = async (path: string): Promise<string> => {
      const response = await gw.fetch(path, { headers: adminAuth })
      assert.equal(response.status, 200)
      await response.arrayBuffer()
      return last().headers['x-gatehouse-identity'] as string
    }
    const rec = await identityFor('/rec/open/one')
    const other = await identityFor('/redirect/one')
    assert.equal(decodeJwt(rec).aud, 'rec')
    assert.equal(decodeJwt(other).aud, 'always-redirect')
    assert.equal(await identityFor('/rec/open/two'), rec)
    assert.equal(await identityFor('/redirect/two'), other)
  })

  it('drops spoofed identity headers on anonymous requests to public paths', async () => {
    const response = await gw.fetch('/api/controller/v2/ping/', { headers: { 'x-gatehouse-user': 'admin', 'x-gatehouse-user-id': '1' } })
    assert.equal(response.status, 200)
    assert.equal((await json(response)).identity, null)
  })

  it('refuses dot segments and encoded separators before routing', async () => {
    for (const path of ['/api/controller/../gateway/v1/users/', '/api/controller/%2e%2e/gateway/v1/users/', '/rec/open/..%2f..%2fsecret', '/rec/open/a%2Fb', '/rec/open/a%5cb', '/rec/open/.%2E/x', '/rec/open/a\\..\\b']) {
      const response = await rawGet(gw.url, path, { authorization: adminAuth.authorization })
      assert.equal(response.status, 400, path)
      assert.equal(JSON.parse(response.body).code, 'unsafe_path', path)
    }
  })

  it('passes on the upstream\'s early hints before its answer, and no other informational response', async () => {
    const exchange = async (path: string, version: string) => {
      const client = await rawClient(gw.url, '127.0.0.1', `GET ${path} HTTP/${version}\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      await client.closed
      return client.received()
    }
    const hinted = await exchange('/rec/open/hints', '1.1')
    assert.deepEqual([...hinted.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['103', '200'])
    // With the request's id, as every answer has: the final answer's.
    const id = /\r\nx-request-id: ([^\r]+)\r\n/i.exec(hinted.slice(hinted.indexOf('HTTP/1.1 200')))?.[1]
    assert.ok(id)
    assert.match(hinted, new RegExp(`^HTTP/1\\.1 103 Early Hints\\r\\nlink: </style\\.css>; rel=preload; as=style\\r\\nx-request-id: ${id}\\r\\n\\r\\n`, 'i'))
    assert.match(hinted, /\{"bytes":0\}/)
    for (const [path, version] of [['/rec/open/hints', '1.0'], ['/rec/open/processing', '1.1']] as const) {
      const answer = await exchange(path, version)
      assert.deepEqual([...answer.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['200'], `${path} HTTP/${version}`)
      assert.match(answer, /\{"bytes":0\}/)
    }
  })

  it('passes on the final answer after a 100 Continue the client did not ask for, and never that 100', async () => {
    // `/rec/open/x` takes the lean path, `/rec/open/%61/` (a percent escape) the general one.
    for (const path of ['/rec/open/continue', '/rec/open/%61/continue']) {
      for (const method of ['GET', 'POST']) {
        const client = await rawClient(gw.url, '127.0.0.1', `${method} ${path} HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`)
        await client.closed
        const answer = client.received()
        assert.deepEqual([...answer.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['200'], `${method} ${path}: ${answer}`)
        assert.match(answer, /\{"bytes":2\}/)
      }
    }
  })

  it('answers a client\'s Expect: 100-continue with one 100 Continue of its own, whatever the service sends', async () => {
    for (const path of ['/rec/open/continue', '/rec/open/x']) {
      const client = await rawClient(gw.url, '127.0.0.1', `POST ${path} HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`)
      await eventually(client.received, (text) => text.includes('100 Continue'), 3000)
      client.socket.write('hi')
      await client.closed
      const answer = client.received()
      assert.deepEqual([...answer.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['100', '200'], `${path}: ${answer}`)
      assert.match(answer, /\{"bytes":2\}/)
    }
  })

  it('passes a service\'s response trailers on, without those that would change how the answer is read', async () => {
    for (const path of ['/rec/open/trailers', '/rec/open/%61/trailers']) {
      const answer = await new Promise<{ body: string; trailers: Record<string, string | undefined> }>((resolve, reject) => {
        httpRequest(`${gw.url}${path}`, (response) => {
          let body = ''
          response.setEncoding('utf8')
          response.on('data', (chunk: string) => (body += chunk))
          response.on('end', () => resolve({ body, trailers: response.trailers }))
        }).on('error', reject).end()
      })
      assert.equal(answer.body, 'body', path)
      assert.deepEqual(answer.trailers, { 'x-checksum': 'sha256=abc', 'server-timing': 'db;dur=12' }, path)
    }
    // An HTTP/1.0 answer is never chunked: the body alone, whole.
    const client = await rawClient(gw.url, '127.0.0.1', 'GET /rec/open/trailers HTTP/1.0\r\nHost: gw\r\n\r\n')
    await client.closed
    assert.match(client.received(), /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nbody$/)
  })

  it('answers with the gateway\'s request id, and a service\'s own, when it has another, as X-Upstream-Request-Id', async () => {
    // The lean path, and the general one (a percent-encoded path).
    for (const path of ['/rec/open/own-id', '/rec/open/%61/own-id']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 200, path)
      const id = response.headers.get('x-request-id')
      assert.equal(upstream.seen.find((seen) => seen.url === `/base${path.slice('/rec'.length)}`)?.headers['x-request-id'], id, path)
      assert.equal(response.headers.get('x-upstream-request-id'), 'service-7', path)
    }
    const echoed = await gw.fetch('/rec/open/echoed-id')
    assert.equal(echoed.headers.get('x-request-id'), last().headers['x-request-id'])
    assert.equal(echoed.headers.get('x-upstream-request-id'), null, 'the same id is not repeated')
  })

  it('drops a request\'s trailers: the body reaches the service whole, its trailers do not', async () => {
    const client = await rawClient(gw.url, '127.0.0.1', 'POST /rec/open/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\nx-checksum: sha256=abc\r\n\r\n')
    await client.closed
    assert.match(client.received(), /^HTTP\/1\.1 200 /)
    assert.equal(last().bytes, 2)
    assert.deepEqual(last().trailers, {})
  })

  it('answers 502 when the upstream is down and 504 when it is too slow, as JSON', async () => {
    const down = await gw.fetch('/down/x')
    assert.equal(down.status, 502)
    assert.equal((await json(down)).code, 'upstream_unavailable')
    const slow = await gw.fetch('/rec/open/slow', { headers: adminAuth })
    assert.equal(slow.status, 504)
    assert.equal((await json(slow)).code, 'upstream_timeout')
  })

  it('redirects browsers to the login page and gives API clients 401 with challenges (auto)', async () => {
    const browser = await gw.fetch('/api/controller/v2/hosts/', { headers: { accept: 'text/html,application/xhtml+xml' } })
    assert.equal(browser.status, 302)
    assert.equal(browser.headers.get('location'), '/api/gateway/v1/login/?next=%2Fapi%2Fcontroller%2Fv2%2Fhosts%2F')
    const api = await gw.fetch('/api/controller/v2/hosts/', { headers: { accept: 'application/json' } })
    assert.equal(api.status, 401)
    assert.equal((await json(api)).code, 'not_authenticated')
    assert.match(api.headers.get('www-authenticate') ?? '', /Basic realm="Gatehouse"/)
  })

  it('follows the `401` and `redirect` modes whatever the client accepts', async () => {
    const never = await gw.fetch('/tokens-only/x', { headers: { accept: 'text/html' } })
    assert.equal(never.status, 401)
    assert.match(never.headers.get('www-authenticate') ?? '', /^Bearer/)
    const always = await gw.fetch('/redirect/x', { headers: { accept: 'application/json' } })
    assert.equal(always.status, 302)
  })

  it('says so when a service does not accept the credential type it got', async () => {
    const response = await gw.fetch('/tokens-only/x', { headers: adminAuth })
    assert.equal(response.status, 401)
    assert.equal((await json(response)).code, 'credentials_not_accepted')
  })

  it('serves public paths anonymously and nothing else', async () => {
    assert.equal((await gw.fetch('/api/controller/v2/')).status, 200)
    assert.equal((await gw.fetch('/api/controller/v2/ping/')).status, 200)
    assert.equal((await gw.fetch('/api/controller/v2/ping/extra')).status, 401)
  })

  it('treats a failing credential on a public path as anonymous', async () => {
    const response = await gw.fetch('/api/controller/v2/ping/', { headers: { authorization: 'Basic bm9ib2R5Om5vcGU=' } })
    assert.equal(response.status, 200)
    assert.equal((await json(response)).identity, null)
  })

  it('forwards every method, HEAD included', async () => {
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']) {
      const response = await gw.fetch('/rec/open/m', { method, headers: adminAuth })
      assert.equal(response.status, 200, method)
      assert.equal(last().method, method)
    }
  })

  it('forwards the body of a GET or HEAD, as search APIs take their queries, and keeps the connection\'s framing', async () => {
    for (const [method, framing] of [['GET', 'Content-Length: 5'], ['HEAD', 'Content-Length: 5'], ['GET', 'Transfer-Encoding: chunked']] as const) {
      const body = framing.startsWith('Content') ? 'hello' : '5\r\nhello\r\n0\r\n\r\n'
      const before = upstream.seen.length
      const client = await rawClient(gw.url, '127.0.0.1', `${method} /rec/open/query HTTP/1.1\r\nHost: gw\r\n${framing}\r\n\r\n${body}GET /rec/open/next HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)
      await client.closed
      assert.deepEqual([...client.received().matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((match) => match[1]), ['200', '200'], `${method} ${framing}`)
      const seen = upstream.seen.slice(before).sort((a, b) => a.url.localeCompare(b.url))
      assert.deepEqual(seen.map((request) => [request.method, request.url, request.bytes]), [['GET', '/base/open/next', 0], [method, '/base/open/query', 5]], `${method} ${framing}`)
    }
  })

  it('sends a read of a service\'s prefix without its slash to the prefix, as nginx does, and names it to a write', async () => {
    for (const method of ['GET', 'HEAD']) {
      const response = await gw.fetch('/rec?x=1', { method, redirect: 'manual' })
      assert.equal(response.status, 301, method)
      assert.equal(response.headers.get('location'), '/rec/?x=1', method)
    }
    const before = upstream.seen.length
    const write = await gw.fetch('/rec', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(write.status, 404)
    const refusal = await json(write)
    assert.equal(refusal.code, 'not_found')
    assert.match(refusal.detail, /the service is at \/rec\//)
    assert.equal(upstream.seen.length, before, 'nothing reached the service')
    // A preflight has no body to lose, but a browser follows no redirect of one: it is told the same.
    for (const method of ['POST', 'OPTIONS', 'DELETE']) {
      const other = await gw.fetch('/rec', { method, headers: adminAuth })
      assert.equal(other.status, 404, method)
      assert.equal((await json(other)).detail, 'No service or API at /rec: the service is at /rec/ (only a GET or HEAD is redirected there: send other requests to the prefix itself).', method)
    }
    for (const path of ['/re', '/rec2', '/re/c']) {
      assert.equal((await gw.fetch(path, { redirect: 'manual' })).status, 404, `${path}: no service's prefix without its slash`)
    }
  })

  it('answers unknown paths with 404 JSON', async () => {
    const response = await gw.fetch('/nowhere/')
    assert.equal(response.status, 404)
    assert.equal((await json(response)).code, 'not_found')
  })
})
