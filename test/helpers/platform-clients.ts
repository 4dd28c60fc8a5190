import { request } from 'undici'

/**
 * The requests the automation platform's own clients send, read from their public source, so the suite can
 * reproduce them without installing the clients.
 *
 * `CollectionClient` sends what the `ansible.platform` collection's AAPModule (plugins/module_utils/aap_module.py)
 * sends: every request carries `Referer`, `Content-Type: application/json`, `Accept: application/json` and a JSON
 * body (`{}` when there is nothing to send, GET included); it first GETs the API root twice without credentials,
 * then adds basic credentials or the bearer token. Its session keeps the cookies answers set (a CookieJar: the
 * roots' `csrftoken`) and sends them back with every request, without an `X-CSRFToken` header.
 */
export class CollectionClient {
  readonly #base: string
  readonly #credential: { username: string; password: string } | { token: string }
  readonly #checkMode: boolean
  #authorization: string | undefined
  readonly #cookies = new Map<string, string>()
  /** Every request that reached the server, as `METHOD /path?query`, so a test can compare a run with the module's. */
  readonly sent: string[] = []

  /** In check mode (`--check`), make_request_raw_reponse stops at the first POST, PUT, PATCH or DELETE and reports a change. */
  constructor(base: string, credential: { username: string; password: string } | { token: string }, options: { checkMode?: boolean } = {}) {
    this.#base = base
    this.#credential = credential
    this.#checkMode = options.checkMode ?? false
  }

  /** build_url: an endpoint without /api/ is under /api/gateway/v1/, and every path ends with a slash. */
  url(endpoint: string, query?: Record<string, string | number>): string {
    let path = /^https?:\/\//.test(endpoint) ? '/' + endpoint.split('/').slice(3).join('/') : endpoint
    if (!path.startsWith('/')) path = `/${path}`
    if (!path.startsWith('/api/')) path = `/api/gateway/v1${path}`
    if (!path.endsWith('/') && !path.includes('?')) path += '/'
    const search = query ? `?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]))}` : ''
    return this.#base + path + search
  }

