import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { request, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeJwt } from 'jose'
import WebSocket from 'ws'
import { startCaddy } from '../helpers/caddy.ts'
import { codeBlocks, replaced } from '../helpers/docs.ts'
import { requestFrom } from '../helpers/from-address.ts'
import { adminAuth, basic, json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { passwordLogin, REALM } from '../helpers/oidc.ts'
import { freePort } from '../helpers/free-port.ts'
import { forwardAuthConfiguration, luaModules, startNginx, type Decisions } from '../helpers/nginx.ts'
import { bearer, createToken } from '../helpers/tokens.ts'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { deniedPathSpellings, otherPathsBesideDenied } from '../helpers/path-spellings.ts'
import { login, withCsrf } from '../helpers/session.ts'
import { startRecordingUpstream } from '../helpers/upstream.ts'
import { exchange } from '../helpers/raw-client.ts'
import { GATEWAY_COOKIE_NAMES } from '../../src/gateway/gateway-cookies.ts'

const AUTH_REQUEST = '/api/gateway/v1/authz/auth-request/'
const FORWARD_AUTH = '/api/gateway/v1/authz/forward-auth/'
const EXT_AUTHZ = '/api/gateway/v1/authz/ext-authz'
const BROWSER = { accept: 'text/html,application/xhtml+xml' }
/**
 * A client's identity headers in the spellings a service could read as the gateway's: CGI-style servers (WSGI, PHP,
 * Rack) read `_` and `-` alike, and every server reads names in any case.
 */
const FORGED_SPELLINGS = {
  X_Gatehouse_User: 'mallory',
  'x_gatehouse_user-id': '1',
  'X-GATEHOUSE_Auth_Method': 'token',
  'x_GATEHOUSE-identity': 'forged.jwt.token',
  'X-Gatehouse_Teams': 'Forged',
}

/** What services once behind Authelia or oauth2-proxy believe for who is calling (docs/edge.md). */
const OTHER_PROXIES_IDENTITY = {
  'Remote-User': 'admin', 'Remote-Groups': 'admins', 'Remote-Email': 'admin@example.com', 'Remote-Name': 'Admin',
  'X-Forwarded-User': 'admin', 'X-Forwarded-Email': 'admin@example.com', 'X-Forwarded-Groups': 'admins', 'X-Forwarded-Preferred-Username': 'admin',
  'X-Forwarded-Access-Token': 'forged', 'X-Auth-Request-User': 'admin', 'X-Auth-Request-Email': 'admin@example.com', 'X-Auth-Request-Groups': 'admins',
  'X-Auth-Request-Preferred-Username': 'admin', 'X-Auth-Request-Access-Token': 'forged', 'X-Remote-User': 'admin', 'X-Remote-Group': 'admins',
  'X-User': 'admin', 'X-Email': 'admin@example.com',
}

/** The names of the identity fields of other proxies a service received, in any spelling. */
function otherProxiesIdentity(headers: Record<string, unknown>): string[] {
  const forged = new Set(Object.keys(OTHER_PROXIES_IDENTITY).map((name) => name.toLowerCase()))
  return Object.keys(headers).filter((name) => forged.has(name.replaceAll('_', '-')))
}

/** The documented nginx configuration (docs/forward-auth.md) at this test's addresses, keeping its decisions as told. */
function nginxSite(port: number, gateway: string, app: string, dir: string, decisions: Decisions): { http: string; main: string } {
  const hostOf = (url: string) => new URL(url).host
  return forwardAuthConfiguration({ port, gateway: hostOf(gateway), service: hostOf(app) }, decisions, join(dir, 'decisions'))
}

/** The documented Caddy configuration (docs/forward-auth.md) at this test's addresses. */
function caddySite(port: number, gateway: string, app: string): string {
  const [site] = codeBlocks('docs/forward-auth.md', 'caddyfile').map((block) => block.code)
  return replaced(site!, [[':80 {', `http://127.0.0.1:${port} {`], ['127.0.0.1:8080', gateway], ['127.0.0.1:9000', app]])
}

/**
 * A GET on a connection of its own, which any nginx worker may take, with the worker that answered (`X-Worker`) and
 * the Cookie field the service received (the demo service's echo of it, where it answered).
 */
function onConnectionOfItsOwn(url: string, headers: Record<string, string>): Promise<{ status: number; worker: string; cookie?: string | null }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { headers, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => {
        const echoed = response.statusCode === 200 ? (JSON.parse(body) as { headers?: { cookie?: string | null } }).headers : undefined
        resolve({ status: response.statusCode!, worker: String(response.headers['x-worker']), cookie: echoed?.cookie })
      })
    })
    outgoing.on('error', reject)
    outgoing.end()
  })
}

/**
 * A POST with no media type, as `curl -X POST --data-binary` with `-H 'Content-Type:'` sends one, which Rack reads as
 * a form: with its length, chunked, or without a body. Answers the status the client got.
 */
function postWithoutMediaType(url: string, headers: Record<string, string>, body: 'length' | 'chunked' | 'none'): Promise<number> {
  const form = '_method=DELETE'
  return new Promise((resolve, reject) => {
    const length = { length: { 'content-length': String(form.length) }, chunked: {}, none: { 'content-length': '0' } }[body]
    const outgoing = request(url, { method: 'POST', headers: { ...headers, ...length }, agent: false }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode!))
    })
    outgoing.on('error', reject)
    outgoing.end(body === 'none' ? undefined : form)
  })
}

/** A POST of `size` bytes, with its length or chunked, as an upload sends one: the status and the body's size the service read. */
function upload(url: string, headers: Record<string, string>, size: number, chunked: boolean): Promise<{ status: number; bodyBytes?: number }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/octet-stream', ...(chunked ? {} : { 'content-length': String(size) }) }, agent: false }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { text += chunk })
      response.on('end', () => resolve({ status: response.statusCode!, bodyBytes: response.statusCode === 200 ? (JSON.parse(text) as { body_bytes: number }).body_bytes : undefined }))
    })
    outgoing.on('error', reject)
    const chunk = Buffer.alloc(1 << 16, 0x61)
    let left = size
    const write = (): void => {
      while (left > 0) {
        const part = chunk.subarray(0, Math.min(left, chunk.length))
        left -= part.length
        if (!outgoing.write(part)) return void outgoing.once('drain', write)
      }
      outgoing.end()
    }
    write()
  })
}

