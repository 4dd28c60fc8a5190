import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { mock } from 'node:test'
import { ADMIN_PASSWORD, type GatewayOptions, type TestGateway } from './gateway.ts'

export const REALM = 'platform'
export const CLIENT_REDIRECT = 'http://127.0.0.1:9/callback'
export const SERVICE_SECRET = 'reports-secret-0123456789'

/**
 * The demo realm plus what the tests need besides it: a redirect URI for the public client, and a confidential
 * client `reports` with a service account, single-use refresh tokens, and tokens meant for `demo-app` too.
 */
export const testRealms = [{
  name: REALM,
  clients: [
    { client_id: 'end-users', public_client: true, direct_access_grants: true, redirect_uris: [CLIENT_REDIRECT] },
    { client_id: 'reports', public_client: false, secret: SERVICE_SECRET, service_accounts: true, direct_access_grants: true, refresh_token_rotation: true, redirect_uris: [CLIENT_REDIRECT], audiences: ['demo-app'] },
    { client_id: 'browser-only', public_client: true, redirect_uris: [CLIENT_REDIRECT] },
  ],
}]

/** The test realm with more clients (and other realm options), as `config.realms`. */
export function realmWith(clients: Record<string, unknown>[], options: Record<string, unknown> = {}): Record<string, unknown>[] {
  return [{ ...testRealms[0], ...options, clients: [...testRealms[0]!.clients, ...clients] }]
}

export function realmUrl(gw: TestGateway, path = ''): string {
  return `${gw.url}/realms/${REALM}${path}`
}

export const TOKEN_PATH = `/realms/${REALM}/protocol/openid-connect/token`

/** The status of the admin's password grant at `/o/token/` for an OAuth2 application, its id and secret in HTTP basic. */
export async function applicationGrantStatus(gw: Pick<TestGateway, 'fetch'>, clientId: string, secret: string): Promise<number> {
  return (await gw.fetch('/o/token/', {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, scope: 'read' }),
  })).status
}

/** POSTs a form to the token endpoint, as curl --data-urlencode does. */
export async function tokenRequest(gw: TestGateway, form: Record<string, string> | URLSearchParams, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const response = await gw.fetch(TOKEN_PATH, { method: 'POST', headers, body: form instanceof URLSearchParams ? form : new URLSearchParams(form) })
  return { status: response.status, headers: response.headers, body: await response.json() }
}

export async function passwordLogin(gw: TestGateway, username: string, password: string, extra: Record<string, string> = {}): Promise<any> {
  const { status, body } = await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username, password, ...extra })
  if (status !== 200) throw new Error(`password grant failed: ${status} ${JSON.stringify(body)}`)
  return body
}

export function decodeJwtPart(jwt: string, part: 0 | 1): any {
  return JSON.parse(Buffer.from(jwt.split('.')[part]!, 'base64url').toString('utf8'))
}

/** Just enough of a browser's cookie jar to walk the login form: every cookie goes back to the same host. */
export class CookieJar {
  readonly #cookies = new Map<string, string>()
  readonly #setCookies: string[] = []

  store(response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      this.#setCookies.push(line)
      const [pair] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.#cookies.delete(name)
      else this.#cookies.set(name, value)
    }
  }

  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }

  /** Every Set-Cookie line received, with its attributes. */
  setCookies(): string[] {
    return [...this.#setCookies]
  }
}

/**
 * Follows redirects by hand with the jar, until a response is not a redirect or leaves the gateway. `everyHop`: headers
 * sent on every request, as a proxy in front adds them.
 */
export async function browse(gw: TestGateway, jar: CookieJar, url: string, init: RequestInit & { everyHop?: Record<string, string> } = {}): Promise<{ response: Response; url: string }> {
  const { everyHop, ...first } = init
  let current = url
  let options: RequestInit = first
  for (let hops = 0; hops < 10; hops++) {
    const response = await fetch(current, { ...options, redirect: 'manual', headers: { ...everyHop, ...(options.headers as Record<string, string>), cookie: jar.header(), accept: 'text/html' } })
    jar.store(response)
    const location = response.headers.get('location')
    if (response.status < 300 || response.status >= 400 || !location) return { response, url: current }
    const next = new URL(location, current).href
    if (!next.startsWith(gw.url)) return { response, url: next }
    current = next
    options = {}
  }
  throw new Error('too many redirects')
}

/** Posts a page's form (its hidden fields, and these) as a browser would. */
export async function submitForm(gw: TestGateway, jar: CookieJar, page: { response: Response; url: string }, fields: Record<string, string>): Promise<{ response: Response; url: string }> {
  const html = await page.response.text()
  const action = /<form[^>]*method="post"[^>]*action="([^"]+)"|<form[^>]*action="([^"]+)"[^>]*method="post"/.exec(html)
  const form = new URLSearchParams([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m): [string, string] => [m[1]!, m[2]!]))
  for (const [key, value] of Object.entries(fields)) form.set(key, value)
  return browse(gw, jar, new URL(action![1] ?? action![2]!, page.url).href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() })
}

