import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { getCACertificates, setDefaultCACertificates, type TLSSocket } from 'node:tls'
import WebSocket, { WebSocketServer } from 'ws'
import { futureCertificate, selfSignedCertificate, unusablePemFiles, signedCertificate, signedServerCertificate, type CertificateFiles } from '../helpers/certificates.ts'
import { json, runCli, spawnGateway, startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'
import { refusedUpgrade } from '../helpers/websocket.ts'

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
    assert.equal(loggedReason(String(upgrade.headers['x-request-id'])), 'DEPTH_ZERO_SELF_SIGNED_CERT', 'the upgrade')
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

describe('a service\'s own TLS settings (services[].tls)', () => {
  const dir = tempDir()
  const defaultCAs = getCACertificates('default')
  let gw: TestGateway
  let privateService: HttpsServer
  let internalName: HttpsServer
  let mutual: HttpsServer
  let publicCa: CertificateFiles
  let publiclySigned: HttpsServer
  const seen: { service: string; servername: string | false | null; host: string | undefined; client?: string }[] = []
  const logLines: Record<string, unknown>[] = []
  const port = (server: HttpsServer) => (server.address() as AddressInfo).port
  const loggedReason = (reqId: string | null) => {
    const line = logLines.find((entry) => entry.reqId === reqId && entry.msg === 'response errored')
    return (line?.err as { code?: string } | undefined)?.code
  }

  /** An https server that answers requests and echoes WebSocket messages, noting the SNI, Host and client certificate of each request. */
  function serviceServer(name: string, files: CertificateFiles, options: { clientCa?: CertificateFiles } = {}): HttpsServer {
    const server = createHttpsServer({
      cert: readFileSync(files.cert), key: readFileSync(files.key),
      ...(options.clientCa ? { ca: readFileSync(options.clientCa.cert), requestCert: true, rejectUnauthorized: true } : {}),
    }, (request, response) => {
      const socket = request.socket as TLSSocket
      seen.push({ service: name, servername: socket.servername, host: request.headers.host, ...(options.clientCa ? { client: String(socket.getPeerCertificate().subject?.CN) } : {}) })
      response.end(`${name}'s answer`)
    })
    new WebSocketServer({ server }).on('connection', (socket) => socket.on('message', (data) => socket.send(`${name} echoes ${data}`)))
    return server
  }

  async function echoed(path: string): Promise<string> {
    const ws = new WebSocket(gw.url.replace('http:', 'ws:') + path)
    try {
      await once(ws, 'open')
      ws.send('hello')
      const [data] = await once(ws, 'message')
      return String(data)
    } finally {
      ws.close()
    }
  }

  async function readyUpstreams(): Promise<Record<string, { status: string; reason?: string }>> {
    const body = await json(await gw.fetch('/readyz'))
    return Object.fromEntries((body.upstreams as { service: string; status: string; reason?: string }[]).map(({ service, ...check }) => [service, check]))
  }

  before(async () => {
    const privateCa = selfSignedCertificate(dir, 'private-ca')
    publicCa = selfSignedCertificate(dir, 'public-ca')
    const clientCa = selfSignedCertificate(dir, 'client-ca')
    // What NODE_EXTRA_CA_CERTS does: a CA the gateway trusts by default, which a service's `ca_file` replaces.
    setDefaultCACertificates([...defaultCAs, readFileSync(publicCa.cert, 'utf8')])
    privateService = serviceServer('private', signedServerCertificate(dir, 'private-service', privateCa, 'DNS:localhost,IP:127.0.0.1'))
    internalName = serviceServer('internal', signedServerCertificate(dir, 'internal-service', privateCa, 'DNS:service.internal'))
    mutual = serviceServer('mutual', signedServerCertificate(dir, 'mutual-service', privateCa, 'DNS:localhost,IP:127.0.0.1'), { clientCa })
    publiclySigned = serviceServer('public', signedServerCertificate(dir, 'public-service', publicCa, 'DNS:localhost,IP:127.0.0.1'))
    const servers = [privateService, internalName, mutual, publiclySigned]
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))))
    const client = signedCertificate(dir, 'gatehouse-client', clientCa)
    const strangerCa = selfSignedCertificate(dir, 'stranger-ca')
    const stranger = signedCertificate(dir, 'stranger-client', strangerCa)
    const service = (name: string, upstream: string, tls?: Record<string, string>, more: Record<string, unknown> = {}) =>
      ({ name, prefix: `/${name}/`, upstream, public_paths: [`/${name}/*`], ...(tls ? { tls } : {}), ...more })
    gw = await startGateway({
      logLines,
      logLevel: 'warn',
      config: {
        services: [
          service('without-ca', `https://localhost:${port(privateService)}`),
          service('private-ca', `https://localhost:${port(privateService)}`, { ca_file: privateCa.cert }),
          service('private-ca-cors', `https://localhost:${port(privateService)}`, { ca_file: privateCa.cert }, { cors: { allowed_origins: ['https://app.example'] } }),
          service('ca-replaced', `https://localhost:${port(publiclySigned)}`, { ca_file: privateCa.cert }),
          service('by-default-ca', `https://localhost:${port(publiclySigned)}`),
          service('server-name', `https://127.0.0.1:${port(internalName)}`, { ca_file: privateCa.cert, server_name: 'service.internal' }),
          service('wrong-server-name', `https://127.0.0.1:${port(internalName)}`, { ca_file: privateCa.cert, server_name: 'other.internal' }),
          service('client-cert', `https://localhost:${port(mutual)}`, { ca_file: privateCa.cert, cert_file: client.cert, key_file: client.key }),
          service('no-client-cert', `https://localhost:${port(mutual)}`, { ca_file: privateCa.cert }),
          service('wrong-client-cert', `https://localhost:${port(mutual)}`, { ca_file: privateCa.cert, cert_file: stranger.cert, key_file: stranger.key }),
        ],
      },
    })
  })
  after(async () => {
    await gw.close()
    setDefaultCACertificates(defaultCAs)
    const servers = [privateService, internalName, mutual, publiclySigned]
    for (const server of servers) server.closeAllConnections()
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    rmSync(dir, { recursive: true, force: true })
  })

  it('refuses a service signed by a private CA without its ca_file, and serves it with it, on both paths, for WebSockets and in /readyz', async () => {
    for (const path of ['/without-ca/x', '/without-ca/x%20y']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 502, path)
      assert.equal(loggedReason(response.headers.get('x-request-id')), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', path)
    }
    const refused = await refusedUpgrade(gw.url.replace('http:', 'ws:') + '/without-ca/ws')
    assert.equal(refused.status, 502)
    assert.equal(loggedReason(String(refused.headers['x-request-id'])), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'the upgrade')
    assert.equal(seen.length, 0)
    // The lean path, the general one (a path with an escape, a service with CORS), and a WebSocket.
    for (const path of ['/private-ca/x', '/private-ca/x%20y', '/private-ca-cors/x']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 200, path)
      assert.equal(await response.text(), 'private\'s answer')
    }
    assert.equal(await echoed('/private-ca/ws'), 'private echoes hello')
    const upstreams = await readyUpstreams()
    assert.deepEqual({ ...upstreams['without-ca'], ms: undefined }, { status: 'DOWN', reason: 'tls', ms: undefined })
    assert.equal(upstreams['private-ca']?.status, 'UP')
    assert.equal(upstreams['private-ca-cors']?.status, 'UP')
  })

  it('verifies with the ca_file instead of the CAs the gateway trusts otherwise', async () => {
    assert.equal((await gw.fetch('/by-default-ca/x')).status, 200)
    for (const path of ['/ca-replaced/x', '/ca-replaced/x%20y']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 502, path)
      // OpenSSL finds the other CA, and trusts it no more.
      assert.match(loggedReason(response.headers.get('x-request-id')) ?? '', /^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/, path)
    }
    assert.equal((await refusedUpgrade(gw.url.replace('http:', 'ws:') + '/ca-replaced/ws')).status, 502)
    assert.equal((await readyUpstreams())['ca-replaced']?.reason, 'tls')
  })

  it('sends server_name in SNI and verifies the certificate for it, the Host still the upstream\'s', async () => {
    seen.length = 0
    for (const path of ['/server-name/x', '/server-name/x%20y']) assert.equal((await gw.fetch(path)).status, 200, path)
    assert.equal(await echoed('/server-name/ws'), 'internal echoes hello')
    const host = `127.0.0.1:${port(internalName)}`
    assert.deepEqual(seen, [
      { service: 'internal', servername: 'service.internal', host },
      { service: 'internal', servername: 'service.internal', host },
    ])
    for (const path of ['/wrong-server-name/x', '/wrong-server-name/x%20y']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 502, path)
      assert.equal(loggedReason(response.headers.get('x-request-id')), 'ERR_TLS_CERT_ALTNAME_INVALID', path)
    }
    assert.equal((await refusedUpgrade(gw.url.replace('http:', 'ws:') + '/wrong-server-name/ws')).status, 502)
    const upstreams = await readyUpstreams()
    assert.equal(upstreams['server-name']?.status, 'UP')
    assert.equal(upstreams['wrong-server-name']?.reason, 'tls')
  })

  it('presents the client certificate to a service that requires one, on both paths and for WebSockets', async () => {
    seen.length = 0
    for (const path of ['/client-cert/x', '/client-cert/x%20y']) {
      const response = await gw.fetch(path)
      assert.equal(response.status, 200, path)
      assert.equal(await response.text(), 'mutual\'s answer')
    }
    assert.equal(await echoed('/client-cert/ws'), 'mutual echoes hello')
    assert.deepEqual(seen.map(({ client }) => client), ['gatehouse-client', 'gatehouse-client'])
    assert.equal((await readyUpstreams())['client-cert']?.status, 'UP')
    for (const path of ['/no-client-cert/x', '/no-client-cert/x%20y']) assert.equal((await gw.fetch(path)).status, 502, path)
    assert.equal((await refusedUpgrade(gw.url.replace('http:', 'ws:') + '/no-client-cert/ws')).status, 502)
    assert.equal(seen.length, 2)
  })

  it('lists a service that refuses the client certificate after a TLS 1.3 handshake (none, or one of another CA) as DOWN for tls in /readyz', async () => {
    for (const path of ['/wrong-client-cert/x', '/wrong-client-cert/x%20y']) assert.equal((await gw.fetch(path)).status, 502, path)
    const upstreams = await readyUpstreams()
    assert.deepEqual({ ...upstreams['no-client-cert'], ms: undefined }, { status: 'DOWN', reason: 'tls', ms: undefined })
    assert.deepEqual({ ...upstreams['wrong-client-cert'], ms: undefined }, { status: 'DOWN', reason: 'tls', ms: undefined })
    assert.equal(upstreams['client-cert']?.status, 'UP')
    assert.ok(Number((upstreams['client-cert'] as { ms?: number }).ms) < 500, 'the accepted one without waiting long')
  })
})

