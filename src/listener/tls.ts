import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { statSync, unwatchFile, watchFile } from 'node:fs'
import { isIP } from 'node:net'
import { createSecureContext, type Server as TlsServer } from 'node:tls'
import type { FastifyBaseLogger } from 'fastify'
import { readAtMost } from '../config/read-at-most.ts'
import type { TlsConfig } from '../config/schema.ts'

/**
 * Gatehouse's own HTTPS: the certificate, key and client CA read from files and checked before they are used,
 * then swapped into the running server when the files change or on SIGHUP. Renewing a certificate needs no
 * restart and drops no connection: open connections keep the context they were made with, new ones get the new.
 */

/** A TLS file that cannot be used. The message is one line naming the option and the file. */
export class TlsFilesUnusable extends Error {}

/** When a certificate is valid, epoch ms: TLS peers refuse it outside that time. */
export interface ValidityDates {
  readonly validFromMs: number
  readonly validToMs: number
}

export function validityDates(certificate: X509Certificate): ValidityDates {
  return { validFromMs: Date.parse(certificate.validFrom), validToMs: Date.parse(certificate.validTo) }
}

export interface TlsCredentials extends ValidityDates {
  /** For https.createServer: mutual TLS is required exactly when a client CA is configured. */
  readonly options: { cert: string; key: string; ca?: string; ciphers: string; requestCert: boolean; rejectUnauthorized: boolean }
  /** The server certificate's subject and expiry, for the log and the start-up summary (no secret in them). */
  readonly subject: string
  readonly validTo: string
  /** Whether the certificate names `host` (a name, or an address), as clients check it. */
  readonly names: (host: string) => boolean
}

/**
 * Why clients reaching the gateway at `publicUrl` would refuse the certificate for its name, or undefined when it
 * names the URL's host (or there is no public URL to compare with).
 */
export function misnamed(certificate: Pick<TlsCredentials, 'names'>, publicUrl: string | undefined): string | undefined {
  if (publicUrl === undefined) return undefined
  const host = new URL(publicUrl).hostname.replace(/^\[|\]$/g, '')
  return certificate.names(host) ? undefined : `the certificate does not name ${host}, the host of server.public_url`
}

/** Why the certificate is refused by its peers at `now` (expired, or not yet valid), or undefined while it is valid. */
export function outOfDate(certificate: ValidityDates, now = Date.now()): string | undefined {
  if (now > certificate.validToMs) return `the certificate expired on ${new Date(certificate.validToMs).toISOString()}`
  if (now < certificate.validFromMs) return `the certificate is not valid until ${new Date(certificate.validFromMs).toISOString()}`
  return undefined
}

/**
 * Why a certificate read again must not replace the one in use (`serving`): it is out of date (an old backup restored,
 * a clock wrong where it was made) while the one in use is not, and swapped in it would end every new connection.
 * Undefined when it may replace it: it is valid, or the one in use is no better (or there is none).
 */
export function keptForDates(next: ValidityDates | undefined, serving: ValidityDates | undefined, now = Date.now()): string | undefined {
  const refused = next && outOfDate(next, now)
  return refused && serving && !outOfDate(serving, now) ? refused : undefined
}

/**
 * Why a certificate read again must not replace the one in use for its name: it does not name the public URL's host
 * (a renewal issued for another name) while the one in use does, and is valid. Undefined when it may replace it.
 */
export function keptForName(next: TlsCredentials, serving: TlsCredentials | undefined, publicUrl: string | undefined, now = Date.now()): string | undefined {
  const refused = misnamed(next, publicUrl)
  return refused && serving && !misnamed(serving, publicUrl) && !outOfDate(serving, now) ? refused : undefined
}

/**
 * When a certificate kept out for its dates (keptForDates) is to be read again by itself, as nothing else would read
 * the files until they change: once it becomes valid, or once the one in use expires if that comes first. Undefined
 * for one kept out as expired, which no time makes valid.
 */
export function validAt(next: ValidityDates, serving: ValidityDates, now = Date.now()): number | undefined {
  return now < next.validFromMs ? Math.min(next.validFromMs, serving.validToMs + 1) : undefined
}

/** Reads files again at one time to come (validAt): each `at` replaces the time set before, `clear` drops it. */
export class ReadAgainTimer {
  #timer: NodeJS.Timeout | undefined

