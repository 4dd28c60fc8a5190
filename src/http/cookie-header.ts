/**
 * Reads a Cookie header (RFC 6265 §5.4) into its values by name, once per request, for both request paths (Fastify's
 * and the lean one). A name sent twice is read as Django's parse_cookie reads it for the names in `lastWins`: the
 * last value counts. That matters for the gateway's own credentials: browsers send the cookie with the longer Path
 * first, so a `gateway_sessionid` planted by a sibling subdomain with `Domain=.example.com; Path=/api/` comes before
 * the host's own `Path=/` one, and reading the first would sign the browser in as the planter (login CSRF). Every
 * other name keeps the first value, as the `cookie` package (@fastify/cookie's parser) has it and oidc-provider reads
 * its own cookies. Otherwise the same as that package: whitespace around names and values dropped, a pair without
 * `=` skipped, percent-escapes decoded where they are valid.
 */
export function cookieParser(lastWins: ReadonlySet<string>): (header: string) => Record<string, string> {
  return (header) => {
    const cookies: Record<string, string> = Object.create(null)
    const length = header.length
    for (let start = 0; start < length;) {
      let end = header.indexOf(';', start)
      if (end === -1) end = length
      const equals = header.indexOf('=', start)
      if (equals === -1) break
      if (equals < end) {
        const name = header.slice(start, equals).trim()
        if (cookies[name] === undefined || lastWins.has(name)) cookies[name] = decode(header.slice(equals + 1, end).trim())
      }
      start = end + 1
    }
    return cookies
  }
}

function decode(value: string): string {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
