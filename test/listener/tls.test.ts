import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { appendFileSync, chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { request as httpsRequest, Agent } from 'node:https'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect, type TLSSocket } from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { selfSignedCertificate, unusablePemFiles, signedCertificate, type CertificateFiles } from '../helpers/certificates.ts'
import { runCli, spawnGateway, startGateway, tempDir, type GatewayProcess, type TestGateway } from '../helpers/gateway.ts'
import { closedUnanswered, eventually, HalfRequests } from '../helpers/raw-client.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

interface Curl {
  code: number
  status: number
  headers: Record<string, string>
  body: string
}

/** Runs the real curl and splits what it printed into status, headers (last response) and body. */
function curl(...args: string[]): Promise<Curl> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '-D', '-', ...args], (error, stdout) => {
      const code = error ? Number((error as { code?: number }).code ?? 1) : 0
      const blocks = stdout.split('\r\n\r\n')
      const heads = blocks.filter((block) => /^HTTP\/[\d.]+ \d{3}/.test(block))
      const head = heads.at(-1) ?? ''
      const headers: Record<string, string> = {}
      for (const line of head.split('\r\n').slice(1)) {
        const i = line.indexOf(':')
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = (headers[line.slice(0, i).toLowerCase()] ? headers[line.slice(0, i).toLowerCase()] + '\n' : '') + line.slice(i + 1).trim()
      }
      resolve({ code, status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head)?.[1] ?? 0), headers, body: blocks.slice(heads.length).join('\r\n\r\n') })
    })
  })
}

/** The common name of the certificate a brand-new TLS connection is given. */
function servedCommonName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const name = String(socket.getPeerCertificate().subject.CN)
      socket.end()
      resolve(name)
    })
    socket.once('error', reject)
  })
}

async function servedBecomes(port: number, commonName: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await servedCommonName(port)) === commonName) return
    await sleep(100)
  }
  assert.fail(`new connections still get ${await servedCommonName(port)}, not ${commonName}`)
}

/** Replaces a live certificate and key the way renewal tools do: written beside them, then renamed over them. */
function install(from: CertificateFiles, live: CertificateFiles): void {
  copyFileSync(from.cert, `${live.cert}.new`)
  copyFileSync(from.key, `${live.key}.new`)
  renameSync(`${live.key}.new`, live.key)
  renameSync(`${live.cert}.new`, live.cert)
}

function writeConfig(dir: string, server: Record<string, unknown>): string {
  const file = join(dir, 'gatehouse.yaml')
  // JSON is YAML.
  writeFileSync(file, JSON.stringify({
    server,
    services: [{ name: 'controller', prefix: '/api/controller/', upstream: 'builtin:demo', public_paths: ['/api/controller/v2/'] }],
  }))
  return file
}

function portOf(url: string): number {
  return Number(new URL(url).port)
}

function logLines(gateway: GatewayProcess): Record<string, unknown>[] {
  return gateway.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line))
}

function startedFacts(gateway: GatewayProcess): { listening: string[] } {
  const line = logLines(gateway).find((l) => l.msg === 'started')
  assert.ok(line, `no "started" log line in:\n${gateway.output()}`)
  return line as unknown as { listening: string[] }
}

/** Two certificates, the first of them installed as the live files a gateway serves. */
interface Swappable {
  first: CertificateFiles
  second: CertificateFiles
  live: CertificateFiles
  gateway: GatewayProcess
}

async function serveSwappable(tls: Record<string, unknown>): Promise<Swappable> {
  const dir = tempDir()
  const first = selfSignedCertificate(dir, 'first.test')
  const second = selfSignedCertificate(dir, 'second.test')
  mkdirSync(join(dir, 'live'))
  const live = { cert: join(dir, 'live', 'tls.crt'), key: join(dir, 'live', 'tls.key') }
  install(first, live)
  const config = writeConfig(dir, { tls: { cert_file: live.cert, key_file: live.key, ...tls } })
  const gateway = await spawnGateway(['--config', config, '--demo', '--data-dir', join(dir, 'data')], { GATEHOUSE_LOG_LEVEL: 'info' })
  return { first, second, live, gateway }
}

