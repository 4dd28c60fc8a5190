import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import { createSecureServer } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import type { TLSSocket } from 'node:tls'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { selfSignedCertificate, type CertificateFiles } from '../helpers/certificates.ts'
import { repoRoot, spawnGateway, tempDir } from '../helpers/gateway.ts'

const run = promisify(execFile)
const recorder = join(repoRoot, 'test/fixtures/record-loaded-modules.mjs')

/** Whether this process has loaded node:http2 (or its binding) so far. */
function http2Loaded(moduleLoadList: readonly string[]): boolean {
  return moduleLoadList.some((name) => /\bhttp2\b/.test(name))
}

/**
 * Loads the proxy's module, says whether that loaded node:http2, then asks an HTTP/2-only upstream through an undici
 * pool that offers h2: undici's index adds its request API to the dispatchers of the modules the proxy loaded, its
 * stand-in for the HTTP/2 client included.
 */
const H2_CLIENT = `
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
await import(process.env.LEAN_PROXY)
const loadedByTheProxy = process.moduleLoadList.some((name) => /\\bhttp2\\b/.test(name))
const { Pool } = createRequire(process.env.LEAN_PROXY)('undici')
const pool = new Pool(process.env.UPSTREAM, { allowH2: true, connect: { ca: readFileSync(process.env.CA) } })
const { statusCode, body } = await pool.request({ path: '/', method: 'GET' })
process.stdout.write(JSON.stringify({ loadedByTheProxy, status: statusCode, body: await body.text() }))
await pool.close()
`

/** An HTTPS service that answers every request with what it saw of the connection. */
async function httpsUpstream(certificate: CertificateFiles): Promise<Server> {
  const server = createServer({ cert: readFileSync(certificate.cert), key: readFileSync(certificate.key) }, (request, response) => {
    const socket = request.socket as TLSSocket
    response.writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ path: request.url, encrypted: socket.encrypted === true, alpn: socket.alpnProtocol, version: request.httpVersion }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return server
}

describe('node:http2 waits for an HTTP/2 upstream connection', () => {
  it('is not loaded by a start, nor by proxying to an HTTPS upstream on either path', async () => {
    const dir = tempDir()
    const certificate = selfSignedCertificate(dir, 'upstream')
    const upstream = await httpsUpstream(certificate)
    try {
      const url = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`
      const config = join(dir, 'gatehouse.yaml')
      writeFileSync(config, [
        'services:',
        `  - { name: lean, prefix: /lean/, upstream: "${url}", public_paths: ["/lean/*"] }`,
        // A service with CORS is served by Fastify's route (src/gateway/proxy.ts), with the same pools.
        `  - { name: general, prefix: /general/, upstream: "${url}", public_paths: ["/general/*"], cors: { allowed_origins: ["https://app.example"] } }`,
      ].join('\n'))
      const record = join(dir, 'loaded.json')
      const gateway = await spawnGateway(['--config', config, '--data-dir', join(dir, 'data')], {
        NODE_OPTIONS: `--import=${recorder}`,
        RECORD_LOADED_MODULES: record,
        NODE_EXTRA_CA_CERTS: certificate.cert,
      })
      try {
        for (const path of ['/lean/a', '/general/b']) {
          const response = await fetch(new URL(path, gateway.url))
          assert.equal(response.status, 200, path)
          assert.deepEqual(await response.json(), { path, encrypted: true, alpn: 'http/1.1', version: '1.1' })
        }
      } finally {
        await gateway.stop()
      }
      const { internal } = JSON.parse(readFileSync(record, 'utf8')) as { internal: string[] }
      assert.ok(internal.includes('NativeModule https'), 'the record holds Node\'s own modules')
      assert.equal(http2Loaded(internal), false, 'node:http2 was loaded (are the dependencies\' bundles current? `npm install` makes them)')
    } finally {
      upstream.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('leaves undici\'s HTTP/2 client unloaded until a connection chooses h2, then hands it the connection', async () => {
    const dir = tempDir()
    const certificate = selfSignedCertificate(dir, 'h2-upstream')
    const server = createSecureServer({ cert: readFileSync(certificate.cert), key: readFileSync(certificate.key) }, (request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' }).end(`over ${request.httpVersion}`)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    try {
      // A process of its own: this one has loaded Fastify as installed, which requires node:http2.
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', H2_CLIENT], {
        env: { ...process.env, LEAN_PROXY: pathToFileURL(join(repoRoot, 'src/gateway/lean-proxy.ts')).href, UPSTREAM: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, CA: certificate.cert },
      })
      assert.deepEqual(JSON.parse(stdout), { loadedByTheProxy: false, status: 200, body: 'over 2.0' })
    } finally {
      server.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
