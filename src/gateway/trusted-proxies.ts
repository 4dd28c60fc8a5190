import ipaddr from 'ipaddr.js'

/** Whether a peer address is one of the configured reverse proxies, whose forwarding headers are believed. */
export type ProxyTrust = (address: string | undefined) => boolean

/**
 * Compiles `server.trusted_proxies` (addresses and CIDRs) once, at start. Only a peer in the list may say who the
 * client is (X-Forwarded-For, Forwarded, X-Real-IP, ...): the client address that lockout throttles, sessions
 * record and services receive, the scheme and the host. IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) match their
 * IPv4 entries, as a dual-stack listener reports them that way.
 */
export function compileTrustedProxies(entries: readonly string[]): ProxyTrust {
  if (!entries.length) return () => false
  const ranges = entries.map((entry) => entry.includes('/') ? range(entry) : wholeAddress(entry))
  const judge = (address: string): boolean => {
    if (!ipaddr.isValid(address)) return false
    const peer = ipaddr.process(address)
    return ranges.some(([range, bits]) => range.kind() === peer.kind() && peer.match(range, bits))
  }
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
 * A CIDR; an IPv4-mapped one (`::ffff:10.0.0.0/104`) as the IPv4 range it maps, since peers are judged as their IPv4
 * address: written as it is, it matched none of them, and the proxies it names were not believed.
 */
function range(entry: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  const [address, bits] = ipaddr.parseCIDR(entry)
  if (address.kind() === 'ipv6' && bits >= 96 && (address as ipaddr.IPv6).isIPv4MappedAddress()) return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96]
  return [address, bits]
}

function wholeAddress(entry: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  const address = ipaddr.process(entry)
  return [address, address.kind() === 'ipv4' ? 32 : 128]
}

