import { hash } from 'node:crypto'

/** Text placed into server-rendered HTML is escaped here, whichever page renders it. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/**
 * Headers for a server-rendered page that no other page may frame: a framed login or confirmation page lets a page
 * on top of it steer the person's clicks (clickjacking). The services behind the gateway share its origin, so not
 * even this origin may frame them. The page loads nothing and runs no script but the `inlineScripts` named (by
 * hash), so markup that ever slipped past escaping would run nothing. No `form-action`: the realm's forms end in
 * a redirect to the application, which browsers hold to it too.
 */
export function unframedPageHeaders(inlineScripts: readonly string[] = []): Readonly<Record<string, string>> {
  const scripts = inlineScripts.map((script) => `'sha256-${hash('sha256', script, 'base64')}'`)
  return {
    'x-frame-options': 'DENY',
    'content-security-policy': `default-src 'none'; script-src ${scripts.join(' ') || "'none'"}; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'`,
    'x-content-type-options': 'nosniff',
  }
}

export const UNFRAMED_PAGE_HEADERS = unframedPageHeaders()
