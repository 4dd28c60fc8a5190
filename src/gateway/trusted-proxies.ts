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
 * Puts a proxy's forwarding headers in the one form both paths (Fastify's and the lean one) read, once, before
 * either reads them: X-Forwarded-Proto as a scheme the gateway serves or not at all, X-Forwarded-For's addresses
 * without the ports some load balancers write.
 */
export function normaliseForwardingHeaders(headers: IncomingHttpHeaders): void {
  if (headers['x-forwarded-proto'] !== undefined) keepKnownForwardedProto(headers)
  if (headers['x-forwarded-for'] !== undefined) dropForwardedForPorts(headers)
}

/**
 * Leaves X-Forwarded-Proto only when it names a scheme the gateway serves: its last value (the nearest proxy's, as
 * Fastify and the lean path read it), in lower case, if that is `http` or `https`; otherwise the field is dropped, and
 * a trusted proxy's request is read by its connection's own scheme, as when the proxy sends none. Any other string
 * would become the request's protocol: the scheme of the redirects and origins the gateway writes, and the one the
 * services are told.
 */
function keepKnownForwardedProto(headers: IncomingHttpHeaders): void {
  // Node joins a repeated X-Forwarded-Proto into one string; the type allows a list.
  const value = String(headers['x-forwarded-proto'])
  const scheme = value.slice(value.lastIndexOf(',') + 1).trim().toLowerCase()
  if (scheme === 'http' || scheme === 'https') headers['x-forwarded-proto'] = scheme
  else delete headers['x-forwarded-proto']
}

/** An IPv4 address with a port, or an IPv6 address in brackets with or without one; the address is the first group. */
const ADDRESS_WITH_PORT = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}|\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?)$/

/**
 * Takes the port off X-Forwarded-For entries written `203.0.113.7:5678` or `[2001:db8::7]:5678` (Azure's
 * Application Gateway and some others send them; nginx's realip module reads them so too), so that a trusted
 * proxy's client is one address to lockout, sessions and the access rules' `networks`, whatever port it came
 * from, and not a string that matches no range. Other entries are left as they are.
 */
function dropForwardedForPorts(headers: IncomingHttpHeaders): void {
  const value = String(headers['x-forwarded-for'])
  if (!/[:[]/.test(value)) return
  headers['x-forwarded-for'] = value.split(',').map((entry) => {
    const parts = ADDRESS_WITH_PORT.exec(entry.trim())
    return parts ? (parts[1] ?? parts[2]!) : entry.trim()
  }).join(', ')
}
