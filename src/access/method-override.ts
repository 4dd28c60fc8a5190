import type { IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import { AccessDenied, MethodOverrideUnread, type GatehouseError } from '../errors.ts'

/**
 * The method a POST names in a parameter, which web frameworks take for the request's own: Rails (Rack's
 * MethodOverride) reads `_method` from a form body, Symfony and Laravel from a form body or the query, and Laravel
 * from a JSON body too. A service built on one receives a POST its access rules let in, and acts on it as the DELETE
 * they refuse. So a service whose rules name methods judges such a POST as each method it names as well, and one it
 * cannot read with certainty (a spelling some framework may read as the parameter, a body not read whole) as every
 * method a framework would take from it. The override fields (`X-HTTP-Method-Override`) are never forwarded at all
 * (src/gateway/upstream-headers.ts); a parameter cannot be taken out of a body.
 */

/** The methods a body that was not read may name: those frameworks take besides the rules' own. */
const UNREAD_BODY_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

/** What judges the methods a body names, once it is read (proxy.ts, lean-proxy.ts, forward-auth.ts). */
export interface PendingOverride {
  /** The parameter's name, `_method` unless the service names another. */
  readonly parameter: string
  /** Whether JSON bodies are read for it too (`method_override_json`: Laravel's). */
  readonly json: boolean
  /** Those to judge when the body could not be read whole: every method a framework would take, and the rules' own. */
  readonly unreadMethods: readonly string[]
  /** The refusal for `method`, or undefined when the rules let it in as well. */
  judge(method: string): GatehouseError | undefined
}

/**
 * The refusal of a POST whose body names a method the rules refuse (as `judge` words it), or that could not be read
 * while the rules refuse one of the methods it could name: `body` as it is forwarded, or `unseen` where the gateway
 * never gets it (forward authentication, whose proxy sends no body: `headers` are the question's, with the
 * original's media type). Undefined when it may go on.
 */
export function bodyOverrideRefusal(pending: PendingOverride | undefined, headers: IncomingHttpHeaders, body: Buffer | Readable | null | 'unseen'): GatehouseError | undefined {
  if (!pending) return undefined
  if (body === 'unseen' && !mayCarryOverride(headers, pending.json)) return undefined
  // Judged as it streams on (`bodyScan`).
  if (body instanceof Readable && scannedWhenStreamed(pending, headers)) return undefined
  const named = body === 'unseen' ? undefined : namedInBody(headers, body, pending.parameter, pending.json)
  if (named) return firstRefusal(pending, named)
  const refused = firstRefused(pending)
  if (refused === undefined) return undefined
  const may = `may name another method in ${pending.parameter}, which the service takes for its own, and the access rules refuse ${refused}`
  if (body === 'unseen') return new AccessDenied(`The request's body, which forward authentication does not see, ${may}.`)
  if (Buffer.isBuffer(body)) return new AccessDenied(`The request's body cannot be read as every framework reads it (${pending.parameter} spelled otherwise, a value that is no method name, a multipart body whose parts frameworks could split otherwise, a coded body), so it ${may}.`)
  return new MethodOverrideUnread(`The request's body, larger than the gateway reads for the method it may name (${OVERRIDE_READ_BYTES / 1024 / 1024} MiB, or services[].pool.body_buffer_kb when larger), ${may}.`)
}

/** The refusal of a POST whose query names a method the rules refuse, or names the parameter in a spelling `nameOf` leaves unsettled. */
export function queryOverrideRefusal(pending: PendingOverride, query: string): GatehouseError | undefined {
  const named = namedInForm(query, pending.parameter)
  if (named) return firstRefusal(pending, named)
  const refused = firstRefused(pending)
  return refused === undefined ? undefined : new AccessDenied(`The request's query names ${pending.parameter} in a spelling some framework may read as it, or with a value that is no method name, so it may name another method, which the service takes for its own, and the access rules refuse ${refused}.`)
}

/** The rules' refusal of the first of the methods named that they refuse. */
function firstRefusal(pending: PendingOverride, named: readonly string[]): GatehouseError | undefined {
  for (const method of named) {
    const refusal = pending.judge(method)
    if (refusal) return refusal
  }
  return undefined
}

/** The first method a request naming one that cannot be read may name, that the rules refuse. */
function firstRefused(pending: PendingOverride): string | undefined {
  return pending.unreadMethods.find((method) => pending.judge(method) !== undefined)
}

/** How much of a body that may name a method is read before it is forwarded, at least (`pool.body_buffer_kb` when larger). */
export const OVERRIDE_READ_BYTES = 1024 * 1024

/** Thrown by a streamed body's scan (`bodyScan`): the proxies answer its `refusal` (lean-proxy.ts `failureAnswer`). */
export class MethodMayBeNamed extends Error {
  readonly refusal: GatehouseError

  constructor(refusal: GatehouseError) {
    super(refusal.message)
    this.refusal = refusal
  }
}

/**
 * A form body larger than is read whole (an upload) is streamed on to the service, and its bytes are looked at as they
 * pass: the check each chunk goes through (it throws `MethodMayBeNamed`), or undefined where none is needed (the rules
 * refuse none of the methods it could name) or it could not tell (a coded body; JSON, whose escapes hide letters), and
 * the body is refused unread (`bodyOverrideRefusal`). A name any framework may read as the parameter holds its letters
 * and digits in order, whatever else is between them (`nameOf`), and a form's percent-escapes are undone first: bytes
 * that never hold them, in any letter case, name no method, as an image or an archive seldom does. Bytes that do are
 * refused (413 `method_override_unread`); the request's last chunk is held back until all of it has passed (request-
 * buffer.ts `followedByRest`), so the service never receives such a request whole, and acts on none of it.
 */
export function bodyScan(pending: PendingOverride | undefined, headers: IncomingHttpHeaders): ((chunk: Buffer) => void) | undefined {
  if (!pending || !scannedWhenStreamed(pending, headers)) return undefined
  const refused = firstRefused(pending)
  if (refused === undefined) return undefined
  const letters = lettersAndDigits(pending.parameter)
  // The last letters and digits seen, fewer than the parameter has, and an escape the chunk's end cut.
  let tail = ''
  let escape = ''
  return (chunk) => {
    const text = escape + chunk.toString('latin1')
    const cut = /%[0-9A-Fa-f]?$/.exec(text)
    escape = cut?.[0] ?? ''
    const seen = tail + lettersAndDigits(percentDecoded(cut ? text.slice(0, cut.index) : text))
    // The cut escape is looked at as written too, in case no hex digit completes it.
    if ((seen + lettersAndDigits(escape)).includes(letters)) {
      throw new MethodMayBeNamed(new MethodOverrideUnread(`The request's body, larger than the gateway reads whole for the method it may name (${OVERRIDE_READ_BYTES / 1024 / 1024} MiB, or services[].pool.body_buffer_kb when larger), holds the letters of ${pending.parameter}, so it may name another method, which the service takes for its own, and the access rules refuse ${refused}.`))
    }
    tail = seen.slice(seen.length - (letters.length - 1))
  }
}

/** Whether a body streamed on before all of it was read is judged by `bodyScan`, rather than refused unread. */
function scannedWhenStreamed(pending: PendingOverride, headers: IncomingHttpHeaders): boolean {
  const kinds = kindsOf(headers['content-type'])
  const coding = headers['content-encoding']?.trim().toLowerCase()
  return (kinds.form || kinds.multipart) && !(pending.json && kinds.json) && (!coding || coding === 'identity') && lettersAndDigits(pending.parameter) !== ''
}

function percentDecoded(text: string): string {
  return text.includes('%') ? text.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))) : text
}

