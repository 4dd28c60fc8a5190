import type { IncomingHttpHeaders } from 'node:http'
import { compileAddressRanges } from '../http/address-ranges.ts'

/** Whether a peer address is one of the configured reverse proxies, whose forwarding headers are believed. */
export type ProxyTrust = (address: string | undefined) => boolean

/**
 * Compiles `server.trusted_proxies` (addresses and CIDRs) once, at start. Only a peer in the list may say who the
 * client is (X-Forwarded-For, Forwarded, X-Real-IP, ...): the client address that lockout throttles, sessions
 * record and services receive, the scheme and the host. Entries are read as src/http/address-ranges.ts reads them:
 * IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) match their IPv4 entries, as a dual-stack listener reports them that
 * way, and an IPv4-mapped entry is the IPv4 range it maps.
 */
export function compileTrustedProxies(entries: readonly string[]): ProxyTrust {
  if (!entries.length) return () => false
  const judge = compileAddressRanges(entries)
  // Asked several times per proxied request (client address, scheme, host, forwarded headers) for the few peers a
  // gateway sees: parsing the address each time cost more than the rest of the header work. The memory is bounded,
  // and forgotten whole when full, so a flood of distinct peers costs a parse each, never unbounded memory.
  const known = new Map<string, boolean>()
  return (address) => {
    if (!address) return false
    let trusted = known.get(address)
    if (trusted === undefined) {
      if (known.size >= REMEMBERED_PEERS) known.clear()
      trusted = judge(address)
      known.set(address, trusted)
    }
    return trusted
  }
}

const REMEMBERED_PEERS = 4096


/**
 * Leaves X-Forwarded-Proto only when it names a scheme the gateway serves: its last value (the nearest proxy's, as
 * Fastify and the lean path read it), in lower case, if that is `http` or `https`; otherwise the field is dropped, and
 * a trusted proxy's request is read by its connection's own scheme, as when the proxy sends none. Any other string
 * would become the request's protocol: the scheme of the redirects and origins the gateway writes, and the one the
 * services are told. Done once, on the request's headers, before either path reads them.
 */
export function keepKnownForwardedProto(headers: IncomingHttpHeaders): void {
  // Node joins a repeated X-Forwarded-Proto into one string; the type allows a list.
  const value = headers['x-forwarded-proto']?.toString()
  if (value === undefined) return
  const scheme = value.slice(value.lastIndexOf(',') + 1).trim().toLowerCase()
  if (scheme === 'http' || scheme === 'https') headers['x-forwarded-proto'] = scheme
  else delete headers['x-forwarded-proto']
}
