import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { actorOf } from '../audit/actor.ts'
import { auditedSession, sessionFields } from '../audit/sessions.ts'
import { CSRF_FORM_FIELD } from '../auth/csrf.ts'
import { clearSessionCookie, SESSION_COOKIE, setSessionCookie } from '../auth/session.ts'
import { MAX_PASSWORD_LENGTH } from '../directory/accounts.ts'
import { ssoStartPath } from '../directory/sso.ts'
import { CsrfCookieMalformed, CsrfCookieMissing, type CsrfFailed, CsrfTokenIncorrect, CsrfTokenMissing, DatabaseUnavailable, type GatehouseError, InvalidCredentials, LoginThrottled, NoSession, normalizeError, PasswordChecksBusy, Unauthenticated, UnsupportedMediaType } from '../errors.ts'
import { LOGIN_PATH } from '../gateway/policy.ts'
import { MAX_REDIRECT_TARGET, sameOriginTarget } from '../gateway/redirect-target.ts'
import { LOGIN_PAGE_POLICY } from '../pages/html.ts'
import { renderLoginPage } from '../pages/login-page.ts'
import type { GatewayApi } from './gateway-api.ts'
import { mediaType, wantsHtml } from '../http/negotiation.ts'
import { clientGone } from '../http/client-gone.ts'
import { startSession } from '../auth/session-start.ts'
import type { ProviderSignOut } from './sso.ts'

export const DEFAULT_NEXT = '/api/gateway/v1/'
/** Where a person in a browser lands after logging in without a `next`: the web interface. */
export const BROWSER_NEXT = '/ui/'

// Only the type's words: a schema's error applies to its checks too, and a name too long is not "not a string".
const field = (name: string) => z.string({
  error: (issue) => issue.code !== 'invalid_type' ? undefined : issue.input === undefined ? 'This field is required.' : Array.isArray(issue.input) ? 'Give this parameter once.' : `${name} must be a string.`,
})
const loginFields = z.object({
  username: field('username').min(1, 'This field may not be blank.').max(150),
  password: field('password').min(1, 'This field may not be blank.').max(MAX_PASSWORD_LENGTH),
  next: field('next').max(MAX_REDIRECT_TARGET).optional(),
  [CSRF_FORM_FIELD]: field(CSRF_FORM_FIELD).max(256).optional(),
}).strict()
/**
 * The largest login body read. The login is public, so anyone may send it; it needs a username, a password, a next
 * page and a CSRF token, and this holds each at its longest in characters of three UTF-8 bytes, percent-encoded (nine
 * bytes each: (150 + 1024 + 2048 + 256) * 9 = 31,302 bytes, a little more with the fields' names). Django reads up to
 * DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) of any body; a login larger than this could hold no field it accepts.
 */
export const LOGIN_BODY_LIMIT = 32 * 1024
/** Where to go after logging in, given at most once. */
export const nextQuery = z.object({ next: field('next').optional() })
const loginPageQuery = nextQuery.extend({ ended: z.string().optional() })
const SESSION_ENDED_NOTICE = 'Your session has ended. Log in again to go on where you were.'

/**
 * Session login as the platform documents it (seed 001): GET the login page for the `csrftoken` cookie,
 * POST username and password with the token, get the `gateway_sessionid` cookie. Also logout, and the
 * current session's lifetime (read and extend).
 */