/** The methods to judge for a body that was not read whole. */
export function unreadBodyMethods(namedByRules: Iterable<string>): readonly string[] {
  return [...new Set([...UNREAD_BODY_METHODS, ...namedByRules])]
}

/** What a media type makes of a body, for the frameworks that read a method in it. */
interface BodyKinds {
  /** urlencoded, or no media type, which Rack reads as urlencoded too. */
  form: boolean
  /** Any `multipart/*`: Rack parses each as form data. */
  multipart: boolean
  /** `/json` or `+json` anywhere in the field, as Laravel's `isJson` finds it. */
  json: boolean
}

/**
 * The media type as the frameworks cut it: Rack at `;` or `,` (and spaces around them), PHP at `;`, `,` or a space,
 * both in any letter case. So `application/x-www-form-urlencoded,text/plain` and `... x` are forms.
 */
function kindsOf(contentType: string | undefined): BodyKinds {
  const field = contentType ?? ''
  const type = field.trim().split(/[;,\s]/, 1)[0]!.toLowerCase()
  return { form: type === '' || type === 'application/x-www-form-urlencoded', multipart: type.startsWith('multipart/'), json: /\/json|\+json/i.test(field) }
}

/** Whether a request's body may name a method, to be judged once it is read. */
export function mayName(contentType: string | undefined, json: boolean): boolean {
  const kinds = kindsOf(contentType)
  return kinds.form || kinds.multipart || (json && kinds.json)
}

