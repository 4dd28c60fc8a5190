import type { IncomingMessage } from 'node:http'
import { MalformedEscape, UnsafePath } from '../errors.ts'

// Percent-encoded slash, backslash or NUL; a literal backslash; a `.`/`..` segment, literal or encoded; a segment's
// parameters (`;`, literal or encoded); or a fragment (`#`). Servlet containers drop a segment's parameters before they
// route (`/svc/admin;x/` is `/svc/admin/` there, and `..;x` a dot segment), as Spring Security's firewall knows in
// refusing them; and a server that parses a `#` takes what follows for a fragment, not for the path the rules judged.
// Anything encoded again is refused too (`escapesEncodedAgain`).
const UNSAFE = /%(2f|5c|00|3b)|[\\;#]|(^|\/)(\.|%2e){1,2}(\/|$)/i
/** An escape: what a `%25` must not become once the path is decoded. */
const ESCAPE = /%[0-9a-f]{2}/i
const ANY_ESCAPE = /%([0-9a-f]{2})/gi

/**
 * Whether decoding the path once leaves an escape: `%25` before two hex digits (`%252e`, `%2561` for `%61`, an `a`), or
 * before digits that are escaped themselves (`%25%36%31`, `%256%31`). A service or framework that decodes once more
 * than it should would otherwise see a separator, a dot segment or a letter Gatehouse never did: `/svc/%2561dmin` is
 * `/svc/admin` there, past a rule the gateway judged on `/svc/%61dmin` (Spring Security's firewall refuses every
 * `%25`; one that escapes no escape, `100%25/`, is kept). Decoded byte by byte (latin1): whether the result is UTF-8
 * does not matter here, only where a `%` lands.
 */
function escapesEncodedAgain(path: string): boolean {
  return path.includes('%25') && ESCAPE.test(path.replace(ANY_ESCAPE, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))))
}

/**
 * Refuses request targets that could reach another service or escape a prefix once some server along the
 * way decodes or normalises them. They are refused rather than normalised, so what Gatehouse routed is
 * byte for byte what the upstream receives.
 */
export function assertSafePath(path: string): void {
  if (!path.startsWith('/') || UNSAFE.test(path) || escapesEncodedAgain(path)) {
    throw new UnsafePath()
  }
}

/**
 * Refuses a request target (path and query) with a percent sign that does not start an escape (`%ZZ`), or escapes
 * that are not UTF-8 (`%FF`, overlong `%C0%AE`): URL parsers disagree on what such a target means, and the proxy's
 * URL handling cannot take it (RFC 3986 §2.1).
 */
export function assertWellFormedEscapes(target: string): void {
  if (!wellFormedEscapes(target)) throw new MalformedEscape()
}

/** Whether every `%` in the text starts an escape, and the escapes are UTF-8 (forms are checked so too). */
export function wellFormedEscapes(text: string): boolean {
  if (!text.includes('%')) return true
  try {
    decodeURIComponent(text)
    return true
  } catch {
    return false
  }
}

/** `http://authority/path?query`, the scheme in any case; nothing of the path is read here. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]+)(.*)$/i

/**
 * An absolute-form target (`GET http://host/path HTTP/1.1`) as its origin form and the authority it names, or
 * undefined for any other form. RFC 9112 §3.2.2 has a server accept it and take its host instead of Host's, as
 * nginx does (`$host` is then the target's). The path and query are kept byte for byte (an empty path is `/`), so
 * the checks below judge them as they would judge the origin form; another scheme, or no authority, is left as it
 * is and refused as an unsafe path.
 */
export function originForm(target: string): { readonly target: string; readonly authority: string } | undefined {
  const match = ABSOLUTE_FORM.exec(target)
  if (!match) return undefined
  const rest = match[2]!
  return { target: rest.startsWith('/') ? rest : `/${rest}`, authority: match[1]! }
}

/**
 * Node's request made into the one every part of the gateway reads: an absolute-form target made origin-form, its
 * authority in place of the Host header's value (which src/http/host-header.ts still judges, as it judges the
 * authority), then the path's slashes merged. Before anything else sees the request, on every door (the lean
 * lanes, Fastify's router, WebSocket upgrades).
 */
export function normaliseTarget(request: IncomingMessage): void {
  const sent = request.url!
  const absolute = originForm(sent)
  if (absolute) {
    request.url = absolute.target
    request.headers.host = absolute.authority
  }
  request.url = mergeSlashes(request.url!)
  if (request.url !== sent) (request as { [TARGET_AS_SENT]?: string })[TARGET_AS_SENT] = sent
}

const TARGET_AS_SENT = Symbol('the request target as sent')

/**
 * The request target as the client sent it, where `normaliseTarget` changed it (undefined where it did not): for the
 * few paths answered only as written.
 */
export function targetAsSent(request: object): string | undefined {
  return (request as { [TARGET_AS_SENT]?: string })[TARGET_AS_SENT]
}

/**
 * The request target with each run of slashes in its path merged into one (`/svc//admin/` → `/svc/admin/`), the query
 * as sent. Many servers and frameworks behind a gateway merge them too (nginx's `merge_slashes`, Django's and most
 * routers' path handling), so a path with empty segments would act there as a path the rules never judged: a rule on
 * `/svc/admin/` must govern `/svc//admin/` and `//svc/admin/`. Merged before anything reads the target, the route,
 * the rules, the log and the service all see one path (as Envoy's `merge_slashes` does). Only origin-form targets
 * are touched; any other form is refused later as an unsafe path.
 */
export function mergeSlashes(target: string): string {
  const doubled = target.indexOf('//')
  if (doubled === -1 || !target.startsWith('/')) return target
  const q = target.indexOf('?')
  if (q !== -1 && doubled > q) return target
  return q === -1 ? target.replace(/\/{2,}/g, '/') : target.slice(0, q).replace(/\/{2,}/g, '/') + target.slice(q)
}

/**
 * A path as a service reads it, its percent escapes decoded (`/svc/%61dmin/` is `/svc/admin/` to nearly every
 * server): what the router matches, and what rules naming paths judge, so an escape cannot step around them. The
 * escapes that would change the path's shape (`%2F`, `%5C`, `%00`, `%3B`, dot segments) are refused before this.
 */
export function decodedPath(path: string): string {
  if (!path.includes('%')) return path
  try {
    return decodeURIComponent(path)
  } catch {
    throw new MalformedEscape()
  }
}

export function splitTarget(url: string): { path: string; query: string } {
  const q = url.indexOf('?')
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q) }
}
