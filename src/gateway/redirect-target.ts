/**
 * The one decision every redirect to a client-supplied target makes (`next` after a login or a single sign-on):
 * whether the target stays on Gatehouse's own origin, so that no login is an open redirect.
 */

/** Longer targets are not pages anyone links to; the pending sign-on stores at most this much. */
export const MAX_REDIRECT_TARGET = 2048

/**
 * The target as a browser would resolve it (WHATWG URL, which removes tabs and newlines, reads `\` as `/`, and
 * decodes `%2e` dot segments) against the public URL, kept only when that lands on the public URL's origin.
 * Any other origin (`//host`, `/\host`, `https:host`, `user@host`, `javascript:`) gives undefined.
 *
 * The answer is in the form that resolves back to exactly that URL: the path with query and fragment, or the whole
 * URL when the path alone would read as another host (`/.//evil.example/` resolves to the path `//evil.example/`,
 * which, written as a Location on its own, is a network-path reference to evil.example).
 */
export function sameOriginTarget(publicUrl: string, value: string | undefined): string | undefined {
  if (!value || value.length > MAX_REDIRECT_TARGET) return undefined
  const base = URL.parse(publicUrl)
  const url = base && URL.parse(value, base.href)
  if (!base || !url || url.origin !== base.origin) return undefined
  // Credentials in a same-origin URL are never needed and only confuse whoever reads the address bar.
  url.username = ''
  url.password = ''
  const relative = url.pathname + url.search + url.hash
  const target = URL.parse(relative, base.href)?.href === url.href ? relative : url.href
  return target.length <= MAX_REDIRECT_TARGET ? target : undefined
}