describe('HTTPS from certificate files', () => {
  let first: CertificateFiles
  let second: CertificateFiles
  let live: CertificateFiles
  let gateway: GatewayProcess
  before(async () => {
    ;({ first, second, live, gateway } = await serveSwappable({ redirect_http_port: 0 }))
  })
  after(async () => {
    await gateway?.stop()
  })

  it('serves HTTPS that curl verifies against the self-signed certificate, with HSTS and Secure cookies', async () => {
    assert.match(gateway.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    const login = await curl('--cacert', first.cert, `${gateway.url}/api/gateway/v1/login/`)
    assert.equal(login.code, 0)
    assert.equal(login.status, 200)
    assert.equal(login.headers['strict-transport-security'], 'max-age=31536000')
    assert.match(login.headers['set-cookie'] ?? '', /^csrftoken=[^;]+;.*; Secure/)

    const proxied = await curl('--cacert', first.cert, `${gateway.url}/api/controller/v2/`)
    assert.equal(proxied.status, 200)
    assert.equal(JSON.parse(proxied.body).headers['x-forwarded-proto'], 'https')
    assert.equal(proxied.headers['strict-transport-security'], 'max-age=31536000')
    // A request with Expect, which Node hands to events of its own: the answer carries it too.
    for (const expect of ['100-continue', 'something-else']) {
      const expecting = await curl('--cacert', first.cert, '-H', `Expect: ${expect}`, '--data-binary', 'x', `${gateway.url}/api/controller/v2/`)
      assert.ok(expecting.status === 200 || expecting.status === 417, `${expect}: ${expecting.status}`)
      assert.equal(expecting.headers['strict-transport-security'], 'max-age=31536000', expect)
    }
  })

  it('sends HSTS with the answer to a WebSocket upgrade it refuses, as with every other HTTPS answer', async () => {
    const upgrade = ['-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Version: 13', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']
    const refused = await curl('--cacert', first.cert, ...upgrade, `${gateway.url}/api/controller/v1/`)
    assert.equal(refused.status, 401)
    assert.equal(refused.headers['strict-transport-security'], 'max-age=31536000')
  })

  it('sends HSTS with the answers written before a request is read: to what is not valid HTTP, too large, or a CONNECT', async () => {
    const heads = [
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Line\r\n\r\n',
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Large: ${'a'.repeat(20_000)}\r\n\r\n`,
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
    ]
    for (const head of heads) {
      const answer = await new Promise<string>((resolve, reject) => {
        let received = ''
        const socket = connect({ host: '127.0.0.1', port: portOf(gateway.url), rejectUnauthorized: false }, () => socket.write(head))
        socket.on('data', (chunk) => received += chunk)
        socket.once('close', () => resolve(received))
        socket.once('error', reject)
      })
      assert.match(answer, /^HTTP\/1\.1 4\d\d /, head.slice(0, 40))
      assert.match(answer, /\r\nstrict-transport-security: max-age=31536000\r\n/i, head.slice(0, 40))
    }
  })

  it('speaks TLS 1.2 and 1.3 only, and HTTP/1.1 only, as the README says', async () => {
    assert.deepEqual(await handshake(gateway, { maxVersion: 'TLSv1.3', ALPNProtocols: ['h2', 'http/1.1'] }), { protocol: 'TLSv1.3', alpn: 'http/1.1', cipher: 'TLS_AES_256_GCM_SHA384' })
    assert.deepEqual(await handshake(gateway, { maxVersion: 'TLSv1.2' }), { protocol: 'TLSv1.2', alpn: false, cipher: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256' })
    assert.ok((await handshake(gateway, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })) instanceof Error, 'TLS 1.1 refused')
    assert.ok((await handshake(gateway, { ALPNProtocols: ['h2'] })) instanceof Error, 'HTTP/2 only refused')
  })

  it('offers TLS 1.2 clients AEAD suites with forward secrecy only: no CBC, no static RSA', async () => {
    for (const ciphers of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA', 'AES128-GCM-SHA256']) {
      assert.ok((await handshake(gateway, { maxVersion: 'TLSv1.2', ciphers })) instanceof Error, `${ciphers} taken`)
    }
    assert.deepEqual(await handshake(gateway, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' }), { protocol: 'TLSv1.2', alpn: false, cipher: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256' })
  })

  it('redirects plain HTTP on the redirect port to the same path and query on HTTPS, without HSTS', async () => {
    const redirectUrl = startedFacts(gateway).listening[1]!
    assert.match(redirectUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
    const redirected = await curl(`${redirectUrl}/api/gateway/v1/ping/?probe=1`)
    assert.equal(redirected.status, 308)
    assert.equal(redirected.headers.location, `https://127.0.0.1:${portOf(gateway.url)}/api/gateway/v1/ping/?probe=1`)
    assert.equal(redirected.headers['strict-transport-security'], undefined)

    const pinged = await curl('-L', '--cacert', first.cert, `${redirectUrl}/api/gateway/v1/ping/`)
    assert.equal(pinged.status, 200)
    assert.equal(JSON.parse(pinged.body).status, 'good')

    const absolute = await curl('--request-target', `${redirectUrl}/api/gateway/v1/ping/?probe=2`, `${redirectUrl}/`)
    assert.equal(absolute.status, 308, 'an absolute-form target (RFC 9112 §3.2.2)')
    assert.equal(absolute.headers.location, `https://127.0.0.1:${portOf(gateway.url)}/api/gateway/v1/ping/?probe=2`)

    const badHost = await curl('-H', 'Host: not a host', `${redirectUrl}/`)
    assert.equal(badHost.status, 400)
    assert.equal(JSON.parse(badHost.body).code, 'bad_request')
  })

  it('picks up a new certificate without a restart, and keeps connections made before the swap open', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: [readFileSync(first.cert), readFileSync(second.cert)] })
    const get = () => new Promise<{ status: number; reused: boolean; commonName: string }>((resolve, reject) => {
      const request = httpsRequest(`${gateway.url}/api/gateway/v1/ping/`, { agent }, (response) => {
        const commonName = String((response.socket as TLSSocket).getPeerCertificate().subject.CN)
        response.resume()
        response.on('end', () => resolve({ status: response.statusCode!, reused: request.reusedSocket, commonName }))
      })
      request.once('error', reject)
      request.end()
    })
    try {
      assert.deepEqual(await get(), { status: 200, reused: false, commonName: 'first.test' })
      install(second, live)
      await servedBecomes(portOf(gateway.url), 'second.test')
      assert.deepEqual(await get(), { status: 200, reused: true, commonName: 'first.test' })
      assert.equal((await curl('--cacert', second.cert, `${gateway.url}/healthz`)).status, 200)
      assert.notEqual((await curl('--cacert', first.cert, `${gateway.url}/healthz`)).code, 0)
    } finally {
      agent.destroy()
    }
    const reloaded = () => logLines(gateway).some((line) => line.msg === 'TLS certificate reloaded' && line.subject === 'CN=second.test')
    assert.ok(await eventually(reloaded, Boolean, 10_000), 'the reload is logged')
  })
})

