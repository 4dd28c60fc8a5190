// The REST client every page uses: the same public API any program calls, authenticated by the session
// cookie, with the CSRF token from the `csrftoken` cookie echoed in X-CSRFToken on unsafe methods: the token of
// the login this page was drawn for (see pageCsrfToken).

/**
 * Where a proxy publishes the gateway: '' at the root, '/edge' for a `server.public_url` of https://host/edge/
 * (docs/edge.md). This module is served at <that path>/ui/assets/js/api.js, so its own address says it.
 */
export const PUBLISHED_PATH = new URL('../../../', import.meta.url).pathname.replace(/\/$/, '')

/**
 * A gateway path (`/ui/tokens`, `/api/`) as this browser addresses it.
 * @param {string} path
 */
export function published(path) {
  return PUBLISHED_PATH + path
}

export const API = published('/api/gateway/v1/')
export const LOGIN_URL = `${API}login/`

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
/** Tells the gateway this page handles 401 itself, so the browser shows no password dialog of its own. */
export const SCRIPT_HEADERS = Object.freeze({ 'x-requested-with': 'XMLHttpRequest' })

/** A refused request, as the gateway describes it: `{code, detail, errors: {field: [messages]}}`. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {{code?: string, detail?: string, errors?: Record<string, string[]>}} body
   */
  constructor(status, body) {
    super(body.detail || `The request failed (HTTP ${status}).`)
    this.status = status
    this.code = body.code || 'error'
    /** @type {Record<string, string[]>} */
    this.fields = body.errors || {}
  }
}

/** @type {((error: ApiError) => void)[]} */
const unauthenticatedListeners = []

/**
 * Called when the API says the session is gone (401), whichever page asked.
 * @param {(error: ApiError) => void} listener
 */
export function onUnauthenticated(listener) {
  unauthenticatedListeners.push(listener)
}

/**
 * The cookie `name` as the gateway reads it: the last one of that name, as Django reads a Cookie header. A browser
 * lists the cookie with the longer path first, so one planted for these pages' path (`Path=/ui/`, which the API's
 * requests do not carry) comes before the gateway's own `Path=/` one and is not taken.
 * @param {string} name
 */
export function readCookie(name) {
  let found
  for (const part of document.cookie.split(';')) {
    const [key, ...value] = part.trim().split('=')
    if (key === name) found = value.join('=')
  }
  if (found === undefined) return undefined
  try {
    return decodeURIComponent(found)
  } catch {
    return found
  }
}

/**
 * The CSRF token of the login this page was drawn for (the shell sets the cookie before this runs). A login in
 * another tab gives the browser a new token with its new session; this page keeps sending the old one, so the
 * gateway refuses its changes (`csrf_token_incorrect`) rather than making them as whoever logged in since. A change
 * of the page's own that gave the browser a new session (a new password keeps it signed in with one) gave it a new
 * token too, which the page then takes, once it has checked that the session is still its user's.
 */
let pageCsrfToken = readCookie('csrftoken')

/** @type {(() => void)[]} */
const otherLoginListeners = []
/** @type {(() => Promise<boolean>)[]} */
const sameUserChecks = []

/**
 * Called when a change is refused because the browser's login is no longer the one this page was drawn for.
 * @param {() => void} listener
 */
export function onOtherLogin(listener) {
  otherLoginListeners.push(listener)
}

/**
 * How the page tells that the browser's session is still its user's, asked before it takes a token a change of its
 * own brought: false, and the page is told of another login instead.
 * @param {() => Promise<boolean>} check
 */
export function checkSameUserWith(check) {
  sameUserChecks.push(check)
}

/** After a change this page made: a new token in the cookie is taken if the session is still the page's user's. */
async function takeNewToken() {
  const token = readCookie('csrftoken')
  if (!token || token === pageCsrfToken) return
  for (const check of sameUserChecks) {
    if (!(await check().catch(() => false))) {
      for (const listener of otherLoginListeners) listener()
      return
    }
  }
  pageCsrfToken = token
}

/**
 * Calls the API. `path` is relative to /api/gateway/v1/ unless it starts with "/": then it is a gateway path (`/api/`).
 * Resolves to the parsed JSON (null for 204, and for a redirect the caller accepts with `redirect: 'manual'`);
 * rejects with an ApiError the pages show to people.
 * @param {string} path
 * @param {{method?: string, body?: unknown, query?: Record<string, string | number | undefined>, signal?: AbortSignal, redirect?: RequestRedirect}} [options]
 * @returns {Promise<any>}
 */
export async function api(path, options = {}) {
  const method = options.method || 'GET'
  const url = new URL(path.startsWith('/') ? published(path) : API + path, location.origin)
  for (const [key, value] of Object.entries(options.query || {})) {
    if (value !== undefined && value !== '') url.searchParams.set(key, String(value))
  }
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json', ...SCRIPT_HEADERS }
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  if (!SAFE_METHODS.has(method)) {
    if (pageCsrfToken) headers['x-csrftoken'] = pageCsrfToken
  }
  let response
  try {
    response = await fetch(url, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: options.redirect ?? 'error',
      signal: options.signal,
    })
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error
    throw new ApiError(0, { code: 'network_error', detail: 'The gateway could not be reached. Check your connection and try again.' })
  }
  if (response.type === 'opaqueredirect') return null
  const type = response.headers.get('content-type') || ''
  const body = response.status === 204 || !type.includes('json') ? null : await response.json().catch(() => null)
  if (response.ok) {
    if (!SAFE_METHODS.has(method)) await takeNewToken()
    return body
  }
  const error = new ApiError(response.status, body && typeof body === 'object' ? body : {})
  if (response.status === 401) for (const listener of unauthenticatedListeners) listener(error)
  if (response.status === 403 && error.code === 'csrf_token_incorrect') for (const listener of otherLoginListeners) listener()
  throw error
}

/**
 * The user named `username` exactly, or undefined: never the first of an unfiltered list, which an empty name (the
 * query leaves empty values out) would ask for.
 * @param {string} username
 * @returns {Promise<any>}
 */
export async function userNamed(username) {
  if (!username) return undefined
  const found = await api('users/', { query: { username } })
  return found.results.find((/** @type {any} */ user) => user.username === username)
}

/**
 * The login page, coming back to `next` (this page by default) afterwards; `ended`: it tells the person that their
 * session has ended (what this page held unsent is gone).
 * @param {string} [next]
 * @param {{ended?: boolean}} [options]
 */
export function loginUrl(next = location.pathname + location.search, options = {}) {
  return `${LOGIN_URL}?next=${encodeURIComponent(next)}${options.ended ? '&ended=1' : ''}`
}
