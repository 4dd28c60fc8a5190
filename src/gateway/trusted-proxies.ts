import type { IncomingHttpHeaders } from 'node:http'
import { isIP } from 'node:net'
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
 * either reads them: X-Forwarded-Proto as a scheme the gateway serves or not at all, X-Forwarded-For as the addresses
 * the nearest proxies vouch for (`keepForwardedAddresses`).
 */
export function normaliseForwardingHeaders(headers: IncomingHttpHeaders): void {
  if (headers['x-forwarded-proto'] !== undefined) keepKnownForwardedProto(headers)
  if (headers['x-forwarded-for'] !== undefined) keepForwardedAddresses(headers)
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
 * X-Forwarded-For's entries from the nearest back to the first that is no address, each as its address: one written
 * with a port (`203.0.113.7:5678`, `[2001:db8::7]:5678`: Azure's Application Gateway and some others send them, and
 * nginx's realip module reads them so) is its address, so that a trusted proxy's client is one address to lockout,
 * sessions and the access rules' `networks`, whatever port it came from. An entry that is no address (`unknown`, a
 * name, `127.1`, which loose parsers read as the loopback) ends the list, and the entries before it go with it: no
 * proxy the gateway trusts vouched for them. With none left the field is dropped, and the client is the proxy itself,
 * as nginx's realip module keeps the peer for a field it cannot parse.
 */
function keepForwardedAddresses(headers: IncomingHttpHeaders): void {
  const value = String(headers['x-forwarded-for'])
  // The common case, one address a proxy wrote: nothing to change.
  if (!value.includes(',') && isIP(value)) return
  const entries = value.split(',')
  let first = entries.length
  while (first > 0) {
    const address = addressOf(entries[first - 1]!)
    if (address === undefined) break
    entries[--first] = address
  }
  if (first === entries.length) delete headers['x-forwarded-for']
  else headers['x-forwarded-for'] = entries.slice(first).join(', ')
}

function addressOf(entry: string): string | undefined {
  const trimmed = entry.trim()
  if (isIP(trimmed)) return trimmed
  const parts = ADDRESS_WITH_PORT.exec(trimmed)
  const address = parts && (parts[1] ?? parts[2]!)
  return address && isIP(address) ? address : undefined
}
