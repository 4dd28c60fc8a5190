import { hash } from 'node:crypto'

/** Text placed into server-rendered HTML is escaped here, whichever page renders it. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** The stylesheet of the server-rendered pages, inline in each, and allowed by its hash alone. */
export const PAGE_STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: Canvas; }
  main { box-sizing: border-box; width: min(22rem, calc(100vw - 2rem)); padding: 1.5rem; border: 1px solid #8884; border-radius: 8px; overflow-wrap: anywhere; }
  h1 { margin: 0 0 .25rem; font-size: 1.4rem; }
  p.subtitle { margin: 0 0 1rem; color: color-mix(in srgb, CanvasText 70%, Canvas); }
  label { display: block; margin-top: .75rem; font-weight: 600; }
  input[type=text], input[type=email], input[type=password] { box-sizing: border-box; width: 100%; padding: .55rem; margin-top: .25rem; font: inherit; }
  button, a.sso { display: block; box-sizing: border-box; width: 100%; margin-top: 1rem; padding: .6rem; font: inherit; text-align: center; border-radius: 6px; }
  button { background: #1f5fbf; color: white; border: 0; cursor: pointer; }
  a.sso { border: 1px solid #8886; color: inherit; text-decoration: none; }
  .error { margin: .75rem 0 0; padding: .5rem; border-radius: 6px; background: #c0392b22; color: #a02020; }
  @media (prefers-color-scheme: dark) { .error { color: #f4aaa4; } }
  .notice { margin: .75rem 0 0; padding: .5rem; border-radius: 6px; background: #1f5fbf1a; }
`
/** A server-rendered page with the pages' stylesheet: its title (shown with " · Gatehouse") and what `<main>` holds. */
export function styledPage(title: string, main: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Gatehouse</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<main>
${main}
</main>
</body>
</html>
`
}

const PAGE_STYLE_SOURCE = `'sha256-${hash('sha256', PAGE_STYLE, 'base64')}'`

/**
 * Headers for a server-rendered page that no other page may frame: a framed login or confirmation page lets a page
 * on top of it steer the person's clicks (clickjacking). The services behind the gateway share its origin, so not
 * even this origin may frame them. The page loads nothing and runs no script but the `inlineScripts` named (by
 * hash), and no style but the pages' own, so markup that ever slipped past escaping would run nothing, nor read
 * the page's values out with style rules. No `form-action`: the realm's forms end in a redirect to the application,
 * which browsers hold to it too.
 */
export function unframedPageHeaders(inlineScripts: readonly string[] = []): Readonly<Record<string, string>> {
  const scripts = inlineScripts.map((script) => `'sha256-${hash('sha256', script, 'base64')}'`)
  return {
    'x-frame-options': 'DENY',
    'content-security-policy': `default-src 'none'; script-src ${scripts.join(' ') || "'none'"}; style-src ${PAGE_STYLE_SOURCE}; base-uri 'none'; frame-ancestors 'none'`,
    'x-content-type-options': 'nosniff',
    // The page's address (a login's parameters, a path someone typed) goes to no other site with a link or redirect.
    'referrer-policy': 'same-origin',
  }
}

export const UNFRAMED_PAGE_HEADERS = unframedPageHeaders()

/** The policy of the gateway's own login page: its form posts only here, it loads nothing and is never framed. */
export const LOGIN_PAGE_POLICY = `default-src 'none'; style-src ${PAGE_STYLE_SOURCE}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`
