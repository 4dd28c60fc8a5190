/** Text placed into server-rendered HTML is escaped here, whichever page renders it. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/**
 * Headers for a server-rendered page that no other page may frame: a framed login or confirmation page lets a page
 * on top of it steer the person's clicks (clickjacking). The services behind the gateway share its origin, so not
 * even this origin may frame them.
 */
export const UNFRAMED_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'x-frame-options': 'DENY',
  'content-security-policy': "frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
}
