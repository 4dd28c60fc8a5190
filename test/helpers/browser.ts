/**
 * A real HTTP client that behaves like a browser where the sign-in tests need it to: it keeps cookies per
 * origin (honouring Path, Max-Age and Expires), follows redirects one hop at a time by their Location, and
 * sends a browser's Accept header. Every hop is recorded, so a test can show the whole redirect chain.
 */

export const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'

interface StoredCookie {
  value: string
  path: string
}

export interface Hop {
  method: string
  url: string
  status: number
  location?: string | undefined
}

export interface Page {
  response: Response
  url: string
  body: string
}

export class Browser {
  readonly #jar = new Map<string, Map<string, StoredCookie>>()
  readonly hops: Hop[] = []
  readonly accept: string
  /** Where requests go through: an undici Agent that trusts a test certificate, for an HTTPS site. */
  readonly #dispatcher: unknown

  constructor(accept = BROWSER_ACCEPT, dispatcher?: unknown) {
    this.accept = accept
    this.#dispatcher = dispatcher
  }

  /** One request, no redirect followed; cookies are sent and stored. */
  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const target = new URL(url)
    const headers: Record<string, string> = { accept: this.accept, 'user-agent': 'gatehouse-test-browser', ...init.headers }
    const cookie = this.cookieHeader(target)
    if (cookie) headers.cookie = cookie
    let body: string | undefined
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(init.form).toString()
    }
    const method = init.method ?? (init.form ? 'POST' : 'GET')
    const response = await fetch(target, { method, headers, body, redirect: 'manual', ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}) } as RequestInit)
    this.#store(target, response)
    this.hops.push({ method, url: target.href, status: response.status, location: response.headers.get('location') ?? undefined })
    return response
  }

  /**
   * Requests `url` and follows each redirect by hand (as a browser does: GET after 301/302/303) until a page
   * answers, or until the next Location satisfies `stopBefore`; then that Location is returned unfollowed.
   */
  async navigate(url: string, init: { method?: string; form?: Record<string, string>; stopBefore?: (url: string) => boolean } = {}): Promise<Page & { stoppedAt?: string }> {
    let response = await this.request(url, init)
    let current = url
    for (let hop = 0; hop < 20; hop++) {
      const location = response.headers.get('location')
      if (response.status < 300 || response.status >= 400 || !location) return { response, url: current, body: await response.text() }
      await response.arrayBuffer()
      const next = new URL(location, current).href
      if (init.stopBefore?.(next)) return { response, url: current, body: '', stoppedAt: next }
      current = next
      response = await this.request(current)
    }
    throw new Error(`too many redirects, last: ${current}`)
  }

  /** Submits the page's first form (hidden fields included) with `fields` filled in, and follows the redirects. */
  async submit(page: Page, fields: Record<string, string>, options: { stopBefore?: (url: string) => boolean } = {}): Promise<Page & { stoppedAt?: string }> {
    const form = parseForm(page.body)
    return this.navigate(new URL(form.action, page.url).href, { form: { ...form.fields, ...fields }, ...options })
  }

  cookie(url: string, name: string): string | undefined {
    return this.#jar.get(new URL(url).origin)?.get(name)?.value
  }

  /** Drops a cookie, as a browser whose user cleared it does. */
  forget(url: string, name: string): void {
    this.#jar.get(new URL(url).origin)?.delete(name)
  }

  cookieHeader(url: URL): string {
    const cookies = this.#jar.get(url.origin)
    if (!cookies) return ''
    return [...cookies].filter(([, c]) => pathMatches(url.pathname, c.path)).map(([name, c]) => `${name}=${c.value}`).join('; ')
  }

  #store(url: URL, response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair, ...attributes] = header.split(';').map((part) => part.trim())
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq)
      const value = pair!.slice(eq + 1)
      let path = url.pathname.replace(/[^/]*$/, '') || '/'
      let expired = false
      for (const attribute of attributes) {
        const [key, ...rest] = attribute.split('=')
        const lower = key!.toLowerCase()
        const attributeValue = rest.join('=')
        if (lower === 'path') path = attributeValue || '/'
        if (lower === 'max-age' && Number(attributeValue) <= 0) expired = true
        if (lower === 'expires' && Date.parse(attributeValue) <= Date.now()) expired = true
      }
      const cookies = this.#jar.get(url.origin) ?? new Map<string, StoredCookie>()
      this.#jar.set(url.origin, cookies)
      if (expired) cookies.delete(name)
      else cookies.set(name, { value, path })
    }
  }
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true
  return requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/')
}

/** The first form of a page: its action and its named inputs' values. */
export function parseForm(html: string): { action: string; fields: Record<string, string> } {
  const form = /<form[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html)
  if (!form) throw new Error(`no form on the page:\n${html.slice(0, 500)}`)
  const fields: Record<string, string> = {}
  for (const input of form[2]!.matchAll(/<input\b[^>]*>/gi)) {
    const name = /\bname="([^"]*)"/.exec(input[0])?.[1]
    if (name) fields[name] = unescapeHtml(/\bvalue="([^"]*)"/.exec(input[0])?.[1] ?? '')
  }
  return { action: unescapeHtml(form[1]!), fields }
}

/** The href of each link on a page whose text matches. */
export function linksTo(html: string, text: RegExp): string[] {
  return [...html.matchAll(/<a\b[^>]*\bhref="([^"]*)"[^>]*>([\s\S]*?)<\/a>/gi)].filter((m) => text.test(m[2]!)).map((m) => unescapeHtml(m[1]!))
}

function unescapeHtml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (_, entity: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[entity]!)
}