describe('the plain-HTTP redirect port under the connection caps', () => {
  it('closes connections beyond server.max_connections_per_address and server.max_connections there too, counted and warned of', async () => {
    const dir = tempDir()
    const certificate = selfSignedCertificate(dir, 'capped.test')
    const config = writeConfig(dir, { max_connections: 4, max_connections_per_address: 2, tls: { cert_file: certificate.cert, key_file: certificate.key, redirect_http_port: 0 } })
    const gateway = await spawnGateway(['--config', config, '--demo', '--data-dir', join(dir, 'data')], { GATEHOUSE_LOG_LEVEL: 'info' })
    await eventually(() => logLines(gateway).some((line) => line.msg === 'started'), Boolean, 10_000)
    const redirectUrl = startedFacts(gateway).listening[1]!
    const connections = new HalfRequests()
    const open = (from: string) => connections.open(redirectUrl, from)
    try {
      const held = [await open('127.0.0.41'), await open('127.0.0.41')]
      await closedUnanswered(await open('127.0.0.41'))
      held.push(await open('127.0.0.42'), await open('127.0.0.42'))
      await closedUnanswered(await open('127.0.0.43'))
      await sleep(200)
      for (const client of held) assert.equal(client.socket.closed, false, 'the connections within the caps stay open')
      connections.destroy()
      const scraped = await curl('--cacert', certificate.cert, `${gateway.url}/metrics`)
      assert.match(scraped.body, /^gatehouse_connections_refused_total\{reason="max_connections_per_address"\} 1$/m)
      assert.match(scraped.body, /^gatehouse_connections_refused_total\{reason="max_connections"\} 1$/m)
      // Written by the other process when it refused them, and read here from a pipe: maybe not yet.
      const warningsSoFar = () => logLines(gateway).filter((line) => line.level === 40 && String(line.msg).startsWith('connection refused'))
      const warnings = await eventually(warningsSoFar, (found) => found.length >= 2, 10_000)
      assert.deepEqual(warnings.map((line) => [line.address, line.limit]), [['127.0.0.41', 'server.max_connections_per_address'], ['127.0.0.43', 'server.max_connections']])
    } finally {
      connections.destroy()
      await gateway.stop()
    }
  })
})