  at(time: number, readAgain: () => void, now = Date.now()): void {
    clearTimeout(this.#timer)
    // A second past it, as certificates' times count whole seconds. A timer holds at most about 24 days: a later time
    // is reached in steps, each read checking again.
    this.#timer = setTimeout(readAgain, Math.min(time - now + 1000, MAX_TIMER_MS))
    this.#timer.unref()
  }

  clear(): void {
    clearTimeout(this.#timer)
  }
}

/**
 * TLS 1.2's suites unless `server.tls.ciphers` says otherwise: ECDHE key exchange with an AEAD cipher, as Mozilla's
 * "intermediate" profile (without its DHE suites, for which Node sets no parameters). Node's own list also offers
 * CBC suites (Lucky Thirteen and its kin) and suites without forward secrecy; every TLS 1.2 client of the last
 * decade speaks one of these. TLS 1.3's suites are left as OpenSSL has them.
 */
const DEFAULT_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

/** A PEM file holds a few kilobytes (a chain of several certificates some tens): more is no PEM file. */
const MAX_PEM_BYTES = 1024 * 1024

/** Reads and checks the files; throws TlsFilesUnusable with a one-line reason. */
export function readTlsFiles(tls: TlsConfig): TlsCredentials {
  const cert = readPem('server.tls.cert_file', tls.cert_file)
  const key = readPem('server.tls.key_file', tls.key_file)
  const ca = tls.ca_file === undefined ? undefined : readPem('server.tls.ca_file', tls.ca_file)
  const certificate = checkKeyPair('server.tls', { cert, key, cert_file: tls.cert_file, key_file: tls.key_file })
  if (ca !== undefined) parse('server.tls.ca_file', tls.ca_file!, 'a PEM CA certificate', () => new X509Certificate(ca))
  const ciphers = tls.ciphers ?? DEFAULT_TLS12_CIPHERS
  try {
    createSecureContext({ ciphers })
  } catch (error) {
    throw new TlsFilesUnusable(`server.tls.ciphers: OpenSSL takes no cipher from "${ciphers}": ${firstLine(error)}`)
  }
  const options = { cert, key, ...(ca === undefined ? {} : { ca }), ciphers, requestCert: ca !== undefined, rejectUnauthorized: ca !== undefined }
  try {
    createSecureContext(options)
  } catch (error) {
    throw new TlsFilesUnusable(`server.tls: the files cannot be used together: ${firstLine(error)}`)
  }
  const names = (host: string) => (isIP(host) ? certificate.checkIP(host) : certificate.checkHost(host)) !== undefined
  return { options, subject: certificate.subject.split('\n').join(', '), validTo: certificate.validTo, names, ...validityDates(certificate) }
}

/**
 * The certificate of a certificate and key read from `cert_file` and `key_file` (under `setting`), once both parse
 * and the key is the certificate's.
 */
export function checkKeyPair(setting: string, pair: { cert: string; key: string; cert_file: string; key_file: string }): X509Certificate {
  const certificate = parse(`${setting}.cert_file`, pair.cert_file, 'a PEM certificate', () => new X509Certificate(pair.cert))
  const privateKey: KeyObject = parse(`${setting}.key_file`, pair.key_file, 'an unencrypted PEM private key', () => createPrivateKey(pair.key))
  if (!certificate.checkPrivateKey(privateKey)) {
    // A chain written in the wrong order (the intermediate first) holds the key's certificate further down.
    const later = pair.cert.match(PEM_CERTIFICATES)?.slice(1).findIndex((pem) => {
      try {
        return new X509Certificate(pem).checkPrivateKey(privateKey)
      } catch {
        return false
      }
    }) ?? -1
    if (later >= 0) {
      throw new TlsFilesUnusable(`${setting}: the key in "${pair.key_file}" belongs to certificate ${later + 2} in "${pair.cert_file}", not to the first (${certificate.subject.split('\n').join(', ')}): put the server's certificate first, then the chain that signed it`)
    }
    throw new TlsFilesUnusable(`${setting}: the key in "${pair.key_file}" does not belong to the certificate in "${pair.cert_file}"`)
  }
  return certificate
}

const PEM_CERTIFICATES = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/**
 * A file's text, read as far as a PEM file can reach: a regular file only (a pipe or a device, named by mistake,
 * would hold the start, or a reload on the event loop, for ever), refused beyond MAX_PEM_BYTES. `setting` names the
 * option in the message (`server.tls.cert_file`).
 */
export function readPem(setting: string, file: string): string {
  let text: string | undefined
  try {
    if (!statSync(file).isFile()) throw new TlsFilesUnusable(`${setting}: "${file}" is not a regular file`)
    text = readAtMost(file, MAX_PEM_BYTES)
  } catch (error) {
    if (error instanceof TlsFilesUnusable) throw error
    throw new TlsFilesUnusable(`${setting}: cannot read "${file}": ${firstLine(error)}`)
  }
  if (text === undefined) throw new TlsFilesUnusable(`${setting}: "${file}" is larger than ${MAX_PEM_BYTES / 1024 / 1024} MiB, which no PEM file is`)
  const cut = cutPemBlock(text)
  if (cut) throw new TlsFilesUnusable(`${setting}: "${file}" ends inside a PEM block (${cut}): it is being written, or was cut short`)
  return text
}

const PEM_BEGIN = /-----BEGIN ([^\r\n-]+)-----/g

/**
 * What is wrong with the PEM block of `text` that is cut short (RFC 7468 section 2), or undefined when every block is
 * whole: a BEGIN line without its END line, or a body that ends before the DER it holds says it does. OpenSSL reads a
 * bundle's certificates until one fails and keeps those before it, so a CA bundle caught while it is written, inside
 * its second certificate, would otherwise be taken with the first alone until the next read; a certificate file would
 * lose its chain. A body with headers (an encrypted key's `Proc-Type:`) is left to the parsing to judge. A file cut
 * between two blocks cannot be told from a whole one.
 */
export function cutPemBlock(text: string): string | undefined {
  for (const begin of text.matchAll(PEM_BEGIN)) {
    const label = begin[1]!
    const bodyStart = begin.index + begin[0].length
    const end = text.indexOf(`-----END ${label}-----`, bodyStart)
    if (end === -1) return `BEGIN ${label} without its END`
    const body = text.slice(bodyStart, end)
    if (body.includes(':')) continue
    if (derShortBy(Buffer.from(body.replace(/\s+/g, ''), 'base64'))) return `the ${label} holds fewer bytes than it says it has`
  }
  // The writing stopped inside the next block's BEGIN line, which the blocks above do not see (a whole END line is the
  // last block's own).
  const lastLine = text.trimEnd().split('\n').at(-1)!.trim()
  const markerCut = lastLine !== '' && ['-----BEGIN ', '-----END '].some((marker) => marker.startsWith(lastLine) || lastLine.startsWith(marker))
  if (markerCut && !/^-----END [^\r\n-]+-----$/.test(lastLine)) return 'a BEGIN line cut short'
  return undefined
}

/** Whether `der` ends before the element at its start does (X.690 section 8.1.3: definite lengths); false for an indefinite one. */
function derShortBy(der: Buffer): boolean {
  if (der.length < 2) return true
  const first = der[1]!
  if (first < 0x80) return der.length < 2 + first
  const bytes = first & 0x7f
  if (bytes === 0) return false
  if (der.length < 2 + bytes) return true
  return der.length < 2 + bytes + der.readUIntBE(2, Math.min(bytes, 6))
}

export function parse<T>(setting: string, file: string, what: string, read: () => T): T {
  try {
    return read()
  } catch {
    throw new TlsFilesUnusable(`${setting}: "${file}" does not hold ${what}`)
  }
}

export function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0]!
}