/**
 * Whether the original request a forward-auth question describes may carry a body naming a method, which the
 * question never carries: a form, multipart (or with `method_override_json`, JSON) media type; or none, with a length
 * or a transfer coding saying there is a body (a POST with neither has none, and is what `curl -X POST` sends). The
 * question's own fields say so where the proxy keeps them (Envoy); nginx and Caddy ask without them, and send the
 * original's in `X-Original-Content-Length`, `X-Original-Transfer-Encoding` and `X-Original-Protocol` as
 * docs/forward-auth.md configures them. A value there that is no plain 0 counts as a body: a client's own, which an
 * older configuration passes on, can only add to what is judged.
 */
export function mayCarryOverride(headers: IncomingHttpHeaders, json: boolean): boolean {
  if (headers['content-type']?.trim()) return mayName(headers['content-type'], json)
  return Number(headers['content-length'] ?? 0) > 0 || headers['transfer-encoding'] !== undefined ||
    saysBody(headers['x-original-content-length'], headers['x-original-transfer-encoding'], headers['x-original-protocol'])
}

/**
 * Whether the length, transfer coding and protocol a proxy passes on (empty where the original had none) say there
 * may be a body. HTTP/2 and HTTP/3 carry a body in frames, with neither a length nor a coding: a POST over them
 * without a length may have one. A proxy that passes the length and not the coding (Caddy: Go's server takes
 * Transfer-Encoding away from the request) cannot tell a chunked body from none: without a length, there may be one.
 */
function saysBody(length: string | string[] | undefined, coding: string | string[] | undefined, protocol: string | string[] | undefined): boolean {
  const given = (field: string | string[] | undefined) => [field ?? ''].flat().join(',').trim()
  if (given(length) !== '') return !/^0+$/.test(given(length))
  return given(coding) !== '' || (length !== undefined && coding === undefined) || /^HTTP\/[23]/i.test(given(protocol))
}

/**
 * The methods a POST's body names: every one any framework reading it would find, since they differ in which they
 * take; an empty list when it names none, undefined when it cannot be told (a body streamed on before all of it
 * arrived, one coded (gzip, which a server in front of the service may undo), or one naming the parameter in a way
 * these readings do not settle, below).
 */
export function namedInBody(headers: IncomingHttpHeaders, body: Buffer | Readable | null, parameter: string, json: boolean): string[] | undefined {
  const kinds = kindsOf(headers['content-type'])
  if (!kinds.form && !kinds.multipart && !(json && kinds.json)) return []
  if (body === null) return []
  const coding = headers['content-encoding']?.trim().toLowerCase()
  if (!Buffer.isBuffer(body) || (coding && coding !== 'identity')) return undefined
  const named: string[] = []
  const text = body.toString('latin1')
  // A multipart body is read as a form too: Rack reads one whose boundary it cannot use as urlencoded.
  if (kinds.form || kinds.multipart) {
    const inForm = namedInForm(text, parameter)
    if (!inForm) return undefined
    named.push(...inForm)
  }
  if (kinds.multipart) {
    const parts = namedInMultipart(text, headers['content-type']!, parameter)
    if (!parts) return undefined
    named.push(...parts)
  }
  if (json && kinds.json) {
    const inJson = namedInJson(body, parameter)
    if (!inJson) return undefined
    named.push(...inJson)
  }
  return named
}

/**
 * The frameworks read a parameter's name each their own way (PHP makes `.method` and ` method` its `_method` and cuts a
 * name at NUL; Rack 2 drops brackets around one, `[_method]`, and undoes backslash escapes in a multipart part's), and
 * more ways than these may come. So a name is the parameter only as written; one that is the parameter but for
 * characters other than letters and digits (in any letter case) is a spelling some framework may read as it, and
 * leaves the request unreadable, as does a value that is not a plain method name: such requests are judged as every
 * method. An ordinary form never names a field so (`payment_method` and `method` are other names: no framework drops
 * letters, nor reads a name without its `_` as one with it).
 */
function nameOf(name: string, parameter: string): 'parameter' | 'spelling' | undefined {
  if (name === parameter || !/[^A-Za-z0-9]/.test(name)) return name === parameter ? 'parameter' : undefined
  const spelled = lettersAndDigits(parameter)
  return lettersAndDigits(name) === spelled || lettersAndDigits(name.split('\0', 1)[0]!) === spelled ? 'spelling' : undefined
}

function lettersAndDigits(name: string): string {
  return name.replace(/[^A-Za-z0-9]/g, '').toLowerCase()
}

/** The method a framework makes of the value: undefined for one that is no plain method name (` DELETE`, `DELETE\r\n--x`). */
function asMethod(value: string): string | undefined {
  return /^[A-Za-z]{1,20}$/.test(value) ? value.toUpperCase() : undefined
}

