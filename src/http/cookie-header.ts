/**
 * Reads a Cookie header (RFC 6265 §5.4) into its values by name, once per request, for both request paths (Fastify's
 * and the lean one). A name sent twice is read as Django's parse_cookie reads it for the names in `lastWins`: the
 * last value counts. That matters for the gateway's own credentials: browsers send the cookie with the longer Path
 * first, so a `gateway_sessionid` planted by a sibling subdomain with `Domain=.example.com; Path=/api/` comes before
 * the host's own `Path=/` one, and reading the first would sign the browser in as the planter (login CSRF). Every
 * other name keeps the first value, as the `cookie` package (@fastify/cookie's parser) has it and oidc-provider reads
 * its own cookies. Otherwise the same as that package: spaces and tabs around names and values dropped, a pair
 * without `=` skipped, percent-escapes decoded where they are valid.
 */
export function cookieParser(lastWins: ReadonlySet<string>): (header: string) => Record<string, string> {
  return (header) => {
    const cookies: Record<string, string> = new Cookies()
    const length = header.length
    // The shortest pair is a name of one character and `=`.
    if (length < 2) return cookies
    for (let start = 0; start < length;) {
      let end = header.indexOf(';', start)
      if (end === -1) end = length
      const equals = header.indexOf('=', start)
      if (equals === -1) break
      if (equals < end) {
        const name = trimmed(header, start, equals)
        if (cookies[name] === undefined || lastWins.has(name)) cookies[name] = decode(trimmed(header, equals + 1, end))
      }
      start = end + 1
    }
    return cookies
  }
}

/** An object without a prototype (so a cookie named `__proto__` or `toString` is a cookie like any other), made fast. */
const Cookies = function () {} as unknown as new () => Record<string, string>
Cookies.prototype = Object.create(null)

/** header[start, end) without the spaces and tabs around it. */
function trimmed(header: string, start: number, end: number): string {
  while (start < end && (header.charCodeAt(start) === 32 || header.charCodeAt(start) === 9)) start++
  while (end > start && (header.charCodeAt(end - 1) === 32 || header.charCodeAt(end - 1) === 9)) end--
  return header.slice(start, end)
}

function decode(value: string): string {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}
