import type { FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Every error Gatehouse answers with, and the one place that turns them into responses.
 * `code` is stable and meant for programs; `message` is for people. 5xx details are never shown.
 */
export class GatehouseError extends Error {
  readonly status: number
  readonly code: string
  /** Per-field messages for validation failures, keyed by the field's name or dotted path. */
  readonly fields: Record<string, string[]> | undefined
  /** Headers the response must carry, e.g. WWW-Authenticate challenges. */
  readonly headers: Record<string, string | string[]>

  constructor(status: number, code: string, message: string, options: { fields?: Record<string, string[]>; headers?: Record<string, string | string[]>; cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.status = status
    this.code = code
    this.fields = options.fields
    this.headers = options.headers ?? {}
  }
}

export class BadRequest extends GatehouseError {
  constructor(message: string, code = 'bad_request') {
    super(400, code, message)
  }
}

/** Django REST framework's wording for text carrying a NUL character (its ProhibitNullCharactersValidator). */
export const NUL_MESSAGE = 'Null characters are not allowed.'

export class ValidationFailed extends GatehouseError {
  constructor(fields: Record<string, string[]>, message?: string) {
    super(400, 'invalid', message ?? `Invalid value for ${Object.keys(fields).join(', ')}.`, { fields })
  }
}

/** 400 with the field's message, as the platform answers a duplicate username (Django's unique validator). */
export class UsernameTaken extends GatehouseError {
  constructor() {
    const message = 'A user with that username already exists.'
    super(400, 'username_taken', message, { fields: { username: [message] } })
  }
}

/** 401: no usable credentials. The challenge headers tell the client which kinds this place accepts. */
export class NotAuthenticated extends GatehouseError {
  constructor(message = 'Authentication credentials were not provided.', code = 'not_authenticated', challenges: string[] = []) {
    super(401, code, message, challenges.length ? { headers: { 'www-authenticate': challenges } } : {})
  }
}

/** Adds the challenges of the place that refused (RFC 9110: a 401 carries WWW-Authenticate) when the error has none. */
export function withChallenges(error: unknown, challenges: string[]): unknown {
  if (error instanceof GatehouseError && error.status === 401 && !error.headers['www-authenticate'] && challenges.length) {
    error.headers['www-authenticate'] = challenges
  }
  return error
}

export class InvalidCredentials extends NotAuthenticated {
  constructor(message = 'Invalid username or password.', code = 'invalid_credentials') {
    super(message, code)
  }
}

/** 401: too many failed password checks for this username; checks are refused unseen until the lock ends (src/auth/lockout.ts). */
export class AccountLocked extends InvalidCredentials {
  constructor(retryAfterSeconds: number) {
    super(`Too many failed logins for this username. Try again later (in ${secondsInWords(retryAfterSeconds)}).`, 'account_locked')
    this.headers['retry-after'] = String(retryAfterSeconds)
  }
}

/**
 * 429: too many failed password checks from this client address, for any usernames; its checks are refused unseen
 * until its counting window ends (src/auth/lockout.ts).
 */
export class LoginThrottled extends GatehouseError {
  constructor(retryAfterSeconds: number) {
    super(429, 'login_throttled', `Too many failed logins from your address. Try again later (in ${secondsInWords(retryAfterSeconds)}).`, { headers: { 'retry-after': String(retryAfterSeconds) } })
  }
}

function secondsInWords(seconds: number): string {
  return seconds === 1 ? '1 second' : `${seconds} seconds`
}

export class PermissionDenied extends GatehouseError {
  constructor(message = 'You do not have permission to perform this action.', code = 'permission_denied') {
    super(403, code, message)
  }
}

/** 403: a session-authenticated unsafe request failed the CSRF check; `code` says which part (token, cookie, Referer, Origin). */
export class CsrfFailed extends GatehouseError {
  constructor(message: string, code: string) {
    super(403, code, `CSRF Failed: ${message}`)
  }
}

export class NotFound extends GatehouseError {
  constructor(message = 'Not found.', code = 'not_found') {
    super(404, code, message)
  }
}

export class Conflict extends GatehouseError {
  constructor(message: string, code = 'conflict') {
    super(409, code, message)
  }
}

export class UpstreamUnavailable extends GatehouseError {
  constructor(service: string, cause?: unknown) {
    super(502, 'upstream_unavailable', `The service "${service}" is not reachable.`, { cause })
  }
}

export class UpstreamTimeout extends GatehouseError {
  constructor(service: string, cause?: unknown) {
    super(504, 'upstream_timeout', `The service "${service}" did not answer in time.`, { cause })
  }
}

/**
 * 503: every upstream connection of the service that this client may use is taken, and none came free within the
 * service's `pool.wait_seconds` (src/gateway/upstream-pool.ts).
 */
export class UpstreamBusy extends GatehouseError {
  constructor(service: string) {
    super(503, 'upstream_busy', `The service "${service}" has no free connection for this client; try again shortly.`, { headers: { 'retry-after': '1' } })
  }
}

/** 503: a password source (the LDAP directory) could not be asked in time; other sources keep working. */
export class DirectoryUnavailable extends GatehouseError {
  constructor(message = 'The directory could not be reached; try again later.', cause?: unknown) {
    super(503, 'directory_unavailable', message, { cause })
  }
}

/**
 * 503: the database did not answer in time, or could not be reached. Raised by the store for every query that
 * fails that way (src/store/database.ts), and by the request path when this process has not been able to read the
 * news of revocations for longer than `auth.max_stale_seconds`.
 */
export class DatabaseUnavailable extends GatehouseError {
  static readonly retryAfterSeconds = 5

  constructor(message = 'The database is not available; try again shortly.', cause?: unknown) {
    super(503, 'database_unavailable', message, { cause, headers: { 'retry-after': String(DatabaseUnavailable.retryAfterSeconds) } })
  }

  /** The status oidc-provider answers with for an error it did not raise itself. */
  get statusCode(): number {
    return this.status
  }
}

/** Fastify's own client errors, by their code, so they get stable Gatehouse codes too. */
const fastifyCodes: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_VALIDATION: 'invalid',
  // The router could not decode the path's percent escapes (src/gateway/path-safety.ts refuses the query's).
  FST_ERR_BAD_URL: 'malformed_escape',
  FST_ERR_ASYNC_CONSTRAINT: 'bad_request',
}

/** Turns anything thrown into a GatehouseError; unknown errors become an opaque 500. */
export function normalizeError(error: unknown): GatehouseError {
  if (error instanceof GatehouseError) return error
  const e = error as { statusCode?: number; code?: string; message?: string }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const code = (e.code && fastifyCodes[e.code]) ?? (e instanceof SyntaxError ? 'invalid_json' : 'bad_request')
    const message = code === 'invalid_json' ? 'The request body is not valid JSON.' : String(e.message ?? 'Bad request.')
    return new GatehouseError(e.statusCode, code, message)
  }
  return new GatehouseError(500, 'internal_error', 'Internal server error.', { cause: error })
}

