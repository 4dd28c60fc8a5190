import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { REALM } from '../helpers/oidc.ts'

/** Sends exact bytes (fetch would not send two Host headers) and reads the whole answer of a closed connection. */
function rawExchange(url: string, request: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(request))
    let response = ''
    socket.on('data', (chunk) => (response += chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      const [head = '', body = ''] = response.split('\r\n\r\n')
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body })
    })
  })
}

const get = (path: string, hostLines: string[]) => `GET ${path} HTTP/1.1\r\n${hostLines.map((h) => `Host: ${h}\r\n`).join('')}Connection: close\r\n\r\n`

describe('the Host header', () => {
  let gw: TestGateway
  let host: string

  before(async () => {
    gw = await startGateway()
    host = new URL(gw.url).host
  })
  after(() => gw.close())

  it('is answered for one valid Host', async () => {
    assert.equal((await rawExchange(gw.url, get('/api/gateway/v1/ping/', [host]))).status, 200)
    assert.equal((await rawExchange(gw.url, get('/api/gateway/v1/ping/', ['[::1]:8080']))).status, 200)
  })

  it('refuses more than one Host, or one that is not a host, with 400 invalid_host everywhere', async () => {
    const cases: [string, string[]][] = [
      ['/api/gateway/v1/ping/', [host, 'evil.example']],
      ['/api/gateway/v1/ping/', [host, host]],
      [`/realms/${REALM}/.well-known/openid-configuration`, ['evil.example', host]],
      ['/api/controller/v2/ping/', ['evil example']],
      ['/api/gateway/v1/ping/', ['evil.example/x']],
      ['/api/gateway/v1/ping/', ['[::1']],
      ['/api/gateway/v1/ping/', ['a:99999']],
      ['/api/gateway/v1/login/', ['user@evil.example']],
      ['/ui/', ['']],
    ]
    for (const [path, hosts] of cases) {
      const { status, body } = await rawExchange(gw.url, get(path, hosts))
      assert.equal(status, 400, `${path} with ${JSON.stringify(hosts)}`)
      assert.equal(JSON.parse(body).code, 'invalid_host', `${path} with ${JSON.stringify(hosts)}`)
    }
  })

  it('refuses an HTTP/1.1 request without Host with 400 invalid_host, an absolute-form one too, as nginx does', async () => {
    for (const target of ['/api/gateway/v1/ping/', `http://${host}/api/gateway/v1/ping/`, '/api/controller/v2/ping/']) {
      const { status, body } = await rawExchange(gw.url, `GET ${target} HTTP/1.1\r\nConnection: close\r\n\r\n`)
      assert.equal(status, 400, target)
      assert.equal(JSON.parse(body).code, 'invalid_host', target)
    }
    assert.equal((await rawExchange(gw.url, 'GET /api/gateway/v1/ping/ HTTP/1.0\r\n\r\n')).status, 200, 'HTTP/1.0 has no Host to send')
  })

  it('never makes the realm\'s URLs: discovery names the public URL whatever Host and X-Forwarded-Host say', async () => {
    const forged = await rawExchange(gw.url, `GET /realms/${REALM}/.well-known/openid-configuration HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n`)
    assert.equal(forged.status, 200)
    const discovery = JSON.parse(forged.body)
    for (const key of ['issuer', 'jwks_uri', 'token_endpoint', 'authorization_endpoint', 'end_session_endpoint', 'check_session_iframe']) {
      assert.ok(String(discovery[key]).startsWith(`${gw.url}/realms/${REALM}`), `${key}: ${discovery[key]}`)
    }
  })
})
