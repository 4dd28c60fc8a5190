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
  const ranges = entries.map((entry) => entry.includes('/') ? ipaddr.parseCIDR(entry) : wholeAddress(entry))
  return (address) => {
    if (!address || !ipaddr.isValid(address)) return false
    const peer = ipaddr.process(address)
    return ranges.some(([range, bits]) => range.kind() === peer.kind() && peer.match(range, bits))
  }
}

function wholeAddress(entry: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  const address = ipaddr.process(entry)
  return [address, address.kind() === 'ipv4' ? 32 : 128]
}

