import assert from 'node:assert/strict'
import { Agent, request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { demoConfigFile, loadConfigFile } from '../../src/config/load.ts'
import { ADMIN_PASSWORD, basic, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/** mulberry32: a small seeded generator, so that a failing run can be repeated with FUZZ_SEED. */
function generator(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000)
const random = generator(SEED)
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
const chance = (p: number): boolean => random() < p
const repeat = (n: number, make: () => string): string => Array.from({ length: n }, make).join('')

const PREFIXES = ['/rec/', '/rec/open/', '/rec/open/', '/rec/open/', '/based/', '/based/', '/api/controller/', '/api/controller/v2/', '/api/controller/v2/', '/api/galaxy/', '/api/eda/', '/demo-app/',
  '/api/', '/api/gateway/', '/api/gateway/v1/', '/api/gateway/v1/users/', '/api/gateway/v1/tokens/', '/api/gateway/v1/login/', '/api/gateway/v1/me/',
  '/api/gateway/v1/sessions/', '/api/gateway/v1/settings/', '/realms/platform/', '/realms/platform/protocol/openid-connect/token',
  '/realms/platform/protocol/openid-connect/auth', '/realms/nowhere/', '/ui/', '/healthz', '/readyz', '/', '/nowhere/']
const SEGMENTS = ['a', 'v2', 'hosts', '1', '..', '.', '%2e', '%2E%2e', '%252e%252e', '%25252e', '.%2e', '%2f', '%2F', '%252f', '%5c', '%5C',
  '%00', '%0a', '%0d%0a', '%ZZ', '%', '%G1', '%C0%AE', '%FF', '%E9', '%C3%A9', 'é', '\u00ff', '%72ec', '%61pi', '*', '@', ';x=1', ':', '~',
  '$', '(', ')', "'", '!', ',', '=', '&', '+', '%20', '%u002e', '..;', '....', 'a'.repeat(300), '__proto__', 'constructor', '%7e', '\\', '..\\']
const PLAIN_SEGMENTS = ['a', 'v2', 'hosts', '1', '42', 'users', 'me', 'tokens', 'x.json', 'ping', 'open', 'a-b_c~d', 'caf%C3%A9']
const PLAIN_QUERY_PARTS = ['a=1', 'page=2', 'search=x', 'order_by=-id', 'q=caf%C3%A9', 'x=a%2Fb', 'flag', 'a=1&a=2']
const QUERY_PARTS = ['a=1', 'q=%ZZ', 'q=%', 'q=%FF', 'q=%C3%A9', 'next=//evil.example/', 'next=/.//evil.example/', 'next=http://evil.example',
  '__proto__[x]=1', 'constructor[prototype][x]=1', 'a[]=1&a[]=2', 'a[b][c]=1', 'page=-1', 'page=1e309', 'page_size=99999999', 'order_by=-;drop',
  'username__icontains=%00', 'or__id=1', 'not__is_superuser=true', 'search=%27%20OR%201%3D1', 'id__in=1,2,x', 'x=' + 'y'.repeat(2000), '', '&&', '=', '==']
const METHODS = ['GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND', 'SEARCH', 'QUERY', 'FOO']
const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
  'text/plain', 'application/octet-stream', 'application/json; charset=latin1', 'application/*', '*/*', 'json', '', 'application/x-www-form-urlencoded; charset=utf-16']
const BODIES = ['{}', '[]', 'null', '{"username":"a","password":"b"}', '{"username":"\\u0000"}', '{"__proto__":{"is_superuser":true}}',
  '{"a":' + '['.repeat(500) + ']'.repeat(500) + '}', '{"is_superuser":"yes","id":1e999}', '{"scope":"write read admin"}', '{"expires":"not-a-date"}',
  'username=admin&password=x', 'grant_type=password&username=admin&password=x&client_id=end-users', 'grant_type=refresh_token&refresh_token=%00',
  'grant_type=client_credentials', 'token=abc', 'a=%ZZ', '\u0000\u0001\u0002', '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--', '{', '"', 'x'.repeat(70_000)]
const JUNK = ['', ' ', 'x', '\u00e9', '%00', 'a'.repeat(5000), '🙂', 'null', '-1', '0x10', '\t', '"', "'", '<script>', '${x}', '../../etc/passwd']

function hostilePath(): string {
  let path = pick(PREFIXES)
  const segments = Math.floor(random() * 4)
  // Half the requests are hostile in their path; the others get past it, to be hostile further in.
  const hostile = chance(0.5)
  for (let i = 0; i < segments; i++) path += pick(hostile ? SEGMENTS : PLAIN_SEGMENTS) + (chance(0.7) ? '/' : '')
  if (chance(0.05)) path = path.replace(/^\//, pick(['//', '', '/./', 'http://evil.example/', '*']))
  if (chance(0.4)) path += '?' + Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(hostile || chance(0.3) ? QUERY_PARTS : PLAIN_QUERY_PARTS)).join('&')
  return path
}

function hostileHeaders(): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {}
  // Valid credentials (verified once, then from memory), so that requests get past authentication too.
  if (chance(0.25)) headers.authorization = basic('admin', ADMIN_PASSWORD)
  else if (chance(0.2)) headers.authorization = pick(['Basic ', 'Basic %%%', 'Basic ' + Buffer.from(pick(JUNK)).toString('base64'), 'Bearer ', 'Bearer x.y.z',
    'Bearer gatehouse_pat_' + pick(JUNK), 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.', 'Digest x', 'bearer', pick(JUNK)])
  if (chance(0.2)) headers.cookie = pick(['gateway_sessionid=' + pick(JUNK), 'csrftoken=' + pick(JUNK), 'gateway_sessionid=a; gateway_sessionid=b',
    'gatehouse_oidc_session=x; gatehouse_oidc_session.sig=y', '=;=;', ';', 'a'.repeat(4000) + '=1', 'KEYCLOAK_SESSION=' + pick(JUNK), 'gateway_sso=' + pick(JUNK)])
  if (chance(0.1)) headers['x-csrftoken'] = pick(JUNK)
  if (chance(0.3)) headers['content-type'] = pick(CONTENT_TYPES)
  if (chance(0.3)) headers.accept = pick(['text/html', 'application/json', '*/*', 'text/html;q=0, application/json', '', 'x'])
  if (chance(0.1)) headers.host = pick(['evil.example', 'a..b', '[::1]', '[zz]', 'x:99999', 'x:-1', '', 'a b', 'ünï.example', '127.0.0.1:0'])
  if (chance(0.02)) headers.host = ['a.example', 'b.example']
  if (chance(0.1)) headers[pick(['X_Gatehouse_User', 'x-gatehouse-user', 'X-Gatehouse-Identity', 'x_forwarded_for', 'Forwarded', 'X-Real-IP',
    'X-Forwarded-Host', 'X-Forwarded-Proto', 'X-Original-URL', 'X-Rewrite-URL', 'X-Forwarded-Prefix'])] = pick(JUNK)
  if (chance(0.05)) headers.expect = pick(['100-continue', '200-ok', 'x'])
  if (chance(0.05)) headers.connection = pick(['close', 'keep-alive, x-gatehouse-user', 'content-type', 'authorization', 'upgrade', 'host'])
  if (chance(0.03)) headers.upgrade = pick(['websocket', 'h2c', 'x'])
  if (chance(0.05)) headers.origin = pick(['null', 'http://evil.example', '', 'x'])
  if (chance(0.05)) headers.referer = pick(['http://evil.example/', '/', 'x', ''])
  if (chance(0.05)) headers.range = pick(['bytes=0-0', 'bytes=-1', 'bytes=x', 'bytes=0-0,' + '1-1,'.repeat(100)])
  if (chance(0.05)) headers['x-requested-with'] = 'XMLHttpRequest'
  if (chance(0.03)) headers['accept-encoding'] = pick(['gzip', 'br', 'x', '*;q=0'])
  if (chance(0.03)) headers['content-encoding'] = pick(['gzip', 'deflate', 'x'])
  if (chance(0.02)) for (let i = 0; i < 80; i++) headers[`x-many-${i}`] = 'y'
  return headers
}

interface Outcome {
  status: number | undefined
  what: string
  /** A request line naming another version than HTTP/1.0 or 1.1 (2.0, or none: 0.9), which is refused 505. */
  otherVersion?: true
}

/** One generated request over a kept-alive connection; undefined status when the gateway closed it instead. */
function sendFramed(url: URL, agent: Agent): Promise<Outcome> {
  const method = pick(METHODS)
  const path = hostilePath()
  const headers = hostileHeaders()
  const body = method === 'GET' || method === 'HEAD' ? (chance(0.05) ? pick(BODIES) : undefined) : (chance(0.7) ? pick(BODIES) : undefined)
  const what = `${method} ${path.slice(0, 300)} ${JSON.stringify(headers).slice(0, 300)} ${body?.slice(0, 100) ?? ''}`
  return new Promise((resolve) => {
    let outgoing
    try {
      // Node's client cannot reuse a connection it asked to upgrade: such requests get one of their own.
      const upgrading = headers.upgrade !== undefined || /upgrade/i.test(String(headers.connection))
      outgoing = request({ host: url.hostname, port: url.port, method, path, headers, agent: upgrading ? false : agent, insecureHTTPParser: true }, (response) => {
        response.resume()
        response.on('end', () => resolve({ status: response.statusCode, what }))
        response.on('error', () => resolve({ status: response.statusCode, what }))
      })
    } catch {
      return resolve({ status: undefined, what })
    }
    // A service that accepts an upgrade answers 101 and the connection is the service's from then on.
    outgoing.on('upgrade', (response, socket) => {
      socket.destroy()
      resolve({ status: response.statusCode, what })
    })
    let before = ''
    outgoing.on('socket', (socket: Socket & { sent?: string }) => {
      before = socket.sent ?? ''
      socket.sent = what
    })
    outgoing.setTimeout(10_000, () => outgoing.destroy(new Error('no answer in 10 s')))
    outgoing.on('error', (error) => resolve({
      status: error.message.startsWith('no answer') ? 599 : undefined,
      what: `${what} (${error.message}${before ? `; on a connection that carried ${before}` : ''})`,
    }))
    outgoing.end(body)
  })
}

/** Request framing no HTTP client library would send: exact bytes on a connection of their own. */
function hostileFraming(): string {
  const path = hostilePath().replace(/[\s]/g, '')
  const line = pick([`GET ${path} HTTP/1.1`, `POST ${path} HTTP/1.1`, `GET ${path} HTTP/1.0`, `GET ${path} HTTP/2.0`, `GET ${path}`, `GET  ${path} HTTP/1.1`,
    `G\u0000T ${path} HTTP/1.1`, `GET ${path} HTTP/1.1 x`, `${path} HTTP/1.1`, `GET ${path}\u0000 HTTP/1.1`, `CONNECT 127.0.0.1:22 HTTP/1.1`, `GET http://evil.example${path} HTTP/1.1`])
  const head = [line, 'Host: gw']
  const body = pick(BODIES)
  switch (Math.floor(random() * 12)) {
    case 0: head.push(`Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`); break
    case 1: head.push('Transfer-Encoding: chunked', `Content-Length: ${body.length}`); break
    case 2: head.push('Transfer-Encoding: chunked, identity'); break
    case 3: head.push('Transfer-Encoding: xchunked'); break
    case 4: head.push('Content-Length: -1'); break
    case 5: head.push('Content-Length: 1e3'); break
    case 6: head.push(' Content-Length: 5'); break
    case 7: head.push('X-Folded: a', ' b'); break
    case 8: head.push('Bad Header: x'); break
    case 9: head.push('X: \u0000'); break
    case 10: head.push('Transfer-Encoding: chunked'); break
    default: head.push(`Content-Length: ${body.length}`)
  }
  const chunked = head.some((h) => /^Transfer-Encoding: chunked$/.test(h))
  const payload = chunked ? pick([`${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`, `zz\r\n${body}\r\n0\r\n\r\n`, `${body.length.toString(16)};ext\r\n${body}\r\n0\r\n\r\n`, '5\r\nabc']) : body
  const pipelined = chance(0.3) ? `GET /rec/open/after HTTP/1.1\r\nHost: gw\r\n\r\n` : ''
  return `${head.join('\r\n')}\r\nConnection: close\r\n\r\n${payload}${pipelined}`
}

function sendRaw(url: URL): Promise<Outcome[]> {
  const bytes = hostileFraming()
  const what = JSON.stringify(bytes.slice(0, 400))
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname)
    let received = ''
    const timer = setTimeout(() => socket.destroy(), 3000)
    socket.on('data', (chunk) => (received += chunk.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      const statuses = [...received.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((match) => Number(match[1]))
      const otherVersion = / HTTP\/1\.[01]$/.test(bytes.slice(0, bytes.indexOf('\r\n'))) ? undefined : true
      resolve(statuses.length ? statuses.map((status) => ({ status, what, otherVersion })) : [{ status: undefined, what }])
    })
    socket.write(bytes, 'latin1')
  })
}