/**
 * Signs `username` in at the test realm's login page for a public client (`end-users` unless told), as a browser
 * does, and returns the token request that redeems the code it got (PKCE S256).
 */
export async function codeRedemption(gw: TestGateway, username: string, password: string, clientId = 'end-users'): Promise<URLSearchParams> {
  const verifier = randomBytes(32).toString('base64url')
  const challenge = createHash('sha256').update(verifier).digest('base64url')
  const jar = new CookieJar()
  const page = await browse(gw, jar, realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: clientId, response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256' })}`))
  const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
  const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password }).toString() })
  const code = new URL(done.url).searchParams.get('code')!
  return new URLSearchParams({ client_id: clientId, grant_type: 'authorization_code', code, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
}

/**
 * A browser signed in at the test realm's login page for `end-users` (PKCE S256): its jar, the authorization URL
 * it asks (with `extra` parameters), the code verifier, and the code its sign-in brought back.
 */
export async function signedInBrowser(gw: TestGateway, username: string, password: string): Promise<{ jar: CookieJar; authorize(extra?: Record<string, string>): string; verifier: string; code: string }> {
  const verifier = randomBytes(32).toString('base64url')
  const challenge = createHash('sha256').update(verifier).digest('base64url')
  const authorize = (extra: Record<string, string> = {}) => realmUrl(gw, `/protocol/openid-connect/auth?${new URLSearchParams({ client_id: 'end-users', response_type: 'code', scope: 'openid', redirect_uri: CLIENT_REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', ...extra })}`)
  const jar = new CookieJar()
  const page = await browse(gw, jar, authorize())
  const action = /<form method="post" action="([^"]+)"/.exec(await page.response.text())![1]!
  const done = await browse(gw, jar, gw.url + action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password }).toString() })
  return { jar, authorize, verifier, code: new URL(done.url).searchParams.get('code')! }
}

export interface TokenAnswer {
  status: number
  /** As sent, in order, names in their case, without Date, and X-Request-Id's value as `(id)`. */
  rawHeaders: string[]
  body: Record<string, any>
}

/** A token request as written, so that the answers' raw headers can be compared. */
export function postToken(gw: TestGateway, body: string, headers: Record<string, string> = {}): Promise<TokenAnswer> {
  const url = new URL(gw.url)
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: TOKEN_PATH, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (text += chunk))
      response.on('end', () => {
        const rawHeaders: string[] = []
        for (let i = 0; i < response.rawHeaders.length; i += 2) {
          const name = response.rawHeaders[i]!
          // Every answer has a request id of its own: where it is, and that it is there, is what compares.
          if (name !== 'Date') rawHeaders.push(`${name}: ${name.toLowerCase() === 'x-request-id' ? '(id)' : response.rawHeaders[i + 1]}`)
        }
        resolve({ status: response.statusCode!, rawHeaders, body: JSON.parse(text) })
      })
    })
    request.on('error', reject)
    request.end(body)
  })
}

/** The seconds of a 429 answer's Retry-After. */
export function retryAfterOf(answer: TokenAnswer): number {
  return Number(/^retry-after: (\d+)$/i.exec(answer.rawHeaders.find((header) => /^retry-after:/i.test(header)) ?? '')?.[1])
}

/** A token request refused 429 `client_tokens_throttled` for too many tokens, told to wait at most `windowSeconds`. */
export function assertTokensThrottled(answer: TokenAnswer, windowSeconds: number): void {
  assert.equal(answer.status, 429, JSON.stringify(answer.body))
  assert.equal(answer.body.error, 'client_tokens_throttled')
  assert.match(answer.body.error_description, /too many tokens/)
  assert.equal(answer.body.access_token, undefined)
  const retryAfter = retryAfterOf(answer)
  assert.ok(retryAfter >= 1 && retryAfter <= windowSeconds, `Retry-After: ${retryAfter}`)
}

/** Claims and record members that differ between any two tokens, or any two sessions. */
const PER_TOKEN = new Set(['jti', 'iat', 'exp', 'at_hash', 'sid', 'session_state', 'grantId', 'sessionUid', 'iiat', 'authTime', 'auth_time'])

/** A token's claims or a record's payload without what each token or session has its own of, at any depth. */
export function shared(value: Record<string, unknown>): Record<string, unknown> {
  const plain = (member: unknown) => member !== null && typeof member === 'object' && !Array.isArray(member)
  return Object.fromEntries(Object.entries(without(value, PER_TOKEN)).map(([name, member]) => [name, plain(member) ? shared(member as Record<string, unknown>) : member]))
}

/**
 * Equal token answers of a shortcut and of oidc-provider: status, headers, members, and each token's header, claims
 * and lifetime but for what each token or session has its own of.
 */
