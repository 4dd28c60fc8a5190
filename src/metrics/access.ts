import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { z } from 'zod'
import type { ProxyTrust } from '../gateway/trusted-proxies.ts'
import { compileAddressRanges } from '../http/address-ranges.ts'
import type { MetricsSchema } from '../config/operations.ts'
import { readAtMost } from '../config/read-at-most.ts'
import { NotAuthenticated, PermissionDenied } from '../errors.ts'

type MetricsOptions = z.output<typeof MetricsSchema>

/** Thrown at start when the bearer token file cannot be used: serve stops with the reason. */
export class MetricsTokenUnusable extends Error {}

/**
 * Who may scrape /metrics: a client whose address is in `allow_from`, and, when a token file is configured, that
 * sends the token as a bearer credential (compared in constant time). Decided once per scrape, from what was
 * compiled at start. Refusals are 403 (address) and 401 (token), never the metrics.
 *
 * A scrape that names a client of its own (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`) other than the one whose
 * address is judged came through a proxy: the address judged is then the proxy's, often this machine's own, which
 * would let every client of that proxy scrape. It is refused (`untrustedForward`, `namesUnjudgedClient`).
 */
export function metricsAccess(options: MetricsOptions): (address: string | undefined, authorization: string | undefined, untrustedForward?: boolean) => void {
  const allowed = compileAddressRanges(options.allow_from)
  const expected = options.bearer_token_file === undefined ? undefined : digest(readToken(options.bearer_token_file))
  return (address, authorization, untrustedForward = false) => {
    if (untrustedForward) throw new PermissionDenied('Metrics are served through a proxy only to the client that a proxy in server.trusted_proxies names in X-Forwarded-For, on the main port.')
    if (!address || !allowed(address)) throw new PermissionDenied('Metrics are not served to this address (metrics.allow_from).')
    if (expected === undefined) return
    const match = /^Bearer ([^\s]+)$/i.exec(authorization ?? '')
    if (!match || !timingSafeEqual(digest(match[1]!), expected)) {
      throw new NotAuthenticated('Send the metrics bearer token: Authorization: Bearer <token>.', ['Bearer realm="metrics"'])
    }
  }
}

/** Far more than any bearer token (a Kubernetes service account's is 1-2 kB). */
const MAX_TOKEN_FILE_BYTES = 64 * 1024

function readToken(file: string): string {
  let token: string | undefined
  try {
    token = readAtMost(file, MAX_TOKEN_FILE_BYTES)?.trim()
  } catch (error) {
    throw new MetricsTokenUnusable(`metrics.bearer_token_file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`)
  }
  if (token === undefined) throw new MetricsTokenUnusable(`metrics.bearer_token_file ${file}: the token file is larger than ${MAX_TOKEN_FILE_BYTES / 1024} KiB`)
  if (token.length < 16 || /\s/.test(token)) throw new MetricsTokenUnusable(`metrics.bearer_token_file ${file}: the token must be one word of at least 16 characters`)
  return token
}

/** The fields a proxy names its client in. */
const CLIENT_FIELDS = ['x-forwarded-for', 'forwarded', 'x-real-ip'] as const

/**
 * Whether a request names a client of its own that the address judged is not: its peer (`peer`) is not a proxy
 * Gatehouse trusts, or the listener judges the peer's own address (`readsForwardedFor` false: the metrics port), or
 * the trusted proxy named its client only in `Forwarded` or `X-Real-IP`, which the gateway does not read for the
 * client's address (src/gateway/trusted-proxies.ts), so that the address judged is still the proxy's own.
 */
export function namesUnjudgedClient(headers: IncomingHttpHeaders, peer: string | undefined, trustsProxy: ProxyTrust, readsForwardedFor: boolean): boolean {
  if (!CLIENT_FIELDS.some((name) => headers[name] !== undefined)) return false
  return !readsForwardedFor || !trustsProxy(peer) || headers['x-forwarded-for'] === undefined
}

/** Hashing both sides first makes the comparison constant-time whatever the lengths. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}
