import type { IncomingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import { AccessDenied, MethodOverrideUnread, type GatehouseError } from '../errors.ts'

/**
 * The method a POST names in a parameter, which web frameworks take for the request's own: Rails (Rack's
 * MethodOverride) reads `_method` from a form body, Symfony and Laravel from a form body or the query, and Laravel
 * from a JSON body too. A service built on one receives a POST its access rules let in, and acts on it as the DELETE
 * they refuse. So a service whose rules name methods judges such a POST as each method it names as well, read the way
 * the most lenient of those frameworks reads it, and a body it cannot read whole as every method a framework would
 * take from one. The override fields (`X-HTTP-Method-Override`) are never forwarded at all
 * (src/gateway/upstream-headers.ts); a parameter cannot be taken out of a body.
 */

/** The methods a body that was not read may name: those frameworks take besides the rules' own. */
const UNREAD_BODY_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

/** What judges the methods a form body names, once its body is read (proxy.ts, lean-proxy.ts, forward-auth.ts). */
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
  const named = body === 'unseen' ? undefined : namedInBody(headers, body, pending.parameter, pending.json)
  if (named) {
    for (const method of named) {
      const refusal = pending.judge(method)
      if (refusal) return refusal
    }
    return undefined
  }
  const refused = pending.unreadMethods.find((method) => pending.judge(method) !== undefined)
  if (refused === undefined) return undefined
  const may = `may name another method in ${pending.parameter}, which the service takes for its own, and the access rules refuse ${refused}`
  if (body === 'unseen') return new AccessDenied(`The request's body, which forward authentication does not see, ${may}.`)
  if (Buffer.isBuffer(body)) return new AccessDenied(`The request's body cannot be read as every framework reads it (a multipart body mentioning ${pending.parameter} elsewhere than as a field's name, a coded body), so it ${may}.`)
  return new MethodOverrideUnread(`The request's body, larger than the gateway reads for the method it may name (${OVERRIDE_READ_BYTES / 1024 / 1024} MiB, or services[].pool.body_buffer_kb when larger), ${may}.`)
}

/** How much of a body that may name a method is read before it is forwarded, at least (`pool.body_buffer_kb` when larger). */
export const OVERRIDE_READ_BYTES = 1024 * 1024

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
 * or a transfer coding in the question's fields saying there is a body (a POST with neither has none, and is what
 * `curl -X POST` sends).
 */
export function mayCarryOverride(headers: IncomingHttpHeaders, json: boolean): boolean {
  if (headers['content-type']?.trim()) return mayName(headers['content-type'], json)
  return Number(headers['content-length'] ?? 0) > 0 || headers['transfer-encoding'] !== undefined
}

/**
 * The methods a POST's body names: every one any framework reading it would find, since they differ in which they
 * take; an empty list when it names none, undefined when it cannot be told (a body streamed on before all of it
 * arrived, one coded (gzip, which a server in front of the service may undo), or a multipart body whose parts
 * cannot be told apart with certainty).
 */
export function namedInBody(headers: IncomingHttpHeaders, body: Buffer | Readable | null, parameter: string, json: boolean): string[] | undefined {
  const kinds = kindsOf(headers['content-type'])
  if (!kinds.form && !kinds.multipart && !(json && kinds.json)) return []
  if (body === null) return []
  const coding = headers['content-encoding']?.trim().toLowerCase()
  if (!Buffer.isBuffer(body) || (coding && coding !== 'identity')) return undefined
  const named: string[] = []
  const text = body.toString('latin1')
  if (kinds.form) named.push(...namedInForm(text, parameter))
  if (kinds.multipart) {
    const parts = namedInMultipart(text, headers['content-type']!, parameter)
    if (!parts) return undefined
    named.push(...parts)
  }
  if (json && kinds.json) named.push(...namedInJson(body, parameter))
  return named
}

/**
 * The methods `parameter` names in a query (with its `?`) or an urlencoded body: every occurrence. Pairs are split
 * at `;` as well as `&`, as Rack splits a query; a key matches once decoded (`%5Fmethod`) and read as PHP reads a
 * name (`.method`, ` method`, `_method%00x` are its `_method`).
 */
export function namedInForm(text: string, parameter: string): string[] {
  const methods: string[] = []
  for (const pair of text.replace(/^\?/, '').split(/[&;]/)) {
    const eq = pair.indexOf('=')
    if (asPhpName(formDecoded(eq < 0 ? pair : pair.slice(0, eq))) === parameter) methods.push(asMethod(eq < 0 ? '' : formDecoded(pair.slice(eq + 1))))
  }
  return methods
}

/** The top-level `parameter` of a JSON object body, as Laravel reads its input from one; nothing from any other body. */
function namedInJson(body: Buffer, parameter: string): string[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    return []
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return []
  const value = (parsed as Record<string, unknown>)[parameter]
  return typeof value === 'string' ? [asMethod(value)] : []
}

/**
 * The values of the multipart body's parts named `parameter`, a name read as Rack (backslash escapes undone) and PHP
 * read it. Parsers differ at the edges (quoting, folded headers, a boundary that appears in a part), so unless every
 * mention of the name in the body, in any spelling either would read as it, is one of the parts read here, the body
 * counts as unreadable.
 */
function namedInMultipart(text: string, contentType: string, parameter: string): string[] | undefined {
  const mentions = text.match(mentionPattern(parameter))?.length ?? 0
  if (mentions === 0) return []
  const boundary = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;,\s]+))/i.exec(contentType)
  if (!boundary) return undefined
  const methods: string[] = []
  for (const part of text.split(`--${boundary[1] ?? boundary[2]}`).slice(1)) {
    const headEnd = part.indexOf('\r\n\r\n')
    if (headEnd < 0) continue
    const disposition = /^content-disposition:([^\r\n]*)/im.exec(part.slice(0, headEnd))?.[1]
    const name = disposition && /(?:^|;)\s*name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s"]+))/i.exec(disposition)
    if (name && asPhpName((name[1] ?? name[2]!).replace(/\\(.)/g, '$1')) === parameter) methods.push(asMethod(part.slice(headEnd + 4).replace(/\r\n$/, '')))
  }
  return methods.length === mentions ? methods : undefined
}

/** Every spelling of `parameter` that Rack or PHP could read as it: a backslash before any character, `.`, ` ` or `[` for `_`. */
function mentionPattern(parameter: string): RegExp {
  return new RegExp([...parameter].map((c) => `\\\\?${c === '_' ? '[_. []' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`).join(''), 'g')
}

/** A name as PHP makes a variable of it: leading spaces dropped, cut at NUL, `.`, ` ` and `[` read as `_`. */
function asPhpName(name: string): string {
  const cut = name.replace(/^ +/, '')
  const nul = cut.indexOf('\0')
  return (nul < 0 ? cut : cut.slice(0, nul)).replace(/[. []/g, '_')
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

/** The method a framework makes of the parameter's value: upper case, as Rack and Symfony take it. */
function asMethod(value: string): string {
  return value.trim().toUpperCase()
}
