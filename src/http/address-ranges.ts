import ipaddr from 'ipaddr.js'
import { BlockList, isIP, isIPv4 } from 'node:net'

/**
 * Address ranges as the configuration names them (`server.trusted_proxies`, `metrics.allow_from`, the access rules'
 * `networks`): one address or a CIDR, read one way for all three. Peers are judged as their IPv4 address when a
 * dual-stack listener reports them IPv4-mapped (`::ffff:10.0.0.5`), so an IPv4-mapped entry, address or CIDR
 * (`::ffff:10.0.0.0/104`), is the IPv4 range it maps: written as it is, it would match no peer, and the entry would
 * silently trust, allow or match no one. An IPv6 entry that is not written IPv4-mapped matches IPv6 peers only.
 */
export interface AddressRange {
  readonly address: ipaddr.IPv4 | ipaddr.IPv6
  readonly bits: number
}

/**
 * The range an entry names; undefined for anything else. The address is a dotted quad or an IPv6 address as
 * node:net reads them (not ipaddr's looser `10.1` or `0x0a.0.0.1`), the prefix 0 to 32 or 128 in decimal digits.
 */
export function parseAddressRange(entry: string): AddressRange | undefined {
  const [text = '', prefixText, extra] = entry.split('/')
  const version = isIPv4(text) ? 4 : isIPv6Text(text) ? 6 : 0
  if (!version || extra !== undefined) return undefined
  const max = version === 4 ? 32 : 128
  const bits = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN
  if (!(bits >= 0 && bits <= max)) return undefined
  const address = ipaddr.parse(text)
  if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() && bits >= 96) return { address: address.toIPv4Address(), bits: bits - 96 }
  return { address, bits }
}

const hexGroup = /^[0-9a-fA-F]{1,4}$/
const zoneId = /^[0-9a-zA-Z.:-]+$/

/**
 * Whether `text` is an IPv6 address as node:net's `isIPv6` reads it: eight groups of one to four hex digits, or fewer
 * with one `::` standing for at least one group, the last two groups perhaps a dotted quad, then perhaps a zone id
 * (`%` and letters, digits, `-`, `.` or `:`). The same answers without `isIPv6`'s one large regular expression, which
 * V8 compiles at its first call, twice: 9-12 ms of CPU at every start, for the default `metrics.allow_from`'s `::1/128`.
 * It says nothing of what the address means; ipaddr parses it next.
 */
export function isIPv6Text(text: string): boolean {
  const percent = text.indexOf('%')
  if (percent >= 0 && !zoneId.test(text.slice(percent + 1))) return false
  const address = percent >= 0 ? text.slice(0, percent) : text
  const gap = address.indexOf('::')
  if (gap < 0) return groupCount(address) === 8
  if (address.includes('::', gap + 1)) return false
  const before = address.slice(0, gap)
  const after = address.slice(gap + 2)
  const count = (before ? groupCount(before, false) : 0) + (after ? groupCount(after) : 0)
  return !Number.isNaN(count) && count <= 7
}

/** How many 16-bit groups `:`-separated `groups` hold, a last dotted quad (when `quadLast`) counting two; NaN if malformed. */
function groupCount(groups: string, quadLast = true): number {
  const parts = groups.split(':')
  const last = parts.length - 1
  for (let i = 0; i < last; i++) if (!hexGroup.test(parts[i]!)) return NaN
  if (hexGroup.test(parts[last]!)) return parts.length
  return quadLast && isIPv4(parts[last]!) ? parts.length + 1 : NaN
}

/** Whether an entry names an address range (for the configuration's checks). */
export function isAddressRange(entry: string): boolean {
  return parseAddressRange(entry) !== undefined
}

