import { X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { createSecureContext, type SecureContext } from 'node:tls'
import type { FastifyBaseLogger } from 'fastify'
import type { ServiceTlsConfig } from '../config/schema.ts'
import { checkKeyPair, firstLine, keptForDates, outOfDate, parse, readPem, ReadAgainTimer, TlsFilesUnusable, validAt, validityDates, watchFiles, type ValidityDates } from '../listener/tls.ts'

/**
 * How the gateway connects to an https:// service (`services[].tls`), for every connection it makes to it: the
 * proxy's pools, WebSocket upgrades and the /readyz probe. The files are read and checked at start, when they change
 * and on SIGHUP, with the checks the gateway's own TLS files get (src/listener/tls.ts), into one secure context that every
 * connection shares: a CA bundle parsed once, not on each connection.
 */
export interface UpstreamTls {
  /** Whether the service has settings of its own: without, every connection is made as for any https URL. */
  readonly configured: boolean
  /** The CAs (`ca_file`'s instead of Node's) and the client certificate; undefined: Node's CAs and none. */
  readonly secureContext: SecureContext | undefined
  /** The name sent in SNI and verified, `server_name` or the upstream's host; undefined for an address, which SNI cannot carry. */
  readonly servername: string | undefined
  /** When the client certificate (`cert_file`) is valid: the service refuses it outside that time. */
  readonly clientCertificate: ValidityDates | undefined
}

/** Reads and checks the files of `tls` (named `setting` in a refusal, `services.0.tls`); throws TlsFilesUnusable with a one-line reason. */
export function readUpstreamTls(setting: string, upstream: URL, tls: ServiceTlsConfig | undefined): UpstreamTls {
  const host = upstream.hostname.replace(/^\[(.*)\]$/, '$1')
  const servername = tls?.server_name ?? (isIP(host) ? undefined : host)
  if (!tls || (tls.ca_file === undefined && tls.cert_file === undefined)) return { configured: tls !== undefined, secureContext: undefined, servername, clientCertificate: undefined }
  const ca = tls.ca_file === undefined ? undefined : readPem(`${setting}.ca_file`, tls.ca_file)
  if (ca !== undefined) parse(`${setting}.ca_file`, tls.ca_file!, 'a PEM CA certificate', () => new X509Certificate(ca))
  const pair = tls.cert_file === undefined ? undefined : { cert: readPem(`${setting}.cert_file`, tls.cert_file), key: readPem(`${setting}.key_file`, tls.key_file!) }
  const clientCertificate = pair && validityDates(checkKeyPair(setting, { ...pair, cert_file: tls.cert_file!, key_file: tls.key_file! }))
  try {
    // Without `ca`, the context holds Node's CAs, as a connection made without one.
    return { configured: true, secureContext: createSecureContext({ ...(ca === undefined ? {} : { ca }), ...pair }), servername, clientCertificate }
  } catch (error) {
    throw new TlsFilesUnusable(`${setting}: the files cannot be used together: ${firstLine(error)}`)
  }
}

/**
 * A service's TLS settings as its new connections take them: read on first use (the server's start, which makes the
 * pools; commands that never connect need not read a key), and again by `reload` (when the files change, and on
 * SIGHUP), so that a renewed client certificate or CA needs no restart. Files found unusable then leave the ones in
 * use in place, as `server.tls`'s do.
 */
export class UpstreamTlsFiles {
  readonly #read: () => UpstreamTls
  /** The files the service names (`ca_file`, `cert_file`, `key_file`): one with only `server_name`, or none, has nothing to read again. */
  readonly files: readonly string[]
  /** Whether its files are read again when they change (`tls.watch`), as well as on SIGHUP. */
  readonly watched: boolean
  #current: UpstreamTls | undefined
  readonly #reloaded: (() => void)[] = []
  readonly #readAgain = new ReadAgainTimer()

  readonly #setting: string

  constructor(setting: string, upstream: URL, tls: ServiceTlsConfig | undefined) {
    this.#read = () => readUpstreamTls(setting, upstream, tls)
    this.#setting = setting
    this.files = [tls?.ca_file, tls?.cert_file, tls?.key_file].filter((file) => file !== undefined)
    this.watched = tls?.watch ?? false
  }

  get hasFiles(): boolean {
    return this.files.length > 0
  }

  current(): UpstreamTls {
    return this.#current ??= this.#read()
  }

  /**
   * Reads the files again and hands them to new connections; throws TlsFilesUnusable, changing nothing, when they
   * cannot be used, or when their client certificate is out of date while the one in use is not (keptForDates, as
   * `server.tls`'s). One installed ahead of its time has `readAgain` called when it becomes valid (validAt), unless
   * a reload or `stop` comes first. Returns why the service will refuse the client certificate taken, when the one in
   * use was no better.
   */
  reload(now = Date.now(), readAgain?: () => void): string | undefined {
    if (!this.hasFiles) return undefined
    const next = this.#read()
    const serving = this.#current?.clientCertificate
    const kept = keptForDates(next.clientCertificate, serving, now)
    if (kept) {
      const at = validAt(next.clientCertificate!, serving!, now)
      if (at !== undefined && readAgain) this.#readAgain.at(at, readAgain, now)
      throw new TlsFilesUnusable(`${this.#setting}.cert_file: ${kept}`)
    }
    this.#readAgain.clear()
    this.#current = next
    for (const listener of this.#reloaded) listener()
    return clientCertificateOutOfDate(this.#setting, next, now)
  }

  /** Drops the reading again set for a client certificate installed ahead of its time (the server stops). */
  stop(): void {
    this.#readAgain.clear()
  }

  /** Calls `listener` after each reload that took new files: connections made before hold the previous ones. */
  onReload(listener: () => void): void {
    this.#reloaded.push(listener)
  }
}

interface ServiceWithTls {
  readonly name: string
  readonly upstreamTls: UpstreamTlsFiles
}

/** Reads again the TLS files of each service that names some (SIGHUP), logging for each whether its new connections take them. */
export function reloadServicesTls(services: readonly ServiceWithTls[], log: FastifyBaseLogger, why: string): void {
  for (const service of services) reloadServiceTls(service, log, why)
}

/**
 * Reads a service's files again whenever they change, as `server.tls`'s are (the same polling, src/listener/tls.ts),
 * for each service that names files and leaves `tls.watch` on; returns what stops watching, and every service's
 * reading again of a client certificate installed ahead of its time (however it was read: SIGHUP too).
 */
export function watchServicesTls(services: readonly ServiceWithTls[], log: FastifyBaseLogger): () => void {
  const stops = services.filter(({ upstreamTls }) => upstreamTls.hasFiles && upstreamTls.watched)
    .map((service) => watchFiles(service.upstreamTls.files, () => reloadServiceTls(service, log, 'files changed'), () => {
      log.warn({ service: service.name, files: service.upstreamTls.files }, 'service TLS files keep changing; not read again until they stay the same for 2 seconds')
    }))
  return () => {
    for (const stop of stops) stop()
    for (const { upstreamTls } of services) upstreamTls.stop()
  }
}

/** Why the service will refuse the client certificate of `tls` (read under `setting`), expired or not yet valid; undefined while it is valid. */
export function clientCertificateOutOfDate(setting: string, tls: UpstreamTls, now = Date.now()): string | undefined {
  const refused = tls.clientCertificate && outOfDate(tls.clientCertificate, now)
  return refused && `${setting}.cert_file: ${refused}`
}

function reloadServiceTls(service: ServiceWithTls, log: FastifyBaseLogger, why: string): void {
  const { name, upstreamTls } = service
  if (!upstreamTls.hasFiles) return
  try {
    const refused = upstreamTls.reload(Date.now(), () => reloadServiceTls(service, log, 'the client certificate in the files became valid'))
    if (refused) log.warn({ why, service: name, reason: refused }, 'service TLS files reloaded, but the service will refuse its client certificate')
    else log.info({ why, service: name }, 'service TLS files reloaded')
  } catch (error) {
    log.warn({ why, service: name, reason: (error as Error).message }, 'service TLS files not reloaded; new connections to it still use the previous ones')
  }
}