describe('serve with unusable services[].tls', { concurrency: true }, () => {
  const dir = tempDir()
  const ca = selfSignedCertificate(dir, 'services-ca')
  const client = signedCertificate(dir, 'client', ca)
  const other = signedCertificate(dir, 'other', ca)
  const { garbage, pipe: fifo, huge } = unusablePemFiles(dir, ca)

  function writeConfig(tls: Record<string, string>, upstream = 'https://controller.internal:8443'): string {
    const file = join(tempDir(), 'gatehouse.yaml')
    // JSON is YAML. The second service is there so that the message names the one at fault by its place.
    writeFileSync(file, JSON.stringify({
      server: { port: 0 },
      services: [
        { name: 'first', prefix: '/first/', upstream: 'https://first.internal:8443' },
        { name: 'controller', prefix: '/api/controller/', upstream, tls },
      ],
    }))
    return file
  }

  const cases: [string, Record<string, string>, RegExp][] = [
    ['a missing CA file', { ca_file: join(dir, 'missing.crt') }, /^gatehouse: services\.1\.tls\.ca_file: cannot read ".*missing\.crt": ENOENT/],
    ['a pipe as the CA file', { ca_file: fifo }, /^gatehouse: services\.1\.tls\.ca_file: ".*pipe\.fifo" is not a regular file/],
    ['a CA file larger than any PEM file', { ca_file: huge }, /^gatehouse: services\.1\.tls\.ca_file: ".*huge\.pem" is larger than 1 MiB/],
    ['a CA file that holds no certificate', { ca_file: garbage }, /^gatehouse: services\.1\.tls\.ca_file: ".*garbage\.pem" does not hold a PEM CA certificate/],
    ['a directory as the client certificate', { cert_file: dir, key_file: client.key }, /^gatehouse: services\.1\.tls\.cert_file: ".*" is not a regular file/],
    ['a key file that holds no key', { cert_file: client.cert, key_file: garbage }, /^gatehouse: services\.1\.tls\.key_file: ".*garbage\.pem" does not hold an unencrypted PEM private key/],
    ['a key of another certificate', { cert_file: client.cert, key_file: other.key }, /^gatehouse: services\.1\.tls: the key in ".*other\.key" does not belong to the certificate in ".*client\.crt"/],
  ]
  for (const [what, tls, reason] of cases) {
    it(`stops with exit code 2 and a one-line reason naming the setting, having touched nothing, for ${what}`, async () => {
      const dataDir = join(tempDir(), 'data')
      const config = writeConfig(tls)
      const result = await runCli(['serve', '--config', config, '--data-dir', dataDir], { env: { GATEHOUSE_ADMIN_PASSWORD: 'unused-password' } })
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr, reason)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      assert.equal(result.stdout, '')
      assert.deepEqual(readdirSync(join(dataDir, '..')), [])
    })
  }

  it('warns of a client key other users of the machine may read, as of the gateway\'s own', async () => {
    const config = writeConfig({ ca_file: ca.cert, cert_file: client.cert, key_file: client.key })
    chmodSync(client.key, 0o644)
    const readable = await runCli(['config', 'check', config])
    assert.equal(readable.code, 0, readable.stderr)
    assert.match(readable.stderr, /WARNING: services\.1\.tls\.key_file .*client\.key holds the key of the client certificate presented to the service "controller" and other users of this machine may read it \(mode 644\): chmod 600 it/)
    chmodSync(client.key, 0o600)
    const ownersOnly = await runCli(['config', 'check', config])
    assert.equal(ownersOnly.code, 0, ownersOnly.stderr)
    assert.doesNotMatch(ownersOnly.stderr, /key_file/)
  })

  it('warns of an expired client certificate, from config check and serve, as of server.tls\'s, and starts', async () => {
    const expired = signedCertificate(dir, 'expired-client', ca, -1)
    chmodSync(expired.key, 0o600)
    const config = writeConfig({ ca_file: ca.cert, cert_file: expired.cert, key_file: expired.key })
    const warning = /services\.1\.tls\.cert_file: the certificate expired on \d{4}-\d\d-\d\dT[\d:.]+Z; the service "controller" will refuse it/
    const checked = await runCli(['config', 'check', config])
    assert.equal(checked.code, 0, checked.stderr)
    assert.match(checked.stderr, new RegExp(`^gatehouse: WARNING: ${warning.source}$`, 'm'))
    const gateway = await spawnGateway(['--config', config, '--data-dir', join(tempDir(), 'data')], { GATEHOUSE_LOG_FORMAT: 'json' })
    try {
      // Warned of once it has said it listens.
      const warned = () => gateway.output().split('\n').filter((text) => text.startsWith('{')).map((text) => JSON.parse(text) as Record<string, unknown>).find((entry) => warning.test(String(entry.msg)))
      for (let i = 0; i < 100 && !warned(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
      assert.equal(warned()?.level, 40, gateway.output())
    } finally {
      await gateway.stop()
    }
  })

  it('has config check report such a file too', async () => {
    const checked = await runCli(['config', 'check', writeConfig({ ca_file: garbage })])
    assert.notEqual(checked.code, 0)
    assert.match(checked.stderr, /services\.1\.tls\.ca_file: ".*garbage\.pem" does not hold a PEM CA certificate/)
  })

  const refused: [string, Record<string, string>, string, RegExp][] = [
    ['on an http:// upstream', { ca_file: ca.cert }, 'http://controller.internal:8052', /services\.1\.tls: only for an https:\/\/ upstream/],
    ['a client certificate without its key', { cert_file: client.cert }, 'https://controller.internal:8443', /services\.1\.tls\.key_file: cert_file and key_file go together/],
    ['an address as server_name', { server_name: '10.0.0.5' }, 'https://controller.internal:8443', /services\.1\.tls\.server_name: must be a DNS host name/],
    ['a setting it does not know (no switch turns verification off)', { reject_unauthorized: 'false' } as Record<string, string>, 'https://controller.internal:8443', /services\.1\.tls/],
  ]
  for (const [what, tls, upstream, reason] of refused) {
    it(`refuses the configuration for ${what}`, async () => {
      const result = await runCli(['config', 'check', writeConfig(tls, upstream)])
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr, reason)
    })
  }
})

