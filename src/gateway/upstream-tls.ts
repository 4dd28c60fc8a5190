import { X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { createSecureContext, type SecureContext } from 'node:tls'
import type { ServiceTlsConfig } from '../config/schema.ts'
import { checkKeyPair, firstLine, parse, readPem, TlsFilesUnusable } from '../listener/tls.ts'

/**
 * How the gateway connects to an https:// service (`services[].tls`), for every connection it makes to it: the
 * proxy's pools, WebSocket upgrades and the /readyz probe. The files are read and checked once, with the checks the
 * gateway's own TLS files get (src/listener/tls.ts), into one secure context that every connection shares: a CA
 * bundle parsed once, not on each connection.
 */
export interface UpstreamTls {
  /** Whether the service has settings of its own: without, every connection is made as for any https URL. */
  readonly configured: boolean
  /** The CAs (`ca_file`'s instead of Node's) and the client certificate; undefined: Node's CAs and none. */
  readonly secureContext: SecureContext | undefined
  /** The name sent in SNI and verified, `server_name` or the upstream's host; undefined for an address, which SNI cannot carry. */
  readonly servername: string | undefined
}

/** Reads and checks the files of `tls` (named `setting` in a refusal, `services.0.tls`); throws TlsFilesUnusable with a one-line reason. */
export function readUpstreamTls(setting: string, upstream: URL, tls: ServiceTlsConfig | undefined): UpstreamTls {
  const host = upstream.hostname.replace(/^\[(.*)\]$/, '$1')
  const servername = tls?.server_name ?? (isIP(host) ? undefined : host)
  if (!tls || (tls.ca_file === undefined && tls.cert_file === undefined)) return { configured: tls !== undefined, secureContext: undefined, servername }
  const ca = tls.ca_file === undefined ? undefined : readPem(`${setting}.ca_file`, tls.ca_file)
  if (ca !== undefined) parse(`${setting}.ca_file`, tls.ca_file!, 'a PEM CA certificate', () => new X509Certificate(ca))
  const pair = tls.cert_file === undefined ? undefined : { cert: readPem(`${setting}.cert_file`, tls.cert_file), key: readPem(`${setting}.key_file`, tls.key_file!) }
  if (pair) checkKeyPair(setting, { ...pair, cert_file: tls.cert_file!, key_file: tls.key_file! })
  try {
    // Without `ca`, the context holds Node's CAs, as a connection made without one.
    return { configured: true, secureContext: createSecureContext({ ...(ca === undefined ? {} : { ca }), ...pair }), servername }
  } catch (error) {
    throw new TlsFilesUnusable(`${setting}: the files cannot be used together: ${firstLine(error)}`)
  }
}