type Handshake = { protocol: string | null; alpn: string | false; cipher: string }

/** What a TLS client with these options agrees on with the gateway, or the error that ended its handshake. */
function handshake(gateway: GatewayProcess, options: { minVersion?: 'TLSv1' | 'TLSv1.2'; maxVersion?: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'; ALPNProtocols?: string[]; ciphers?: string }): Promise<Handshake | Error> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: portOf(gateway.url), rejectUnauthorized: false, ...options }, () => {
      resolve({ protocol: socket.getProtocol(), alpn: socket.alpnProtocol ?? false, cipher: socket.getCipher().standardName })
      socket.end()
    })
    socket.once('error', resolve)
  })
}

describe('server.tls.ciphers', () => {
  let gateway: GatewayProcess
  before(async () => {
    ;({ gateway } = await serveSwappable({ ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384' }))
  })
  after(async () => {
    await gateway?.stop()
  })

  it('replaces the TLS 1.2 suites, for clients only an older suite serves, and leaves TLS 1.3 as it was', async () => {
    assert.deepEqual(await handshake(gateway, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' }), { protocol: 'TLSv1.2', alpn: false, cipher: 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256' })
    assert.ok((await handshake(gateway, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })) instanceof Error, 'a suite the list leaves out taken')
    assert.equal((await handshake(gateway, {}) as Handshake).protocol, 'TLSv1.3')
  })
})

describe('TLS files re-read on SIGHUP', () => {
  let first: CertificateFiles
  let second: CertificateFiles
  let live: CertificateFiles
  let gateway: GatewayProcess
  before(async () => {
    ;({ first, second, live, gateway } = await serveSwappable({ watch: false }))
  })
  after(async () => {
    await gateway?.stop()
  })

  it('swaps in new files on SIGHUP, and keeps the previous certificate when the new files do not belong together', async () => {
    const port = portOf(gateway.url)
    install(second, live)
    assert.equal(await servedCommonName(port), 'first.test')
    gateway.process.kill('SIGHUP')
    await servedBecomes(port, 'second.test')

    // A certificate with another certificate's key: refused, logged, and the running one stays.
    copyFileSync(first.cert, live.cert)
    gateway.process.kill('SIGHUP')
    const refused = async () => logLines(gateway).find((line) => String(line.msg).startsWith('TLS files not reloaded'))
    for (let i = 0; i < 100 && !(await refused()); i++) await sleep(50)
    assert.match(String((await refused())?.reason), /^server\.tls: the key in ".*" does not belong to the certificate in ".*"$/)
    assert.equal(await servedCommonName(port), 'second.test')
    assert.equal(gateway.process.exitCode, null)
    assert.equal((await curl('--cacert', second.cert, `${gateway.url}/healthz`)).status, 200)
  })
})

describe('client certificates from a CA (mutual TLS)', () => {
  let dir: string
  let server: CertificateFiles
  let ca: CertificateFiles
  /** The configured CA file, which holds `ca`. */
  let bundle: string
  let gateway: GatewayProcess
  before(async () => {
    dir = tempDir()
    server = selfSignedCertificate(dir, 'gateway.test')
    ca = selfSignedCertificate(dir, 'clients-ca.test')
    bundle = join(dir, 'clients-ca-bundle.pem')
    copyFileSync(ca.cert, bundle)
    const config = writeConfig(dir, { tls: { cert_file: server.cert, key_file: server.key, ca_file: bundle } })
    gateway = await spawnGateway(['--config', config, '--demo', '--data-dir', join(dir, 'data')], { GATEHOUSE_LOG_LEVEL: 'info' })
  })
  after(async () => {
    await gateway?.stop()
  })

  it('serves clients with a certificate from the CA and refuses the handshake to others', async () => {
    const client = signedCertificate(dir, 'client.test', ca)
    const stranger = selfSignedCertificate(dir, 'stranger.test')
    const url = `${gateway.url}/api/gateway/v1/ping/`
    const accepted = await curl('--cacert', server.cert, '--cert', client.cert, '--key', client.key, url)
    assert.equal(accepted.status, 200)
    assert.notEqual((await curl('--cacert', server.cert, url)).code, 0)
    assert.notEqual((await curl('--cacert', server.cert, '--cert', stranger.cert, '--key', stranger.key, url)).code, 0)
  })

  it('keeps the previous CA bundle while the new one ends inside its second certificate, and takes it once whole', async () => {
    const client = signedCertificate(dir, 'bundled-client.test', ca)
    const withClientCertificate = () => curl('--cacert', server.cert, '--cert', client.cert, '--key', client.key, `${gateway.url}/api/gateway/v1/ping/`)
    /** The first line the reloader logs from the output's length `since` on. */
    const reloadLogged = async (since: number) => {
      const line = () => logLines(gateway).slice(since).find((entry) => /^TLS (certificate reloaded|files not reloaded)/.test(String(entry.msg)))
      for (let i = 0; i < 100 && !line(); i++) await sleep(50)
      assert.ok(line(), gateway.output())
      return line()!
    }
    // The next bundle adds a CA before the one that signed the client's certificate.
    const nextBundle = readFileSync(selfSignedCertificate(dir, 'next-clients-ca.test').cert, 'utf8') + readFileSync(ca.cert, 'utf8')
    assert.equal((await withClientCertificate()).status, 200)
    let since = logLines(gateway).length
    writeFileSync(bundle, nextBundle.slice(0, nextBundle.length - 200))
    const halfWritten = await reloadLogged(since)
    assert.equal(halfWritten.msg, 'TLS files not reloaded; new connections still get the previous certificate')
    assert.match(String(halfWritten.reason), /^server\.tls\.ca_file: ".*clients-ca-bundle\.pem" ends inside a PEM block/)
    assert.equal((await withClientCertificate()).status, 200, 'the client\'s CA is still trusted')
    since = logLines(gateway).length
    writeFileSync(bundle, nextBundle)
    assert.equal((await reloadLogged(since)).msg, 'TLS certificate reloaded')
    assert.equal((await withClientCertificate()).status, 200)
  })

  it('keeps the previous CA bundle while a new one is written in two steps, cut between its certificates, and takes it once left alone', async () => {
    const client = signedCertificate(dir, 'two-step-client.test', ca)
    const withClientCertificate = () => curl('--cacert', server.cert, '--cert', client.cert, '--key', client.key, `${gateway.url}/api/gateway/v1/ping/`)
    const reloads = (since: number) => logLines(gateway).slice(since).filter((entry) => /^TLS (certificate reloaded|files not reloaded)/.test(String(entry.msg)))
    // The first step writes a whole certificate, another CA's; the one that signed the client's comes in the second.
    const first = readFileSync(selfSignedCertificate(dir, 'two-step-ca.test').cert, 'utf8')
    assert.equal((await withClientCertificate()).status, 200)
    const since = logLines(gateway).length
    writeFileSync(bundle, first)
    // Past the time the poll sees the change (a second) and longer than a tool's pause between two writes.
    await sleep(1400)
    assert.deepEqual(reloads(since), [], 'the first step alone is not taken')
    appendFileSync(bundle, readFileSync(ca.cert, 'utf8'))
    assert.ok(await eventually(() => reloads(since).length > 0, Boolean, 8000), gateway.output())
    assert.deepEqual(reloads(since).map((entry) => entry.msg), ['TLS certificate reloaded'])
    assert.equal((await withClientCertificate()).status, 200, 'the client\'s CA is trusted throughout')
  })
})

describe('a TLS private key other users of the machine may read', () => {
  it('is warned of, with its mode, by config check and by serve, and not once only its owner may read it', async () => {
    const dir = tempDir()
    const files = selfSignedCertificate(dir, 'readable.test')
    const config = writeConfig(dir, { port: 0, tls: { cert_file: files.cert, key_file: files.key } })
    const warning = /WARNING: server\.tls\.key_file .*readable\.test\.key holds the TLS private key and other users of this machine may read it \(mode 644\): chmod 600 it/
    chmodSync(files.key, 0o644)
    const readable = await runCli(['config', 'check', config, '--demo'])
    assert.equal(readable.code, 0, readable.stderr)
    assert.match(readable.stderr, warning)
    const gateway = await spawnGateway(['--config', config, '--demo', '--data-dir', join(dir, 'data')], { GATEHOUSE_ADMIN_PASSWORD: 'unused-password' })
    await gateway.stop()
    assert.match(gateway.output(), warning)
    chmodSync(files.key, 0o600)
    const ownersOnly = await runCli(['config', 'check', config, '--demo'])
    assert.equal(ownersOnly.code, 0, ownersOnly.stderr)
    assert.doesNotMatch(ownersOnly.stderr, /key_file/)
  })
})

describe('serve with unusable TLS files', { concurrency: true }, () => {
  const dir = tempDir()
  const good = selfSignedCertificate(dir, 'good.test')
  const other = selfSignedCertificate(dir, 'other.test')
  const { garbage, pipe: fifo, huge } = unusablePemFiles(dir, good)
  const wrongOrder = join(dir, 'wrong-order.crt')
  writeFileSync(wrongOrder, readFileSync(other.cert, 'utf8') + readFileSync(good.cert, 'utf8'))

  const cases: [string, Record<string, string>, RegExp][] = [
    ['a missing certificate', { cert_file: join(dir, 'missing.crt'), key_file: good.key }, /^gatehouse: server\.tls\.cert_file: cannot read ".*missing\.crt": ENOENT/],
    ['an unreadable key (a directory)', { cert_file: good.cert, key_file: dir }, /^gatehouse: server\.tls\.key_file: ".*" is not a regular file/],
    // Read whole, a device named by mistake would fill the memory, and a pipe hold the start for ever.
    ['a device as the certificate', { cert_file: '/dev/zero', key_file: good.key }, /^gatehouse: server\.tls\.cert_file: "\/dev\/zero" is not a regular file/],
    ['a pipe as the key', { cert_file: good.cert, key_file: fifo }, /^gatehouse: server\.tls\.key_file: ".*pipe\.fifo" is not a regular file/],
    ['a certificate file larger than any PEM file', { cert_file: huge, key_file: good.key }, /^gatehouse: server\.tls\.cert_file: ".*huge\.pem" is larger than 1 MiB/],
    ['a certificate file that holds no certificate', { cert_file: garbage, key_file: good.key }, /^gatehouse: server\.tls\.cert_file: ".*garbage\.pem" does not hold a PEM certificate/],
    ['a missing client CA', { cert_file: good.cert, key_file: good.key, ca_file: join(dir, 'missing-ca.crt') }, /^gatehouse: server\.tls\.ca_file: cannot read/],
    ['a cipher list OpenSSL takes nothing from', { cert_file: good.cert, key_file: good.key, ciphers: 'NO-SUCH-CIPHER' }, /^gatehouse: server\.tls\.ciphers: OpenSSL takes no cipher from "NO-SUCH-CIPHER"/],
    ['a key of another certificate', { cert_file: good.cert, key_file: other.key }, /^gatehouse: server\.tls: the key in ".*other\.test\.key" does not belong to the certificate in ".*good\.test\.crt"/],
    ['a chain in the wrong order', { cert_file: wrongOrder, key_file: good.key }, /^gatehouse: server\.tls: the key in ".*good\.test\.key" belongs to certificate 2 in ".*wrong-order\.crt", not to the first \(CN=other\.test\): put the server's certificate first/],
  ]
  for (const [what, tls, reason] of cases) {
    it(`stops with exit code 2 and a one-line reason, having touched nothing, for ${what}`, async () => {
      const dataDir = join(tempDir(), 'data')
      const config = writeConfig(tempDir(), { port: 0, tls })
      const result = await runCli(['serve', '--config', config, '--demo', '--data-dir', dataDir], { env: { GATEHOUSE_ADMIN_PASSWORD: 'unused-password' } })
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr, reason)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      assert.equal(result.stdout, '')
      assert.deepEqual(readdirSync(join(dataDir, '..')), [])
    })
  }
})

describe('a service\'s own Strict-Transport-Security', () => {
  const dir = tempDir()
  const certificate = selfSignedCertificate(dir, '127.0.0.1')
  const agent = new Agent({ ca: readFileSync(certificate.cert) })
  let upstream: RecordingUpstream
  let tlsGateway: TestGateway
  let plainGateway: TestGateway
  const service = (url: string) => ({ name: 'app', prefix: '/app/', upstream: url, accepts: ['basic'], public_paths: ['/app/*'] })
  before(async () => {
    // As Spring Security answers a request it takes for HTTPS (X-Forwarded-Proto), and a service switching HSTS off.
    upstream = await startRecordingUpstream((request, response) => {
      const hsts = request.url!.includes('forget') ? 'max-age=0' : 'max-age=31536000 ; includeSubDomains'
      response.writeHead(200, { 'content-type': 'text/plain', 'strict-transport-security': hsts }).end('page')
    })
    tlsGateway = await startGateway({ tls: certificate, config: { services: [service(upstream.url)] } })
    plainGateway = await startGateway({ config: { services: [service(upstream.url)] } })
  })
  after(async () => {
    await tlsGateway?.close()
    await plainGateway?.close()
    await upstream?.close()
    agent.destroy()
  })

  const hstsOf = (url: string) => new Promise<string | undefined>((resolve, reject) => {
    httpsRequest(url, { agent }, (response) => {
      response.resume()
      resolve(response.headers['strict-transport-security'] as string | undefined)
    }).on('error', reject).end()
  })

  it('gives way to the gateway\'s on its HTTPS listener, on the lean path and the general one alike', async () => {
    // A percent escape in the path takes the request through Fastify's router (src/gateway/lean-proxy.ts).
    for (const path of ['/app/page', '/app/forget', '/app/p%61ge', '/app/f%6frget']) {
      assert.equal(await hstsOf(`${tlsGateway.url}${path}`), 'max-age=31536000', path)
    }
  })

  it('passes as the service wrote it over plain HTTP, where the gateway sends none', async () => {
    const answer = await plainGateway.fetch('/app/page')
    assert.equal(answer.status, 200)
    assert.equal(answer.headers.get('strict-transport-security'), 'max-age=31536000 ; includeSubDomains')
  })
})