export function loginRoutes(api: GatewayApi, app: App, signOutAtProvider: ProviderSignOut): void {
  api.get('/login/', { config: { access: 'public' }, schema: { querystring: loginPageQuery } }, async (request, reply) => {
    const next = sameOriginTarget(app.publicUrl, request.query.next)
    const csrfToken = app.csrf.ensureToken(request, reply)
    if (prefersJson(request)) return { csrf_token: csrfToken, login_url: app.publishedPath + LOGIN_PATH, next: next ?? null }
    // A page of the web interface whose session ended sends the person here with `ended`: what they had typed there
    // is gone, and they are told why rather than only shown the form.
    return sendLoginPage(app, reply, 200, { csrfToken, next, notice: request.query.ended === undefined ? undefined : SESSION_ENDED_NOTICE })
  })

  // The media type and the CSRF token are checked before the fields, so a forged login learns nothing of them.
  const checkCsrf = async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      app.csrf.check(request)
    } catch (error) {
      // A person's own form whose token changed meanwhile: another tab logged in, or the cookies were cleared.
      if (!isStaleFormToken(error) || !isBrowserForm(request)) throw error
      return sendFormAgain(app, request, reply, error, 'This login form had expired. Enter your password again.')
    }
  }
  api.post('/login/', {
    config: { access: 'public' },
    bodyLimit: LOGIN_BODY_LIMIT,
    preValidation: [requireFormOrJson, checkCsrf],
    schema: { querystring: nextQuery, body: loginFields },
    // A browser's form whose fields do not fit (a pasted password longer than any) gets the form again.
    attachValidation: true,
  }, async (request, reply) => {
    if (request.validationError) {
      if (!isBrowserForm(request)) throw request.validationError
      return sendFormAgain(app, request, reply, normalizeError(request.validationError), 'Check the username and password, and try again.', true)
    }
    const input = request.body
    const next = sameOriginTarget(app.publicUrl, input.next ?? request.query.next)
    const jsonClient = prefersJson(request) || mediaType(request) === 'application/json'

    let user
    let started
    try {
      user = await app.accounts.checkPassword(input.username, input.password, request.ip, { method: 'session', recordsLogin: true }, undefined, clientGone(reply.raw))
      // Refuses the password just verified if it was changed meanwhile (Accounts.recordLogin), as a wrong one.
      started = await startSession(app, request, reply, user)
    } catch (error) {
      // The password was wrong, or could not be checked now: either way the person types it again.
      if ((error instanceof Unauthenticated || error instanceof LoginThrottled || error instanceof DatabaseUnavailable || error instanceof PasswordChecksBusy) && isBrowserForm(request)) {
        return sendFormAgain(app, request, reply, error, error.message, error instanceof InvalidCredentials)
      }
      throw error
    }

    const { csrfToken, expiresAt, now } = started
    // As the platform answers a login: awxkit's session login reads the session cookie's name from it.
    reply.header('X-API-Session-Cookie-Name', SESSION_COOKIE)
    const target = next ?? defaultNext(app, request)
    if (jsonClient) return { username: user.username, csrf_token: csrfToken, next: target, ...sessionTimes(expiresAt, now) }
    return reply.redirect(target, 302)
  })

  // Logout answers GET and POST and redirects to /api/, as the platform does (a browser goes to the login page).
  // A POST with the session cookie needs the CSRF token like any other; a GET, as in the platform, does not.
  // GET is open, so that a browser with no session or an ended one is still redirected, not refused.
  const logout = async (request: FastifyRequest, reply: FastifyReply) => {
    // A GET another site's page led the browser to (a link, a redirect, an image of a sibling subdomain's page) ends
    // nothing: browsers name where a request comes from in Sec-Fetch-Site, and clients that are not browsers send none.
    // A HEAD, which the GET route answers, likewise (a sibling subdomain's script may send one without asking).
    if ((request.method === 'GET' || request.method === 'HEAD') && !fromThisSite(request.headers['sec-fetch-site'])) {
      return reply.redirect(app.publishedPath + (wantsHtml(request) ? LOGIN_PATH : '/api/'), 302)
    }
    const principal = request.gatehouse.principal
    const sessionId = principal?.sessionId
    const ended = sessionId ? await app.sessions.end(sessionId) : undefined
    // The session's end is always kept, as every other session's end (the logout beside it may be dropped), and is a
    // sign-in entry as the logout is, which the count bound deletes before any change.
    if (ended) app.audit.signInSession(actorOf(request), 'delete', auditedSession(ended), sessionFields(ended))
    if (principal) app.audit.auth(actorOf(request), { operation: 'logout', object: { type: 'user', id: principal.user.id, name: principal.user.username } })
    const secure = app.csrf.isSecure(request)
    clearSessionCookie(reply, secure)
    app.oidc.signOutBrowser(reply, secure)
    if (!wantsHtml(request)) return reply.redirect(app.publishedPath + '/api/', 302)
    // A person in a browser whose session a single sign-on started is signed out at the provider too, when it is set
    // so, once the session here has ended; a program gets the platform's answer above, whatever started its session.
    const atProvider = ended?.upstream && await signOutAtProvider(request, reply, ended.upstream)
    return reply.redirect(atProvider || app.publishedPath + LOGIN_PATH, 302)
  }
  api.get('/logout/', { config: { access: 'open' } }, logout)
  api.post('/logout/', { config: { access: 'sign_out' } }, logout)

  // Open, so that "no session" (none, ended or expired) is a 404 rather than a demand for credentials.
  api.get('/session/', { config: { access: 'open' } }, async (request) => {
    const session = await currentSession(app, request)
    // Whose session it is, so that a page drawn for one person notices another has logged in since in this browser.
    return { user: session.userId, ...sessionTimes(session.expiresAt) }
  })

  api.post('/session/', async (request, reply) => {
    const now = Date.now()
    const session = await app.sessions.extend((await currentSession(app, request)).keyHash, now)
    setSessionCookie(reply, request.cookies[SESSION_COOKIE]!, Math.round((session.expiresAt - now) / 1000), app.csrf.isSecure(request))
    return { user: session.userId, ...sessionTimes(session.expiresAt, now) }
  })
}


