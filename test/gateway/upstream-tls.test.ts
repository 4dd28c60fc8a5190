import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { getCACertificates, setDefaultCACertificates, type TLSSocket } from 'node:tls'
import WebSocket from 'ws'
import { selfSignedCertificate, signedServerCertificate } from '../helpers/certificates.ts'
import { json, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'

/** The status and JSON body the gateway answers a WebSocket upgrade it does not open, and how long it took. */
async function refusedUpgrade(url: string): Promise<{ status: number; body: any; ms: number; requestId: string }> {
  const started = performance.now()
  const ws = new WebSocket(url)
  ws.on('error', () => undefined)
  ws.on('open', () => ws.close())
  const [, response] = await Promise.race([once(ws, 'unexpected-response'), once(ws, 'open').then(() => {
    throw new Error('the upgrade was let through')
  })])
  let text = ''
  for await (const chunk of response) text += chunk
  return { status: response.statusCode, body: JSON.parse(text), ms: performance.now() - started, requestId: response.headers['x-request-id'] }
}

describe('https upstreams', () => {
  const dir = tempDir()
  let gw: TestGateway
  let selfSigned: HttpsServer
  let answered = 0
  // Takes the TCP connection and never says a word of the TLS handshake.
  let stalling: Server
  const stalled: Socket[] = []
  const logLines: Record<string, unknown>[] = []
  /** The reason logged for the failed request `reqId` answered: what the operator reads to learn why. */
  const loggedReason = (reqId: string | null) => {
    const line = logLines.find((entry) => entry.reqId === reqId && entry.msg === 'response errored')
    return (line?.err as { code?: string } | undefined)?.code
  }

  before(async () => {
    const certificate = selfSignedCertificate(dir, 'upstream')
    selfSigned = createHttpsServer({ cert: readFileSync(certificate.cert), key: readFileSync(certificate.key) }, (_request, response) => {
      answered++
      response.end('the service\'s answer')
    })
    selfSigned.on('upgrade', (_request, socket: Socket) => {
      answered++
      socket.destroy()
    })
    stalling = createServer((socket) => stalled.push(socket))
    await Promise.all([selfSigned, stalling].map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))))
    const port = (server: Server | HttpsServer) => (server.address() as AddressInfo).port
    gw = await startGateway({
      logLines,
      logLevel: 'warn',
      config: {
        services: [
          { name: 'self-signed', prefix: '/self-signed/', upstream: `https://127.0.0.1:${port(selfSigned)}`, public_paths: ['/self-signed/*'] },
          { name: 'stalling', prefix: '/stalling/', upstream: `https://127.0.0.1:${port(stalling)}`, public_paths: ['/stalling/*'], timeouts: { connect_seconds: 0.5, response_seconds: 30 } },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    for (const socket of stalled) socket.destroy()
    selfSigned.closeAllConnections()
    await Promise.all([selfSigned, stalling].map((server) => new Promise((resolve) => server.close(resolve))))
    rmSync(dir, { recursive: true, force: true })
  })

  it('refuses a certificate no trusted CA signed, on both paths and for WebSockets, with 502 and never the service\'s answer', async () => {
    for (const path of ['/self-signed/x', '/self-signed/x%20y']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 502)
      assert.equal((await json(response)).code, 'upstream_unavailable')
      assert.equal(loggedReason(response.headers.get('x-request-id')), 'DEPTH_ZERO_SELF_SIGNED_CERT', path)
    }
    const upgrade = await refusedUpgrade(gw.url.replace('http:', 'ws:') + '/self-signed/ws')
    assert.equal(upgrade.status, 502)
    assert.equal(upgrade.body.code, 'upstream_unavailable')
    assert.equal(loggedReason(upgrade.requestId), 'DEPTH_ZERO_SELF_SIGNED_CERT', 'the upgrade')
    assert.equal(answered, 0)
  })

  it('bounds a TLS handshake that never completes by connect_seconds, for a WebSocket upgrade as for a request', async () => {
    const started = performance.now()
    const response = await gw.fetch('/stalling/x')
    assert.equal(response.status, 502)
    assert.equal((await json(response)).code, 'upstream_unavailable')
    assert.ok(performance.now() - started < 5000)
    const upgrade = await refusedUpgrade(gw.url.replace('http:', 'ws:') + '/stalling/ws')
    assert.equal(upgrade.status, 502, `answered ${upgrade.status} ${JSON.stringify(upgrade.body)} after ${Math.round(upgrade.ms)} ms`)
    assert.equal(upgrade.body.code, 'upstream_unavailable')
    assert.ok(upgrade.ms < 5000, `answered after ${Math.round(upgrade.ms)} ms`)
  })
})

describe('https upstreams signed by a CA the gateway trusts', () => {
  const dir = tempDir()
  const defaultCAs = getCACertificates('default')
  let gw: TestGateway
  let trusted: HttpsServer
  let otherNames: HttpsServer
  const seen: { servername: string | false | null; host: string | undefined }[] = []
  const logLines: Record<string, unknown>[] = []

  before(async () => {
    const ca = selfSignedCertificate(dir, 'services-ca')
    // What NODE_EXTRA_CA_CERTS does for a process that starts with it.
    setDefaultCACertificates([...defaultCAs, readFileSync(ca.cert, 'utf8')])
    const good = signedServerCertificate(dir, 'service', ca, 'DNS:localhost,IP:127.0.0.1')
    // Names enough to make a message or a certificate of some 60 KB: what a peer may send, and the log must not copy.
    const names = Array.from({ length: 1500 }, (_, i) => `DNS:host${i}.elsewhere.example`).join(',')
    const elsewhere = signedServerCertificate(dir, 'elsewhere', ca, names)
    trusted = createHttpsServer({ cert: readFileSync(good.cert), key: readFileSync(good.key) }, (request, response) => {
      seen.push({ servername: (request.socket as TLSSocket).servername, host: request.headers.host })
      response.end('the service\'s answer')
    })
    otherNames = createHttpsServer({ cert: readFileSync(elsewhere.cert), key: readFileSync(elsewhere.key) }, (_request, response) => response.end('the service\'s answer'))
    await Promise.all([trusted, otherNames].map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))))
    const port = (server: HttpsServer) => (server.address() as AddressInfo).port
    gw = await startGateway({
      logLines,
      logLevel: 'warn',
      config: {
        services: [
          { name: 'by-name', prefix: '/by-name/', upstream: `https://localhost:${port(trusted)}`, public_paths: ['/by-name/*'] },
          { name: 'by-address', prefix: '/by-address/', upstream: `https://127.0.0.1:${port(trusted)}`, public_paths: ['/by-address/*'] },
          { name: 'other-names', prefix: '/other-names/', upstream: `https://localhost:${port(otherNames)}`, public_paths: ['/other-names/*'] },
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    setDefaultCACertificates(defaultCAs)
    for (const server of [trusted, otherNames]) server.closeAllConnections()
    await Promise.all([trusted, otherNames].map((server) => new Promise((resolve) => server.close(resolve))))
    rmSync(dir, { recursive: true, force: true })
  })

  it('verifies the certificate against the upstream\'s host name, sent as SNI and Host on both paths, and against an address, sent as no SNI', async () => {
    const { port } = trusted.address() as AddressInfo
    for (const path of ['/by-name/x', '/by-name/x%20y']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 200, path)
      assert.equal(await response.text(), 'the service\'s answer')
    }
    assert.equal((await gw.fetch('/by-address/x')).status, 200)
    assert.deepEqual(seen, [
      { servername: 'localhost', host: `localhost:${port}` },
      { servername: 'localhost', host: `localhost:${port}` },
      { servername: false, host: `127.0.0.1:${port}` },
    ])
  })

  it('refuses a certificate for other names with 502, logging why in a line of bounded size', async () => {
    const response = await gw.fetch('/other-names/x')
    assert.equal(response.status, 502)
    assert.equal((await json(response)).code, 'upstream_unavailable')
    const line = logLines.find((entry) => entry.reqId === response.headers.get('x-request-id') && entry.msg === 'response errored')
    const err = line?.err as { code?: string; cert?: { subject?: string } } | undefined
    assert.equal(err?.code, 'ERR_TLS_CERT_ALTNAME_INVALID')
    const size = JSON.stringify(line).length
    assert.ok(size < 16_000, `the line is ${size} characters`)
    assert.match(err?.cert?.subject ?? '', /elsewhere/)
  })
})
