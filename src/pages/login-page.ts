import { escapeHtml, styledPage } from './html.ts'

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
  /** The username and password sent were refused: both fields are marked invalid, with `error` as the reason. */
  refused?: boolean | undefined
  /** Why the person is asked to log in, when it is no failure of theirs: their session ended. */
  notice?: string | undefined
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
  // The message is read out with the field the focus lands on, not only when the page loads (which screen readers miss).
  const aboutFields = (options.error ? ' aria-describedby="login-error"' : '') + (options.error && options.refused ? ' aria-invalid="true"' : '')
  const sso = (options.sso ?? []).map((b) => `<a class="sso" href="${escapeHtml(b.href)}">Sign in with ${escapeHtml(b.label)}</a>`).join('')
  return styledPage('Log in', `<h1>Gatehouse</h1>
${options.subtitle ? `<p class="subtitle">${escapeHtml(options.subtitle)}</p>` : ''}
${options.error ? `<p class="error" id="login-error" role="alert">${escapeHtml(options.error)}</p>` : ''}
${options.notice && !options.error ? `<p class="notice" role="status">${escapeHtml(options.notice)}</p>` : ''}
<form method="post" action="${escapeHtml(options.action)}">
${hidden}
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" required maxlength="150" value="${escapeHtml(options.username ?? '')}"${aboutFields} ${options.username ? '' : 'autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${aboutFields} ${options.username ? 'autofocus' : ''}>
<button type="submit">Log in</button>
</form>
${sso}`)
}
