import type { FastifyReply } from 'fastify'
import type { GatewayRequest } from '../http/gateway-request.ts'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { isWildcardOrigin, matchesSubdomainOrigin, subdomainOrigin, type SubdomainOrigin } from '../config/urls.ts'
import { CsrfCookieMalformed, CsrfCookieMissing, CsrfOriginMismatch, CsrfRefererInsecure, CsrfRefererMalformed, CsrfRefererMismatch, CsrfRefererMissing, CsrfTokenIncorrect, CsrfTokenMissing, ValidationFailed } from '../errors.ts'

export const CSRF_COOKIE = 'csrftoken'
/** HTML forms cannot set headers, so they send the token in this field (Django's name). */
export const CSRF_FORM_FIELD = 'csrfmiddlewaretoken'
export const CSRF_HEADER = 'x-csrftoken'
const TOKEN = /^[A-Za-z0-9_-]{32,128}$/

/** A fresh token: 64 characters, 384 random bits. */
export function newCsrfToken(): string {
  return randomBytes(48).toString('base64url')
}

/**
 * Cross-site request forgery protection for cookie-authenticated requests, as Django does it: the
 * `csrftoken` cookie must be echoed in the X-CSRFToken header (or the `csrfmiddlewaretoken` form field),
 * a sent Origin must be a trusted one, and on HTTPS the Referer must be too. Which requests need the check
 * is decided by the caller (the session authenticator, the login form); this only checks.
 */
export class CsrfPolicy {
  readonly #trustedOrigins: ReadonlySet<string>
  /** `https://*.example.com`: the domain and every name under it, as Django's CSRF_TRUSTED_ORIGINS reads them. */
  readonly #trustedSubdomains: readonly SubdomainOrigin[]
  readonly #publicUrl: () => string

  constructor(trustedOrigins: readonly string[], publicUrl: () => string) {
    this.#trustedOrigins = new Set(trustedOrigins.filter((origin) => !isWildcardOrigin(origin)).map((origin) => new URL(origin).origin))
    // The configuration refuses a `*` anywhere else, so every wildcard entry is one.
    this.#trustedSubdomains = trustedOrigins.filter(isWildcardOrigin).map((origin) => subdomainOrigin(origin)!)
    this.#publicUrl = publicUrl
  }

  /** HTTPS as the client sees it: the connection (or X-Forwarded-Proto from a trusted proxy), or an https public URL. */
  isSecure(request: GatewayRequest): boolean {
    return request.protocol === 'https' || this.#publicUrl().startsWith('https:')
  }

  /** The `csrftoken` cookie's value, when it is well-formed. */
  cookieToken(request: GatewayRequest): string | undefined {
    const value = request.cookies?.[CSRF_COOKIE]
    return value !== undefined && TOKEN.test(value) ? value : undefined
  }

  /** The request's valid token, or a new one; sets the cookie when it is new. */
  ensureToken(request: GatewayRequest, reply: FastifyReply): string {
    return this.cookieToken(request) ?? this.rotate(request, reply)
  }

  /** A new token in the cookie (on login, so a token seen before cannot be replayed after). */
  rotate(request: GatewayRequest, reply: FastifyReply): string {
    const token = newCsrfToken()
    // Readable by scripts on purpose (they send it back in X-CSRFToken); no Max-Age, as in the platform's docs.
    reply.setCookie(CSRF_COOKIE, token, { path: '/', sameSite: 'lax', httpOnly: false, secure: this.isSecure(request) })
    return token
  }

  /**
   * Throws CsrfFailed unless the request passes every check, in Django's order: Origin, Referer, token. As Django's
   * CsrfViewMiddleware (4.0 and later), the Referer is checked only on HTTPS and only without an Origin, which, when
   * sent, has just been checked and says more: a page whose policy sends no Referer still sends it.
   */
  check(request: GatewayRequest): void {
    this.checkOrigin(request)
    if (request.headers.origin === undefined && this.isSecure(request)) this.#checkReferer(request)
    this.#checkToken(request)
  }

  #goodOrigins(request: GatewayRequest): Set<string> {
    const origins = new Set(this.#trustedOrigins)
    origins.add(new URL(this.#publicUrl()).origin)
    try {
      origins.add(new URL(`${request.protocol}://${request.host}`).origin)
    } catch {
      // A Host header that is no host name adds nothing.
    }
    return origins
  }

  /** Whether the origin (scheme://host[:port], as URL writes it) is the request's own or a trusted one. */
  #isGood(request: GatewayRequest, origin: string | undefined): boolean {
    if (origin === undefined) return false
    if (this.#goodOrigins(request).has(origin)) return true
    if (this.#trustedSubdomains.length === 0) return false
    // An opaque origin (`null`, a `file:` URL's) is no URL again.
    const url = URL.parse(origin)
    return url !== null && this.#trustedSubdomains.some((pattern) => matchesSubdomainOrigin(pattern, url))
  }

  /** A sent Origin must be a trusted one; a request without one (not from a browser) passes. */
  checkOrigin(request: GatewayRequest): void {
    const origin = request.headers.origin
    if (origin === undefined) return
    if (!this.#isGood(request, originOf(origin))) {
      throw new CsrfOriginMismatch(`Origin checking failed - ${origin.slice(0, 200)} does not match any trusted origins.`)
    }
  }

  /** RFC 7231 Referer, required on HTTPS without an Origin: a page from elsewhere cannot make a same-origin one. */
  #checkReferer(request: GatewayRequest): void {
    const referer = request.headers.referer
    if (!referer) throw new CsrfRefererMissing()
    let url: URL
    try {
      url = new URL(referer)
    } catch {
      throw new CsrfRefererMalformed()
    }
    if (url.protocol !== 'https:') {
      throw new CsrfRefererInsecure()
    }
    if (!this.#isGood(request, url.origin)) {
      throw new CsrfRefererMismatch(`Referer checking failed - ${url.origin.slice(0, 200)} does not match any trusted origins.`)
    }
  }

  #checkToken(request: GatewayRequest): void {
    const raw = request.cookies?.[CSRF_COOKIE]
    if (raw === undefined || raw === '') throw new CsrfCookieMissing()
    if (!TOKEN.test(raw)) throw new CsrfCookieMalformed()
    const submitted = formToken(request) ?? request.headers[CSRF_HEADER]
    if (submitted === undefined || submitted === '') throw new CsrfTokenMissing()
    if (typeof submitted !== 'string' || !constantTimeEqual(submitted, raw)) {
      throw new CsrfTokenIncorrect()
    }
  }
}

/** The `csrfmiddlewaretoken` field of a parsed form body; a proxied body is a stream and has none. */
function formToken(request: GatewayRequest): string | undefined {
  const type = request.headers['content-type']
  if (typeof type !== 'string' || !type.toLowerCase().startsWith('application/x-www-form-urlencoded')) return undefined
  const body = request.body
  if (!body || typeof body !== 'object' || !(CSRF_FORM_FIELD in body)) return undefined
  const value = (body as Record<string, unknown>)[CSRF_FORM_FIELD]
  if (typeof value !== 'string') throw new ValidationFailed({ [CSRF_FORM_FIELD]: ['Give this parameter once.'] })
  return value
}

function originOf(value: string): string | undefined {
  try {
    return new URL(value).origin
  } catch {
    return undefined
  }
}

function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}