/**
 * `{code, detail}`, and for invalid input the problems by field twice: under `errors`, and at the top level as
 * Django REST framework writes them (`{"username": ["..."]}`), so scripts written against the platform read them.
 */
export function errorBody(error: GatehouseError): Record<string, unknown> {
  const body: Record<string, unknown> = { code: error.code, detail: error.message }
  if (error.fields) {
    for (const [field, messages] of Object.entries(error.fields)) if (!RESERVED_BODY_KEYS.has(field)) body[field] = messages
    body.errors = error.fields
  }
  return body
}
const RESERVED_BODY_KEYS = new Set(['code', 'detail', 'errors'])

/** The single error responder: JSON for API clients, a small HTML page for browsers. */
export function sendError(request: FastifyRequest, reply: FastifyReply, thrown: unknown): FastifyReply {
  const error = normalizeError(thrown)
  // Upstream failures (502/504) are logged once where they happen; only Gatehouse's own faults are errors here.
  if (error.status === 500) request.log.error({ err: error.cause ?? thrown, code: error.code }, 'request failed')
  reply.code(error.status)
  for (const [name, value] of Object.entries(error.headers)) {
    const sent = name === 'www-authenticate' && isScriptRequest(request) ? withoutBasicChallenge(value) : value
    if (sent.length) reply.header(name, sent)
  }
  if (wantsHtml(request)) {
    return reply.type('text/html; charset=utf-8').send(errorPage(error))
  }
  return reply.type('application/json; charset=utf-8').send(errorBody(error))
}

/**
 * A browser answers a Basic challenge to a script's request with its own password dialog. A script that says
 * it handles 401 itself (`X-Requested-With: XMLHttpRequest`, as Django and Spring Security read it), such as the
 * web interface when its session has ended, gets the other challenges only.
 */
function isScriptRequest(request: FastifyRequest): boolean {
  return request.headers['x-requested-with'] === 'XMLHttpRequest'
}

function withoutBasicChallenge(value: string | string[]): string[] {
  return (Array.isArray(value) ? value : [value]).filter((challenge) => !/^basic\b/i.test(challenge))
}

/** A browser navigating (Accept lists text/html before any JSON) gets pages; everything else gets JSON. */
export function wantsHtml(request: FastifyRequest): boolean {
  const accept = request.headers.accept
  if (typeof accept !== 'string' || !accept.includes('text/html')) return false
  const json = accept.indexOf('application/json')
  return json === -1 || accept.indexOf('text/html') < json
}

function errorPage(error: GatehouseError): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${error.status} · Gatehouse</title></head><body><main><h1>${error.status}</h1><p>${escapeHtml(error.message)}</p>` +
    `<p><code>${escapeHtml(error.code)}</code></p></main></body></html>`
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/**
 * Requests Node's HTTP parser refuses before any route sees them (headers or cookies too large, malformed
 * request lines, slow clients) get the same JSON shape as every other error.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  // The response still being written on this connection (Node's own default handler looks at the same field).
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
  if (inFlight?.req.complete) {
    // The error is in a request pipelined behind the one being answered. It cannot be answered in order, and an
    // answer written now would take the place of the earlier one's (RFC 9112 §9.3.2): that one is sent whole, then
    // the connection closed. One that timed out behind it only closes the connection.
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') socket.destroy()
    else closeAfter(inFlight, socket)
    return
  }
  if (inFlight?.headersSent) {
    // The request being answered failed (its body timed out, broke off or is malformed) after its response began:
    // that response cannot be finished or replaced, so the connection is cut.
    socket.destroy()
    return
  }
  const [status, body] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, errorBody(new GatehouseError(408, 'request_timeout', 'The request took too long to arrive.'))]
      : error.code === 'HPE_HEADER_OVERFLOW' ? [431, errorBody(new GatehouseError(431, 'headers_too_large', 'The request headers (cookies included) are too large.'))]
        : [400, errorBody(new BadRequest('The request is not valid HTTP.'))]
  const json = JSON.stringify(body)
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`)
  }
  socket.destroy()
}

function closeAfter(response: ServerResponse, socket: Socket): void {
  response.shouldKeepAlive = false
  response.once('close', () => socket.end())
}