/** Where a login without a `next` goes: a person in a browser to the web interface, a program to the API. */
export function defaultNext(app: Pick<App, 'publishedPath'>, request: FastifyRequest): string {
  return app.publishedPath + (wantsHtml(request) ? BROWSER_NEXT : DEFAULT_NEXT)
}

export function sessionTimes(expiresAt: number, now = Date.now()) {
  return {
    now: new Date(now).toISOString(),
    expires_on: new Date(expiresAt).toISOString(),
    expires_in_seconds: Math.max(0, Math.floor((expiresAt - now) / 1000)),
  }
}

async function currentSession(app: App, request: FastifyRequest) {
  const sessionId = request.gatehouse.principal?.sessionId
  const session = sessionId ? await app.sessions.get(sessionId) : undefined
  if (!session) throw new NoSession()
  return session
}

async function requireFormOrJson(request: FastifyRequest): Promise<void> {
  const type = mediaType(request)
  if (type !== 'application/x-www-form-urlencoded' && type !== 'application/json') {
    throw new UnsupportedMediaType('Send the login as application/x-www-form-urlencoded or application/json.')
  }
}

/**
 * The login page again for a browser's form that was not taken, with the current CSRF token and what the person
 * typed but the password. The fields are read as sent: they may be the ones that did not fit. `refused`: the username
 * and password themselves were refused, not the form's moment (an expired form, a busy server).
 */
function sendFormAgain(app: App, request: FastifyRequest, reply: FastifyReply, refusal: GatehouseError, message: string, refused = false): FastifyReply {
  request.gatehouse.code = refusal.code
  keepRetryAfter(reply, refusal)
  const form = (request.body ?? {}) as Record<string, unknown>
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined)
  return sendLoginPage(app, reply, refusal.status, {
    csrfToken: app.csrf.ensureToken(request, reply),
    next: sameOriginTarget(app.publicUrl, text(form.next) ?? text((request.query as Record<string, unknown>).next)),
    username: text(form.username)?.slice(0, 150) ?? '',
    error: message,
    refused,
  })
}

/**
 * The refusal's `Retry-After` on the login page shown in its place, so the page says when to try again as the error
 * would. Not the refusal's other headers: a basic challenge would make the browser ask for a password in its own dialog.
 */
export function keepRetryAfter(reply: FastifyReply, refusal: GatehouseError): void {
  const retryAfter = refusal.headers['retry-after']
  if (retryAfter !== undefined) reply.header('retry-after', retryAfter)
}

/** A person's login form in a browser, which gets pages rather than errors it cannot act on. */
function isBrowserForm(request: FastifyRequest): boolean {
  return mediaType(request) === 'application/x-www-form-urlencoded' && wantsHtml(request)
}

/**
 * The token of the person's own form no longer matches the cookie. A request from another site fails the Origin or
 * Referer check instead, and keeps its error page.
 */
function isStaleFormToken(error: unknown): error is CsrfFailed {
  return error instanceof CsrfCookieMissing || error instanceof CsrfCookieMalformed || error instanceof CsrfTokenMissing || error instanceof CsrfTokenIncorrect
}

function prefersJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept
  return typeof accept === 'string' && accept.includes('application/json') && !wantsHtml(request)
}

/** The login page, with a "Sign in with <label>" button for each single sign-on provider. */
export function sendLoginPage(app: App, reply: FastifyReply, status: number, options: { csrfToken?: string | undefined; next?: string | undefined; username?: string; error?: string; refused?: boolean; notice?: string | undefined }): FastifyReply {
  const sso = app.config.sso.map((provider) => ({ label: provider.label, href: app.publishedPath + ssoStartPath(provider.name, options.next) }))
  return reply.code(status)
    .type('text/html; charset=utf-8')
    .header('content-security-policy', LOGIN_PAGE_POLICY)
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'same-origin')
    .send(renderLoginPage({ action: app.publishedPath + LOGIN_PATH, ...options, sso }))
}

/** Sec-Fetch-Site of a request this site made or the person typed (or none: not a browser, or an older one). */
function fromThisSite(site: string | string[] | undefined): boolean {
  return site === undefined || site === 'same-origin' || site === 'none'
}
