import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FastifyBaseLogger } from 'fastify'
import type { Server as TlsServer } from 'node:tls'
import { selfSignedCertificate, signedServerCertificate } from '../helpers/certificates.ts'
import { tempDir } from '../helpers/gateway.ts'
import { misnamed, outOfDate, readTlsFiles, TlsReloader, type TlsCredentials } from '../../src/listener/tls.ts'

const DAY = 86_400_000

/** A reloader of `files` whose server and log are recorded, serving `serving` now. */
function recordedReloader(files: { cert: string; key: string }, serving: TlsCredentials, publicUrl?: string) {
  const swapped: unknown[] = []
  const logged: { level: string; fields: Record<string, unknown>; msg: string }[] = []
  const log = Object.fromEntries(['info', 'warn'].map((level) => [level, (fields: Record<string, unknown>, msg: string) => logged.push({ level, fields, msg })])) as unknown as FastifyBaseLogger
  const server = { setSecureContext: (options: unknown) => swapped.push(options) } as unknown as TlsServer
  return { reloader: new TlsReloader(server, { cert_file: files.cert, key_file: files.key, watch: false } as never, log, serving, publicUrl), swapped, logged }
}

describe('a certificate clients would refuse for its dates', () => {
  const dir = tempDir()
  // Valid two days from now (the helper's), and another valid thirty.
  const shortLived = selfSignedCertificate(dir, 'short.test')
  const longLived = selfSignedCertificate(dir, 'long.test', 'ec', 30)

  it('is said to be expired, or not yet valid, and valid between', () => {
    const credentials = readTlsFiles({ cert_file: shortLived.cert, key_file: shortLived.key } as never)
    assert.equal(outOfDate(credentials), undefined)
    assert.match(outOfDate(credentials, credentials.validToMs + 1)!, /^the certificate expired on \d{4}-\d\d-\d\dT/)
    assert.match(outOfDate(credentials, credentials.validFromMs - 1)!, /^the certificate is not valid until \d{4}-\d\d-\d\dT/)
  })

  it('is not swapped in for a valid one at a reload: the valid one stays, and the reason is warned of', () => {
    const serving = readTlsFiles({ cert_file: longLived.cert, key_file: longLived.key } as never)
    const { reloader, swapped, logged } = recordedReloader(shortLived, serving)
    // Three days on, the short-lived certificate has expired, the one served has not.
    assert.equal(reloader.reload('SIGHUP', Date.now() + 3 * DAY), false)
    assert.deepEqual(swapped, [])
    assert.equal(logged[0]!.level, 'warn')
    assert.match(String(logged[0]!.fields.reason), /^server\.tls\.cert_file: the certificate expired on /)
    // Today it is valid, and swapped in.
    assert.equal(reloader.reload('SIGHUP'), true)
    assert.equal(swapped.length, 1)
  })

  it('is swapped in, with a warning, where the one served is no better', () => {
    const serving = readTlsFiles({ cert_file: shortLived.cert, key_file: shortLived.key } as never)
    const { reloader, swapped, logged } = recordedReloader(shortLived, serving)
    assert.equal(reloader.reload('files changed', Date.now() + 3 * DAY), true)
    assert.equal(swapped.length, 1)
    assert.deepEqual([logged[0]!.level, logged[0]!.msg], ['warn', 'TLS certificate reloaded, but clients will refuse it'])
  })

  it('takes a certificate installed ahead of its time once that time comes, with no change to the files', async () => {
    const serving = { ...readTlsFiles({ cert_file: longLived.cert, key_file: longLived.key } as never), validFromMs: 0 }
    const { reloader, swapped, logged } = recordedReloader(shortLived, serving)
    const installed = readTlsFiles({ cert_file: shortLived.cert, key_file: shortLived.key } as never)
    try {
      // As if read 300 ms before the new certificate's start.
      assert.equal(reloader.reload('files changed', installed.validFromMs - 300), false)
      assert.match(String(logged[0]!.fields.reason), /not valid until/)
      const started = performance.now()
      while (swapped.length === 0) {
        assert.ok(performance.now() - started < 5000, 'not taken once valid')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      assert.deepEqual([logged.at(-1)!.level, logged.at(-1)!.fields.why], ['info', 'the certificate in the files became valid'])
    } finally {
      reloader.close()
    }
  })
})

describe('a certificate that does not name the public URL\'s host', () => {
  const dir = tempDir()
  const ca = selfSignedCertificate(dir, 'ca.test')
  const right = signedServerCertificate(dir, 'gateway.test', ca, 'DNS:gateway.test')
  // For localhost and 127.0.0.1, its subjectAltName, which clients read rather than its subject's name.
  const wrong = selfSignedCertificate(dir, 'gateway.test.wrong')
  const read = (files: { cert: string; key: string }) => readTlsFiles({ cert_file: files.cert, key_file: files.key } as never)

  it('is said to be misnamed, where a public URL says the host clients check it against', () => {
    assert.equal(misnamed(read(right), 'https://gateway.test:8443/sub'), undefined)
    assert.equal(misnamed(read(wrong), undefined), undefined, 'no public URL: nothing to compare with')
    assert.equal(misnamed(read(wrong), 'https://gateway.test'), 'the certificate does not name gateway.test, the host of server.public_url')
  })

  it('is not swapped in at a reload for one that names it (a renewal for another name), and is warned of', () => {
    const { reloader, swapped, logged } = recordedReloader(wrong, read(right), 'https://gateway.test')
    assert.equal(reloader.reload('files changed'), false)
    assert.deepEqual(swapped, [])
    assert.equal(logged[0]!.level, 'warn')
    assert.equal(logged[0]!.fields.reason, 'server.tls.cert_file: the certificate does not name gateway.test, the host of server.public_url')
  })

  it('is swapped in, with a warning, where the one served does not name it either', () => {
    const { reloader, swapped, logged } = recordedReloader(wrong, read(wrong), 'https://gateway.test')
    assert.equal(reloader.reload('SIGHUP'), true)
    assert.equal(swapped.length, 1)
    assert.deepEqual([logged[0]!.level, logged[0]!.msg], ['warn', 'TLS certificate reloaded, but clients will refuse it'])
  })
})