  async authenticate(): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const root = await this.send('GET', '')
      if (root.status >= 400) throw new Error(`the collection gives up: the API root answered ${root.status}`)
    }
    this.#authorization = 'token' in this.#credential
      ? `Bearer ${this.#credential.token}`
      : `Basic ${Buffer.from(`${this.#credential.username}:${this.#credential.password}`).toString('base64')}`
  }

  async send(method: string, endpoint: string, data: unknown = {}, query?: Record<string, string | number>): Promise<{ status: number; json: any }> {
    if (this.#checkMode && ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) throw new CheckModeExit(method, endpoint)
    const url = this.url(endpoint, query)
    this.sent.push(`${method} ${url.slice(this.#base.length)}`)
    const response = await request(url, {
      method: method as 'GET',
      headers: {
        referer: this.#base,
        'content-type': 'application/json',
        accept: 'application/json',
        ...(this.#authorization ? { authorization: this.#authorization } : {}),
        ...(this.#cookies.size ? { cookie: [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ') } : {}),
      },
      body: JSON.stringify(data),
    })
    const setCookie = response.headers['set-cookie']
    keepCookies(this.#cookies, setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie])
    const text = await response.body.text()
    return { status: response.statusCode, json: text ? JSON.parse(text) : {} }
  }

  /** get_one: a search by the endpoint's identity field, or by `or__id` and `or__<field>` when the value is a number. */
  async getOne(endpoint: string, options: { nameOrId?: string; nameField?: string; data?: Record<string, string | number> } = {}): Promise<any> {
    const query: Record<string, string | number> = { ...options.data }
    if (options.nameOrId !== undefined) {
      const field = options.nameField ?? 'name'
      if (/^-?[0-9]+$/.test(options.nameOrId)) {
        query.or__id = Number(options.nameOrId)
        query[`or__${field}`] = options.nameOrId
      } else {
        query[field] = options.nameOrId
      }
    }
    const { status, json } = await this.send('GET', endpoint, {}, query)
    if (status !== 200) throw new Error(`get_one ${endpoint}: ${status} ${JSON.stringify(json)}`)
    if (!('count' in json) || !('results' in json)) throw new Error('The endpoint did not provide count and results')
    if (json.count > 1) throw new Error(`get_one ${endpoint}: ${json.count} items, expected 1`)
    return json.count === 0 ? undefined : json.results[0]
  }

  /** delete_if_needed: DELETE the item's own `url`; 202 and 204 are success. */
  async deleteIfNeeded(item: { url: string }): Promise<number> {
    return (await this.send('DELETE', item.url)).status
  }

  /**
   * create_or_update_if_needed: POST when nothing was found; otherwise PATCH the item's `url` with every field the
   * module sets, but only when objects_could_be_different finds one that differs. `changed` is what the module reports.
   */
  async createOrUpdateIfNeeded(endpoint: string, existing: any, wanted: Record<string, unknown>, options: { updateSecrets?: boolean } = {}): Promise<{ changed: boolean; item: any; status: number }> {
    if (!existing) {
      const created = await this.send('POST', endpoint, wanted)
      if (created.status !== 200 && created.status !== 201) throw new Error(`Unable to create ${endpoint}: ${created.status} ${JSON.stringify(created.json)}`)
      return { changed: true, item: created.json, status: created.status }
    }
    const updateSecrets = options.updateSecrets ?? true
    if (!objectsCouldBeDifferent(existing, wanted, undefined, updateSecrets)) return { changed: false, item: existing, status: 0 }
    const patched = await this.send('PATCH', existing.url, wanted)
    if (patched.status !== 200) throw new Error(`Unable to update ${existing.url}: ${patched.status} ${JSON.stringify(patched.json)}`)
    return { changed: objectsCouldBeDifferent(existing, patched.json, Object.keys(wanted), updateSecrets), item: patched.json, status: patched.status }
  }
}

/** A cookie jar's part: each Set-Cookie line's name and value, kept to be sent back. */
function keepCookies(jar: Map<string, string>, setCookieLines: readonly string[]): void {
  for (const line of setCookieLines) {
    const [pair] = line.split(';')
    const separator = pair!.indexOf('=')
    jar.set(pair!.slice(0, separator).trim(), pair!.slice(separator + 1).trim())
  }
}

/** What the module's check mode does at the first request that would change something: it exits, reporting a change. */
export class CheckModeExit extends Error {
  constructor(method: string, endpoint: string) {
    super(`check mode: ${method} ${endpoint} not sent`)
  }
}

/**
 * objects_could_be_different: Python's `==` on each field the module sets (lists in order); a field that differs
 * counts with the module's `update_secrets` (its default, true), and otherwise only where fields_could_be_same finds
 * it known to differ, `$encrypted$` standing for any value.
 */
export function objectsCouldBeDifferent(old: Record<string, unknown>, wanted: Record<string, unknown>, fields = Object.keys(wanted).filter((f) => !['modified', 'related', 'summary_fields'].includes(f)), updateSecrets = true): boolean {
  return fields.some((field) => JSON.stringify(old[field] ?? null) !== JSON.stringify(wanted[field] ?? null) && (updateSecrets || !fieldsCouldBeSame(old[field] ?? null, wanted[field] ?? null)))
}

/** fields_could_be_same: `$encrypted$` in the old value matches anything; objects key by key. */
function fieldsCouldBeSame(old: unknown, wanted: unknown): boolean {
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
  if (isObject(old) && isObject(wanted)) {
    const keys = Object.keys(wanted)
    return JSON.stringify(Object.keys(old).sort()) === JSON.stringify([...keys].sort()) && keys.every((key) => fieldsCouldBeSame(old[key], wanted[key]))
  }
  return old === '$encrypted$' || JSON.stringify(old) === JSON.stringify(wanted)
}

/**
 * What awxkit's `get_oauth2_token()` sends (awxkit/api/pages/base.py): with a client id, the password grant as a
 * form to `/o/token/` (client id in the form, or with its secret as basic credentials), reading `access_token`;
 * without one, a JSON POST to the gateway's tokens/ with basic credentials, reading `token`.
 */
export async function awxkitOauth2Token(base: string, options: { username: string; password: string; clientId?: string; clientSecret?: string; scope?: string }): Promise<{ status: number; token: string | undefined; body: any }> {
  const scope = options.scope ?? 'write'
  let response
  if (options.clientId) {
    const form = new URLSearchParams({ grant_type: 'password', username: options.username, password: options.password, scope })
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
    if (options.clientSecret) headers.authorization = `Basic ${Buffer.from(`${options.clientId}:${options.clientSecret}`).toString('base64')}`
    else form.set('client_id', options.clientId)
    response = await fetch(`${base}/o/token/`, { method: 'POST', headers, body: form })
  } else {
    response = await fetch(`${base}/api/gateway/v1/tokens/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}` },
      body: JSON.stringify({ description: 'AWX CLI', application: null, scope }),
    })
  }
  const body: any = await response.json().catch(() => ({}))
  return { status: response.status, token: response.ok ? (options.clientId ? body.access_token : body.token) : undefined, body }
}

/**
 * awxkit's Connection (awxkit/api/client.py) with sessions (`AWXKIT_SESSIONS`, and the CLI without a token): a
 * requests.Session whose cookie jar keeps what the server sets. load_session GETs the API base for the `csrftoken`
 * cookie, then POSTs the form `username`, `password`, `next` to `<base>login/`, following redirects, and takes the
 * session cookie's name from an `X-API-Session-Cookie-Name` header of the responses it followed (else `sessionid`).
 * Every unsafe request carries `X-CSRFToken` from the jar and the request's own URL as `Referer`.
 */
export class AwxkitSession {
  readonly #server: string
  readonly cookies = new Map<string, string>()
  sessionCookieName = 'sessionid'
  /** The session's `auth` (Connection.login with a token, or `AWXKIT_FORCE_BASIC_AUTH`): sent with every request. */
  authorization: string | undefined

  constructor(server: string) {
    this.#server = server
  }

  async request(method: string, path: string, options: { json?: unknown; form?: Record<string, string> } = {}): Promise<Response> {
    let url = `${this.#server}${path}`
    const headers: Record<string, string> = this.authorization ? { authorization: this.authorization } : {}
    let body: string | undefined
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(options.json)
    } else if (options.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(options.form).toString()
    }
    if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) {
      // requests leaves out a header whose value is None: without the cookie there is no X-CSRFToken at all.
      const csrfToken = this.cookies.get('csrftoken')
      if (csrfToken !== undefined) headers['x-csrftoken'] = csrfToken
      headers.referer = url
    }
    for (let redirects = 0; ; redirects++) {
      const response = await fetch(url, { method, headers: { ...headers, cookie: [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ') }, body, redirect: 'manual' })
      keepCookies(this.cookies, response.headers.getSetCookie())
      const location = response.headers.get('location')
      if (response.status < 300 || response.status >= 400 || !location || redirects === 30) return response
      if (response.headers.has('x-api-session-cookie-name')) this.sessionCookieName = response.headers.get('x-api-session-cookie-name')!
      await response.arrayBuffer()
      // requests turns a POST answered with 302 or 303 into a GET without a body.
      url = new URL(location, url).href
      method = 'GET'
      body = undefined
      delete headers['content-type']
    }
  }

  /** Api().load_session(): returns the login response, after the redirects it followed. */
  async loadSession(basePath: string, username: string, password: string): Promise<Response> {
    await (await this.request('GET', basePath)).arrayBuffer()
    return this.request('POST', `${basePath}login/`, { form: { username, password, next: basePath } })
  }
}