/**
 * `serve` with two services whose TLS files a renewal rewrites: `mutual` requires a client certificate of the renewed
 * client CA (the configured one, of the old, is refused), `renewed` is signed by a CA the configured CA file does not
 * hold yet. Registers the hooks that start and stop them in the enclosing describe.
 */
function renewedFilesGateway(serviceTls: { watch: boolean }) {
  const dir = tempDir()
  const serviceCa = selfSignedCertificate(dir, 'service-ca')
  const renewedServiceCa = selfSignedCertificate(dir, 'renewed-service-ca')
  const clientCa = selfSignedCertificate(dir, 'client-ca')
  const renewedClientCa = selfSignedCertificate(dir, 'renewed-client-ca')
  const fixture = {
    dir,
    serviceCa,
    renewedServiceCa,
    renewedClientCa,
    oldClient: signedCertificate(dir, 'old-client', clientCa),
    renewedClient: signedCertificate(dir, 'renewed-client', renewedClientCa),
    /** A renewal gone wrong: signed by the CA the service takes, but expired. */
    expiredClient: signedCertificate(dir, 'expired-client', renewedClientCa, -1),
    // The files the configuration names, rewritten in place as a renewal does.
    files: { ca: join(dir, 'configured-ca.pem'), cert: join(dir, 'configured-client.crt'), key: join(dir, 'configured-client.key') },
    /** The client certificates `mutual` was presented, by CN. */
    clients: [] as string[],
    mutual: undefined as unknown as HttpsServer,
    renewed: undefined as unknown as HttpsServer,
    gateway: undefined as unknown as Awaited<ReturnType<typeof spawnGateway>>,
    copy: (from: string, to: string) => writeFileSync(to, readFileSync(from), { mode: 0o600 }),
  }
  const { files, copy } = fixture

  before(async () => {
    copy(serviceCa.cert, files.ca)
    copy(fixture.oldClient.cert, files.cert)
    copy(fixture.oldClient.key, files.key)
    const mutualFiles = signedServerCertificate(dir, 'mutual-service', serviceCa, 'DNS:localhost,IP:127.0.0.1')
    fixture.mutual = createHttpsServer({ cert: readFileSync(mutualFiles.cert), key: readFileSync(mutualFiles.key), ca: readFileSync(renewedClientCa.cert), requestCert: true, rejectUnauthorized: true, maxVersion: 'TLSv1.2' }, (request, response) => {
      fixture.clients.push(String((request.socket as TLSSocket).getPeerCertificate().subject?.CN))
      response.end('mutual\'s answer')
    })
    const renewedFiles = signedServerCertificate(dir, 'renewed-service', renewedServiceCa, 'DNS:localhost,IP:127.0.0.1')
    fixture.renewed = createHttpsServer({ cert: readFileSync(renewedFiles.cert), key: readFileSync(renewedFiles.key) }, (_request, response) => response.end('renewed\'s answer'))
    const servers = [fixture.mutual, fixture.renewed]
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))))
    const port = (server: HttpsServer) => (server.address() as AddressInfo).port
    const config = join(dir, 'gatehouse.yaml')
    writeFileSync(config, JSON.stringify({
      services: [
        { name: 'mutual', prefix: '/mutual/', upstream: `https://localhost:${port(fixture.mutual)}`, public_paths: ['/mutual/*'], tls: { ca_file: serviceCa.cert, cert_file: files.cert, key_file: files.key, ...serviceTls } },
        { name: 'renewed', prefix: '/renewed/', upstream: `https://localhost:${port(fixture.renewed)}`, public_paths: ['/renewed/*'], tls: { ca_file: files.ca, ...serviceTls } },
      ],
    }))
    fixture.gateway = await spawnGateway(['--config', config, '--data-dir', join(dir, 'data')], { GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_LOG_FORMAT: 'json' })
  })
  after(async () => {
    await fixture.gateway?.stop()
    const servers = [fixture.mutual, fixture.renewed].filter(Boolean)
    for (const server of servers) server.closeAllConnections()
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    rmSync(dir, { recursive: true, force: true })
  })
  return fixture
}