describe('hostile requests', () => {
  let gw: TestGateway
  let upstream: RecordingUpstream

  before(async () => {
    upstream = await startRecordingUpstream()
    const demo = loadConfigFile(demoConfigFile)
    gw = await startGateway({
      config: {
        services: [
          ...demo.services,
          { name: 'rec', prefix: '/rec/', upstream: upstream.url, strip_prefix: true, public_paths: ['/rec/open/*'] },
          { name: 'based', prefix: '/based/', upstream: `${upstream.url}/base/`, strip_prefix: true, accepts: ['basic', 'token', 'session'], public_paths: ['/based/*'] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  it(`answers 10,000 generated hostile requests without a single 5xx (seed ${SEED})`, { timeout: 180_000 }, async () => {
    const url = new URL(gw.url)
    const agent = new Agent({ keepAlive: true, maxSockets: 12 })
    const outcomes: Outcome[] = []
    let framed = 9_000
    let raw = 1_000
    const worker = async (): Promise<void> => {
      while (framed > 0 || raw > 0) {
        if (raw > 0 && (framed === 0 || chance(0.1))) {
          raw--
          outcomes.push(...await sendRaw(url))
        } else {
          framed--
          outcomes.push(await sendFramed(url, agent))
        }
      }
    }
    try {
      await Promise.all(Array.from({ length: 12 }, worker))
    } finally {
      agent.destroy()
    }
    // 505 is the refusal of a request line naming HTTP/2.0 or HTTP/0.9, which Node's parser takes: no failure.
    const failed = outcomes.filter((outcome) => outcome.status !== undefined && outcome.status >= 500 && !(outcome.status === 505 && outcome.otherVersion))
    const answered = outcomes.filter((outcome) => outcome.status !== undefined).length
    assert.deepEqual(failed.slice(0, 5).map((outcome) => `${outcome.status} ${outcome.what}`), [], `${failed.length} answers were 5xx (seed ${SEED})`)
    assert.ok(answered > 9_000, `only ${answered} of the requests were answered`)
  })
})
