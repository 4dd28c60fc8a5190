import { escapeHtml } from './html.ts'

export interface SsoButton {
  /** Shown as "Sign in with <label>". */
  label: string
  /** Where the button goes (starts the upstream login). */
  href: string
}

export interface LoginPageOptions {
  /** Where the form posts: the gateway login, or an OIDC interaction. */
  action: string
  /** Sent back as the form field `csrfmiddlewaretoken` (forms cannot set the X-CSRFToken header). */
  csrfToken?: string | undefined
  /** Same-origin path to continue to after login. */
  next?: string | undefined
  /** The username to prefill after a failed attempt. */
  username?: string | undefined
  /** A message for the person (never which of username or password was wrong). */
  error?: string | undefined
  /** A heading line under the title, e.g. which application asked for the login. */
  subtitle?: string | undefined
  /** Further hidden fields the form posts back. */
  fields?: Readonly<Record<string, string>> | undefined
  sso?: readonly SsoButton[]
}

/**
 * The one login page: the gateway's session login, the OpenID Connect provider's login step and the web
 * interface all render it. Plain HTML with a form that works without JavaScript.
 */
export function renderLoginPage(options: LoginPageOptions): string {
  const hidden = [
    options.csrfToken ? `<input type="hidden" name="csrfmiddlewaretoken" value="${escapeHtml(options.csrfToken)}">` : '',
    options.next ? `<input type="hidden" name="next" value="${escapeHtml(options.next)}">` : '',
    ...Object.entries(options.fields ?? {}).map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`),
  ].join('')
  const sso = (options.sso ?? []).map((b) => `<a class="sso" href="${escapeHtml(b.href)}">Sign in with ${escapeHtml(b.label)}</a>`).join('')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · Gatehouse</title>
<style>
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: Canvas; }
  main { box-sizing: border-box; width: min(22rem, calc(100vw - 2rem)); padding: 1.5rem; border: 1px solid #8884; border-radius: 8px; }
  h1 { margin: 0 0 .25rem; font-size: 1.4rem; }
  p.subtitle { margin: 0 0 1rem; color: GrayText; }
  label { display: block; margin-top: .75rem; font-weight: 600; }
  input[type=text], input[type=password] { box-sizing: border-box; width: 100%; padding: .55rem; margin-top: .25rem; font: inherit; }
  button, a.sso { display: block; box-sizing: border-box; width: 100%; margin-top: 1rem; padding: .6rem; font: inherit; text-align: center; border-radius: 6px; }
  button { background: #1f5fbf; color: white; border: 0; cursor: pointer; }
  a.sso { border: 1px solid #8886; color: inherit; text-decoration: none; }
  .error { margin: .75rem 0 0; padding: .5rem; border-radius: 6px; background: #c0392b22; color: #a02020; }
</style>
</head>
<body>
<main>
<h1>Gatehouse</h1>
${options.subtitle ? `<p class="subtitle">${escapeHtml(options.subtitle)}</p>` : ''}
${options.error ? `<p class="error" role="alert">${escapeHtml(options.error)}</p>` : ''}
<form method="post" action="${escapeHtml(options.action)}">
${hidden}
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" required maxlength="150" value="${escapeHtml(options.username ?? '')}" ${options.username ? '' : 'autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required ${options.username ? 'autofocus' : ''}>
<button type="submit">Log in</button>
</form>
${sso}
</main>
</body>
</html>
`
}
