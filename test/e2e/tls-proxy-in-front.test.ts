import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { Agent } from 'undici'
import WebSocket from 'ws'
import { parse } from 'yaml'
import { selfSignedCertificate } from '../helpers/certificates.ts'
import { codeBlocks, replaced } from '../helpers/docs.ts'
import { ADMIN_PASSWORD, basic, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { freePort } from '../helpers/free-port.ts'
import { startNginx } from '../helpers/nginx.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/**
 * nginx terminating TLS in front of the whole gateway, configured as docs/edge.md says, with the gateway settings
 * the page gives: what services, browsers and the logs see must be the public https address and the client's own.
 */
describe('nginx terminating TLS in front of the gateway, as docs/edge.md configures it', () => {
  const dir = tempDir('gatehouse-tls-proxy-')
  let gw: TestGateway
  let upstream: RecordingUpstream
  let nginx: ChildProcess
  let publicUrl: string
  let trusting: Agent
  const send = (path: string, init: RequestInit = {}) => fetch(`${publicUrl}${path}`, { redirect: 'manual', dispatcher: trusting, ...init } as RequestInit)

  before(async () => {
    const certificate = selfSignedCertificate(dir, 'gateway')
    trusting = new Agent({ connect: { ca: readFileSync(certificate.cert, 'utf8') } })
    const port = await freePort()
    publicUrl = `https://127.0.0.1:${port}`
    const settings = codeBlocks('docs/edge.md', 'yaml').find((block) => block.section === 'Trusted proxies')
    const server = parse(replaced(settings!.code, [['https://gateway.example.com', publicUrl]])).server
    // Its `/app/own-hsts` answers with HSTS of its own, as Spring Security does to a request it takes for HTTPS.
    upstream = await startRecordingUpstream((request, response, seen) => {
      const own = request.url === '/app/own-hsts' ? { 'strict-transport-security': 'max-age=0 ; includeSubDomains' } : {}
      response.writeHead(200, { 'content-type': 'application/json', ...own }).end(JSON.stringify({ bytes: seen.bytes }))
    })
    gw = await startGateway({
      config: {
        server: { host: '127.0.0.1', port: 0, ...server },
        services: [
          { name: 'app', prefix: '/app/', upstream: upstream.url, accepts: ['basic', 'session', 'token'] },
          { name: 'controller', prefix: '/api/controller/', upstream: 'builtin:demo', accepts: ['basic', 'session', 'token'] },
        ],
      },
    })
    const site = codeBlocks('docs/edge.md', 'nginx').find((block) => block.section === 'Trusted proxies')
    nginx = await startNginx(dir, 'nginx-tls', replaced(site!.code, [
      ['listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`],
      ['/etc/nginx/gateway.crt', certificate.cert],
      ['/etc/nginx/gateway.key', certificate.key],
      ['127.0.0.1:8080', new URL(gw.url).host],
    ]))
  })
  after(async () => {
    nginx?.kill()
    await gw?.close()
    await upstream?.close()
    await trusting?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('gives the service the public scheme and host, the client\'s address and nginx\'s request id', async () => {
    const response = await send('/app/page', { headers: { authorization: basic('admin', ADMIN_PASSWORD), 'x-request-id': 'chosen-by-the-client' } })
    assert.equal(response.status, 200)
    const seen = upstream.seen.at(-1)!
    assert.equal(seen.headers['x-gatehouse-user'], 'admin')
    assert.equal(seen.headers['x-forwarded-proto'], 'https')
    assert.equal(seen.headers['x-forwarded-host'], new URL(publicUrl).host)
    assert.match(String(seen.headers['x-forwarded-for']), /(^|, )127\.0\.0\.1$/)
    // nginx's $request_id replaces what the client sent, and the gateway keeps it, as from a trusted proxy.
    assert.match(String(seen.headers['x-request-id']), /^[0-9a-f]{32}$/)
    assert.equal(response.headers.get('x-request-id'), seen.headers['x-request-id'])
  })

  it('sends browsers to the login page, and signs them in with Secure cookies and the https Referer', async () => {
    const refused = await send('/app/page', { headers: { accept: 'text/html' } })
    assert.equal(refused.status, 302)
    const location = new URL(refused.headers.get('location')!, publicUrl)
    assert.equal(location.origin, publicUrl)
    assert.equal(location.pathname, '/api/gateway/v1/login/')
    assert.equal(location.searchParams.get('next'), '/app/page')

    const page = await send('/api/gateway/v1/login/')
    const csrf = /csrftoken=([^;]+);.*Secure/i.exec(page.headers.getSetCookie().join('\n'))
    assert.ok(csrf, 'the csrftoken cookie is Secure')
    const login = await send('/api/gateway/v1/login/', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': csrf[1]!, cookie: `csrftoken=${csrf[1]}`, referer: `${publicUrl}/api/gateway/v1/login/` },
      body: new URLSearchParams({ username: 'admin', password: ADMIN_PASSWORD }),
    })
    assert.equal(login.status, 302)
    const session = /gateway_sessionid=([^;]+);.*Secure/i.exec(login.headers.getSetCookie().join('\n'))
    assert.ok(session, 'the session cookie is Secure')
    assert.equal((await send('/app/page', { headers: { cookie: `gateway_sessionid=${session[1]}` } })).status, 200)
  })

  it('tells browsers to come back over https only, on the gateway\'s pages and the services\' answers alike', async () => {
    const answers = [
      await send('/api/gateway/v1/login/', { headers: { accept: 'text/html' } }),
      await send('/realms/platform/.well-known/openid-configuration'),
      await send('/app/page', { headers: { authorization: basic('admin', ADMIN_PASSWORD) } }),
      await send('/app/page'),
      await send('/app/own-hsts', { headers: { authorization: basic('admin', ADMIN_PASSWORD) } }),
    ]
    for (const answer of answers) {
      const hsts = answer.headers.get('strict-transport-security') ?? ''
      assert.match(hsts, /^max-age=(\d+)$/, `${answer.url} (${answer.status}): one policy, the proxy's`)
      assert.ok(Number(/^max-age=(\d+)/.exec(hsts)![1]) >= 180 * 86400, `${answer.url}: ${hsts} lasts long enough to protect the next visit`)
    }
  })

  it('passes WebSockets through', async () => {
    const socket = new WebSocket(`${publicUrl.replace('https', 'wss')}/api/controller/websocket/`, {
      headers: { authorization: basic('admin', ADMIN_PASSWORD) },
      ca: readFileSync(`${dir}/gateway.crt`, 'utf8'),
    })
    try {
      const [first] = await once(socket, 'message')
      const described = JSON.parse(String(first))
      assert.equal(described.identity.username, 'admin')
      assert.equal(described.headers['x-forwarded-proto'], 'https')
    } finally {
      socket.terminate()
    }
  })
})