describe('serve: SIGHUP re-reads services[].tls files', () => {
  // Not watched: only SIGHUP reads them again here.
  const renewal = renewedFilesGateway({ watch: false })
  const { files, copy, oldClient, renewedClient, expiredClient, renewedServiceCa, clients } = renewal

  /** Sends SIGHUP and waits for the log to say what became of each service's files. */
  async function hangUp(): Promise<Record<string, unknown>[]> {
    const before = renewal.gateway.output().length
    renewal.gateway.process.kill('SIGHUP')
    const lines = () => renewal.gateway.output().slice(before).split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
    const settled = () => lines().filter((line) => /^service TLS files/.test(String(line.msg))).length === 2
    for (let i = 0; i < 100 && !settled(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    return lines()
  }
  const readyz = async () => Object.fromEntries(((await json(await fetch(`${renewal.gateway.url}/readyz`))).upstreams as { service: string; status: string; reason?: string }[]).map(({ service, status, reason }) => [service, { status, reason }]))

  it('presents a renewed client certificate and trusts a renewed CA on new connections, on both paths and in /readyz', async () => {
    assert.equal((await fetch(`${renewal.gateway.url}/mutual/x`)).status, 502, 'the old client certificate is refused')
    assert.equal((await fetch(`${renewal.gateway.url}/renewed/x`)).status, 502, 'the renewed CA is not trusted yet')
    assert.deepEqual((await readyz()).renewed, { status: 'DOWN', reason: 'tls' })
    copy(renewedClient.cert, files.cert)
    copy(renewedClient.key, files.key)
    copy(renewedServiceCa.cert, files.ca)
    const logged = await hangUp()
    assert.deepEqual(logged.filter((line) => /^service TLS files/.test(String(line.msg))).map(({ service, msg }) => ({ service, msg })).sort((a, b) => String(a.service).localeCompare(String(b.service))), [
      { service: 'mutual', msg: 'service TLS files reloaded' },
      { service: 'renewed', msg: 'service TLS files reloaded' },
    ])
    for (const path of ['/mutual/x', '/mutual/x%20y']) {
      const response = await fetch(`${renewal.gateway.url}${path}`)
      assert.equal(response.status, 200, path)
      assert.equal(await response.text(), 'mutual\'s answer')
    }
    assert.deepEqual(clients, ['renewed-client', 'renewed-client'])
    for (const path of ['/renewed/x', '/renewed/x%20y']) assert.equal((await fetch(`${renewal.gateway.url}${path}`)).status, 200, path)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    assert.deepEqual((await readyz()).renewed, { status: 'UP', reason: undefined })
  })

  it('keeps the previous files when the new ones are unusable, and logs why without stopping', async () => {
    writeFileSync(files.ca, 'not a certificate\n')
    copy(oldClient.key, files.key)
    const logged = await hangUp()
    const refusals = logged.filter((line) => line.msg === 'service TLS files not reloaded; new connections to it still use the previous ones').sort((a, b) => String(a.service).localeCompare(String(b.service)))
    assert.deepEqual(refusals.map(({ service, level }) => ({ service, level })), [{ service: 'mutual', level: 40 }, { service: 'renewed', level: 40 }])
    assert.match(String(refusals[0]!.reason), /^services\.0\.tls: the key in ".*configured-client\.key" does not belong to the certificate/)
    assert.match(String(refusals[1]!.reason), /^services\.1\.tls\.ca_file: ".*configured-ca\.pem" does not hold a PEM CA certificate/)
    // New connections: the services' open ones are closed first.
    for (const server of [renewal.mutual, renewal.renewed]) server.closeAllConnections()
    assert.equal((await fetch(`${renewal.gateway.url}/mutual/x`)).status, 200)
    assert.equal((await fetch(`${renewal.gateway.url}/renewed/x`)).status, 200)
    assert.equal(renewal.gateway.process.exitCode, null)
  })

  it('keeps the previous client certificate when the renewed one has expired, as server.tls keeps its own, and logs why', async () => {
    copy(expiredClient.cert, files.cert)
    copy(expiredClient.key, files.key)
    const refusal = (await hangUp()).find((line) => line.service === 'mutual' && /^service TLS files/.test(String(line.msg)))
    assert.deepEqual([refusal?.msg, refusal?.level], ['service TLS files not reloaded; new connections to it still use the previous ones', 40])
    assert.match(String(refusal!.reason), /^services\.0\.tls\.cert_file: the certificate expired on \d{4}-\d\d-\d\dT/)
    renewal.mutual.closeAllConnections()
    clients.length = 0
    assert.equal((await fetch(`${renewal.gateway.url}/mutual/x`)).status, 200)
    assert.deepEqual(clients, ['renewed-client'])
  })
})

describe('serve: services[].tls files are re-read when they change', () => {
  const renewal = renewedFilesGateway({ watch: true })
  const { dir, files, copy, renewedClient, renewedServiceCa, clients } = renewal

  /** Waits for the log to say `msg` about `service`'s files, from the output's length `since` on. */
  async function logged(service: string, msg: string | RegExp, since: number): Promise<Record<string, unknown>> {
    for (let i = 0; i < 100; i++) {
      const line = renewal.gateway.output().slice(since).split('\n').filter((text) => text.startsWith('{')).map((text) => JSON.parse(text) as Record<string, unknown>)
        .find((entry) => entry.service === service && (typeof msg === 'string' ? entry.msg === msg : msg.test(String(entry.msg))))
      if (line) return line
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.fail(`"${msg}" not logged about ${service}: ${renewal.gateway.output().slice(since)}`)
  }

  it('takes a client certificate rewritten in place once it is whole, with no SIGHUP, keeping the previous while half of it is written', async () => {
    assert.equal((await fetch(`${renewal.gateway.url}/mutual/x`)).status, 502, 'the old client certificate is refused')
    const renewedCert = readFileSync(renewedClient.cert, 'utf8')
    let since = renewal.gateway.output().length
    writeFileSync(files.cert, renewedCert.slice(0, renewedCert.length / 2))
    const halfWritten = await logged('mutual', 'service TLS files not reloaded; new connections to it still use the previous ones', since)
    assert.equal(halfWritten.why, 'files changed')
    assert.match(String(halfWritten.reason), /^services\.\d\.tls\.cert_file: ".*configured-client\.crt" ends inside a PEM block/)
    since = renewal.gateway.output().length
    writeFileSync(files.cert, renewedCert)
    copy(renewedClient.key, files.key)
    // The two files may be seen changing a poll apart: the certificate with the previous key is refused in between.
    assert.equal((await logged('mutual', 'service TLS files reloaded', since)).why, 'files changed')
    for (const path of ['/mutual/x', '/mutual/x%20y']) {
      const response = await fetch(`${renewal.gateway.url}${path}`)
      assert.equal(response.status, 200, path)
      assert.equal(await response.text(), 'mutual\'s answer')
    }
    assert.deepEqual(clients, ['renewed-client', 'renewed-client'])
  })

  it('trusts a CA file replaced by a rename, as certbot and Kubernetes secret volumes replace files', async () => {
    assert.equal((await fetch(`${renewal.gateway.url}/renewed/x`)).status, 502, 'the renewed CA is not trusted yet')
    const since = renewal.gateway.output().length
    const next = join(dir, 'configured-ca.pem.new')
    copy(renewedServiceCa.cert, next)
    renameSync(next, files.ca)
    assert.equal((await logged('renewed', 'service TLS files reloaded', since)).why, 'files changed')
    for (const path of ['/renewed/x', '/renewed/x%20y']) assert.equal((await fetch(`${renewal.gateway.url}${path}`)).status, 200, path)
  })

  it('keeps the previous CA bundle while the new one is caught half-written inside its second certificate, and takes it once whole', async () => {
    let since = renewal.gateway.output().length
    copy(renewedServiceCa.cert, files.ca)
    await logged('renewed', 'service TLS files reloaded', since)
    assert.equal((await fetch(`${renewal.gateway.url}/renewed/x`)).status, 200, 'the renewed CA is trusted')
    // The next bundle keeps the renewed CA second; a writer caught in the middle of it leaves the other one whole.
    const bundle = readFileSync(renewal.serviceCa.cert, 'utf8') + readFileSync(renewedServiceCa.cert, 'utf8')
    since = renewal.gateway.output().length
    writeFileSync(files.ca, bundle.slice(0, bundle.length - 200))
    const halfWritten = await logged('renewed', /^service TLS files/, since)
    assert.equal(halfWritten.msg, 'service TLS files not reloaded; new connections to it still use the previous ones')
    assert.match(String(halfWritten.reason), /^services\.1\.tls\.ca_file: ".*configured-ca\.pem" ends inside a PEM block/)
    renewal.renewed.closeAllConnections()
    assert.equal((await fetch(`${renewal.gateway.url}/renewed/x`)).status, 200, 'new connections still trust the renewed CA')
    since = renewal.gateway.output().length
    writeFileSync(files.ca, bundle)
    assert.equal((await logged('renewed', 'service TLS files reloaded', since)).why, 'files changed')
    renewal.renewed.closeAllConnections()
    assert.equal((await fetch(`${renewal.gateway.url}/renewed/x`)).status, 200)
  })
})

describe('serve: a renewed client certificate installed ahead of its time', () => {
  const renewal = renewedFilesGateway({ watch: true })
  const { dir, files, copy, clients } = renewal
  const logLines = (since: number) => renewal.gateway.output().slice(since).split('\n').filter((text) => text.startsWith('{')).map((text) => JSON.parse(text) as Record<string, unknown>)

  it('is kept out until its notBefore, then taken with no change to the files and no SIGHUP, and logged', async () => {
    // Far enough ahead for the change to be seen and the files to settle (src/listener/tls.ts, SETTLED_MS) before it.
    const notBefore = new Date(Math.ceil(Date.now() / 1000) * 1000 + 7000)
    const ahead = futureCertificate(dir, 'ahead-client', renewal.renewedClientCa, notBefore)
    const since = renewal.gateway.output().length
    copy(ahead.key, files.key)
    copy(ahead.cert, files.cert)
    let kept: Record<string, unknown> | undefined
    for (let i = 0; i < 120 && !kept; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      kept = logLines(since).find((line) => line.service === 'mutual' && /services\.0\.tls\.cert_file: the certificate is not valid until/.test(String(line.reason)))
    }
    assert.ok(kept, `not logged as kept out: ${renewal.gateway.output().slice(since)}`)
    assert.equal(kept.msg, 'service TLS files not reloaded; new connections to it still use the previous ones')
    assert.ok(Date.now() < notBefore.getTime(), 'still ahead of its time')
    assert.equal((await fetch(`${renewal.gateway.url}/mutual/x`)).status, 502, 'the previous client certificate is still presented')
    let taken: Record<string, unknown> | undefined
    while (!taken && Date.now() < notBefore.getTime() + 4000) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      taken = logLines(since).find((line) => line.service === 'mutual' && line.msg === 'service TLS files reloaded')
    }
    assert.ok(taken, `not taken once valid: ${renewal.gateway.output().slice(since)}`)
    assert.equal(taken.why, 'the client certificate in the files became valid')
    assert.ok(Date.now() >= notBefore.getTime())
    const response = await fetch(`${renewal.gateway.url}/mutual/x`)
    assert.equal(response.status, 200)
    assert.equal(await response.text(), 'mutual\'s answer')
    assert.deepEqual(clients, ['ahead-client'])
  })
})

describe('/readyz for a TLS 1.3 service that sends no session ticket', () => {
  const dir = tempDir()
  const certificate = selfSignedCertificate(dir, 'no-tickets')
  // Python's ssl can send none (num_tickets = 0), as a Go server with session tickets disabled does; it answers the
  // handshake after a quarter of a second, more than half the check's timeout.
  const script = `import ssl, socket, threading, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(${JSON.stringify(certificate.cert)}, ${JSON.stringify(certificate.key)}); ctx.num_tickets = 0
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(16); print(s.getsockname()[1], flush=True)
def serve(c):
    try: time.sleep(0.25); ctx.wrap_socket(c, server_side=True).recv(1)
    except Exception: pass
    finally: c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
`
  let service: ChildProcess
  let gw: TestGateway

  before(async () => {
    service = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const [port] = await once(service.stdout!, 'data')
    gw = await startGateway({
      config: {
        // The wait for a refusal after the handshake, as long as the handshake took, must end within it.
        server: { readiness_timeout_ms: 400 },
        services: [{ name: 'no-tickets', prefix: '/no-tickets/', upstream: `https://127.0.0.1:${String(port).trim()}`, tls: { ca_file: certificate.cert } }],
      },
    })
  })
  after(async () => {
    await gw.close()
    service.kill()
    rmSync(dir, { recursive: true, force: true })
  })

  it('lists it UP once the wait for a refusal has passed, within readiness_timeout_ms even after a slow handshake', async () => {
    const [check] = (await json(await gw.fetch('/readyz'))).upstreams as { service: string; status: string; ms: number }[]
    assert.equal(check?.status, 'UP', JSON.stringify(check))
    assert.ok(check.ms >= 250, `the handshake took ${check.ms} ms`)
  })
})
