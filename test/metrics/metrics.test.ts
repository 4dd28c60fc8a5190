import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { parseScrape, sampleValue, type Sample } from '../helpers/prometheus.ts'
import { REALM, tokenRequest } from '../helpers/oidc.ts'
import { bearer, createToken } from '../helpers/tokens.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { closedUnanswered, HalfRequests, openConnections, untilConnections } from '../helpers/raw-client.ts'

type Scrape = Map<string, Sample[]>

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const response = await fetch(url, { headers })
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff', 'a browser never takes the text for a script')
  return parseScrape(await response.text())
}

describe('metrics', () => {
  describe('a scripted mix of requests', () => {
    let gw: TestGateway
    before(async () => {
      gw = await startGateway()
      await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })
      // The demo upstream fetches the gateway's JWKS on its first request: before the counting starts.
      assert.equal((await gw.fetch('/api/controller/v2/hosts/', { headers: adminAuth })).status, 200)
    })
    after(() => gw.close())

    it('shows exactly the counts the mix produces', async () => {
      const start = await scrape(gw.url + '/metrics')
      // The process's first scrape, which loads prom-client: its event-loop lag already holds a measurement.
      for (const name of ['nodejs_eventloop_lag_min_seconds', 'nodejs_eventloop_lag_mean_seconds', 'nodejs_eventloop_lag_max_seconds', 'nodejs_eventloop_lag_stddev_seconds']) {
        const value = sampleValue(start, name)
        assert.ok(Number.isFinite(value) && value >= 0 && value < 5, `${name} ${value}`)
      }
      const alice = { authorization: basic('alice', 'alice-password') }
      const call = async (method: string, path: string, headers: Record<string, string> = {}) => {
        const response = await gw.fetch(path, { method, headers: { accept: 'application/json', ...headers } })
        const text = await response.text()
        return { status: response.status, code: text.startsWith('{') ? JSON.parse(text).code : undefined }
      }
      for (let i = 0; i < 3; i++) assert.equal((await call('GET', '/api/controller/v2/hosts/', alice)).status, 200)
      for (let i = 0; i < 2; i++) assert.equal((await call('POST', '/api/controller/v2/hosts/', alice)).status, 200)
      assert.equal((await call('GET', '/api/controller/v2/hosts/')).status, 401)
      for (let i = 0; i < 2; i++) assert.equal((await call('GET', '/api/controller/v2/hosts/', { authorization: basic('nobody', 'wrong-password') })).code, 'invalid_credentials')
      const token = await createToken(gw, alice)
      for (let i = 0; i < 2; i++) assert.equal((await call('GET', '/api/controller/v2/hosts/', bearer(token.token))).status, 200)
      assert.equal((await call('DELETE', `/api/gateway/v1/tokens/${token.id}/`, alice)).status, 204)
      const revoked = await call('GET', '/api/controller/v2/hosts/', bearer(token.token))
      assert.equal(revoked.status, 401)
      // Ten wrong passwords lock a username (the default login_failures_before_lockout); the eleventh try is refused as locked.
      for (let i = 0; i < 10; i++) assert.equal((await call('GET', '/api/controller/v2/hosts/', { authorization: basic('mallory', `guess-${i}`) })).code, 'invalid_credentials')
      assert.equal((await call('GET', '/api/controller/v2/hosts/', { authorization: basic('mallory', 'guess-10') })).code, 'account_locked')
      assert.equal((await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: 'alice', password: 'alice-password' })).status, 200)

      const end = await scrape(gw.url + '/metrics')
      const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(end, name, labels) - sampleValue(start, name, labels)
      const requests = (service: string, method: string, status: string, auth: string) => delta('gatehouse_requests_total', { service, method, status, auth })
      assert.equal(requests('controller', 'read', '2xx', 'basic'), 3)
      assert.equal(requests('controller', 'write', '2xx', 'basic'), 2)
      assert.equal(requests('controller', 'read', '2xx', 'token'), 2)
      assert.equal(requests('controller', 'read', '4xx', 'none'), 1 + 2 + 1 + 11)
      assert.equal(requests('gateway', 'write', '2xx', 'basic'), 2)
      assert.equal(requests('controller', 'write', '4xx', 'none'), 0)

      const decisions = (method: string, outcome: string, code = '') => delta('gatehouse_auth_decisions_total', { method, outcome, code })
      assert.equal(decisions('basic', 'granted'), 3 + 2 + 2)
      assert.equal(decisions('token', 'granted'), 2)
      assert.equal(decisions('basic', 'refused', 'invalid_credentials'), 2 + 10)
      assert.equal(decisions('basic', 'refused', 'account_locked'), 1)
      assert.equal(decisions('token', 'refused', revoked.code), 1)

      const logins = (outcome: string, code = '') => delta('gatehouse_logins_total', { method: 'basic', outcome, code })
      assert.equal(logins('success'), 1, 'alice\'s password is verified once, then remembered')
      assert.equal(logins('failure', 'invalid_credentials'), 12)
      assert.equal(logins('failure', 'account_locked'), 1)
      assert.equal(delta('gatehouse_logins_total', { method: 'oidc', outcome: 'success', code: '' }), 1)
      assert.equal(delta('gatehouse_oidc_token_grants_total', { realm: REALM, grant_type: 'password' }), 1)
      assert.equal(delta('gatehouse_lockouts_total'), 1)
      assert.equal(delta('gatehouse_credentials_created_total', { kind: 'token' }), 1)
      assert.equal(delta('gatehouse_revocations_total', { kind: 'token' }), 1)

      assert.equal(delta('gatehouse_upstream_duration_seconds_count', { service: 'controller' }), 3 + 2 + 2)
      assert.equal(delta('gatehouse_request_duration_seconds_count', { service: 'controller' }), 3 + 2 + 1 + 2 + 2 + 1 + 11)
      assert.ok(delta('gatehouse_upstream_duration_seconds_sum', { service: 'controller' }) > 0)
      assert.equal(delta('gatehouse_cache_lookups_total', { cache: 'basic_credentials', result: 'hit' }), 2 + 2 + 2, 'alice\'s later requests')
      assert.ok(delta('gatehouse_db_query_duration_seconds_count') > 0)
      assert.ok(sampleValue(end, 'process_cpu_seconds_total') > 0)
      assert.ok(sampleValue(end, 'gatehouse_event_bus_last_read_age_seconds') >= 0)
    })
  })

  describe('forward authentication', () => {
    it('counts a question once, under the service and the method class of the request it describes', async () => {
      const gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] } } })
      try {
        const start = await scrape(gw.url + '/metrics')
        // Traefik and Caddy ask with GET whatever the original method; nginx's auth_request asks with the client's.
        const questions: [string, Record<string, string>][] = [
          ['GET', { 'x-forwarded-method': 'POST', 'x-forwarded-uri': '/api/controller/v2/hosts/' }],
          ['GET', { 'x-forwarded-method': 'DELETE', 'x-forwarded-uri': '/api/controller/v2/hosts/1/' }],
          ['POST', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/api/controller/v2/hosts/' }],
        ]
        for (const [method, headers] of questions) {
          const response = await gw.fetch('/api/gateway/v1/authz/forward-auth/', { method, headers: { ...adminAuth, ...headers } })
          assert.equal(response.status, 200, JSON.stringify(headers))
        }
        const end = await scrape(gw.url + '/metrics')
        const delta = (labels: Record<string, string>) => sampleValue(end, 'gatehouse_requests_total', labels) - sampleValue(start, 'gatehouse_requests_total', labels)
        assert.equal(delta({ service: 'controller', method: 'write', status: '2xx', auth: 'basic' }), 2)
        assert.equal(delta({ service: 'controller', method: 'read', status: '2xx', auth: 'basic' }), 1)
        const counted = (scraped: Scrape) => (scraped.get('gatehouse_requests_total') ?? []).filter((sample) => sample.labels.service !== 'none').reduce((sum, sample) => sum + sample.value, 0)
        assert.equal(counted(end) - counted(start), questions.length, 'each question once')
        const granted = { method: 'basic', outcome: 'granted', code: '' }
        assert.equal(sampleValue(end, 'gatehouse_auth_decisions_total', granted) - sampleValue(start, 'gatehouse_auth_decisions_total', granted), questions.length)
      } finally {
        await gw.close()
      }
    })
  })

  describe('access', () => {
    it('refuses addresses outside allow_from with 403', async () => {
      const gw = await startGateway({ config: { metrics: { allow_from: ['10.0.0.0/8'] } } })
      try {
        const response = await gw.fetch('/metrics', { headers: { accept: 'application/json' } })
        assert.equal(response.status, 403)
        assert.equal(response.headers.get('x-content-type-options'), 'nosniff')
        assert.equal((await json(response)).code, 'permission_denied')
      } finally {
        await gw.close()
      }
    })

    it('reads allow_from as trusted_proxies reads its entries: an IPv4-mapped CIDR as the IPv4 range it maps, one address as itself', async () => {
      const gw = await startGateway({ config: { metrics: { allow_from: ['::ffff:127.0.0.0/120', '127.0.1.7'] } } })
      try {
        assert.equal((await requestFrom('127.0.0.9', gw.url + '/metrics')).status, 200, 'in the mapped range')
        assert.equal((await requestFrom('127.0.1.7', gw.url + '/metrics')).status, 200, 'the one address')
        const refused = await requestFrom('127.0.1.8', gw.url + '/metrics')
        assert.equal(refused.status, 403)
        assert.equal(refused.json().code, 'permission_denied')
      } finally {
        await gw.close()
      }
    })

    it('refuses an IPv4 client when allow_from lists only IPv6 ranges, however wide', async () => {
      const gw = await startGateway({ config: { metrics: { allow_from: ['::/0'] } } })
      try {
        const refused = await requestFrom('127.0.0.1', gw.url + '/metrics')
        assert.equal(refused.status, 403)
        assert.equal(refused.json().code, 'permission_denied')
      } finally {
        await gw.close()
      }
    })

    it('refuses a scrape forwarded by a proxy server.trusted_proxies does not list: behind it, every client would look local', async () => {
      const gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.2'] } } })
      try {
        const forwarded: Record<string, string>[] = [{ 'x-forwarded-for': '203.0.113.9' }, { forwarded: 'for=203.0.113.9' }, { 'x-real-ip': '203.0.113.9' }, { 'x-forwarded-for': '127.0.0.1' }]
        for (const headers of forwarded) {
          const refused = await requestFrom('127.0.0.1', gw.url + '/metrics', { headers: { accept: 'application/json', ...headers } })
          assert.equal(refused.status, 403, JSON.stringify(headers))
          assert.equal(refused.json().code, 'permission_denied')
        }
        assert.equal((await requestFrom('127.0.0.1', gw.url + '/metrics')).status, 200, 'a scrape that names no other client')
        assert.equal((await requestFrom('127.0.0.2', gw.url + '/metrics', { headers: { 'x-forwarded-for': '127.0.0.1' } })).status, 200, 'a trusted proxy forwarding a local client')
        assert.equal((await requestFrom('127.0.0.2', gw.url + '/metrics', { headers: { 'x-forwarded-for': '203.0.113.9' } })).status, 403, 'a trusted proxy forwarding another')
        // A trusted proxy naming its client only in fields the gateway does not read for the address: the address
        // judged would be the proxy's own, so every one of its clients would scrape.
        for (const headers of [{ 'x-real-ip': '203.0.113.9' }, { forwarded: 'for=203.0.113.9' }] as Record<string, string>[]) {
          assert.equal((await requestFrom('127.0.0.2', gw.url + '/metrics', { headers })).status, 403, `a trusted proxy naming its client in ${Object.keys(headers)[0]}`)
        }
        assert.equal((await requestFrom('127.0.0.2', gw.url + '/metrics', { headers: { 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1' } })).status, 200, 'X-Forwarded-For read, whatever else is sent')
      } finally {
        await gw.close()
      }
    })

    it('asks for the bearer token when one is configured, and compares it exactly', async () => {
      const dir = tempDir()
      const file = join(dir, 'metrics-token')
      writeFileSync(file, 'scrape-secret-0123456789\n')
      const gw = await startGateway({ config: { metrics: { bearer_token_file: file } } })
      try {
        const missing = await gw.fetch('/metrics')
        assert.equal(missing.status, 401)
        assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer/)
        assert.equal((await gw.fetch('/metrics', { headers: bearer('scrape-secret-012345678') })).status, 401)
        assert.equal((await gw.fetch('/metrics', { headers: adminAuth })).status, 401, 'gateway credentials are not the metrics token')
        await scrape(gw.url + '/metrics', bearer('scrape-secret-0123456789'))
      } finally {
        await gw.close()
      }
    })

    it('serves only on its own listener when metrics.port is set', async () => {
      const gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] }, metrics: { port: 0 } } })
      try {
        assert.equal((await gw.fetch('/metrics', { headers: { accept: 'application/json' } })).status, 404)
        const url = gw.app.metrics.listenerUrl
        assert.ok(url)
        const samples = await scrape(url)
        assert.ok(samples.has('gatehouse_requests_total'))
        const elsewhere = await fetch(url.replace('/metrics', '/api/gateway/v1/ping/'))
        assert.equal(elsewhere.status, 404)
        assert.equal(elsewhere.headers.get('x-content-type-options'), 'nosniff', 'its 404 says nosniff, as every answer of the gateway\'s own')
        // It judges the peer's address, so a client named by a proxy, even a trusted one, is not the one judged.
        const refused = await fetch(url, { headers: { 'x-forwarded-for': '203.0.113.9' } })
        assert.equal(refused.status, 403)
        assert.equal(refused.headers.get('x-content-type-options'), 'nosniff', 'its refusals too')
      } finally {
        await gw.close()
      }
    })

    it('holds its own listener to server.max_connections and server.max_connections_per_address, shares counted with the gateway\'s port', async () => {
      const gw = await startGateway({ config: { server: { host: '127.0.0.1', port: 0, max_connections: 4, max_connections_per_address: 2 }, metrics: { port: 0 } } })
      const connections = new HalfRequests()
      const open = (url: string, from: string) => connections.open(url, from, 'GET /metrics HTTP/1.1\r\n')
      try {
        const url = gw.app.metrics.listenerUrl!
        const held = [await open(url, '127.0.0.51'), await open(url, '127.0.0.51')]
        await closedUnanswered(await open(url, '127.0.0.51'))
        // One address's connections to the gateway's port count in its share here.
        const before = await openConnections(gw.server.server)
        held.push(await open(gw.url, '127.0.0.52'))
        await untilConnections(gw.server.server, (count) => count > before, 'the gateway\'s port took the connection')
        held.push(await open(url, '127.0.0.52'))
        await closedUnanswered(await open(url, '127.0.0.52'))
        held.push(await open(url, '127.0.0.53'))
        // Four open on the metrics listener: server.max_connections refuses the fifth, whatever its address.
        await closedUnanswered(await open(url, '127.0.0.54'))
        await sleep(200)
        for (const client of held) assert.equal(client.socket.closed, false, 'the connections within the caps stay open')
        connections.destroy()
        await Promise.all(connections.clients.map((client) => client.closed))
        await sleep(100)
        const samples = await scrape(url)
        assert.equal(sampleValue(samples, 'gatehouse_connections_refused_total', { reason: 'max_connections_per_address' }), 2)
        assert.equal(sampleValue(samples, 'gatehouse_connections_refused_total', { reason: 'max_connections' }), 1)
      } finally {
        connections.destroy()
        await gw.close()
      }
    })
  })
})