/**
 * How long the files' content must stay the same once a change is seen before they are read: a certificate and key
 * written one after the other are read together, and a file written in several steps is not taken between two of
 * them. A file cut inside a PEM block is refused by its reading (readPem), but one cut exactly between two blocks (a
 * certificate written and its chain not yet, the first certificates of a CA bundle) reads as whole, and only its
 * staying unchanged tells that its writer is done. Longer than the pause between two writes of any tool that writes
 * in place (a shell's `cat cert.pem chain.pem > file` or a `>>` after it, some milliseconds).
 */
const SETTLED_MS = 2000
const MAX_TIMER_MS = 2 ** 31 - 1
const POLL_MS = 1000
/** How long files may keep changing before the log says they are not being read (watchFiles). */
const UNSETTLED_AFTER_MS = 30_000
const WATCH_TIMING = { settledMs: SETTLED_MS, unsettledAfterMs: UNSETTLED_AFTER_MS }

/** Swaps freshly read files into a running TLS server: when they change (watchFiles) and when asked (SIGHUP). */
export class TlsReloader {
  readonly #server: TlsServer
  readonly #tls: TlsConfig
  /** Where clients reach the gateway, whose host the certificate must name; undefined: not known. */
  readonly #publicUrl: string | undefined
  readonly #log: FastifyBaseLogger
  readonly #files: string[]
  #unwatch: (() => void) | undefined
  readonly #readAgain = new ReadAgainTimer()
  /** What new connections get now. */
  #serving: TlsCredentials | undefined

  constructor(server: TlsServer, tls: TlsConfig, log: FastifyBaseLogger, serving?: TlsCredentials, publicUrl?: string) {
    this.#server = server
    this.#tls = tls
    this.#publicUrl = publicUrl
    this.#log = log
    this.#serving = serving
    this.#files = [tls.cert_file, tls.key_file, ...(tls.ca_file === undefined ? [] : [tls.ca_file])]
  }

