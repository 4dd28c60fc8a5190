import type { IncomingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import { AccessDenied, MethodOverrideUnread, type GatehouseError } from '../errors.ts'

/**
 * The method a POST names in a parameter, which web frameworks take for the request's own: Rails (Rack's
 * MethodOverride) and Laravel read `_method` from a form body, Symfony and Laravel from the query too. A service
 * built on one receives a POST its access rules let in, and acts on it as the DELETE they refuse. So a service
 * whose rules name methods judges such a POST as each method it names as well, and a form body it cannot read
 * whole as every method a framework would take from one. The override fields (`X-HTTP-Method-Override`) are
 * never forwarded at all (src/gateway/upstream-headers.ts); a parameter cannot be taken out of a body.
 */

/** The methods a body that was not read may name: those frameworks take besides the rules' own. */
const UNREAD_BODY_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']

/** What judges the methods a form body names, once its body is read (proxy.ts, lean-proxy.ts, forward-auth.ts). */
export interface PendingOverride {
  /** The parameter's name, `_method` unless the service names another. */
  readonly parameter: string
  /** Those to judge when the body could not be read whole: every method a framework would take, and the rules' own. */
  readonly unreadMethods: readonly string[]
  /** The refusal for `method`, or undefined when the rules let it in as well. */
  judge(method: string): GatehouseError | undefined
}

/**
 * The refusal of a POST whose form body names a method the rules refuse (as `judge` words it), or that could not be
 * read whole while the rules refuse one of the methods it could name: `body` as it is forwarded, or `unseen` where
 * the gateway never gets it (forward authentication, whose proxy sends no body: `headers` are the question's, with
 * the original's media type). Undefined when it may go on.
 */
export function bodyOverrideRefusal(pending: PendingOverride | undefined, headers: IncomingHttpHeaders, body: Buffer | Readable | null | 'unseen'): GatehouseError | undefined {
  if (!pending) return undefined
  if (body === 'unseen' && !mayCarryForm(headers)) return undefined
  const named = body === 'unseen' ? undefined : namedInBody(headers['content-type'], body, pending.parameter)
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
  if (body === 'unseen') return new AccessDenied(`The request's form body, which forward authentication does not see, ${may}.`)
  if (Buffer.isBuffer(body)) return new AccessDenied(`The request's multipart body mentions ${pending.parameter} elsewhere than as a field's name, so it ${may}.`)
  return new MethodOverrideUnread(`The request's form body, larger than the gateway reads before forwarding (services[].pool.body_buffer_kb), ${may}.`)
}

/** The methods to judge for a body that was not read whole. */
export function unreadBodyMethods(namedByRules: Iterable<string>): readonly string[] {
  return [...new Set([...UNREAD_BODY_METHODS, ...namedByRules])]
}

/**
 * The methods `parameter` names in a query (with its `?`) or an urlencoded body: every occurrence, since frameworks
 * differ in which one they take. Pairs are split at `;` as well as `&`, as Rack splits a query; a key matches once
 * decoded (`%5Fmethod`).
 */
export function namedInForm(text: string, parameter: string): string[] {
  if (!text.includes(parameter) && !text.includes('%')) return []
  const methods: string[] = []
  for (const pair of text.replace(/^\?/, '').split(/[&;]/)) {
    const eq = pair.indexOf('=')
    if (formDecoded(eq < 0 ? pair : pair.slice(0, eq)).trim() === parameter) methods.push(asMethod(eq < 0 ? '' : formDecoded(pair.slice(eq + 1))))
  }
  return methods
}

/**
 * The methods a POST's body names, when it is a form (urlencoded, multipart, or a POST without a media type, which
 * Rack reads as urlencoded): an empty list when it names none or is no form, undefined when it cannot be told (a body
 * streamed on before all of it arrived, or a multipart body whose parts cannot be told apart with certainty).
 */
export function namedInBody(contentType: string | undefined, body: Buffer | Readable | null, parameter: string): string[] | undefined {
  const type = contentType?.split(';')[0]!.trim().toLowerCase()
  const urlencoded = type === undefined || type === '' || type === 'application/x-www-form-urlencoded'
  if (!urlencoded && type !== 'multipart/form-data') return []
  if (body === null) return []
  if (!Buffer.isBuffer(body)) return undefined
  const text = body.toString('latin1')
  return urlencoded ? namedInForm(text, parameter) : namedInMultipart(text, contentType!, parameter)
}

/** Whether a request's body may be a form whose methods are to be judged once read. */
export function mayBeForm(contentType: string | undefined): boolean {
  const type = contentType?.split(';')[0]!.trim().toLowerCase()
  return type === undefined || type === '' || type === 'application/x-www-form-urlencoded' || type === 'multipart/form-data'
}

/**
 * Whether the original request a forward-auth question describes may carry a form body, which the question never
 * does: a form media type; or none, with a length or a transfer coding in the question's fields saying there is a
 * body (a POST with neither has none, and is what `curl -X POST` sends).
 */
export function mayCarryForm(headers: { 'content-type'?: string | undefined; 'content-length'?: string | undefined; 'transfer-encoding'?: string | undefined }): boolean {
  const type = headers['content-type']?.split(';')[0]!.trim()
  if (type) return mayBeForm(type)
  return Number(headers['content-length'] ?? 0) > 0 || headers['transfer-encoding'] !== undefined
}

/**
 * The values of the multipart body's parts named `parameter`. Parsers differ at the edges (quoting, folded
 * headers, a boundary that appears in a part), so unless every mention of the name in the body is one of the parts
 * read here, the body counts as unreadable.
 */
function namedInMultipart(text: string, contentType: string, parameter: string): string[] | undefined {
  const mentions = text.split(parameter).length - 1
  if (mentions === 0) return []
  const boundary = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType)
  if (!boundary) return undefined
  const methods: string[] = []
  for (const part of text.split(`--${boundary[1] ?? boundary[2]}`).slice(1)) {
    const headEnd = part.indexOf('\r\n\r\n')
    if (headEnd < 0) continue
    const name = /^content-disposition:\s*form-data\s*;(?:[^\r\n]*;)?\s*name="([^"\r\n]*)"/im.exec(part.slice(0, headEnd))
    if (name?.[1] === parameter) methods.push(asMethod(part.slice(headEnd + 4).replace(/\r\n$/, '')))
  }
  return methods.length === mentions ? methods : undefined
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
