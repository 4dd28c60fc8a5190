import { InvalidHost } from '../errors.ts'
import type { GatewayRequest } from './gateway-request.ts'

/**
 * `host[:port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a bracketed IPv6 literal, or a name of letters, digits, dots,
 * hyphens and underscores (DNS names, IPv4 addresses, and the underscores some internal names carry).
 */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?$/

/**
 * Refuses, for the whole gateway, a request whose Host is repeated, missing (HTTP/1.1) or not a host: nothing
 * downstream can then build a URL from it or choke on it (RFC 9112 §3.2: a server must answer 400 to more than one
 * Host field, and to an HTTP/1.1 request without one).
 * The host checked is the one the request is served for (Host, or X-Forwarded-Host from a trusted proxy).
 * Gatehouse never builds its own URLs from it; those come from `server.public_url`.
 */
export async function refuseBadHost(request: HostedRequest): Promise<void> {
  const problem = hostProblem(request)
  if (problem) throw problem
}

type HostedRequest = Pick<GatewayRequest, 'host'> & { readonly raw: { readonly rawHeaders: readonly string[]; readonly httpVersion: string } }

/** The refusal `refuseBadHost` throws, returned instead: for the proxy's lean path, which asks before it commits. */
export function hostProblem(request: HostedRequest): InvalidHost | undefined {
  const raw = request.raw.rawHeaders
  let hosts = 0
  let sent: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') {
      hosts++
      sent = raw[i + 1]
    }
  }
  if (hosts > 1) return new InvalidHost('The request has more than one Host header.')
  // RFC 9112 §3.2 (an absolute-form target does not excuse it, nor does nginx); HTTP/1.0 had no Host to send.
  if (hosts === 0 && request.raw.httpVersion !== '1.0') return new InvalidHost('An HTTP/1.1 request must have a Host header.')
  const host = request.host
  if (hosts === 0 && !host) return undefined
  // The Host field as sent is judged even where another host stands in for it (an absolute-form target's, or a
  // trusted proxy's X-Forwarded-Host), as nginx judges it: RFC 9112 §3.2 has a server refuse an invalid one.
  if (!isHost(host) || (sent !== undefined && sent !== host && !isHost(sent))) return new InvalidHost()
  return undefined
}

/** Whether a value is `host[:port]`, a port within range. */
export function isHost(value: string): boolean {
  const match = HOST.exec(value)
  return match !== null && Number(match[1] ?? 0) <= 65535 && URL.canParse(`http://${value}/`)
}
