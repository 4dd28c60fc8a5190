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