/**
 * The methods `parameter` names in a query (with its `?`) or an urlencoded body: every occurrence; undefined when a
 * name spells it otherwise or a value is no method name (`nameOf`). Pairs are split at `;` as well as `&`, as Rack
 * splits a query, and names are read decoded (`%5Fmethod`).
 */
function namedInForm(text: string, parameter: string): string[] | undefined {
  const methods: string[] = []
  for (const pair of text.replace(/^\?/, '').split(/[&;]/)) {
    const eq = pair.indexOf('=')
    const name = nameOf(formDecoded(eq < 0 ? pair : pair.slice(0, eq)), parameter)
    if (name === undefined) continue
    const method = name === 'parameter' ? asMethod(formDecoded(eq < 0 ? '' : pair.slice(eq + 1))) : undefined
    if (method === undefined) return undefined
    methods.push(method)
  }
  return methods
}

/** The top-level `parameter` of a JSON object body, as Laravel reads its input from one; undefined as `namedInForm`. */
function namedInJson(body: Buffer, parameter: string): string[] | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    return []
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return []
  const methods: string[] = []
  for (const [key, value] of Object.entries(parsed)) {
    const name = nameOf(key, parameter)
    if (name === undefined) continue
    // A value that is no string is no method to any framework (Symfony ignores it).
    if (name === 'parameter' && typeof value !== 'string') continue
    const method = name === 'parameter' ? asMethod(value as string) : undefined
    if (method === undefined) return undefined
    methods.push(method)
  }
  return methods
}

/**
 * The values of the multipart body's parts named `parameter`; undefined when the body cannot be read with certainty:
 * frameworks find the boundary in the field differently (PHP and Rack take the first `boundary` anywhere in it, even
 * in `xboundary`), and split and quote parts differently, so every `name` given anywhere in the body that is the
 * parameter in some spelling must be a part read here, under the one boundary the field can name.
 */
function namedInMultipart(text: string, contentType: string, parameter: string): string[] | undefined {
  const mentions = [...text.matchAll(/\bname\s*\*?=\s*(?:"((?:[^"\\\r\n]|\\.)*)"|'([^'\r\n]*)'|([^;\s"']+))/gi)]
    .filter((match) => nameOf((match[1] ?? match[2] ?? match[3]!).replace(/\\(.)/g, '$1'), parameter) !== undefined).length
  if (mentions === 0) return []
  const boundary = boundaryOf(contentType)
  if (boundary === undefined) return undefined
  const methods: string[] = []
  for (const part of text.split(`--${boundary}`).slice(1)) {
    const headEnd = part.indexOf('\r\n\r\n')
    if (headEnd < 0) continue
    const disposition = /^content-disposition:([^\r\n]*)/im.exec(part.slice(0, headEnd))?.[1]
    const name = disposition && /(?:^|;)\s*name="([^"\\\r\n]*)"/i.exec(disposition)
    if (!name || name[1] !== parameter) continue
    const method = asMethod(part.slice(headEnd + 4).replace(/\r\n$/, ''))
    if (method === undefined) return undefined
    methods.push(method)
  }
  return methods.length === mentions ? methods : undefined
}

/**
 * The multipart boundary the field names, where PHP (the value after the first `boundary` anywhere in it, `xboundary`
 * too, and its `=`), Rack 2 (after the first `boundary=`) and a reading by its parameters all find the same one;
 * undefined otherwise.
 */
function boundaryOf(contentType: string): string | undefined {
  const byParameter = /;\s*boundary=(?:"([^"\\\s]+)"|([^;,\s"]+))\s*(?:[;,]|$)/i.exec(contentType)
  const first = contentType.toLowerCase().indexOf('boundary')
  const afterEquals = contentType.slice(contentType.indexOf('=', first) + 1).trim()
  const byPhp = first < 0 ? undefined : /^(?:"([^"]*)"|([^;,\s]*))/.exec(afterEquals)
  const byRack = /^multipart\/.*?boundary="?([^";,]+)"?/i.exec(contentType.trim())
  const found = byParameter?.[1] ?? byParameter?.[2]
  return found !== undefined && (byPhp?.[1] ?? byPhp?.[2]) === found && byRack?.[1] === found ? found : undefined
}

/** A form's percent-encoding undone where it is well formed (`+` is a space); a malformed escape stays as written. */
function formDecoded(text: string): string {
  const spaced = text.replaceAll('+', ' ')
  if (!spaced.includes('%')) return spaced
  try {
    return decodeURIComponent(spaced)
  } catch {
    return spaced.replace(/%[0-9a-fA-F]{2}/g, (escape) => String.fromCharCode(parseInt(escape.slice(1), 16)))
  }
}