/**
 * Compiles entries, each already checked by `isAddressRange`, into a judge of peer addresses. An IPv4 peer, or an
 * IPv4-mapped one (judged as its IPv4 address), is matched only by the IPv4 entries, those written IPv4-mapped
 * included, never by an IPv6 range that happens to hold the mapped block `::ffff:0:0/96` (`::/0`, `::/1`): as nginx's
 * `allow`/`deny` and `set_real_ip_from` read them, so an IPv6-only list admits no IPv4 client. Anything that is not
 * an address is in no range. A dotted quad, alone or after `::ffff:` (as listeners report peers), is judged by its
 * value against the IPv4 ranges' bounds; any other text by node:net's BlockList, rather than ipaddr's parse and match,
 * which takes ten times as long (about 0.5 against 5 microseconds a judgment, measured side by side). One BlockList
 * per family, since one list would judge an IPv4 peer by its IPv6 entries too.
 */
export function compileAddressRanges(entries: readonly string[]): (address: string) => boolean {
  const ipv4Blocks = new BlockList()
  const ipv6Blocks = new BlockList()
  const ipv4Ranges: { readonly first: number; readonly last: number }[] = []
  for (const entry of entries) {
    const range = parseAddressRange(entry)
    if (!range) throw new TypeError(`not an address range: ${entry}`)
    const kind = range.address.kind()
    ;(kind === 'ipv4' ? ipv4Blocks : ipv6Blocks).addSubnet(range.address.toString(), range.bits, kind)
    if (kind === 'ipv4') {
      const size = 2 ** (32 - range.bits)
      const first = Math.floor(range.address.toByteArray().reduce((value, byte) => value * 256 + byte, 0) / size) * size
      ipv4Ranges.push({ first, last: first + size - 1 })
    }
  }
  return (address) => {
    // The peer as a listener reports it, a dotted quad (IPv4-mapped on a dual-stack socket), judged by its value.
    const ipv4 = ipv4Value(address, address.startsWith('::ffff:') ? 7 : 0)
    if (ipv4 >= 0) {
      for (const range of ipv4Ranges) if (ipv4 >= range.first && ipv4 <= range.last) return true
      return false
    }
    const version = isIP(address)
    if (version === 4) return ipv4Blocks.check(address, 'ipv4')
    if (version !== 6) return false
    try {
      // The IPv4 list reads a mapped peer as its IPv4 address itself.
      return isIPv4Mapped(address) ? ipv4Blocks.check(address, 'ipv6') : ipv6Blocks.check(address, 'ipv6')
    } catch {
      // An address node:net names but its BlockList refuses (an IPv6 zone, `fe80::1%eth0`): in no range.
      return false
    }
  }
}

/**
 * The value of a dotted quad in `text` from `start` to its end, as node:net's `isIPv4` reads one (four decimal parts of
 * at most 0-255, none with a leading zero); -1 for any other text, which is then judged as before. Access rules'
 * `networks` and trusted proxies judge an address at every request, and BlockList's `check` makes a SocketAddress of
 * the text each time: about 0.25 microseconds, where this takes a fiftieth of that.
 */
function ipv4Value(text: string, start: number): number {
  let value = 0
  let i = start
  for (let parts = 1; ; parts++) {
    const first = i
    let part = 0
    for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) part = part * 10 + c - 48
    const digits = i - first
    if (digits === 0 || part > 255 || (digits > 1 && text.charCodeAt(first) === 48)) return -1
    value = value * 256 + part
    if (parts === 4) return i === text.length ? value : -1
    if (text.charCodeAt(i++) !== 46) return -1
  }
}

/**
 * Whether IPv6 text is an IPv4-mapped address: at once for the form a dual-stack listener reports (`::ffff:10.0.0.5`),
 * parsed for any other spelling (`0:0:0:0:0:ffff:a00:5`); text without `ffff` cannot be one.
 */
function isIPv4Mapped(address: string): boolean {
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return true
  if (!/ffff/i.test(address)) return false
  const parsed = ipaddr.parse(address)
  return parsed instanceof ipaddr.IPv6 && parsed.isIPv4MappedAddress()
}
