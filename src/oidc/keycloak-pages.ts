import { hash } from 'node:crypto'
import type { FastifyReply } from 'fastify'
import type { Realm } from './realm.ts'
import { webOriginAllowed } from './redirects.ts'

/**
 * The small pages keycloak-js loads in hidden iframes (Keycloak's ThirdPartyCookiesIframeEndpoint and
 * LoginStatusIframeEndpoint): without them `init()` waits for an answer that never comes. They behave as
 * Keycloak's do; the scripts are Gatehouse's own.
 * - `3p-cookies/step1.html` and `step2.html`: can this browser use the realm's cookies inside another site's
 *   page? keycloak-js turns the session checks below off when it cannot.
 * - `login-status-iframe.html`: answers keycloak-js's periodic "<client_id> <sid>" message with `unchanged`,
 *   `changed` or `error`, by comparing the token's `sid` with the `KEYCLOAK_SESSION` cookie (its SHA-256),
 *   once `login-status-iframe.html/init` has said the embedding page's origin is one of the client's web origins.
 */

export const THIRD_PARTY_STEP1 = '/protocol/openid-connect/3p-cookies/step1.html'
export const THIRD_PARTY_STEP2 = '/protocol/openid-connect/3p-cookies/step2.html'
export const LOGIN_STATUS_IFRAME = '/protocol/openid-connect/login-status-iframe.html'
export const LOGIN_STATUS_INIT = `${LOGIN_STATUS_IFRAME}/init`

/**
 * Whether the frame may use the realm's cookies, where the browser has the Storage Access API (older browsers are
 * tried directly). Only asked, as Keycloak's pages ask: requesting access needs a click in the frame, which a hidden
 * frame never gets, and every refusal was an error in the application's console.
 */
const STORAGE_ACCESS = `
async function storageAccess() {
  if (!('hasStorageAccess' in document)) return true
  return document.hasStorageAccess()
}`

const STEP1_SCRIPT = `${STORAGE_ACCESS}
storageAccess().then((granted) => {
  if (!granted) return parent.postMessage('unsupported', '*')
  document.cookie = 'KEYCLOAK_3P_COOKIE_SAMESITE=supported; Max-Age=60; SameSite=None; Secure'
  document.cookie = 'KEYCLOAK_3P_COOKIE=supported; Max-Age=60'
  location.href = 'step2.html'
})`

/**
 * Step 1 in a page of another site (Sec-Fetch-Site: cross-site): the realm's session cookies are SameSite=Lax, so
 * the hidden frame of keycloak-js's silent check-sso would carry none and always find the browser signed out, where
 * Keycloak's SameSite=None cookies let it through. Told "unsupported", keycloak-js checks with a top-level redirect
 * instead (silentCheckSsoFallback, on by default), which carries them. Pages of the same site are not affected.
 */
const CROSS_SITE_STEP1_SCRIPT = `parent.postMessage('unsupported', '*')`

const STEP2_SCRIPT = `
const supported = document.cookie.includes('KEYCLOAK_3P_COOKIE')
if (supported) {
  document.cookie = 'KEYCLOAK_3P_COOKIE_SAMESITE=; Max-Age=0'
  document.cookie = 'KEYCLOAK_3P_COOKIE=; Max-Age=0'
}
parent.postMessage(supported ? 'supported' : 'unsupported', '*')`

const STATUS_SCRIPT = `${STORAGE_ACCESS}
let allowed
let asked = false

function sessionCookie() {
  for (const part of document.cookie.split(';')) {
    const [name, value] = part.split('=').map((s) => s.trim())
    if (name === 'KEYCLOAK_SESSION') return value
  }
  return null
}

async function sha256(text) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)))
  return btoa(String.fromCharCode(...digest)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '')
}

async function status(clientId, origin, sid) {
  if (!(await storageAccess())) return 'error'
  if (!allowed) {
    // One check per iframe: a page that sends other client ids cannot make it ask again and again.
    if (asked) return 'error'
    asked = true
    const url = new URL(location.origin + location.pathname + '/init')
    url.searchParams.set('client_id', clientId)
    url.searchParams.set('origin', origin)
    const response = await fetch(url)
    if (!response.ok) return 'error'
    allowed = { clientId, origin }
  }
  if (clientId !== allowed.clientId || origin !== allowed.origin) return 'error'
  const cookie = sessionCookie()
  if (!cookie) return sid === '' ? 'unchanged' : 'changed'
  return cookie === await sha256(sid) ? 'unchanged' : 'changed'
}

addEventListener('message', async (event) => {
  if (typeof event.data !== 'string') return
  const parts = event.data.split(' ')
  if (parts.length !== 2) return
  event.source.postMessage(await status(parts[0], event.origin, parts[1]), event.origin)
})`

interface Page {
  html: string
  csp: string
}

function page(script: string, connect: boolean): Page {
  const digest = hash('sha256', script, 'base64')
  return {
    html: `<!doctype html><html><head><meta charset="utf-8"></head><body><script type="module">${script}</script></body></html>`,
    // Framed by any site (keycloak-js runs on the application's pages); scripts only these, network only to the realm.
    csp: `default-src 'none'; script-src 'sha256-${digest}'; connect-src ${connect ? "'self'" : "'none'"}; base-uri 'none'; form-action 'none'`,
  }
}

const CROSS_SITE_STEP1 = page(CROSS_SITE_STEP1_SCRIPT, false)

const PAGES: ReadonlyMap<string, Page> = new Map([
  [THIRD_PARTY_STEP1, page(STEP1_SCRIPT, false)],
  [THIRD_PARTY_STEP2, page(STEP2_SCRIPT, false)],
  [LOGIN_STATUS_IFRAME, page(STATUS_SCRIPT, true)],
])

/** Whether `path` (under the realm) is one of these pages or the status iframe's `init` check. */
export function isIframePath(path: string): boolean {
  return PAGES.has(path) || path === LOGIN_STATUS_INIT
}

export function sendIframePage(realm: Realm, path: string, query: URLSearchParams, reply: FastifyReply): FastifyReply {
  if (path === LOGIN_STATUS_INIT) return loginStatusInit(realm, query, reply)
  const found = path === THIRD_PARTY_STEP1 && reply.request.headers['sec-fetch-site'] === 'cross-site' ? CROSS_SITE_STEP1 : PAGES.get(path)!
  // Keycloak answers a `version` other than its own 404, and caches none when there is no version.
  if (query.has('version')) return reply.code(404).header('cache-control', 'no-store').send()
  // Vary: a cache must not give one site's frame the other's step 1.
  if (path === THIRD_PARTY_STEP1) reply.header('vary', 'Sec-Fetch-Site')
  return reply.header('content-security-policy', found.csp).header('cache-control', 'no-cache')
    .header('referrer-policy', 'no-referrer').header('x-content-type-options', 'nosniff').type('text/html; charset=utf-8').send(found.html)
}

/** 204 when the client exists and the origin is one of its web origins (or the realm's own), 403 otherwise. */
function loginStatusInit(realm: Realm, query: URLSearchParams, reply: FastifyReply): FastifyReply {
  const client = realm.client(query.get('client_id') ?? '')
  const origin = query.get('origin') ?? ''
  const allowed = client !== undefined && (origin === new URL(realm.issuer).origin || webOriginAllowed(client, origin))
  return reply.code(allowed ? 204 : 403).header('cache-control', 'no-store').send()
}