  /**
   * Reads the files again and serves them to new connections; unusable files leave the previous ones in place. So
   * does a certificate clients would refuse (expired, or not yet valid: an old backup restored, a clock wrong where
   * it was made) while the one served is valid: swapped in, it would end every new connection. And one that does not
   * name the public URL's host, while the one served does: a renewal issued for another name.
   */
  reload(why: string, now = Date.now()): boolean {
    let credentials: TlsCredentials
    try {
      credentials = readTlsFiles(this.#tls)
    } catch (error) {
      this.#log.warn({ why, reason: (error as Error).message }, 'TLS files not reloaded; new connections still get the previous certificate')
      return false
    }
    const keptForItsDates = keptForDates(credentials, this.#serving, now)
    const kept = keptForItsDates ?? keptForName(credentials, this.#serving, this.#publicUrl, now)
    if (kept) {
      this.#log.warn({ why, reason: `server.tls.cert_file: ${kept}`, subject: credentials.subject }, 'TLS files not reloaded; new connections still get the previous certificate')
      // One kept out for its name is read again when the files change, as no time gives it the name.
      const at = keptForItsDates ? validAt(credentials, this.#serving!, now) : undefined
      if (at !== undefined) this.#readAgain.at(at, () => this.reload('the certificate in the files became valid'), now)
      return false
    }
    const refused = outOfDate(credentials, now) ?? misnamed(credentials, this.#publicUrl)
    this.#server.setSecureContext(credentials.options)
    this.#serving = credentials
    this.#readAgain.clear()
    if (refused) this.#log.warn({ why, subject: credentials.subject, valid_to: credentials.validTo, reason: refused }, 'TLS certificate reloaded, but clients will refuse it')
    else this.#log.info({ why, subject: credentials.subject, valid_to: credentials.validTo }, 'TLS certificate reloaded')
    return true
  }

  watch(): void {
    this.#unwatch ??= watchFiles(this.#files, () => this.reload('files changed'), () => {
      this.#log.warn({ files: this.#files }, `TLS files keep changing; not read again until they stay the same for ${SETTLED_MS / 1000} seconds`)
    })
  }

  close(): void {
    this.#readAgain.clear()
    this.#unwatch?.()
  }
}

/**
 * Calls `changed` when any of `files` changes, once their content has stayed the same for SETTLED_MS, and returns what
 * stops watching. Files are polled (stat follows symlinks), which also sees the renames and symlink swaps that certbot
 * and Kubernetes secret volumes use to replace them; a file being written is taken once it has been left alone, with
 * no SIGHUP. nginx reads its files only when told to, and Envoy's file-based SDS only those moved into place
 * (envoyproxy/envoy#10979): a file written in place would otherwise go unseen there, or be caught midway.
 *
 * Files that never settle (a setting pointed at a file something appends to) are compared at each change for as long
 * as they change, and never taken: `unsettled` is called once they have changed for UNSETTLED_AFTER_MS, so that the log
 * says why new files are not being served, and again only after they have settled in between.
 */
export function watchFiles(files: readonly string[], changed: () => void, unsettled?: () => void, timing: { settledMs: number; unsettledAfterMs: number } = WATCH_TIMING): () => void {
  let settling: NodeJS.Timeout | undefined
  let changingSince: number | undefined
  let told = false
  const stillChanging = (): void => {
    changingSince ??= performance.now()
    if (told || performance.now() - changingSince < timing.unsettledAfterMs) return
    told = true
    unsettled?.()
  }
  const settle = (before: string): void => {
    settling = setTimeout(() => {
      const now = filesContent(files)
      if (now !== before) {
        stillChanging()
        settle(now)
        return
      }
      changingSince = undefined
      told = false
      changed()
    }, timing.settledMs)
    settling.unref()
  }
  const seen = (): void => {
    clearTimeout(settling)
    stillChanging()
    settle(filesContent(files))
  }
  for (const file of files) watchFile(file, { interval: POLL_MS, persistent: false }, seen)
  return () => {
    clearTimeout(settling)
    for (const file of files) unwatchFile(file, seen)
  }
}

/** What `files` hold now, as one digest; a file that cannot be read counts by why, as readPem would refuse it. */
function filesContent(files: readonly string[]): string {
  const digest = createHash('sha256')
  for (const file of files) {
    let content: string
    try {
      content = statSync(file).isFile() ? readAtMost(file, MAX_PEM_BYTES) ?? 'larger than a PEM file' : 'not a regular file'
    } catch (error) {
      content = `unreadable: ${(error as NodeJS.ErrnoException).code ?? 'error'}`
    }
    digest.update(`${file}\0${content.length}\0${content}\0`)
  }
  return digest.digest('base64')
}
