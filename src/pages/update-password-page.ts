import { escapeHtml, styledPage } from './html.ts'

/** The form fields of Keycloak's "Update password" page (login-update-password.ftl), which the page keeps. */
export const NEW_PASSWORD_FIELD = 'password-new'
export const CONFIRM_PASSWORD_FIELD = 'password-confirm'
/** The Cancel button of an application-initiated action (Keycloak's `cancel-aia`). */
export const CANCEL_FIELD = 'cancel-aia'
/** The form's anti-forgery secret. */
export const FORM_SECRET_FIELD = 'form_secret'

export interface UpdatePasswordPageOptions {
  /** Where the form posts: the login step of the authorization. */
  action: string
  /** Sent back as `form_secret`. */
  formSecret: string
  /** Whose password it is, shown and given to password managers. */
  username: string
  /** A heading line under the title: which application asked. */
  subtitle: string
  error?: string | undefined
  /** The new password itself was refused (not the form's moment: an expired form, a busy server). */
  refused?: boolean | undefined
}

/**
 * The realm's "Update password" page, asked for by an application (keycloak-js `login({ action: 'UPDATE_PASSWORD' })`):
 * the login page's look and policy (src/pages/login-page.ts), with a Cancel button that goes back to the application
 * without a change.
 */
export function renderUpdatePasswordPage(options: UpdatePasswordPageOptions): string {
  // The reason is read out with the field the focus lands on, not only when the page loads (which screen readers miss).
  const aboutFields = (options.error ? ' aria-describedby="password-error"' : '') + (options.error && options.refused ? ' aria-invalid="true"' : '')
  return styledPage('Update password', `<h1>Update password</h1>
<p class="subtitle">${escapeHtml(options.subtitle)}</p>
${options.error ? `<p class="error" id="password-error" role="alert">${escapeHtml(options.error)}</p>` : ''}
<form method="post" action="${escapeHtml(options.action)}">
<input type="hidden" name="${FORM_SECRET_FIELD}" value="${escapeHtml(options.formSecret)}">
<input type="hidden" name="username" value="${escapeHtml(options.username)}" autocomplete="username">
<label for="${NEW_PASSWORD_FIELD}">New password for ${escapeHtml(options.username)}</label>
<input id="${NEW_PASSWORD_FIELD}" name="${NEW_PASSWORD_FIELD}" type="password" autocomplete="new-password" required${aboutFields} autofocus>
<label for="${CONFIRM_PASSWORD_FIELD}">Confirm password</label>
<input id="${CONFIRM_PASSWORD_FIELD}" name="${CONFIRM_PASSWORD_FIELD}" type="password" autocomplete="new-password" required${aboutFields}>
<button type="submit">Submit</button>
<button type="submit" name="${CANCEL_FIELD}" value="true" formnovalidate>Cancel</button>
</form>`)
}
