import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { readFileSync, unwatchFile, watchFile } from 'node:fs'
import { createSecureContext, type Server as TlsServer } from 'node:tls'
import type { FastifyBaseLogger } from 'fastify'
import type { TlsConfig } from '../config/schema.ts'

/**
 * Gatehouse's own HTTPS: the certificate, key and client CA read from files and checked before they are used,
 * then swapped into the running server when the files change or on SIGHUP. Renewing a certificate needs no
 * restart and drops no connection: open connections keep the context they were made with, new ones get the new.
 */

/** A TLS file that cannot be used. The message is one line naming the option and the file. */
export class TlsFilesUnusable extends Error {}

export interface TlsCredentials {
  /** For https.createServer: mutual TLS is required exactly when a client CA is configured. */
  readonly options: { cert: string; key: string; ca?: string; requestCert: boolean; rejectUnauthorized: boolean }
  /** The server certificate's subject and expiry, for the log and the start-up summary (no secret in them). */
  readonly subject: string
  readonly validTo: string
}

/** Reads and checks the files; throws TlsFilesUnusable with a one-line reason. */
export function readTlsFiles(tls: TlsConfig): TlsCredentials {
  const cert = readPem('cert_file', tls.cert_file)
  const key = readPem('key_file', tls.key_file)
  const ca = tls.ca_file === undefined ? undefined : readPem('ca_file', tls.ca_file)
  const certificate = parse('cert_file', tls.cert_file, 'a PEM certificate', () => new X509Certificate(cert))
  const privateKey: KeyObject = parse('key_file', tls.key_file, 'an unencrypted PEM private key', () => createPrivateKey(key))
  if (ca !== undefined) parse('ca_file', tls.ca_file!, 'a PEM CA certificate', () => new X509Certificate(ca))
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsFilesUnusable(`server.tls: the key in "${tls.key_file}" does not belong to the certificate in "${tls.cert_file}"`)
  }
  const options = { cert, key, ...(ca === undefined ? {} : { ca }), requestCert: ca !== undefined, rejectUnauthorized: ca !== undefined }
  try {
    createSecureContext(options)
  } catch (error) {
    throw new TlsFilesUnusable(`server.tls: the files cannot be used together: ${firstLine(error)}`)
  }
  return { options, subject: certificate.subject.split('\n').join(', '), validTo: certificate.validTo }
}

function readPem(option: string, file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (error) {
    throw new TlsFilesUnusable(`server.tls.${option}: cannot read "${file}": ${firstLine(error)}`)
  }
}

function parse<T>(option: string, file: string, what: string, read: () => T): T {
  try {
    return read()
  } catch {
    throw new TlsFilesUnusable(`server.tls.${option}: "${file}" does not hold ${what}`)
  }
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0]!
}

/** How long after a file changes the files are read, so a certificate and key written one after the other are read together. */
const SETTLE_MS = 200
const POLL_MS = 1000

/**
 * Swaps freshly read files into a running TLS server. Files are polled (stat follows symlinks), which also
 * sees the renames and symlink swaps that certbot and Kubernetes secret volumes use to replace them.
 */
export class TlsReloader {
  readonly #server: TlsServer
  readonly #tls: TlsConfig
  readonly #log: FastifyBaseLogger
  readonly #files: string[]
  #timer: NodeJS.Timeout | undefined

  constructor(server: TlsServer, tls: TlsConfig, log: FastifyBaseLogger) {
    this.#server = server
    this.#tls = tls
    this.#log = log
    this.#files = [tls.cert_file, tls.key_file, ...(tls.ca_file === undefined ? [] : [tls.ca_file])]
  }

  /** Reads the files again and serves them to new connections; unusable files leave the previous ones in place. */
  reload(why: string): boolean {
    let credentials: TlsCredentials
    try {
      credentials = readTlsFiles(this.#tls)
    } catch (error) {
      this.#log.warn({ why, reason: (error as Error).message }, 'TLS files not reloaded; new connections still get the previous certificate')
      return false
    }
    this.#server.setSecureContext(credentials.options)
    this.#log.info({ why, subject: credentials.subject, valid_to: credentials.validTo }, 'TLS certificate reloaded')
    return true
  }

  watch(): void {
    for (const file of this.#files) watchFile(file, { interval: POLL_MS, persistent: false }, this.#changed)
  }

  readonly #changed = (): void => {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.reload('files changed'), SETTLE_MS)
    this.#timer.unref()
  }

  close(): void {
    clearTimeout(this.#timer)
    for (const file of this.#files) unwatchFile(file, this.#changed)
  }
}
