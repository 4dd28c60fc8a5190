import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { selfSignedCertificate, type CertificateFiles } from '../helpers/certificates.ts'
import { runCli, tempDir } from '../helpers/gateway.ts'
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts'

/**
 * A PostgreSQL server speaking TLS with a certificate no system CA signed: what each `sslmode` of a database URL
 * makes of it. `prefer`, `require` and `verify-ca` check the certificate and the server's name as `verify-full`
 * does (pg's meaning today, kept whatever pg's version), without pg's warning that their meaning will change.
 */
describe('a PostgreSQL database URL with sslmode, against a server with a self-signed certificate', () => {
  let dir: string
  let certificate: CertificateFiles
  let cluster: PgCluster
  before(async () => {
    dir = tempDir()
    certificate = selfSignedCertificate(dir, 'database')
    cluster = await startPgCluster({ tls: certificate })
  })
  after(() => {
    cluster?.destroy()
    rmSync(dir, { recursive: true, force: true })
  })

  const migrate = (query: string) => runCli(['migrate', '--status'], { env: { GATEHOUSE_DATABASE_URL: `${cluster.url}?${query}` } })

  for (const mode of ['prefer', 'require', 'verify-ca', 'verify-full']) {
    it(`sslmode=${mode} refuses the certificate, in one line and without pg's warning`, async () => {
      const result = await migrate(`sslmode=${mode}`)
      assert.notEqual(result.code, 0, result.stdout)
      assert.match(result.stderr, /self-signed certificate/)
      assert.doesNotMatch(result.stderr, /WARNING|Warning/)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    })
  }

  it('sslmode=require with the server\'s certificate as sslrootcert connects, by address or by name', async () => {
    const result = await migrate(`sslmode=require&sslrootcert=${encodeURIComponent(certificate.cert)}`)
    assert.equal(result.code, 0, result.stderr)
    assert.doesNotMatch(result.stderr, /WARNING|Warning/)
    const byName = await runCli(['migrate', '--status'], {
      env: { GATEHOUSE_DATABASE_URL: `${cluster.url.replace('127.0.0.1', 'localhost')}?sslmode=require&sslrootcert=${encodeURIComponent(certificate.cert)}` },
    })
    assert.equal(byName.code, 0, byName.stderr)
  })

  it('libpq\'s meanings (uselibpqcompat=true) and sslmode=no-verify are pg\'s: the connection is encrypted, the certificate not checked', async () => {
    for (const query of ['uselibpqcompat=true&sslmode=require', 'sslmode=no-verify']) {
      const result = await migrate(query)
      assert.equal(result.code, 0, `${query}: ${result.stderr}`)
    }
  })
})
