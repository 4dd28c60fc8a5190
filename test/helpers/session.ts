import assert from 'node:assert/strict'
import type { TestGateway } from './gateway.ts'

/** Anything to log in at: the in-process gateway, or a spawned one wrapped with `at()`. */
export type Target = Pick<TestGateway, 'url' | 'fetch'>

export function at(url: string): Target {
  return { url, fetch: (path, init) => fetch(url + path, { redirect: 'manual', ...init }) }
}

export const LOGIN = '/api/gateway/v1/login/'

/** The value of a cookie in a response's Set-Cookie headers, with its attributes as written. */
export function setCookie(response: Response, name: string): { value: string; attributes: string } | undefined {
  for (const header of response.headers.getSetCookie()) {
    const [pair, ...rest] = header.split(';')
    const eq = pair!.indexOf('=')
    if (pair!.slice(0, eq).trim() === name) return { value: pair!.slice(eq + 1), attributes: rest.map((s) => s.trim()).join('; ') }
  }
  return undefined
}

/** GET the login page for a CSRF token, as a browser or curl does first. */
export async function csrfToken(gw: Target): Promise<string> {
  const response = await gw.fetch(LOGIN)
  assert.equal(response.status, 200)
  const token = setCookie(response, 'csrftoken')?.value
  assert.ok(token, 'the login page sets csrftoken')
  return token
}

export interface LoggedIn {
  sessionId: string
  /** The csrftoken after login (it rotates). */
  csrf: string
  /** A Cookie header carrying both cookies. */
  cookie: string
}

/** The documented login: CSRF token from GET, then the form POST with the token in header and cookie. */
export async function login(gw: Target, username: string, password: string, headers: Record<string, string> = {}): Promise<LoggedIn> {
  const token = await csrfToken(gw)
  const response = await gw.fetch(LOGIN, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrftoken': token, cookie: `csrftoken=${token}`, referer: gw.url + LOGIN, ...headers },
    body: new URLSearchParams({ username, password }).toString(),
  })
  assert.equal(response.status, 302, await response.text())
  const sessionId = setCookie(response, 'gateway_sessionid')?.value
  const csrf = setCookie(response, 'csrftoken')?.value
  assert.ok(sessionId && csrf)
  return { sessionId, csrf, cookie: `gateway_sessionid=${sessionId}; csrftoken=${csrf}` }
}

/** Headers for an unsafe request authenticated by a session, with the CSRF token as a script sends it. */
export function withCsrf(session: LoggedIn, extra: Record<string, string> = {}): Record<string, string> {
  return { cookie: session.cookie, 'x-csrftoken': session.csrf, ...extra }
}