async function untilRefused(url: string, headers: Record<string, string>, ms: number): Promise<number> {
  const started = Date.now()
  for (;;) {
    const status = (await fetch(url, { headers, redirect: 'manual' })).status
    if (status === 401) return Date.now() - started
    assert.equal(status, 200)
    if (Date.now() - started > ms) assert.fail(`still allowed after ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * The questions a client could ask the proxy's public address, each endpoint in the spellings a path may take: were
 * one answered, the client would hold the identity token the service believes, for any method.
 */
const ASKED_FROM_OUTSIDE: [string, Record<string, string>][] = [
  [AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' }],
  ['/api/gateway//v1/authz/auth-request/', { 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' }],
  ['/api/gateway/v1/authz/%61uth-request/', { 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' }],
  [FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/app/v1/hosts/' }],
  ['/api/gateway/v1/AUTHZ/forward-auth/', { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/app/v1/hosts/' }],
  [`${EXT_AUTHZ}/app/v1/hosts/`, {}],
]

/** Asks the proxy at `base` each of those with the admin's credentials: none may be answered with the identity. */
async function askFromOutside(base: string): Promise<void> {
  for (const [path, question] of ASKED_FROM_OUTSIDE) {
    const response = await fetch(`${base}${path}`, { headers: { ...adminAuth, ...question }, redirect: 'manual' })
    assert.ok([403, 404].includes(response.status), `${path}: ${response.status}`)
    assert.equal(response.headers.get('x-gatehouse-identity'), null, path)
  }
}

describe('forward authentication', () => {
  let gw: TestGateway
  let app: string
  const dir = tempDir()
  const children: ChildProcess[] = []
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    gw = await startGateway({
      logLines,
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] },
        services: [
          { name: 'app', prefix: '/app/', upstream: 'builtin:demo', accepts: ['basic', 'session', 'token'], public_paths: ['/app/open/'] },
          { name: 'web', prefix: '/web/', upstream: 'builtin:demo', accepts: ['basic', 'session'], unauthenticated: 'redirect' },
          // A public service with a closed one under it.
          { name: 'outer', prefix: '/outer/', upstream: 'builtin:demo', public_paths: ['/outer/*'] },
          { name: 'inner', prefix: '/outer/inner/', upstream: 'builtin:demo' },
          { name: 'controller', prefix: '/api/controller/', upstream: 'builtin:demo', accepts: ['basic'], access: [{ deny: { paths: ['/api/controller/v2/hosts/*'] } }, { deny: { paths: ['/api/controller/v2/café/*'] } }, { allow: { users: ['admin'] } }] },
          { name: 'sso', prefix: '/sso/', upstream: 'builtin:demo', accepts: ['oidc'], oidc: { realm: REALM, client_id: 'end-users' } },
          // As a Rails service's rules might read: a POST's form may name another method in _method.
          { name: 'rails', prefix: '/rails/', upstream: 'builtin:demo', accepts: ['basic'], access: [{ allow: { methods: ['GET', 'POST'] } }] },
        ],
      },
    })
    app = gw.app.routes.find((route) => route.name === 'app')!.upstream.origin
  })
  after(async () => {
    for (const child of children) child.kill('SIGTERM')
    await gw.close()
    rmSync(dir, { recursive: true, force: true })
  })

  describe('the endpoints', () => {
    it('answer 200 with the identity the service should receive, for the service the original path is under', async () => {
      const response = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-uri': '/app/v1/hosts/?page=2', 'x-original-method': 'GET' } })
      assert.equal(response.status, 200)
      assert.equal(response.headers.get('x-gatehouse-user'), 'admin')
      assert.equal(response.headers.get('x-gatehouse-auth-method'), 'basic')
      assert.equal(decodeJwt(response.headers.get('x-gatehouse-identity')!).aud, 'app')
      assert.equal(response.headers.get('cache-control'), 'no-store')
    })

    it('answer only at their paths as written: a spelling Fastify\'s router would decode or merge to them is no endpoint', async () => {
      for (const path of ['/api/gateway/v1/%61uthz/auth-request/', '/api/gateway/v1/authz/auth%2Drequest/', '/api/gateway/v1/authz/%66orward-auth/', '/api/gateway/v1/%61uthz/ext-authz/app/v1/hosts/', '/api/gateway/v1/authz/ext%2Dauthz/app/v1/hosts/',
        '//api/gateway/v1/authz/auth-request/', '/api//gateway/v1/authz/auth-request/', '/api/gateway/v1/authz//auth-request/', '/api/gateway/v1/authz/auth-request//', '//api/gateway/v1/authz/ext-authz/app/v1/hosts/']) {
        const response = await gw.fetch(path, { headers: { ...adminAuth, 'x-original-uri': '/app/v1/hosts/', 'x-original-method': 'GET', 'x-forwarded-uri': '/app/v1/hosts/', 'x-forwarded-method': 'GET' } })
        assert.equal(response.status, 404, path)
        assert.equal(response.headers.get('x-gatehouse-identity'), null, path)
      }
      // A percent-encoded original path after Envoy's prefix is the original's own, judged as such.
      assert.equal((await gw.fetch(`${EXT_AUTHZ}/app/v1/%68osts/`, { headers: adminAuth })).status, 200)
    })

    it('carry the request\'s id and no-store on every answer: allowed, refused, a login, a bad question, one with a body', async () => {
      const cases: [string, Record<string, string>, RequestInit?][] = [
        [AUTH_REQUEST, { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' }],
        [AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-uri': '/app/open/' }],
        [AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' }],
        [FORWARD_AUTH, { ...BROWSER, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/web/page' }],
        [AUTH_REQUEST, { ...BROWSER, 'x-original-method': 'GET', 'x-original-uri': '/web/page' }],
        [AUTH_REQUEST, adminAuth],
        [AUTH_REQUEST, { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/nowhere/' }],
        [EXT_AUTHZ + '/app/v1/jobs/', { ...adminAuth, 'content-type': 'application/json' }, { method: 'POST', body: '{}' }],
      ]
      for (const [i, [path, headers, init]] of cases.entries()) {
        // The test's requests come from 127.0.0.1, a trusted proxy: its id is the one the answer carries.
        const id = `edge-${i}`
        const response = await gw.fetch(path, { ...init, headers: { ...headers, 'x-request-id': id }, redirect: 'manual' })
        assert.equal(response.headers.get('x-request-id'), id, `${path} ${JSON.stringify(headers)}: ${response.status}`)
        assert.equal(response.headers.get('cache-control'), 'no-store', `${path} ${JSON.stringify(headers)}: ${response.status}`)
      }
      const allowed = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' } })
      assert.match(allowed.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/)
      assert.equal(allowed.headers.get('content-length'), '0')
      assert.equal(await allowed.text(), '')
    })

    it('answer X-Gatehouse-Teams as the built-in proxy sends it', async () => {
      const { team } = await createOrgAndTeam(gw, 'Infrastructure', 'Operations')
      assert.equal((await grant(gw, 'admin', 'Team Member', team)).status, 201)
      const response = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' } })
      assert.equal(response.status, 200)
      assert.equal(response.headers.get('x-gatehouse-teams'), 'Operations')
      const seen = await json(await gw.fetch('/app/v1/hosts/', { headers: adminAuth }))
      assert.equal(seen.headers['x-gatehouse-teams'], 'Operations')
    })

    it('answer the 401 the built-in proxy gives, and 200 without identity on a public path', async () => {
      const refused = await gw.fetch(FORWARD_AUTH, { headers: { 'x-forwarded-uri': '/app/v1/hosts/', 'x-forwarded-method': 'GET' } })
      assert.equal(refused.status, 401)
      assert.equal((await json(refused)).code, 'not_authenticated')
      assert.match(refused.headers.get('www-authenticate')!, /Basic/)
      // nginx before 1.23 passes on the first WWW-Authenticate field of an auth_request answer only: one field, a list.
      const head = (fields: string) => exchange(gw.url, `GET ${AUTH_REQUEST} HTTP/1.1\r\nHost: gw\r\nX-Original-Method: GET\r\nX-Original-URI: /app/v1/hosts/\r\n${fields}Connection: close\r\n\r\n`)
      const challenges = (answer: string) => answer.split('\r\n\r\n', 1)[0]!.split('\r\n').filter((line) => /^www-authenticate:/i.test(line))
      assert.deepEqual(challenges(await head('')), ['www-authenticate: Basic realm="Gatehouse", charset="UTF-8", Bearer realm="Gatehouse"'])
      assert.deepEqual(challenges(await head('X-Requested-With: XMLHttpRequest\r\n')), ['www-authenticate: Bearer realm="Gatehouse"'], 'a script\'s without Basic')
      assert.deepEqual(challenges(await head(`Authorization: Basic ${Buffer.from('admin:wrong').toString('base64')}\r\n`)).length, 1, 'a refused credential\'s too')
      assert.equal(challenges(await exchange(gw.url, `GET /app/v1/hosts/ HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`)).length, 2, 'the built-in proxy\'s stay fields of their own')
      const open = await gw.fetch(FORWARD_AUTH, { headers: { 'x-forwarded-uri': '/app/open/', 'x-forwarded-method': 'GET' } })
      assert.equal(open.status, 200)
      assert.equal(open.headers.get('x-gatehouse-user'), null)
    })

    it('judge the original method: a read-only token may not POST', async () => {
      const { token } = await createToken(gw, adminAuth, { scope: 'read' })
      const read = await gw.fetch(EXT_AUTHZ + '/app/v1/jobs/', { headers: bearer(token) })
      assert.equal(read.status, 200)
      const write = await gw.fetch(EXT_AUTHZ + '/app/v1/jobs/', { method: 'POST', headers: bearer(token) })
      assert.equal(write.status, 403)
      assert.equal((await json(write)).code, 'insufficient_scope')
    })

    it('judge the methods an override field names, and refuse another target in a URL override field, as the proxy passes both on', async () => {
      const ask = (method: string, uri: string, headers: Record<string, string>) => gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'content-type': 'application/json', 'x-original-method': method, 'x-original-uri': uri, ...headers } })
      // The rails service lets GET and POST in: a JSON POST naming DELETE would reach its framework as a DELETE.
      // In every spelling a CGI-style server reads alike (Caddy passes them on, as nginx does not).
      for (const field of ['x-http-method-override', 'x-http-method', 'x-method-override', 'X_HTTP_Method_Override', 'X-HTTP_Method-Override', 'x.method.override']) {
        const refused = await ask('POST', '/rails/items/1', { [field]: 'delete' })
        assert.equal(refused.status, 403, field)
        assert.equal((await json(refused)).code, 'access_denied')
        assert.equal((await ask('POST', '/rails/items/1', { [field]: 'GET' })).status, 200, field)
      }
      assert.equal((await ask('POST', '/rails/items/1', { 'x-http-method-override': 'GET, PUT' })).status, 403)
      const garbled = await ask('POST', '/rails/items/1', { 'x-http-method-override': 'DEL ETE' })
      assert.deepEqual([garbled.status, (await json(garbled)).code], [400, 'invalid_original_request'])
      // A read token's GET naming POST is judged as the write it may become.
      const { token } = await createToken(gw, adminAuth, { scope: 'read' })
      const write = await gw.fetch(AUTH_REQUEST, { headers: { ...bearer(token), 'x-original-method': 'GET', 'x-original-uri': '/app/v1/jobs/', 'x-http-method-override': 'POST' } })
      assert.deepEqual([write.status, (await json(write)).code], [403, 'insufficient_scope'])
      // A URL override naming the hosts the rules deny, on a question about a path they allow.
      for (const field of ['x-original-url', 'x-rewrite-url', 'X-Original_URL', 'x_rewrite_url']) {
        const other = await ask('GET', '/api/controller/v2/users/', { [field]: '/api/controller/v2/hosts/1/' })
        assert.deepEqual([other.status, (await json(other)).code], [400, 'invalid_original_request'], field)
        assert.equal(other.headers.get('x-gatehouse-identity'), null)
      }
      // The same target, as ingress-nginx names it (an absolute URL), is the one judged.
      assert.equal((await ask('GET', '/api/controller/v2/users/', { 'x-original-url': 'http://gateway.example/api/controller/v2/users/' })).status, 200)
    })

    it('tell Envoy to remove the credential and the gateway\'s cookies before the service, which its filters cannot do by name', async () => {
      const session = await login(gw, 'admin', 'admin-test-password')
      const ask = (headers: Record<string, string>) => gw.fetch(`${EXT_AUTHZ}/app/v1/hosts/`, { headers })
      const withOthers = await ask({ cookie: `theirs=1; ${session.cookie}; other=2` })
      assert.equal(withOthers.status, 200)
      assert.deepEqual([withOthers.headers.get('x-envoy-auth-headers-to-remove'), withOthers.headers.get('cookie')], ['authorization', 'theirs=1; other=2'])
      const onlyOurs = await ask({ cookie: session.cookie })
      assert.deepEqual([onlyOurs.headers.get('x-envoy-auth-headers-to-remove'), onlyOurs.headers.get('cookie')], ['authorization, cookie', null])
      // Stray separators left once the gateway's cookies are out are nothing to send either.
      const oursAndSeparators = await ask({ cookie: `${session.cookie};; ` })
      assert.deepEqual([oursAndSeparators.headers.get('x-envoy-auth-headers-to-remove'), oursAndSeparators.headers.get('cookie')], ['authorization, cookie', null])
      const basicOnly = await ask({ ...adminAuth, cookie: 'theirs=1' })
      assert.deepEqual([basicOnly.headers.get('x-envoy-auth-headers-to-remove'), basicOnly.headers.get('cookie')], ['authorization', null])
      assert.equal((await gw.fetch(`${EXT_AUTHZ}/app/open/`)).headers.get('x-envoy-auth-headers-to-remove'), 'authorization')
      // The other proxies' configurations remove them themselves.
      const nginxAnswer = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, cookie: session.cookie, 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' } })
      assert.deepEqual([nginxAnswer.status, nginxAnswer.headers.get('x-envoy-auth-headers-to-remove'), nginxAnswer.headers.get('cookie')], [200, null, null])
    })

    it('tell Envoy to remove the CSRF token of a request the session cookie authenticated, as the built-in proxy drops it', async () => {
      const session = await login(gw, 'admin', 'admin-test-password')
      const ask = (headers: Record<string, string>) => gw.fetch(`${EXT_AUTHZ}/app/v1/hosts/`, { method: 'POST', headers: { origin: gw.url, ...headers } })
      const bySession = await ask({ cookie: session.cookie, 'x-csrftoken': session.csrf })
      assert.deepEqual([bySession.status, bySession.headers.get('x-gatehouse-auth-method'), bySession.headers.get('x-envoy-auth-headers-to-remove')], [200, 'session', 'authorization, x-csrftoken, cookie'])
      // With another credential the field is the client's own, and passes on as behind the built-in proxy.
      const byBasic = await ask({ ...adminAuth, 'x-csrftoken': 'theirs' })
      assert.deepEqual([byBasic.status, byBasic.headers.get('x-gatehouse-auth-method'), byBasic.headers.get('x-envoy-auth-headers-to-remove')], [200, 'basic', 'authorization'])
    })

    it('send browsers to log in: a 302 for Traefik, Caddy and Envoy, a 401 naming the login page for nginx', async () => {
      const redirected = await gw.fetch(FORWARD_AUTH, { headers: { ...BROWSER, 'x-forwarded-uri': '/web/page', 'x-forwarded-method': 'GET' } })
      assert.equal(redirected.status, 302)
      assert.match(redirected.headers.get('location')!, /\/api\/gateway\/v1\/login\/\?next=%2Fweb%2Fpage/)
      const forNginx = await gw.fetch(AUTH_REQUEST, { headers: { ...BROWSER, 'x-original-method': 'GET', 'x-original-uri': '/web/page' } })
      assert.equal(forNginx.status, 401)
      assert.match(forNginx.headers.get('x-gatehouse-login')!, /\/api\/gateway\/v1\/login\/\?next=%2Fweb%2Fpage/)
    })

    it('refuse a request that does not say which request it is about, with 400', async () => {
      for (const [path, headers] of [[AUTH_REQUEST, {}], [FORWARD_AUTH, { 'x-forwarded-method': 'GET' }]] as const) {
        const response = await gw.fetch(path, { headers: { ...adminAuth, ...headers } })
        assert.equal(response.status, 400)
        assert.equal((await json(response)).code, 'missing_original_uri')
      }
      const unmethodical = [[AUTH_REQUEST, { 'x-original-uri': '/app/x' }], [FORWARD_AUTH, { 'x-forwarded-uri': '/app/x' }], [FORWARD_AUTH, { 'x-forwarded-uri': '/app/x', 'x-forwarded-method': '' }]] as const
      for (const [path, headers] of unmethodical) {
        // Judged as a GET, a question without the method would let a read token's POST through.
        const response = await gw.fetch(path, { headers: { ...adminAuth, ...headers } })
        assert.equal(response.status, 400)
        const body = await json(response)
        assert.equal(body.code, 'missing_original_method')
        assert.match(body.detail ?? body.message ?? JSON.stringify(body), /x-(original|forwarded)-method/i)
      }
      const relative = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': 'app/x' } })
      assert.equal((await json(relative)).code, 'invalid_original_request')
      const unsafe = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/app/%2e%2e/web/' } })
      assert.equal(unsafe.status, 400)
      const nowhere = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/nowhere/' } })
      assert.equal(nowhere.status, 404)
    })

    it('answer a question with a body (Envoy with_request_body) as one without: only their paths inside differ', async () => {
      const { token } = await createToken(gw, adminAuth, { scope: 'read' })
      for (const [headers, status] of [[adminAuth, 200], [bearer(token), 403], [{}, 401]] as const) {
        const bodiless = await gw.fetch(EXT_AUTHZ + '/app/v1/jobs/', { method: 'POST', headers })
        const withBody = await gw.fetch(EXT_AUTHZ + '/app/v1/jobs/', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{"name":"job"}' })
        for (const response of [bodiless, withBody]) {
          assert.equal(response.status, status)
          assert.equal(response.headers.get('cache-control'), 'no-store')
        }
        assert.equal(withBody.headers.get('x-gatehouse-user'), bodiless.headers.get('x-gatehouse-user'))
        assert.equal(withBody.headers.get('www-authenticate'), bodiless.headers.get('www-authenticate'))
        assert.equal(withBody.headers.get('content-type'), bodiless.headers.get('content-type'))
        // Each refusal's body names its own request's id.
        assert.equal((await withBody.text()).replace(withBody.headers.get('x-request-id')!, ''), (await bodiless.text()).replace(bodiless.headers.get('x-request-id')!, ''))
      }
    })

    it('judge a percent-encoded path and an unrouted method as the built-in proxy does', async () => {
      for (const target of ['/outer/%69nner/secret', '/outer/inn%65r/secret']) {
        const direct = await gw.fetch(target)
        assert.equal(direct.status, 404, target)
        for (const [path, headers] of [[AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-uri': target }], [FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': target }], [EXT_AUTHZ + target, {}]] as const) {
          const response = await gw.fetch(path, { headers })
          assert.equal(response.status, 404, `${path} ${target}`)
          assert.equal((await json(response)).code, 'not_found')
        }
      }
      assert.equal((await gw.fetch(AUTH_REQUEST, { headers: { 'x-original-method': 'GET', 'x-original-uri': '/outer/inner/secret' } })).status, 401)
      assert.equal((await gw.fetch(AUTH_REQUEST, { headers: { 'x-original-method': 'GET', 'x-original-uri': '/outer/%6fpen' } })).status, 200)
      assert.equal((await gw.fetch('/outer/page', { method: 'PROPFIND' })).status, 404)
      for (const method of ['PROPFIND', 'TRACE', 'MKCOL']) {
        const response = await gw.fetch(AUTH_REQUEST, { headers: { 'x-original-uri': '/outer/page', 'x-original-method': method } })
        assert.equal(response.status, 404, method)
      }
    })

    it('answer a service\'s prefix without its slash as the built-in proxy does: a GET or HEAD sent to the prefix', async () => {
      const direct = await gw.fetch('/app?page=2')
      assert.equal(direct.status, 301)
      assert.equal(direct.headers.get('location'), '/app/?page=2')
      for (const method of ['GET', 'HEAD']) {
        for (const [path, init] of [[FORWARD_AUTH, { headers: { 'x-forwarded-method': method, 'x-forwarded-uri': '/app?page=2' } }], [`${EXT_AUTHZ}/app?page=2`, { method }]] as const) {
          const response = await gw.fetch(path, init)
          assert.equal(response.status, 301, `${method} ${path}`)
          assert.equal(response.headers.get('location'), '/app/?page=2')
          assert.equal(response.headers.get('cache-control'), 'no-store')
        }
        // nginx acts on no redirect from auth_request: the address travels as a login redirect's does, a 401 naming it.
        const forNginx = await gw.fetch(AUTH_REQUEST, { headers: { 'x-original-method': method, 'x-original-uri': '/app?page=2' } })
        assert.equal(forNginx.status, 401)
        assert.equal(forNginx.headers.get('x-gatehouse-login'), '/app/?page=2')
      }
      // A redirect would lose a body: another method is told where the service is.
      for (const [path, init] of [[FORWARD_AUTH, { headers: { 'x-forwarded-method': 'POST', 'x-forwarded-uri': '/app' } }], [AUTH_REQUEST, { headers: { 'x-original-method': 'POST', 'x-original-uri': '/app' } }], [`${EXT_AUTHZ}/app`, { method: 'POST' }]] as const) {
        const response = await gw.fetch(path, init)
        assert.equal(response.status, 404, path)
        const body = await json(response)
        assert.equal(body.code, 'not_found')
        assert.match(JSON.stringify(body), /the service is at \/app\//)
        assert.equal(response.headers.get('x-gatehouse-login'), null)
      }
      // Only a prefix is: a path that merely begins like one, or a method the proxy does not route, is 404.
      for (const [uri, method] of [['/ap', 'GET'], ['/app2', 'GET'], ['/app', 'PROPFIND']]) {
        const response = await gw.fetch(FORWARD_AUTH, { headers: { 'x-forwarded-method': method, 'x-forwarded-uri': uri } })
        assert.equal(response.status, 404, `${method} ${uri}`)
        assert.equal(response.headers.get('location'), null)
      }
    })

    it('judge a path with empty segments as its merged form, the path a service acts on', async () => {
      for (const target of ['/outer//inner/secret', '//outer/inner/secret', '/outer/inner//secret?next=//x']) {
        for (const [path, headers] of [[AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-uri': target }], [FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': target }], [EXT_AUTHZ + target, {}]] as const) {
          const response = await gw.fetch(path, { headers })
          assert.equal(response.status, 401, `${path} ${target}: the private service under the public one decides`)
        }
      }
      const allowed = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/outer//inner//secret' } })
      assert.equal(allowed.status, 200)
      assert.equal(decodeJwt(allowed.headers.get('x-gatehouse-identity')!).aud, 'inner')
      for (const target of ['/outer/inner;x/secret', '/outer/x#/inner/secret']) {
        const refused = await gw.fetch(AUTH_REQUEST, { headers: { 'x-original-method': 'GET', 'x-original-uri': target } })
        assert.equal((await json(refused)).code, 'unsafe_path', `${target}: a servlet container would act on the private service's path`)
      }
      // An escape encoded again, its digits escaped too: a service decoding twice reads `/outer/inner/secret`.
      for (const target of ['/outer/%25%36%39nner/secret', '/outer/x/%25%32%65%25%32%65/inner/secret']) {
        for (const [path, headers] of [[AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-uri': target }], [FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': target }], [EXT_AUTHZ + target, {}]] as const) {
          const refused = await gw.fetch(path, { headers })
          assert.equal(refused.status, 400, `${path} ${target}`)
          assert.equal((await json(refused)).code, 'unsafe_path', `${path} ${target}`)
        }
      }
    })

    it('judge every other spelling of a path a rule denies as the built-in proxy does', async () => {
      const ask = (target: string) => [
        gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': target } }),
        gw.fetch(FORWARD_AUTH, { headers: { ...adminAuth, 'x-forwarded-method': 'GET', 'x-forwarded-uri': target } }),
      ]
      for (const { target, code } of deniedPathSpellings('/api/controller/')) {
        for (const response of await Promise.all(ask(target))) {
          assert.equal((await json(response)).code, code, target)
        }
      }
      for (const target of otherPathsBesideDenied('/api/controller/')) {
        for (const response of await Promise.all(ask(target))) assert.equal(response.status, 200, target)
      }
    })

    it('refuse an original target with characters no request line may hold, as the built-in proxy does', async () => {
      // nginx's $request_uri holds the bytes a client sent, UTF-8 too; Node reads a field's bytes as Latin-1, so
      // `/café/` was judged as `/cafÃ©/`, a path no rule on `/café/*` names, and passed to the service as `/café/`.
      const encoded = await gw.fetch(AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/api/controller/v2/caf%C3%A9/1/' } })
      assert.equal((await json(encoded)).code, 'access_denied')
      // Sent as bytes, UTF-8 as a client's, since fetch would encode the path or refuse the field.
      const sent = (target: string, fields = '') => exchange(gw.url, `GET ${target} HTTP/1.1\r\nHost: gw\r\nAuthorization: ${adminAuth.authorization}\r\n${fields}Connection: close\r\n\r\n`)
      for (const target of ['/api/controller/v2/café/1/', '/api/controller/v2/ok/ x', '/api/controller/v2/ok/\tx']) {
        for (const [path, header, methodHeader] of [[AUTH_REQUEST, 'x-original-uri', 'x-original-method'], [FORWARD_AUTH, 'x-forwarded-uri', 'x-forwarded-method']] as const) {
          const answer = await sent(path, `${methodHeader}: GET\r\n${header}: ${target}\r\n`)
          assert.match(answer, /^HTTP\/1\.1 400 /, `${path} ${JSON.stringify(target)}`)
          assert.match(answer, /"code":"invalid_original_request"/, `${path} ${JSON.stringify(target)}`)
        }
        assert.match(await sent(target), /^HTTP\/1\.1 400 /, `built-in ${JSON.stringify(target)}`)
      }
    })

    it('judge an original target in absolute form by its path, as Caddy passes on what the client sent', async () => {
      for (const [path, headers, methodHeader] of [[AUTH_REQUEST, 'x-original-uri', 'x-original-method'], [FORWARD_AUTH, 'x-forwarded-uri', 'x-forwarded-method']] as const) {
        const refused = await gw.fetch(path, { headers: { [methodHeader]: 'GET', [headers]: 'http://public.example/outer//inner/secret' } })
        assert.equal(refused.status, 401, `${path}: the private service under the public one decides`)
        const allowed = await gw.fetch(path, { headers: { ...adminAuth, [methodHeader]: 'GET', [headers]: 'HTTPS://public.example:8443/outer/inner/secret?x=1' } })
        assert.equal(allowed.status, 200, path)
        assert.equal(decodeJwt(allowed.headers.get('x-gatehouse-identity')!).aud, 'inner')
        for (const [target, code] of [['http://public.example/outer/inner/../x', 'unsafe_path'], ['http://u@public.example/outer/x', 'invalid_original_request'], ['ftp://public.example/outer/x', 'invalid_original_request']]) {
          const response = await gw.fetch(path, { headers: { ...adminAuth, [methodHeader]: 'GET', [headers]: target! } })
          assert.equal(response.status, 400, `${path} ${target}`)
          assert.equal((await json(response)).code, code, `${path} ${target}`)
        }
      }
    })

    it('refuse a WebSocket handshake with the session cookie or Basic credentials from another site\'s page, as the built-in proxy does', async () => {
      const session = await login(gw, 'admin', 'admin-test-password')
      const basic = { authorization: adminAuth.authorization }
      // What proxies pass on of a handshake: Upgrade and Connection are hop-by-hop, nginx drops them.
      const handshake = { 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }
      for (const credential of [{ cookie: session.cookie }, basic]) {
        for (const [path, headers] of [[AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-uri': '/app/ws/' }], [FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/app/ws/' }], [`${EXT_AUTHZ}/app/ws/`, {}]] as const) {
          const crossSite = await gw.fetch(path, { headers: { ...credential, ...handshake, ...headers, origin: 'https://evil.example' } })
          assert.equal(crossSite.status, 403, path)
          assert.equal((await json(crossSite)).code, 'csrf_origin_mismatch', path)
          assert.equal((await gw.fetch(path, { headers: { ...credential, ...handshake, ...headers, origin: gw.url } })).status, 200, `${path}: our own page`)
          assert.equal((await gw.fetch(path, { headers: { ...credential, ...headers, origin: 'https://evil.example' } })).status, 200, `${path}: no handshake, a GET from anywhere`)
        }
      }
      const { token } = await createToken(gw, adminAuth)
      const withToken = await gw.fetch(AUTH_REQUEST, { headers: { ...bearer(token), ...handshake, 'x-original-method': 'GET', 'x-original-uri': '/app/ws/', origin: 'https://evil.example' } })
      assert.equal(withToken.status, 200, 'a bearer token is no ambient credential')
    })

    it('refuse a write with Basic credentials from another site\'s page, as the built-in proxy does', async () => {
      const write = [[AUTH_REQUEST, { 'x-original-uri': '/app/x', 'x-original-method': 'POST' }], [FORWARD_AUTH, { 'x-forwarded-uri': '/app/x', 'x-forwarded-method': 'POST' }]] as const
      for (const [path, headers] of write) {
        const crossSite = await gw.fetch(path, { headers: { ...adminAuth, ...headers, origin: 'https://evil.example' } })
        assert.equal(crossSite.status, 403, path)
        assert.equal((await json(crossSite)).code, 'csrf_origin_mismatch', path)
        assert.equal((await gw.fetch(path, { headers: { ...adminAuth, ...headers, origin: gw.url } })).status, 200, `${path}: our own page`)
        assert.equal((await gw.fetch(path, { headers: { ...adminAuth, ...headers } })).status, 200, `${path}: no Origin, not a browser`)
      }
    })

    it('refuse a question carrying an identity field spelled with underscores, which the service would read as the answer\'s', async () => {
      const questions: [string, Record<string, string>][] = [
        [AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' }],
        [FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/app/v1/hosts/' }],
        [`${EXT_AUTHZ}/app/v1/hosts/`, {}],
      ]
      // PHP reads `.` as `_` too, and nginx drops any name with a character besides letters, digits and `-`.
      const smuggled = { ...FORGED_SPELLINGS, Remote_User: 'admin', X_Forwarded_User: 'admin', x_auth_request_email: 'admin@example.com', 'X.Gatehouse.User': 'mallory', 'x-gatehouse.identity': 'forged', 'Remote.User': 'admin' }
      for (const [path, question] of questions) {
        for (const [name, value] of Object.entries(smuggled).filter(([name]) => /[_.]/.test(name))) {
          const response = await gw.fetch(path, { headers: { ...adminAuth, ...question, [name]: value } })
          assert.equal(response.status, 400, `${path} ${name}`)
          assert.equal((await json(response)).code, 'invalid_original_request')
          assert.equal(response.headers.get('x-gatehouse-identity'), null)
        }
        for (const name of ['Api_Key', 'Api.Key']) {
          const other = await gw.fetch(path, { headers: { ...adminAuth, ...question, [name]: 'k' } })
          assert.equal(other.status, 200, `${path} ${name}: other such fields are the proxy's to drop`)
        }
      }
    })

    it('answer only the configured proxies: another address gets 403', async () => {
      const response = await requestFrom('127.0.0.2', gw.url + AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/app/x' } })
      assert.equal(response.status, 403)
      assert.equal(response.json().code, 'untrusted_proxy')
      assert.equal(response.headers['x-gatehouse-user'], undefined)
    })
  })

  /**
   * The documented nginx and Caddy configurations in front of `service`, and nginx with the Lua module where it is
   * installed, their names starting with `name`: the ports to ask, Caddy's and Lua's among them.
   */
  async function startDocumentedProxies(name: string, service: string): Promise<{ ports: number[]; caddyPort: number; luaPort?: number; stop(): void }> {
    const [nginxPort, caddyPort, luaPort] = [await freePort(), await freePort(), await freePort()]
    const proxies = [
      await startNginx(dir, `nginx-${name}`, nginxSite(nginxPort, gw.url, service, dir, 'asked').http),
      await startCaddy(join(dir, `caddy-${name}`), caddyPort, caddySite(caddyPort, gw.url.replace('http://', ''), service.replace('http://', ''))),
    ]
    const lua = luaModules() && nginxSite(luaPort, gw.url, service, dir, 'memory')
    if (lua) proxies.push(await startNginx(dir, `nginx-lua-${name}`, lua.http, lua.main))
    return {
      ports: lua ? [nginxPort, caddyPort, luaPort] : [nginxPort, caddyPort],
      caddyPort,
      luaPort: lua ? luaPort : undefined,
      stop: () => { for (const proxy of proxies) proxy.kill('SIGTERM') },
    }
  }

  it('the documented nginx (with and without Lua) and Caddy configurations keep other proxies\' identity headers from the service', async () => {
    const recording = await startRecordingUpstream()
    const proxies = await startDocumentedProxies('recorded', recording.url)
    try {
      const { token } = await createToken(gw, adminAuth)
      const underscored = Object.fromEntries(Object.entries(OTHER_PROXIES_IDENTITY).map(([name, value]) => [name.replaceAll('-', '_'), value]))
      for (const port of proxies.ports) {
        for (const forged of [OTHER_PROXIES_IDENTITY, underscored]) {
          for (const [path, headers] of [['/app/open/', {}], ['/app/v1/hosts/', bearer(token)]] as const) {
            const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { ...headers, ...forged } })
            assert.equal(response.status, 200, `${port} ${path}`)
            const { headers: seen } = recording.seen.at(-1)!
            assert.deepEqual(otherProxiesIdentity(seen), [], `${port} ${path}`)
          }
        }
      }
    } finally {
      proxies.stop()
      await recording.close()
    }
  })

  it('the documented nginx (with and without Lua) and Caddy configurations let none of the gateway\'s other fields a client sends reach the service', async () => {
    const recording = await startRecordingUpstream()
    const proxies = await startDocumentedProxies('gateway-fields', recording.url)
    try {
      const { token } = await createToken(gw, adminAuth)
      const sent = { 'X-Gatehouse-Login': 'https://evil.example/login', 'X-Gatehouse-Forward-Auth-Secret': 'evil' }
      for (const port of proxies.ports) {
        for (const [path, headers] of [['/app/open/', {}], [`/app/v1/fields-${port}/`, bearer(token)]] as const) {
          const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { ...headers, ...sent } })
          assert.equal(response.status, 200, `${port} ${path}`)
          const { headers: seen } = recording.seen.at(-1)!
          assert.deepEqual(Object.keys(seen).filter((name) => /login|secret/i.test(name)), [], `${port} ${path}`)
        }
      }
    } finally {
      proxies.stop()
      await recording.close()
    }
  })

  it('the documented nginx (with and without Lua) and Caddy configurations let a user of many teams through, with the whole identity', async () => {
    const recording = await startRecordingUpstream()
    const proxies = await startDocumentedProxies('many-teams', recording.url)
    try {
      await gw.app.accounts.create({ username: 'many-teams', password: 'many-teams-password' })
      const { organization } = await createOrgAndTeam(gw, 'Many Teams Organization')
      // 60 teams of 30-character names: an identity token of some 6 KB, past nginx's default 4 KB for an answer.
      const teams: string[] = []
      for (let i = 0; i < 60; i++) {
        const name = `a-team-with-a-long-name-${String(i).padStart(6, '0')}`
        const created = await call(gw, 'POST', 'teams/', { name, organization })
        assert.equal(created.status, 201)
        assert.equal((await grant(gw, 'many-teams', 'Team Member', created.body.id)).status, 201)
        teams.push(name)
      }
      for (const port of proxies.ports) {
        const response = await fetch(`http://127.0.0.1:${port}/app/v1/many-${port}/`, { headers: { authorization: basic('many-teams', 'many-teams-password') } })
        assert.equal(response.status, 200, `${port}`)
        const { headers: seen } = recording.seen.at(-1)!
        const identity = String(seen['x-gatehouse-identity'])
        assert.ok(identity.length > 4096, `${port}: a token of ${identity.length} bytes`)
        assert.deepEqual((decodeJwt(identity).teams as { name: string }[]).map((team) => team.name).sort(), teams, `${port}`)
      }
    } finally {
      proxies.stop()
      await recording.close()
    }
  })

  it('the documented nginx (with and without Lua) and Caddy configurations give the service the id Gatehouse decided under, not a client\'s, and its trace context as sent', async () => {
    const recording = await startRecordingUpstream()
    const proxies = await startDocumentedProxies('ids', recording.url)
    const traceContext = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' }
    try {
      for (const port of proxies.ports) {
        // A path of this proxy's own, so that the Lua module's memory has no decision for it yet: Gatehouse is asked.
        const path = `/app/v1/ids-${port}/`
        const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { ...adminAuth, ...traceContext, 'X-Request-Id': 'chosen-by-client' } })
        assert.equal(response.status, 200, `${port}`)
        const { headers: seen } = recording.seen.find((request) => request.url === path)!
        assert.ok(typeof seen['x-request-id'] === 'string' && seen['x-request-id'] !== 'chosen-by-client', `${port}: ${seen['x-request-id']}`)
        assert.deepEqual([seen.traceparent, seen.tracestate], [traceContext.traceparent, traceContext.tracestate], `${port}`)
        let decided: Record<string, unknown> | undefined
        for (let i = 0; i < 200 && !(decided = logLines.find((line) => line.msg === 'request' && line.reqId === seen['x-request-id'])); i++) await new Promise((resolve) => setTimeout(resolve, 10))
        assert.deepEqual([decided?.path, decided?.decision], [port === proxies.caddyPort ? FORWARD_AUTH : AUTH_REQUEST, 'granted'], `${port}: Gatehouse's decision line has the service's id`)
      }
    } finally {
      proxies.stop()
      await recording.close()
    }
  })

  it('the documented nginx (with and without Lua) and Caddy configurations tell the service no client address, scheme or host a client wrote', async () => {
    const recording = await startRecordingUpstream()
    const proxies = await startDocumentedProxies('addresses', recording.url)
    // The fields a service may believe for its client's address, scheme or host, as the built-in proxy never passes
    // them on from a client (edge.md), each naming something the client made up.
    const forged: Record<string, string> = {
      'X-Forwarded-For': '10.9.9.9', 'X-Forwarded-Host': 'forged.example', 'X-Forwarded-Proto': 'gopher', 'X-Forwarded-Prefix': '/forged', 'X-Forwarded-Port': '9999',
      'X-Forwarded-Server': 'forged.example', 'X-Forwarded': 'for=10.9.9.9', 'Forwarded': 'for=10.9.9.9;host=forged.example', 'Forwarded-For': '10.9.9.9', 'X-Real-IP': '10.9.9.9',
      'X-Client-IP': '10.9.9.9', 'Client-IP': '10.9.9.9', 'True-Client-IP': '10.9.9.9', 'X-Cluster-Client-IP': '10.9.9.9', 'CF-Connecting-IP': '10.9.9.9',
      'Fastly-Client-IP': '10.9.9.9', 'X-Originating-IP': '10.9.9.9',
    }
    // CGI-style servers read `_` as `-` (nginx drops such fields; Caddy is told to).
    const underscored = Object.fromEntries(Object.entries(forged).filter(([name]) => name.includes('-')).map(([name, value]) => [name.replaceAll('-', '_'), value]))
    try {
      const { token } = await createToken(gw, adminAuth)
      for (const port of proxies.ports) {
        for (const [path, headers] of [['/app/open/', {}], ['/app/v1/hosts/', bearer(token)]] as const) {
          const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { ...headers, ...forged, ...underscored } })
          assert.equal(response.status, 200, `${port} ${path}`)
          const { headers: seen } = recording.seen.at(-1)!
          const believed = Object.entries(seen).filter(([, value]) => /10\.9\.9\.9|forged|gopher|9999/.test(String(value))).map(([name]) => name)
          assert.deepEqual(believed, [], `${port} ${path}`)
          assert.equal(seen['x-forwarded-for'], '127.0.0.1', `${port} ${path}: the client's own address`)
        }
      }
    } finally {
      proxies.stop()
      await recording.close()
    }
  })

  it('the documented nginx (with and without Lua) and Caddy configurations let no client take the identity headers from the service by naming them in Connection', async () => {
    const recording = await startRecordingUpstream()
    const proxies = await startDocumentedProxies('connection', recording.url)
    // X-Gatehouse-Teams too, which the admin may lack here: named, it must not take the others with it.
    const identity = ['x-gatehouse-auth-method', 'x-gatehouse-identity', 'x-gatehouse-user', 'x-gatehouse-user-id']
    try {
      const { token } = await createToken(gw, adminAuth)
      for (const port of proxies.ports) {
        for (const connection of [`close, ${identity.join(', ')}, x-gatehouse-teams`, 'keep-alive, X-Gatehouse-Identity', 'X-Gatehouse-User']) {
          const before = recording.seen.length
          // fetch() may not set Connection: node:http sends it as written.
          const status = await new Promise<number>((resolve, reject) => {
            request(`http://127.0.0.1:${port}/app/v1/hosts/`, { headers: { ...bearer(token), connection }, agent: false }, (response) => {
              response.resume()
              response.on('end', () => resolve(response.statusCode!))
            }).on('error', reject).end()
          })
          assert.equal(status, 200, `${port}: ${connection}`)
          assert.equal(recording.seen.length, before + 1, `${port}: ${connection}`)
          const seen = recording.seen.at(-1)!.headers
          assert.deepEqual(identity.filter((name) => seen[name] === undefined), [], `${port}: ${connection}`)
          assert.equal(seen['x-gatehouse-user'], 'admin', `${port}: ${connection}`)
        }
      }
    } finally {
      proxies.stop()
      await recording.close()
    }
  })

  it('the documented nginx (with and without Lua) and Caddy configurations keep the gateway\'s cookies and the method and URL overrides from the service', async () => {
    const planted = ['gateway_sessionid=planted; Path=/', 'csrftoken=fixed; Path=/', ' __Host-gateway_sso=x; Path=/; Secure', '=gateway_sessionid=nameless; Path=/',
      'gateway_sso=flow; Path=/api/gateway/v1/login/sso/', 'KEYCLOAK_SESSION=s; Path=/realms/platform/', 'gatehouse_oidc_session.sig=s', 'csrftoken2=theirs; Path=/', 'theirs=kept; Path=/']
    const recording = await startRecordingUpstream((request, response) => {
      response.writeHead(200, { 'content-type': 'application/json', ...(request.url!.includes('set-cookies') ? { 'set-cookie': planted } : {}) })
      response.end('{}')
    })
    const proxies = await startDocumentedProxies('cookies', recording.url)
    const { caddyPort, luaPort } = proxies
    try {
      const session = await login(gw, 'admin', 'admin-test-password')
      const overrides = { 'x-http-method-override': 'GET', 'x-http-method': 'GET', 'x-method-override': 'GET', 'x-original-url': '/app/v1/hosts/', 'x-rewrite-url': '/app/v1/hosts/' }
      for (const port of proxies.ports) {
        for (const [cookie, left] of [[`theirs=1; ${session.cookie}; other=2`, 'theirs=1; other=2'], [`${session.cookie}; __Host-gateway_sso=flow`, undefined], [`csrftoken=${session.csrf}; theirs=1; gateway_sessionid=${session.sessionId}`, 'theirs=1']] as const) {
          const response = await fetch(`http://127.0.0.1:${port}/app/v1/hosts/`, { headers: { cookie, 'x-csrftoken': session.csrf, ...overrides } })
          assert.equal(response.status, 200, `${port}: ${cookie}`)
          const { headers: seen } = recording.seen.at(-1)!
          assert.equal(seen.cookie || undefined, left, `${port}: ${cookie}`)
          assert.deepEqual(Object.keys(overrides).filter((field) => field in seen), [], `${port}`)
          // With the session cookie, the CSRF token is the gateway's credential too.
          assert.equal(seen['x-csrftoken'], undefined, `${port}: ${cookie}`)
        }
        // With another credential the field is the client's own, and passes on as behind the built-in proxy.
        assert.equal((await fetch(`http://127.0.0.1:${port}/app/v1/hosts/`, { headers: { ...adminAuth, 'x-csrftoken': 'theirs' } })).status, 200)
        assert.equal(recording.seen.at(-1)!.headers['x-csrftoken'], 'theirs', `${port}`)
      }
      // The service cannot set the gateway's cookies where the proxy can remove one (nginx alone cannot: documented).
      for (const port of luaPort === undefined ? [caddyPort] : [caddyPort, luaPort]) {
        const response = await fetch(`http://127.0.0.1:${port}/app/v1/set-cookies/`, { headers: { cookie: session.cookie } })
        assert.equal(response.status, 200)
        assert.deepEqual(response.headers.getSetCookie().filter((value) => value.trim() !== ''), ['csrftoken2=theirs; Path=/', 'theirs=kept; Path=/'], `${port}`)
        // Every one of a name, where a browser holds two (nginx's maps take out the first only: documented).
        const cookie = `gateway_sessionid=old; theirs=1; gateway_sessionid=${session.sessionId}; csrftoken=${session.csrf}`
        assert.equal((await fetch(`http://127.0.0.1:${port}/app/v1/hosts/`, { headers: { cookie } })).status, 200)
        assert.equal(recording.seen.at(-1)!.headers.cookie, 'theirs=1', port === caddyPort ? 'Caddy' : 'nginx with Lua')
      }
      // The configurations name every cookie of the gateway's.
      const documented = readFileSync('docs/forward-auth.md', 'utf8')
      for (const name of GATEWAY_COOKIE_NAMES) {
        for (const [what, block] of [['Lua', documented.slice(documented.indexOf('local GATEWAY_COOKIES'), documented.indexOf('local function cookie_name'))], ['Caddy', documented.slice(documented.indexOf('header_down Set-Cookie'), documented.indexOf('header_down Set-Cookie') + 400)]]) {
          assert.ok(block!.includes(name), `${what} names ${name}`)
        }
      }
    } finally {
      proxies.stop()
      await recording.close()
    }
  })

  it('the documented nginx configuration refuses a POST whose override field names a method the rules refuse; Caddy\'s removes the field before asking', async () => {
    const [nginxPort, caddyPort] = [await freePort(), await freePort()]
    const recording = await startRecordingUpstream()
    const proxies = [
      await startNginx(dir, 'nginx-overrides', nginxSite(nginxPort, gw.url, recording.url, dir, 'asked').http),
      await startCaddy(join(dir, 'caddy-overrides'), caddyPort, caddySite(caddyPort, gw.url.replace('http://', ''), recording.url.replace('http://', ''))),
    ]
    try {
      const post = (port: number, headers: Record<string, string>) => fetch(`http://127.0.0.1:${port}/rails/items/1`, { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json', ...headers }, body: '{}' })
      // nginx's question carries the client's fields: Gatehouse judges the DELETE named.
      assert.equal((await post(nginxPort, { 'x-http-method-override': 'DELETE' })).status, 403)
      assert.equal((await post(nginxPort, { 'x-http-method-override': 'GET' })).status, 200)
      // Caddy removes the field before it asks, and so before the service: the POST is a POST.
      const seenBefore = recording.seen.length
      assert.equal((await post(caddyPort, { 'x-http-method-override': 'DELETE', 'x-method-override': 'DELETE' })).status, 200)
      assert.equal(recording.seen.length, seenBefore + 1)
      assert.deepEqual(Object.keys(recording.seen.at(-1)!.headers).filter((field) => field.includes('override')), [])
      // A spelling Caddy's lines do not remove reaches the question, and is judged there.
      assert.equal((await post(caddyPort, { 'X-HTTP_Method-Override': 'DELETE' })).status, 403)
      assert.equal((await post(caddyPort, { 'X-HTTP_Method-Override': 'GET' })).status, 200)
    } finally {
      for (const proxy of proxies) proxy.kill('SIGTERM')
      await recording.close()
    }
  })

  it('the documented nginx configuration keeps its connections to Gatehouse and to the service open between requests', async () => {
    const recording = await startRecordingUpstream()
    const connections = { gatehouse: 0, service: 0 }
    const countGatehouse = () => connections.gatehouse++
    recording.server.on('connection', () => connections.service++)
    const port = await freePort()
    const proxy = await startNginx(dir, 'nginx-kept-open', nginxSite(port, gw.url, recording.url, dir, 'asked').http)
    try {
      const { token } = await createToken(gw, adminAuth)
      gw.server.server.on('connection', countGatehouse)
      // Every request asks Gatehouse (no decision cache here) and goes on to the service.
      for (let i = 0; i < 5; i++) assert.equal((await fetch(`http://127.0.0.1:${port}/app/v1/hosts/`, { headers: bearer(token) })).status, 200)
      assert.deepEqual(connections, { gatehouse: 1, service: 1 })
    } finally {
      gw.server.server.off('connection', countGatehouse)
      proxy.kill('SIGTERM')
      await recording.close()
    }
  })

  const variants: { decisions: Decisions; name: string; keptFor?: { words: string; ms: number }; skip?: string }[] = [
    { decisions: 'asked', name: 'nginx auth_request' },
    // nginx's file cache keeps time in whole seconds: a decision cached for "1s" is served until the second after next
    // (the wait allowed beyond those two seconds is for a loaded machine).
    { decisions: 'file cache', name: 'nginx auth_request with the 1 s decision cache', keptFor: { words: 'two seconds', ms: 3500 } },
    {
      decisions: 'memory',
      name: 'nginx with the Lua module: decisions kept in memory for 1 s',
      keptFor: { words: 'a second', ms: 1500 },
      skip: luaModules() ? undefined : 'the Lua module is not installed (apt-get install libnginx-mod-http-lua)',
    },
  ]
  for (const { decisions, name, keptFor, skip } of variants) {
    describe(name, { skip }, () => {
      let nginx: string

      before(async () => {
        const port = await freePort()
        const { http, main } = nginxSite(port, gw.url, app, dir, decisions)
        children.push(await startNginx(dir, `nginx-${decisions.replace(' ', '-')}`, http, main))
        nginx = `http://127.0.0.1:${port}`
      })

      it('lets an allowed request through with the identity, verified by the service', async () => {
        const { token } = await createToken(gw, adminAuth)
        const response = await fetch(`${nginx}/app/v1/hosts/`, { headers: bearer(token) })
        assert.equal(response.status, 200)
        const seen = await json(response)
        assert.equal(seen.identity.username, 'admin')
        assert.equal(seen.identity.auth_method, 'token')
        assert.equal(seen.identity.verified, true)
        assert.equal(seen.headers.authorization, null)
      })

      it('refuses a request without credentials with 401, and sends a browser to log in', async () => {
        const refused = await fetch(`${nginx}/app/v1/hosts/`, { headers: { 'x-gatehouse-user': 'mallory' } })
        assert.equal(refused.status, 401)
        assert.match(refused.headers.get('content-type')!, /^application\/json\b/, 'the JSON body said to be JSON')
        assert.equal((await json(refused)).code, 'not_authenticated')
        assert.match(refused.headers.get('www-authenticate')!, /^Basic realm="Gatehouse", charset="UTF-8", Bearer realm="Gatehouse"$/, 'every challenge, each once')
        const browser = await fetch(`${nginx}/web/page`, { headers: BROWSER, redirect: 'manual' })
        assert.equal(browser.status, 302)
        assert.match(browser.headers.get('location')!, /^\/api\/gateway\/v1\/login\/\?next=%2Fweb%2Fpage/, 'the path as Gatehouse named it, not made absolute from the client\'s Host')
        const login = await fetch(new URL(browser.headers.get('location')!, nginx), { headers: BROWSER })
        assert.equal(login.status, 200, 'the login page is served through the same proxy')
      })

      it('sends a service\'s prefix asked for without its slash to the prefix, as the built-in proxy does', async () => {
        const typed = await fetch(`${nginx}/app?page=2`, { redirect: 'manual' })
        assert.equal(typed.status, 302)
        assert.match(typed.headers.get('location')!, /^(http:\/\/[^/]+)?\/app\/\?page=2$/)
        const followed = await fetch(new URL(typed.headers.get('location')!, nginx), { headers: adminAuth })
        assert.equal(followed.status, 200)
        assert.equal((await json(followed)).identity.username, 'admin')
      })

      it('routes Gatehouse\'s own paths to Gatehouse, without asking it about them', async () => {
        const discovery = await fetch(`${nginx}/realms/${REALM}/.well-known/openid-configuration`)
        assert.equal(discovery.status, 200)
        assert.match((await json(discovery)).issuer, new RegExp(`/realms/${REALM}$`))
        for (const path of ['/ui/', '/api/gateway/v1/login/']) {
          const page = await fetch(`${nginx}${path}`, { headers: BROWSER, redirect: 'manual' })
          assert.ok(page.headers.get('x-request-id'), `${path} answered by Gatehouse, not refused by nginx (${page.status})`)
        }
      })

      it('keeps the endpoints that answer with the identity internal: a client asking the public address gets 404', async () => {
        await askFromOutside(nginx)
        assert.equal((await fetch(`${nginx}/api/gateway/v1/users/`, { headers: adminAuth })).status, 200, 'the rest of the API is served')
      })

      it('judges the original method: a read-only token may read but not POST', async () => {
        const { token } = await createToken(gw, adminAuth, { scope: 'read' })
        assert.equal((await fetch(`${nginx}/app/v1/jobs/`, { headers: bearer(token) })).status, 200)
        const write = await fetch(`${nginx}/app/v1/jobs/`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{"name":"x"}' })
        assert.equal(write.status, 403)
      })

      it('judges a POST without a media type as every method its body could name, when it has one: chunked or not', async () => {
        const url = `${nginx}/rails/items/1`
        assert.equal(await postWithoutMediaType(url, adminAuth, 'length'), 403)
        assert.equal(await postWithoutMediaType(url, adminAuth, 'chunked'), 403)
        assert.equal(await postWithoutMediaType(url, adminAuth, 'none'), 200)
        // A client's own field can only add to what is judged.
        assert.equal(await postWithoutMediaType(url, { ...adminAuth, 'x-original-content-length': '0', 'x-original-transfer-encoding': '' }, 'length'), 403)
      })

      it('lets a body larger than nginx takes unless told (1 MB) reach the service whole, with its length or chunked', async () => {
        for (const chunked of [false, true]) {
          assert.deepEqual(await upload(`${nginx}/app/v1/uploads/`, adminAuth, 5 << 20, chunked), { status: 200, bodyBytes: 5 << 20 }, `chunked: ${chunked}`)
        }
      })

      it('does not let a client name itself or its teams', async () => {
        const seen = await json(await fetch(`${nginx}/app/open/`, { headers: { 'x-gatehouse-user': 'mallory', 'x-gatehouse-user-id': '1', 'x-gatehouse-teams': 'Forged' } }))
        assert.equal(seen.identity, null)
        assert.equal(seen.headers['x-gatehouse-teams'], null)
        const { token } = await createToken(gw, adminAuth)
        const signedIn = await json(await fetch(`${nginx}/app/v1/hosts/`, { headers: { ...bearer(token), 'x-gatehouse-teams': 'Forged' } }))
        assert.equal(signedIn.headers['x-gatehouse-teams'], 'Operations')
      })

      it('tunnels a WebSocket with the identity, opened with the session cookie from our own page only', async () => {
        const session = await login(gw, 'admin', 'admin-test-password')
        const ws = nginx.replace('http:', 'ws:')
        const opened = new WebSocket(`${ws}/app/ws/`, { headers: { cookie: session.cookie, origin: nginx } })
        opened.on('error', () => undefined)
        try {
          const [first] = await Promise.race([once(opened, 'message'), once(opened, 'unexpected-response').then(([, response]) => {
            throw new Error(`the upgrade was refused with ${(response as { statusCode: number }).statusCode}`)
          })])
          const seen = JSON.parse(String(first))
          assert.equal(seen.identity.username, 'admin')
          assert.equal(seen.identity.auth_method, 'session')
        } finally {
          opened.terminate()
        }
        for (const headers of [{ cookie: session.cookie, origin: 'https://evil.example' }, {}]) {
          const refused = new WebSocket(`${ws}/app/ws/`, { headers })
          refused.on('error', () => undefined)
          const [, response] = await Promise.race([once(refused, 'unexpected-response'), once(refused, 'open').then(() => {
            refused.terminate()
            throw new Error('the upgrade was let through')
          })])
          assert.equal((response as { statusCode: number }).statusCode, headers.cookie ? 403 : 401)
        }
      })

      it('refuses another site\'s page what it allowed our own just before: the CSRF checks of a POST and of a WebSocket handshake', async () => {
        const session = await login(gw, 'admin', 'admin-test-password')
        const handshake = { cookie: session.cookie, 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' }
        assert.equal((await fetch(`${nginx}/app/ws/`, { headers: { ...handshake, origin: nginx } })).status, 200)
        assert.equal((await fetch(`${nginx}/app/ws/`, { headers: { ...handshake, origin: 'https://evil.example' } })).status, 403)
        const post = { method: 'POST', body: '{}' }
        assert.equal((await fetch(`${nginx}/app/v1/jobs/`, { ...post, headers: { ...withCsrf(session), 'content-type': 'application/json', origin: nginx } })).status, 200)
        assert.equal((await fetch(`${nginx}/app/v1/jobs/`, { ...post, headers: { cookie: session.cookie, 'content-type': 'text/plain', origin: 'https://evil.example' } })).status, 403)
      })

      if (decisions === 'memory') it('passes on Gatehouse\'s refusals as it answered them: status, code and challenges', async () => {
        const refused = await fetch(`${nginx}/app/v1/hosts/`)
        assert.equal(refused.status, 401)
        assert.equal((await json(refused)).code, 'not_authenticated')
        const challenges = refused.headers.get('www-authenticate')!
        assert.match(challenges, /^Basic realm="Gatehouse"/)
        assert.match(challenges, /, Bearer realm="Gatehouse"$/)
        const { token } = await createToken(gw, adminAuth, { scope: 'read' })
        const write = await fetch(`${nginx}/app/v1/jobs/`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{}' })
        assert.equal(write.status, 403)
        assert.equal((await json(write)).code, 'insufficient_scope')
        const nowhere = await fetch(`${nginx}/nowhere/`, { headers: bearer(token) })
        assert.equal(nowhere.status, 404)
        assert.equal((await json(nowhere)).code, 'not_found')
      })

      if (keptFor) it('asks Gatehouse once for a read repeated within the second, and for every write', async () => {
        const { token } = await createToken(gw, adminAuth)
        let asked = 0
        const count = (request: IncomingMessage) => {
          if (request.url === AUTH_REQUEST) asked++
        }
        gw.server.server.on('request', count)
        try {
          for (let i = 0; i < 5; i++) assert.equal((await fetch(`${nginx}/app/v1/hosts/?repeated`, { headers: bearer(token) })).status, 200)
          assert.equal(asked, 1)
          const write = { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: '{}' }
          for (let i = 0; i < 2; i++) {
            const written = await fetch(`${nginx}/app/v1/jobs/`, write)
            assert.equal(written.status, 200)
            assert.equal((await json(written)).body_bytes, 2, 'the body reaches the service')
          }
          assert.equal(asked, 3)
        } finally {
          gw.server.server.off('request', count)
        }
      })

      if (keptFor) it(`serves an allowed read from the cache for every credential type, and refuses it within ${keptFor.words} of the account being disabled`, async () => {
        const username = `kept-reader-${decisions.replace(' ', '-')}`
        const password = 'kept-reader-Long-Passphrase-4k'
        const reader = await gw.app.accounts.create({ username, password })
        const readerAuth = { authorization: basic(username, password) }
        const { token } = await createToken(gw, readerAuth)
        const session = await login(gw, username, password)
        const { access_token: accessToken } = await passwordLogin(gw, username, password)
        const asked: [method: string, url: string, headers: Record<string, string>][] = [
          ['basic', `${nginx}/app/v1/hosts/`, readerAuth],
          ['session', `${nginx}/app/v1/hosts/`, { cookie: session.cookie }],
          ['token', `${nginx}/app/v1/hosts/`, bearer(token)],
          ['oidc', `${nginx}/sso/v1/hosts/`, bearer(accessToken)],
        ]
        const identities = async () => Promise.all(asked.map(async ([, url, headers]) => (await json(await fetch(url, { headers }))).identity?.auth_method))
        assert.deepEqual(await identities(), asked.map(([method]) => method))
        // From now on Gatehouse refuses them all: what still passes, within the second, came from nginx's cache.
        await gw.app.accounts.update(reader.id, { isActive: false })
        assert.deepEqual(await identities(), asked.map(([method]) => method), 'each decision is served from the cache')
        await Promise.all(asked.map(([, url, headers]) => untilRefused(url, headers, keptFor.ms)))
      })

      if (keptFor) it('keys a kept decision on every cookie sent: a cookie nginx reads as the session that Gatehouse does not serves no one else', async () => {
        const session = await login(gw, 'admin', 'admin-test-password')
        // nginx's $cookie_ matches names in any letter case and also splits at commas, Gatehouse's parser neither: a
        // cookie tossed into the browser (from a sibling subdomain, say) is what nginx takes for the session.
        for (const [tossed, spelling] of [['tossed-upper', 'GATEWAY_SESSIONID=tossed-upper; '], ['tossed-comma', 'x=1,gateway_sessionid=tossed-comma; ']]) {
          const url = `${nginx}/app/v1/hosts/?${tossed}`
          const signedIn = await fetch(url, { headers: { cookie: `${spelling}${session.cookie}` } })
          assert.equal(signedIn.status, 200)
          assert.equal((await json(signedIn)).identity.username, 'admin')
          const other = await fetch(url, { headers: { cookie: `gateway_sessionid=${tossed}` } })
          assert.equal(other.status, 401, `${spelling}: the decision made for the real session is not served for the tossed one`)
        }
      })

      if (keptFor) it('keys a kept decision so that no request takes another\'s: text moved between the cookie and the URL makes another key', async () => {
        const host = new URL(nginx).host
        // Joined with a character a client may send, the two keys would be one: `|a|GET|<host>|/app/v1/hosts/?x=|GET|<host>|/outer/open|127.0.0.1`.
        const refused = `${nginx}/app/v1/hosts/?x=|GET|${host}|/outer/open`
        assert.equal((await fetch(refused, { headers: { cookie: 'a' } })).status, 401)
        assert.equal((await fetch(`${nginx}/outer/open`, { headers: { cookie: `a|GET|${host}|/app/v1/hosts/?x=` } })).status, 200, 'a public path, allowed and kept')
        assert.equal((await fetch(refused, { headers: { cookie: 'a' } })).status, 401, 'not the public path\'s decision')
      })

      if (decisions === 'memory') it('asks Gatehouse once for reads that find no decision while it is being asked', async () => {
        const { token } = await createToken(gw, adminAuth)
        let asked = 0
        const slowToAnswer = (request: IncomingMessage) => {
          if (request.url !== AUTH_REQUEST) return
          // The first question answered late: the other reads, sent at the same moment, reach nginx meanwhile.
          if (++asked === 1) for (const until = Date.now() + 300; Date.now() < until;);
        }
        gw.server.server.on('request', slowToAnswer)
        try {
          const reads = await Promise.all(Array.from({ length: 8 }, () => onConnectionOfItsOwn(`${nginx}/app/v1/hosts/?together`, bearer(token))))
          assert.deepEqual(reads.map((read) => read.status), Array(8).fill(200))
          assert.equal(asked, 1)
        } finally {
          gw.server.server.off('request', slowToAnswer)
        }
      })

      if (decisions === 'memory') it('shares each decision between workers: Gatehouse asked once, and every worker refusing once it expires', async () => {
        // Two workers, each new connection to either (reuseport spreads them), each answer naming the one that served it.
        const port = await freePort()
        const { http, main } = nginxSite(port, gw.url, app, dir, decisions)
        const twoWorkers = replaced(http, [
          [`listen 127.0.0.1:${port};`, `listen 127.0.0.1:${port} reuseport;`],
          ['proxy_pass http://controller;', 'proxy_pass http://controller;\n    add_header X-Worker $pid always;'],
        ])
        children.push(await startNginx(dir, 'nginx-lua-two-workers', twoWorkers, main, 2))
        const created = await createToken(gw, adminAuth)
        let asked = 0
        const count = (request: IncomingMessage) => {
          if (request.url === AUTH_REQUEST) asked++
        }
        gw.server.server.on('request', count)
        try {
          // A loaded machine may take longer than the decision's second to reach both workers: then again, with another URL.
          for (let attempt = 1; ; attempt++) {
            const url = `http://127.0.0.1:${port}/app/v1/hosts/?attempt=${attempt}`
            asked = 0
            const sent = Date.now()
            // Cookies of the gateway's names, twice each, which a decision keeps taken out for every worker.
            const headers = { ...bearer(created.token), cookie: 'gateway_sessionid=old; theirs=1; gateway_sessionid=new; csrftoken=x' }
            const first = await onConnectionOfItsOwn(url, headers)
            assert.equal(first.status, 200)
            assert.equal(first.cookie, 'theirs=1')
            const decided = Date.now()
            // Well into the decision's second, so that a worker asking for itself would keep its own decision well beyond it.
            await new Promise((resolve) => setTimeout(resolve, 400))
            const workers = new Set([first.worker])
            for (let tries = 0; workers.size < 2; tries++) {
              assert.ok(tries < 100, 'a hundred connections all taken by one worker')
              const again = await onConnectionOfItsOwn(url, headers)
              assert.equal(again.status, 200)
              assert.equal(again.cookie, 'theirs=1', `worker ${again.worker}`)
              workers.add(again.worker)
            }
            if (Date.now() - sent >= 1000) {
              assert.ok(attempt < 5, 'never reached both workers within the decision\'s second')
              continue
            }
            assert.equal(asked, 1, 'both workers let the read through on the one decision')
            assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
            const refusedBy = new Set<string>()
            const allowedLate: number[] = []
            while (refusedBy.size < 2) {
              assert.ok(Date.now() - decided < 15_000, 'both workers refuse the revoked token')
              const requested = Date.now()
              const after = await onConnectionOfItsOwn(url, headers)
              if (after.status === 401) refusedBy.add(after.worker)
              else {
                assert.equal(after.status, 200)
                if (requested > decided + 1100) allowedLate.push(requested - decided)
              }
            }
            // (The 100 ms beyond the second: nginx reads the clock once per turn of its event loop.)
            assert.deepEqual(allowedLate, [], 'no worker let the read through more than a second after the decision')
            return
          }
        } finally {
          gw.server.server.off('request', count)
        }
      })

      if (decisions === 'memory') it('asks again for a decision an earlier version of the block kept without its cookies, which a reload leaves in shared memory', async () => {
        const port = await freePort()
        const { http, main } = nginxSite(port, gw.url, app, dir, decisions)
        // A decision as the block before stored it: when it expires, then the identity headers, and no cookies line.
        const plant = 'location = /plant {\n    content_by_lua_block {\n      ngx.shared.gatehouse_decisions:set(ngx.req.get_uri_args().key, (ngx.now() + 30) .. "\\nplanted\\n999\\nbasic\\n\\n", 30)\n      ngx.say("planted")\n    }\n  }'
        children.push(await startNginx(dir, 'nginx-lua-reloaded', replaced(http, [[`listen 127.0.0.1:${port};`, `listen 127.0.0.1:${port};\n  ${plant}`]]), main))
        const host = `127.0.0.1:${port}`
        const cookie = 'gateway_sessionid=old; theirs=1; gateway_sessionid=new'
        const target = '/app/v1/hosts/?reloaded'
        // The key as the block's map builds it.
        const key = [adminAuth.authorization, cookie, 'GET', host, target, '127.0.0.1'].join('\n')
        assert.equal(await (await fetch(`http://${host}/plant?key=${encodeURIComponent(key)}`)).text(), 'planted\n')
        const response = await fetch(`http://${host}${target}`, { headers: { ...adminAuth, cookie } })
        assert.equal(response.status, 200)
        const seen = (await response.json()) as { identity: { username: string }; headers: { cookie: string | null } }
        assert.deepEqual([seen.identity.username, seen.headers.cookie], ['admin', 'theirs=1'])
      })

      it(keptFor ? `refuses a revoked token once the kept decision expires, within ${keptFor.words}` : 'refuses a revoked token on the next request', async () => {
        const created = await createToken(gw, adminAuth)
        const url = `${nginx}/app/v1/hosts/`
        assert.equal((await fetch(url, { headers: bearer(created.token) })).status, 200)
        assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
        if (!keptFor) assert.equal((await fetch(url, { headers: bearer(created.token) })).status, 401)
        else await untilRefused(url, bearer(created.token), keptFor.ms)
      })
    })
  }

  describe('Caddy forward_auth', () => {
    let caddy: string

    before(async () => {
      const port = await freePort()
      children.push(await startCaddy(dir, port, caddySite(port, gw.url.replace('http://', ''), app.replace('http://', ''))))
      caddy = `http://127.0.0.1:${port}`
    })

    it('does not let a client name itself in another spelling of the identity headers', async () => {
      const recording = await startRecordingUpstream()
      const port = await freePort()
      const recordingCaddy = await startCaddy(join(dir, 'recorded'), port, caddySite(port, gw.url.replace('http://', ''), recording.url.replace('http://', '')))
      try {
        const anonymous = await fetch(`http://127.0.0.1:${port}/app/open/`, { headers: FORGED_SPELLINGS })
        assert.equal(anonymous.status, 200)
        const { token } = await createToken(gw, adminAuth)
        const signedIn = await fetch(`http://127.0.0.1:${port}/app/v1/hosts/`, { headers: { ...bearer(token), ...FORGED_SPELLINGS } })
        assert.equal(signedIn.status, 200)
        const identityFields = recording.seen.map((seen) => Object.keys(seen.headers).filter((name) => /gatehouse/i.test(name)).sort())
        assert.deepEqual(identityFields[0], [], 'an anonymous request reaches the service without identity headers')
        assert.deepEqual(identityFields[1]!.filter((name) => name !== 'x-gatehouse-teams'), ['x-gatehouse-auth-method', 'x-gatehouse-identity', 'x-gatehouse-user', 'x-gatehouse-user-id'], 'only the gateway\'s own')
        const { headers } = recording.seen[1]!
        assert.equal(headers['x-gatehouse-user'], 'admin')
        assert.notEqual(headers['x-gatehouse-teams'], 'Forged')
      } finally {
        recordingCaddy.kill('SIGTERM')
        await recording.close()
      }
    })

    it('keeps the endpoints that answer with the identity internal: a client asking the public address gets 404', async () => {
      await askFromOutside(caddy)
      assert.equal((await fetch(`${caddy}/api/gateway/v1/users/`, { headers: adminAuth })).status, 200, 'the rest of the API is served')
    })

    it('lets an allowed request through with the identity, verified by the service', async () => {
      const response = await fetch(`${caddy}/app/v1/hosts/`, { headers: adminAuth })
      assert.equal(response.status, 200)
      const seen = await json(response)
      assert.equal(seen.identity.username, 'admin')
      assert.equal(seen.identity.verified, true)
    })

    it('sends a service\'s prefix asked for without its slash to the prefix, as the built-in proxy does', async () => {
      for (const method of ['GET', 'HEAD']) {
        const typed = await fetch(`${caddy}/app?page=2`, { method, redirect: 'manual' })
        assert.equal(typed.status, 301, method)
        assert.equal(typed.headers.get('location'), '/app/?page=2')
      }
      assert.equal((await fetch(`${caddy}/app`, { method: 'POST', body: '{}', redirect: 'manual' })).status, 404)
    })

    it('passes on Gatehouse\'s 401 and its login redirect', async () => {
      const refused = await fetch(`${caddy}/app/v1/hosts/`)
      assert.equal(refused.status, 401)
      assert.equal((await json(refused)).code, 'not_authenticated')
      const browser = await fetch(`${caddy}/web/page`, { headers: BROWSER, redirect: 'manual' })
      assert.equal(browser.status, 302)
      assert.match(browser.headers.get('location')!, /\/api\/gateway\/v1\/login\/\?next=%2Fweb%2Fpage/)
    })

    it('does not let a client name itself or its teams', async () => {
      const seen = await json(await fetch(`${caddy}/app/open/`, { headers: { 'x-gatehouse-user': 'mallory', 'x-gatehouse-teams': 'Forged' } }))
      assert.equal(seen.identity, null)
      assert.equal(seen.headers['x-gatehouse-teams'], null)
      const { token } = await createToken(gw, adminAuth)
      const signedIn = await json(await fetch(`${caddy}/app/v1/hosts/`, { headers: { ...bearer(token), 'x-gatehouse-teams': 'Forged' } }))
      assert.equal(signedIn.headers['x-gatehouse-teams'], 'Operations')
    })

    it('opens a WebSocket with the session cookie from our own page only (cross-site WebSocket hijacking)', async () => {
      const session = await login(gw, 'admin', 'admin-test-password')
      const opened = new WebSocket(`${caddy.replace('http:', 'ws:')}/app/ws/`, { headers: { cookie: session.cookie, origin: caddy } })
      try {
        const [first] = await once(opened, 'message')
        assert.equal(JSON.parse(String(first)).identity.auth_method, 'session')
      } finally {
        opened.terminate()
      }
      const crossSite = new WebSocket(`${caddy.replace('http:', 'ws:')}/app/ws/`, { headers: { cookie: session.cookie, origin: 'https://evil.example' } })
      crossSite.on('error', () => undefined)
      const [, response] = await Promise.race([once(crossSite, 'unexpected-response'), once(crossSite, 'open').then(() => {
        crossSite.terminate()
        throw new Error('the upgrade was let through')
      })])
      assert.equal(response.statusCode, 403)
    })

    it('opens a WebSocket with the identity headers though its handshake names them in Connection', async () => {
      const session = await login(gw, 'admin', 'admin-test-password')
      const opened = new WebSocket(`${caddy.replace('http:', 'ws:')}/app/ws/`, { headers: { cookie: session.cookie, origin: caddy, connection: 'Upgrade, X-Gatehouse-Identity, X-Gatehouse-User' } })
      try {
        const [first] = await once(opened, 'message')
        const { identity } = JSON.parse(String(first))
        assert.equal(identity?.username, 'admin')
        assert.equal(identity?.verified, true)
      } finally {
        opened.terminate()
      }
    })

    it('judges a POST without a media type as every method its body could name, unless its length says it has none', async () => {
      const url = `${caddy}/rails/items/1`
      assert.equal(await postWithoutMediaType(url, adminAuth, 'length'), 403)
      assert.equal(await postWithoutMediaType(url, adminAuth, 'none'), 200)
      // Go's server takes Transfer-Encoding away, so Caddy cannot say a body is chunked: without a length, it may be,
      // and a POST with neither a length nor a body is one Caddy cannot tell from it.
      const head = `POST /rails/items/1 HTTP/1.1\r\nHost: ${new URL(caddy).host}\r\nAuthorization: ${adminAuth.authorization}\r\nConnection: close\r\n`
      assert.match(await exchange(caddy, `${head}Transfer-Encoding: chunked\r\n\r\ne\r\n_method=DELETE\r\n0\r\n\r\n`), /^HTTP\/1\.1 403 /, 'chunked')
      assert.match(await exchange(caddy, `${head}\r\n`), /^HTTP\/1\.1 403 /, 'neither')
      // A client's own X-Original-* fields, which Caddy passes on to the question, can only add to what is judged.
      for (const field of ['X-Original-Transfer-Encoding: ', 'X-Original-Transfer-Encoding: identity', 'X-Original-Content-Length: 0', 'X-Original-Protocol: HTTP/1.0']) {
        assert.match(await exchange(caddy, `${head}${field}\r\nTransfer-Encoding: chunked\r\n\r\ne\r\n_method=DELETE\r\n0\r\n\r\n`), /^HTTP\/1\.1 403 /, field)
      }
    })

    it('refuses a revoked token on the next request', async () => {
      const created = await createToken(gw, adminAuth)
      assert.equal((await fetch(`${caddy}/app/v1/hosts/`, { headers: bearer(created.token) })).status, 200)
      assert.equal((await gw.fetch(`/api/gateway/v1/tokens/${created.id}/`, { method: 'DELETE', headers: adminAuth })).status, 204)
      assert.equal((await fetch(`${caddy}/app/v1/hosts/`, { headers: bearer(created.token) })).status, 401)
    })
  })
})

describe('forward authentication with forward_auth.secret', () => {
  const SECRET = 'a-secret-only-the-proxy-in-front-holds-0123456789'
  let gw: TestGateway

  before(async () => {
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, trusted_proxies: ['127.0.0.1'] },
        forward_auth: { secret: SECRET },
        services: [{ name: 'app', prefix: '/app/', upstream: 'builtin:demo' }],
      },
    })
  })
  after(() => gw.close())

  const questions: [string, RequestInit][] = [
    [AUTH_REQUEST, { headers: { 'x-original-method': 'GET', 'x-original-uri': '/app/v1/hosts/' } }],
    [FORWARD_AUTH, { headers: { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/app/v1/hosts/' } }],
    [`${EXT_AUTHZ}/app/v1/hosts/`, {}],
    // With a body: answered by the routes, not the lean path.
    [`${EXT_AUTHZ}/app/v1/jobs/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }],
  ]

  it('answers a trusted proxy\'s question only when it carries the secret: a client of the proxy\'s general route gets 403', async () => {
    for (const [path, init] of questions) {
      for (const secret of [undefined, '', 'wrong', SECRET.slice(0, -1) + 'X', SECRET + 'X', SECRET.toUpperCase()]) {
        const headers = { ...adminAuth, ...init.headers as Record<string, string>, ...(secret === undefined ? {} : { 'x-gatehouse-forward-auth-secret': secret }) }
        const response = await gw.fetch(path, { ...init, headers })
        assert.equal(response.status, 403, `${path} ${secret}`)
        assert.equal((await json(response)).code, 'untrusted_proxy')
        assert.equal(response.headers.get('x-gatehouse-identity'), null)
      }
      const response = await gw.fetch(path, { ...init, headers: { ...adminAuth, ...init.headers as Record<string, string>, 'x-gatehouse-forward-auth-secret': SECRET } })
      assert.equal(response.status, 200, path)
      assert.equal(decodeJwt(response.headers.get('x-gatehouse-identity')!).aud, 'app')
    }
  })

  it('lets requests through the documented nginx and Caddy configurations sending it as the page says', async () => {
    const app = gw.app.routes.find((route) => route.name === 'app')!.upstream.origin
    const dir = tempDir()
    const [nginxPort, caddyPort] = [await freePort(), await freePort()]
    const nginxLine = /`(proxy_set_header X-Gatehouse-Forward-Auth-Secret [^`]+)`/.exec(readFileSync('docs/forward-auth.md', 'utf8'))![1]!
    const caddyLine = /`(header_up X-Gatehouse-Forward-Auth-Secret [^`]+)`/.exec(readFileSync('docs/forward-auth.md', 'utf8'))![1]!
    const { http } = nginxSite(nginxPort, gw.url, app, dir, 'asked')
    const location = 'location = /_gatehouse {\n'
    process.env.FORWARD_AUTH_SECRET = SECRET
    const proxies = [
      await startNginx(dir, 'nginx-secret', replaced(http, [[location, `${location}    ${nginxLine.replace('<secret>', SECRET)}\n`]])),
      await startCaddy(join(dir, 'caddy-secret'), caddyPort, replaced(caddySite(caddyPort, gw.url.replace('http://', ''), app.replace('http://', '')), [['uri /api/gateway/v1/authz/forward-auth/', `uri /api/gateway/v1/authz/forward-auth/\n        ${caddyLine}`]])),
    ]
    try {
      for (const port of [nginxPort, caddyPort]) {
        const response = await fetch(`http://127.0.0.1:${port}/app/v1/hosts/`, { headers: adminAuth })
        assert.equal(response.status, 200, `${port}`)
        const seen = await json(response)
        assert.equal(seen.identity.username, 'admin')
        assert.equal(seen.headers['x-gatehouse-forward-auth-secret'], undefined, 'the secret never reaches the service')
      }
    } finally {
      delete process.env.FORWARD_AUTH_SECRET
      for (const proxy of proxies) proxy.kill('SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('still answers only the trusted proxies, secret or not', async () => {
    const response = await requestFrom('127.0.0.2', gw.url + AUTH_REQUEST, { headers: { ...adminAuth, 'x-original-method': 'GET', 'x-original-uri': '/app/x', 'x-gatehouse-forward-auth-secret': SECRET } })
    assert.equal(response.status, 403)
    assert.equal(response.json().code, 'untrusted_proxy')
  })
})
