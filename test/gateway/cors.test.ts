import assert from 'node:assert/strict'
import { createServer, get, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { ConfigError, validateConfig } from '../../src/config/load.ts'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

/** An upstream that counts requests and answers with CORS headers of its own, which the gateway's policy replaces. */
async function countingUpstream(): Promise<{ url: string; requests: () => number; server: Server }> {
  let requests = 0
  const server = createServer((_req, res) => {
    requests++
    const chunks: Buffer[] = []
    _req.on('data', (chunk: Buffer) => chunks.push(chunk))
    _req.on('end', () => {
      // `?vary=...`: the service's own Vary.
      const vary = new URL(_req.url!, 'http://upstream.invalid').searchParams.getAll('vary')
      const headers: Record<string, string | string[]> = { 'content-type': 'application/json', 'access-control-allow-origin': '*', 'x-total': '3' }
      if (vary.length) headers.vary = vary
      res.writeHead(200, headers)
        .end(JSON.stringify({ ok: true, received: Buffer.concat(chunks).toString() }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests, server }
}

/** What the configuration check says of a service with this `cors` section; fails when it is accepted. */
function problems(cors: unknown): string {
  try {
    validateConfig({ services: [{ name: 'x', prefix: '/x/', upstream: 'http://127.0.0.1:1', cors }] })
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    return error.problems.join('\n')
  }
  assert.fail('expected the configuration to be refused')
}

const APP = 'https://app.example'

describe('CORS per service', () => {
  let gw: TestGateway
  let upstream: Awaited<ReturnType<typeof countingUpstream>>

  before(async () => {
    upstream = await countingUpstream()
    gw = await startGateway({
      config: {
        services: [
          { name: 'api', prefix: '/api/things/', upstream: upstream.url, accepts: ['basic', 'token'], cors: { allowed_origins: [APP], allowed_methods: ['GET', 'POST'], allow_credentials: true, exposed_headers: ['X-Total'] } },
          { name: 'open', prefix: '/open/', upstream: upstream.url, public_paths: ['/open/*'], cors: { allowed_origins: ['*'] } },
          { name: 'none', prefix: '/none/', upstream: upstream.url },
          { name: 'gone', prefix: '/gone/', upstream: 'http://127.0.0.1:1', public_paths: ['/gone/*'], cors: { allowed_origins: [APP] } },
          { name: 'on-premises', prefix: '/on-premises/', upstream: upstream.url, public_paths: ['/on-premises/*'], cors: { allowed_origins: [APP], allow_private_network: true } },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    upstream.server.close()
  })

  const preflight = (path: string, origin: string, method: string, headers?: string) => gw.fetch(path, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, ...(headers ? { 'access-control-request-headers': headers } : {}) },
  })

  it('answers an allowed preflight at the gateway, without credentials and without asking the service', async () => {
    const before = upstream.requests()
    const response = await preflight('/api/things/1/', APP, 'POST', 'Authorization, Content-Type')
    assert.equal(response.status, 204)
    assert.equal(response.headers.get('access-control-allow-origin'), APP)
    assert.equal(response.headers.get('access-control-allow-credentials'), 'true')
    assert.equal(response.headers.get('access-control-allow-methods'), 'GET, POST')
    assert.match(response.headers.get('access-control-allow-headers')!, /authorization/)
    assert.equal(response.headers.get('access-control-max-age'), '600')
    assert.match(response.headers.get('vary')!, /Origin/)
    assert.equal(upstream.requests(), before)
  })

  it('answers a preflight for HEAD where GET is allowed, as access rules read GET', async () => {
    const response = await preflight('/api/things/1/', APP, 'HEAD', 'Authorization')
    assert.equal(response.status, 204)
    assert.equal(response.headers.get('access-control-allow-origin'), APP)
    const headOnly = await preflight('/open/x', APP, 'HEAD')
    assert.equal(headOnly.status, 204, 'the default methods name HEAD')
  })

  it('refuses a preflight from another origin, for another method or with other headers, with 403', async () => {
    for (const response of [
      await preflight('/api/things/1/', 'https://evil.example', 'GET'),
      await preflight('/api/things/1/', APP, 'DELETE'),
      await preflight('/api/things/1/', APP, 'GET', 'authorization, x-secret'),
    ]) {
      assert.equal(response.status, 403)
      assert.equal((await json(response)).code, 'cors_not_allowed')
      assert.equal(response.headers.get('access-control-allow-origin'), null)
    }
  })

  it('allows a public page\'s request to a private-network service (Private Network Access) only with allow_private_network', async () => {
    const askingPrivateNetwork = (path: string, origin = APP) => gw.fetch(path, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-private-network': 'true' },
    })
    const before = upstream.requests()
    const allowed = await askingPrivateNetwork('/on-premises/x')
    assert.equal(allowed.status, 204)
    assert.equal(allowed.headers.get('access-control-allow-private-network'), 'true')
    assert.equal(allowed.headers.get('access-control-allow-origin'), APP)
    // Not asked for: not said.
    assert.equal((await preflight('/on-premises/x', APP, 'GET')).headers.get('access-control-allow-private-network'), null)
    // By default the preflight is answered as before, without it, and the browser decides (it still sends the request
    // while Chrome only warns).
    const byDefault = await askingPrivateNetwork('/api/things/1/')
    assert.equal(byDefault.status, 204)
    assert.equal(byDefault.headers.get('access-control-allow-origin'), APP)
    assert.equal(byDefault.headers.get('access-control-allow-private-network'), null)
    const otherOrigin = await askingPrivateNetwork('/on-premises/x', 'https://evil.example')
    assert.equal(otherOrigin.status, 403)
    assert.equal(otherOrigin.headers.get('access-control-allow-private-network'), null)
    assert.equal(upstream.requests(), before)
  })

  it('adds the headers to the service\'s answer for an allowed origin, in place of the service\'s own', async () => {
    const response = await gw.fetch('/api/things/1/', { headers: { ...adminAuth, origin: APP } })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('access-control-allow-origin'), APP)
    assert.equal(response.headers.get('access-control-allow-credentials'), 'true')
    assert.equal(response.headers.get('access-control-expose-headers'), 'x-total')
  })

  it('adds them to the gateway\'s own refusals too, so the page can read the 401', async () => {
    const response = await gw.fetch('/api/things/1/', { headers: { origin: APP } })
    assert.equal(response.status, 401)
    assert.equal(response.headers.get('access-control-allow-origin'), APP)
  })

  it('streams a request body to the service and its answer back, with the headers', async () => {
    const { token } = await createToken(gw, adminAuth)
    const response = await gw.fetch('/api/things/1/', { method: 'POST', headers: { ...bearer(token), origin: APP, 'content-type': 'text/plain' }, body: 'x'.repeat(100_000) })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('access-control-allow-origin'), APP)
    assert.equal((await json(response)).received.length, 100_000)
  })

  it('does not trust an allowed origin with a write on basic credentials, which a browser also sends on its own: that takes server.trusted_origins', async () => {
    const before = upstream.requests()
    const response = await gw.fetch('/api/things/1/', { method: 'POST', headers: { ...adminAuth, origin: APP, 'content-type': 'text/plain' }, body: 'x' })
    assert.equal(response.status, 403)
    assert.equal(response.headers.get('access-control-allow-origin'), APP, 'the page can read the refusal')
    assert.equal((await json(response)).code, 'csrf_origin_mismatch')
    assert.equal(upstream.requests(), before)
  })

  it('adds them to a 502 for a service that cannot be reached, so the page can read it', async () => {
    const response = await gw.fetch('/gone/x', { headers: { origin: APP } })
    assert.equal(response.status, 502)
    assert.equal(response.headers.get('access-control-allow-origin'), APP)
    assert.equal((await json(response)).code, 'upstream_unavailable')
  })

  it('adds them to the refusal of a path the gateway will not route, which comes before the service\'s own answer', async () => {
    // Sent as written: a URL parser (fetch's) would remove a dot segment, an encoded one too.
    const ask = (path: string, headers: Record<string, string>) => new Promise<IncomingMessage & { body: string }>((resolve, reject) => {
      const { hostname, port } = new URL(gw.url)
      get({ hostname, port, path, headers }, (response) => {
        let body = ''
        response.on('data', (chunk: Buffer) => (body += chunk)).on('end', () => resolve(Object.assign(response, { body })))
      }).on('error', reject)
    })
    const refused: [string, string][] = [['/gone/50%', 'malformed_escape'], ['/gone/x?q=%ZZ', 'malformed_escape'], ['/gone/a;b', 'unsafe_path'], ['/gone/%2e%2e/x', 'unsafe_path'], ['/gone/a%2Fb', 'unsafe_path']]
    for (const [path, code] of refused) {
      const allowed = await ask(path, { origin: APP })
      assert.equal(allowed.statusCode, 400, path)
      assert.equal(JSON.parse(allowed.body).code, code, path)
      assert.equal(allowed.headers['access-control-allow-origin'], APP, path)
      assert.match(allowed.headers.vary!, /Origin/, path)
      const other = await ask(path, { origin: 'https://evil.example' })
      assert.equal(other.statusCode, 400, path)
      assert.equal(other.headers['access-control-allow-origin'], undefined, path)
      assert.match(other.headers.vary!, /Origin/, path)
    }
    // A service without cors, and no service at all, add none.
    for (const path of ['/none/a;b', '/elsewhere/50%']) assert.equal((await ask(path, { origin: APP })).headers['access-control-allow-origin'], undefined, path)
  })

  it('adds nothing for an origin that is not allowed', async () => {
    const response = await gw.fetch('/api/things/1/', { headers: { ...adminAuth, origin: 'https://evil.example' } })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('access-control-allow-origin'), null)
  })

  it('keeps Origin in Vary beside the service\'s own, and sends it without an allowed Origin too, so that a shared cache keys the answer on the origin', async () => {
    const vary = (response: Response) => (response.headers.get('vary') ?? '').split(',').map((name) => name.trim().toLowerCase())
    const allowed = await gw.fetch('/api/things/1/?vary=Accept-Encoding', { headers: { ...adminAuth, origin: APP } })
    assert.equal(allowed.headers.get('access-control-allow-origin'), APP)
    assert.deepEqual(vary(allowed).sort(), ['accept-encoding', 'origin'])
    for (const origin of [undefined, 'https://evil.example']) {
      for (const query of ['', '?vary=Accept-Encoding']) {
        const response = await gw.fetch(`/api/things/1/${query}`, { headers: { ...adminAuth, ...(origin ? { origin } : {}) } })
        assert.equal(response.status, 200)
        assert.ok(vary(response).includes('origin'), `${origin} ${query}: ${response.headers.get('vary')}`)
      }
    }
    const refused = await gw.fetch('/api/things/1/')
    assert.equal(refused.status, 401)
    assert.ok(vary(refused).includes('origin'), 'the gateway\'s own answers too')
    // The service's Vary in two fields.
    assert.deepEqual(vary(await gw.fetch('/api/things/1/?vary=Accept-Encoding&vary=Accept', { headers: { ...adminAuth, origin: APP } })).sort(), ['accept', 'accept-encoding', 'origin'])
    // Already there: not repeated.
    assert.deepEqual(vary(await gw.fetch('/api/things/1/?vary=origin', { headers: { ...adminAuth, origin: APP } })), ['origin'])
  })

  it('answers any origin with "*" for a service that allows any, without credentials', async () => {
    const response = await gw.fetch('/open/x', { headers: { origin: 'https://anyone.example' } })
    assert.equal(response.headers.get('access-control-allow-origin'), '*')
    assert.equal(response.headers.get('access-control-allow-credentials'), null)
    const allowed = await preflight('/open/x', 'https://anyone.example', 'PUT')
    assert.equal(allowed.status, 204)
  })

  it('leaves preflights to a service without cors to the ordinary path', async () => {
    const response = await preflight('/none/x', APP, 'GET')
    assert.equal(response.status, 401)
    assert.equal(response.headers.get('access-control-allow-origin'), null)
  })

  it('refuses a configuration that allows credentials from any origin, or an origin with a path', () => {
    assert.match(problems({ allowed_origins: ['*'], allow_credentials: true }), /services\.0\.cors\.allowed_origins/)
    assert.match(problems({ allowed_origins: ['https://app.example/path'] }), /must be an origin/)
    assert.match(problems({ allowed_origins: [] }), /allowed_origins/)
  })

  it('takes allow_private_network as a boolean only', () => {
    assert.match(problems({ allowed_origins: [APP], allow_private_network: 'yes' }), /services\.0\.cors\.allow_private_network/)
  })

  it('refuses "*" for the allowed headers, which matched none a preflight asks for, and for the exposed ones with credentials', () => {
    assert.match(problems({ allowed_origins: [APP], allowed_headers: ['content-type', '*'] }), /services\.0\.cors\.allowed_headers\.1: .*"\*" is not supported/)
    assert.match(problems({ allowed_origins: [APP], exposed_headers: ['*'], allow_credentials: true }), /services\.0\.cors\.exposed_headers: .*allow_credentials/)
    // Without credentials browsers read it as any header, as the Fetch standard says.
    validateConfig({ services: [{ name: 'x', prefix: '/x/', upstream: 'http://127.0.0.1:1', cors: { allowed_origins: [APP], exposed_headers: ['*'] } }] })
  })
})
