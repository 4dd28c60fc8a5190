import type { FastifyRequest } from 'fastify'
import { InvalidHost } from '../errors.ts'

/**
 * `host[:port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a bracketed IPv6 literal, or a name of letters, digits, dots,
 * hyphens and underscores (DNS names, IPv4 addresses, and the underscores some internal names carry).
 */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?$/

/**
 * Refuses, for the whole gateway, a request whose Host is repeated or not a host: nothing downstream can then
 * build a URL from it or choke on it (RFC 9112 §3.2: a server must answer 400 to more than one Host field).
 * The host checked is the one the request is served for (Host, or X-Forwarded-Host from a trusted proxy).
 * Gatehouse never builds its own URLs from it; those come from `server.public_url`.
 */
export async function refuseBadHost(request: FastifyRequest): Promise<void> {
  const raw = request.raw.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') hosts++
  if (hosts > 1) throw new InvalidHost('The request has more than one Host header.')
  const host = request.host
  if (hosts === 0 && !host) return
  const match = host ? HOST.exec(host) : null
  if (!match || Number(match[1] ?? 0) > 65535 || !URL.canParse(`http://${host}/`)) {
    throw new InvalidHost()
  }
}
