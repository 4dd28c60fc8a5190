import type { FastifyRequest } from 'fastify'
import { isUtf8 } from 'node:buffer'
import { parse as parseForm } from 'node:querystring'
import { pipeline, Transform } from 'node:stream'
import type { App } from '../app.ts'
import { BodyBuffersFull, InvalidJson, MalformedEscape, RequestTimeout, UnsupportedMediaType } from '../errors.ts'
import { hasRequestBody } from '../gateway/request-buffer.ts'
import { anonymousBodyMs } from '../http/anonymous-bodies.ts'
import { contentCodingRefusal, transferCodingRefusal } from '../http/body-codings.ts'
import { closeLingeringAfter } from '../http/lingering-close.ts'
import { mediaType } from '../http/negotiation.ts'
import { PackedChunks } from '../http/packed-chunks.ts'
import { wellFormedEscapes } from '../http/request-target.ts'
import type { GatewayApi } from './gateway-api.ts'
import { JSON_NULL } from './validation.ts'

/**
 * The gateway API's request bodies, JSON and forms, read as UTF-8 only (RFC 8259 §8.1 for JSON; the WHATWG URL
 * standard's urlencoded forms). Read as text by default, bytes that are not UTF-8 would turn into U+FFFD and be
 * stored as something the client never sent, and a body that declares another charset would be read as UTF-8 all
 * the same: both are refused. JSON is then parsed by Fastify's own parser, with its guard against `__proto__` and
 * `constructor.prototype` keys.
 */
export function registerBodyParsers(api: GatewayApi): void {
  // A coding the gateway does not decode is refused before the body is read: what would be read is not what was meant.
  api.addHook('preParsing', async (request, reply, payload) => {
    if (request.method === 'GET' || request.method === 'HEAD' || !hasRequestBody(request.raw)) return payload
    const refusal = transferCodingRefusal(request.headers) ?? contentCodingRefusal(request.headers)
    if (!refusal) return payload
    // The body is not read: the connection closes after the answer, lingering while the client still sends it.
    closeLingeringAfter(reply.raw)
    throw refusal
  })
  const parseJson = api.getDefaultJsonParser(api.initialConfig.onProtoPoisoning ?? 'error', api.initialConfig.onConstructorPoisoning ?? 'error')
  api.removeContentTypeParser('application/json')
  api.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    // An empty body is no data, `{}`, as Django REST framework's Request reads it (no stream when the length is 0),
    // and the view then validates as usual: a POST to an action that takes no fields succeeds, one that needs fields
    // names them. Clients that set their JSON content type on every request send such POSTs.
    if (body.length === 0) return done(null, {})
    const refusal = charsetRefusal(request, 'A JSON') ?? (isUtf8(body) ? undefined : new InvalidJson('The request body is not valid UTF-8.'))
    if (refusal) done(refusal, undefined)
    // A JSON `null` is told from no body at all, which Fastify gives as null too (src/api/validation.ts).
    else {
      const text = body.toString('utf8')
      parseJson(request, text, (error, value) => done(error && forbiddenKeyRefusal(text) || error, value === null ? JSON_NULL : value))
    }
  })
  api.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, async (request: FastifyRequest, body: Buffer) => {
    const refusal = charsetRefusal(request, 'A form')
    if (refusal) throw refusal
    const text = body.toString('utf8')
    if (!isUtf8(body) || !wellFormedEscapes(text)) throw new MalformedEscape('The form is not UTF-8, or has a malformed percent escape.')
    return parseForm(text)
  })
  // Any other type, text/plain included (which Fastify would read as a string), is answered as Django REST framework
  // answers a type it has no parser for; an empty body of any type is no body, as there.
  api.removeContentTypeParser('text/plain')
  api.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    if (body.length === 0) done(null, {})
    else done(new UnsupportedMediaType(`Unsupported media type "${(mediaType(request) ?? '').slice(0, 100)}" in request.`), undefined)
  })
}

/**
 * A body Fastify's parser refused that is valid JSON holds a `__proto__` key, or `constructor` with `prototype`, at
 * some depth: its guard against prototype poisoning refuses those, and says only that the JSON is not valid. No field
 * takes such a key; the refusal says so. Parsed again only once refused.
 */
function forbiddenKeyRefusal(text: string): InvalidJson | undefined {
  try {
    JSON.parse(text)
  } catch {
    return undefined
  }
  return new InvalidJson('The request body holds a "__proto__" key, or "constructor" with "prototype", which no field takes.')
}

function charsetRefusal(request: FastifyRequest, what: string): UnsupportedMediaType | undefined {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase()
  if (charset === undefined || charset === 'utf-8' || charset === 'utf8') return undefined
  return new UnsupportedMediaType(`${what} body must be UTF-8, not ${charset.slice(0, 40)}.`)
}

/**
 * Every request body the gateway API reads is held whole until it is parsed, so all of them together are held within
 * one budget (`server.api_body_buffers_mb`, an eighth of it per client address), as proxied bodies are within theirs
 * (src/gateway/request-buffer.ts): a body that would take it past that is refused with 503 and Retry-After. Each chunk
 * takes its bytes as it comes, so a client that says a length and sends little holds little; what a request took is
 * given back when its response closes. A body declared over its route's limit takes nothing: Fastify refuses it
 * unread with 413. The body of a route anyone may call (the public login) must arrive within a few seconds
 * (src/http/anonymous-bodies.ts, as a realm's), or is refused with 408.
 * Runs after authorization (src/api/access.ts), so only a caller who may use the route can hold any of the budget.
 */
export function holdBodiesWithin(api: GatewayApi, app: App): void {
  const budget = app.ownBodies
  api.addHook('preParsing', async (request, reply, payload) => {
    // A GET's or a HEAD's body is never read here (Fastify parses none), so it holds nothing.
    if (request.method === 'GET' || request.method === 'HEAD' || !hasRequestBody(request.raw)) return payload
    if (request.headers['transfer-encoding'] === undefined && !(Number(request.headers['content-length']) <= request.routeOptions.bodyLimit)) return payload
    const client = request.ip
    let held = 0
    let answered = false
    reply.raw.once('close', () => {
      answered = true
      budget.give(held, client)
    })
    // Passed on in pieces of about a kilobyte or more, however small the chunks a client sends: Fastify's parser keeps
    // what it is given until the body ends (src/http/packed-chunks.ts).
    const packed = new PackedChunks()
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, next) {
        // What still comes after the answer (of a body refused as too large) is dropped, not held.
        if (answered) return next(null, chunk)
        if (!budget.take(chunk.length, client)) {
          closeLingeringAfter(reply.raw)
          return next(new BodyBuffersFull())
        }
        held += chunk.length
        for (const piece of packed.add(chunk)) this.push(piece)
        next()
      },
      flush(done) {
        for (const piece of packed.flush()) this.push(piece)
        done()
      },
    })
    const access = (request.routeOptions.config as { access?: string } | undefined)?.access
    const deadline = access === 'public' || access === 'open'
      ? setTimeout(() => {
        closeLingeringAfter(reply.raw)
        counted.destroy(new RequestTimeout('The request body took too long to arrive.'))
      }, anonymousBodyMs(app.config.server.timeouts.request_seconds))
      : undefined
    // A client that goes away mid-body ends the counted stream too, so its reader is not left waiting.
    return pipeline(payload, counted, () => clearTimeout(deadline))
  })
}