export function assertSameTokenAnswers(shortcut: TokenAnswer, provider: TokenAnswer): void {
  assert.equal(shortcut.status, provider.status)
  assert.deepEqual(shortcut.rawHeaders, provider.rawHeaders)
  assert.deepEqual(Object.keys(shortcut.body), Object.keys(provider.body))
  const tokens = new Set(['access_token', 'refresh_token', 'id_token', 'session_state'])
  assert.deepEqual(without(shortcut.body, tokens), without(provider.body, tokens))
  if (shortcut.status !== 200) return
  for (const name of ['access_token', 'refresh_token', 'id_token']) {
    if (provider.body[name] === undefined) continue
    assert.deepEqual(decodeJwtPart(shortcut.body[name], 0), decodeJwtPart(provider.body[name], 0), `${name} header`)
    const [claims, expected] = [decodeJwtPart(shortcut.body[name], 1), decodeJwtPart(provider.body[name], 1)]
    assert.deepEqual(Object.keys(claims), Object.keys(expected), `${name} claims`)
    assert.deepEqual(shared(claims), shared(expected), `${name} claims`)
    assert.equal(claims.exp - claims.iat, expected.exp - expected.iat, `${name} lifetime`)
  }
}

/**
 * A member oidc-provider ignores (it reads only the grant's parameters) and the token endpoint's shortcuts do not
 * take: the same request, answered by oidc-provider.
 */
export const TO_PROVIDER = '&ignored=1'

/** The object without the named members. */
export function without(object: Record<string, unknown>, names: Set<string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([name]) => !names.has(name)))
}


/** The client only members of the team Operators may sign in to, in `startForShortcuts`'s realm. */
export const GUARDED = 'operators-console'
/** The password of each of `startForShortcuts`'s users. */
export const password = (name: string) => `${name}-password-long`

/**
 * A gateway for comparing the token endpoint's shortcuts with oidc-provider: the test realm with `GUARDED`, the users
 * erin, frank and operator, and the count of the grants oidc-provider itself answers.
 */
export async function startForShortcuts(backend: { start(options: GatewayOptions): Promise<TestGateway> }): Promise<{ gw: TestGateway; providerGrants: { readonly count: number } }> {
  const gw = await backend.start({
    config: { realms: realmWith([{ client_id: GUARDED, public_client: true, direct_access_grants: true, access: [{ allow: { teams: ['Operators'] } }] }]) },
  })
  for (const name of ['erin', 'frank', 'operator']) await gw.app.accounts.create({ username: name, password: password(name) })
  return { gw, providerGrants: watchProviderGrants(gw) }
}

/**
 * Counts the grants oidc-provider itself answers in the test realm (its `grant.success` event), which a shortcut
 * beside it does not send.
 */
export function watchProviderGrants(gw: TestGateway): { readonly count: number } {
  return watchProviderEvent(gw, 'grant.success')
}

/**
 * Counts an event of oidc-provider's in the test realm (`server_error`: the failures it answered itself). The realm
 * builds its provider again when its keys are read again (as after start): every one is watched.
 */
export function watchProviderEvent(gw: TestGateway, event: string): { readonly count: number } {
  const events = { count: 0 }
  const realm = gw.app.oidc.get(REALM)!
  const build = realm.provider.bind(realm)
  const watched = new WeakSet<object>()
  mock.method(realm, 'provider', async () => {
    const built = await build()
    if (!watched.has(built.instance)) {
      watched.add(built.instance)
      ;(built.instance as unknown as NodeJS.EventEmitter).on(event, () => events.count++)
    }
    return built
  })
  return events
}

/** Sends each request whole but for its body's last byte, then every last byte together; the raw answers. */
export async function allAtOnce(gw: TestGateway, requests: { url: string; cookie: string; body: string }[]): Promise<string[]> {
  const { port, host } = new URL(gw.url)
  const sockets = await Promise.all(requests.map(async ({ url, cookie, body }) => {
    const socket = connect(Number(port), '127.0.0.1')
    await once(socket, 'connect')
    const target = new URL(url)
    socket.write(`POST ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${host}\r\ncookie: ${cookie}\r\naccept: text/html\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body.slice(0, -1)}`)
    return { socket, last: body.slice(-1) }
  }))
  await new Promise((resolve) => setTimeout(resolve, 300))
  return Promise.all(sockets.map(({ socket, last }) => {
    const read: Buffer[] = []
    socket.on('data', (chunk: Buffer) => read.push(chunk))
    socket.write(last)
    return once(socket, 'close').then(() => Buffer.concat(read).toString())
  }))
}

/** The action and fields a page's form posts. */
export async function formOf(page: { response: Response; url: string }): Promise<{ url: string; fields: URLSearchParams }> {
  const html = await page.response.text()
  const action = /<form[^>]*action="([^"]+)"/.exec(html)![1]!.replaceAll('&amp;', '&')
  return { url: new URL(action, page.url).href, fields: new URLSearchParams([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m): [string, string] => [m[1]!, m[2]!])) }
}
