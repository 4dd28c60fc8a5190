import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Certificates made with the real openssl for the test that needs them: PEM files in `dir`. */
export interface CertificateFiles {
  cert: string
  key: string
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' })
}

/** A self-signed server certificate for 127.0.0.1 (and localhost), with the given common name, valid from now for `days`. */
export function selfSignedCertificate(dir: string, commonName: string, keyType = 'ec', days = 2): CertificateFiles {
  const files = { cert: join(dir, `${commonName}.crt`), key: join(dir, `${commonName}.key`) }
  const key = keyType === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', keyType]
  openssl(['req', '-x509', ...key, '-nodes', '-keyout', files.key, '-out', files.cert, '-days', String(days),
    '-subj', `/CN=${commonName}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'])
  return files
}

/** A certificate signed by `ca` (for client certificates), valid from now for `days`; a negative number: expired already. */
export function signedCertificate(dir: string, commonName: string, ca: CertificateFiles, days = 2): CertificateFiles {
  const files = { cert: join(dir, `${commonName}.crt`), key: join(dir, `${commonName}.key`) }
  const request = join(dir, `${commonName}.csr`)
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.key, '-out', request, '-subj', `/CN=${commonName}`])
  openssl(['x509', '-req', '-in', request, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', files.cert, '-days', String(days)])
  return files
}

/** A server certificate signed by `ca` for `subjectAltName` (openssl's form: `DNS:name,IP:127.0.0.1`). */
export function signedServerCertificate(dir: string, commonName: string, ca: CertificateFiles, subjectAltName: string): CertificateFiles {
  const files = { cert: join(dir, `${commonName}.crt`), key: join(dir, `${commonName}.key`) }
  const request = join(dir, `${commonName}.csr`)
  const extensions = join(dir, `${commonName}.ext`)
  writeFileSync(extensions, `subjectAltName=${subjectAltName}\n`)
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.key, '-out', request, '-subj', `/CN=${commonName}`])
  openssl(['x509', '-req', '-in', request, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', files.cert, '-days', '2', '-extfile', extensions])
  return files
}

/**
 * Files named where a PEM file belongs that no TLS setting may take: one holding no PEM at all, a pipe (read whole,
 * it would hold a start for ever), and one larger than any PEM file (`certificate` over and over).
 */
export function unusablePemFiles(dir: string, certificate: CertificateFiles): { garbage: string; pipe: string; huge: string } {
  const files = { garbage: join(dir, 'garbage.pem'), pipe: join(dir, 'pipe.fifo'), huge: join(dir, 'huge.pem') }
  writeFileSync(files.garbage, 'not a certificate\n')
  execFileSync('mkfifo', [files.pipe])
  writeFileSync(files.huge, readFileSync(certificate.cert, 'utf8').repeat(2000))
  return files
}

/**
 * A certificate signed by `ca` (for client certificates) that becomes valid at `notBefore`, a time to come, and is
 * valid for two days from then: made with `openssl ca -startdate`, as `openssl x509` sets no start date before
 * OpenSSL 3.4. Its own small CA database lives in `dir`.
 */
export function futureCertificate(dir: string, commonName: string, ca: CertificateFiles, notBefore: Date): CertificateFiles {
  const files = { cert: join(dir, `${commonName}.crt`), key: join(dir, `${commonName}.key`) }
  const request = join(dir, `${commonName}.csr`)
  const database = join(dir, `${commonName}.db`)
  const config = join(dir, `${commonName}.cnf`)
  writeFileSync(database, '')
  writeFileSync(config, [
    '[ca]', 'default_ca = signer', '[signer]', `database = ${database}`, `new_certs_dir = ${dir}`, `serial = ${database}.serial`,
    'default_md = sha256', 'policy = any', 'unique_subject = no', '[any]', 'commonName = supplied', '',
  ].join('\n'))
  writeFileSync(`${database}.serial`, `${randomBytes(8).toString('hex')}\n`)
  const openSslTime = (time: Date) => time.toISOString().replace(/[-:T]|\.\d+/g, '')
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.key, '-out', request, '-subj', `/CN=${commonName}`])
  openssl(['ca', '-batch', '-config', config, '-cert', ca.cert, '-keyfile', ca.key, '-in', request, '-out', files.cert, '-notext',
    '-startdate', openSslTime(notBefore), '-enddate', openSslTime(new Date(notBefore.getTime() + 2 * 86_400_000))])
  return files
}
