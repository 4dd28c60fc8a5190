import { escapeHtml, styledPage } from './html.ts'
import { CANCEL_FIELD, FORM_SECRET_FIELD } from './update-password-page.ts'

/** The form fields of Keycloak's "Update Account Information" page (login-update-profile.ftl), which the page keeps. */
export const FIRST_NAME_FIELD = 'firstName'
export const LAST_NAME_FIELD = 'lastName'
export const EMAIL_FIELD = 'email'

/** The longest value each field takes: the account's columns (Django's user model: 150, 150, 254). */
export const PROFILE_FIELD_LENGTHS = { [FIRST_NAME_FIELD]: 150, [LAST_NAME_FIELD]: 150, [EMAIL_FIELD]: 254 } as const

export interface ProfileValues {
  firstName: string
  lastName: string
  email: string
}

export interface UpdateProfilePageOptions {
  /** Where the form posts: the login step of the authorization. */
  action: string
  /** Sent back as `form_secret`. */
  formSecret: string
  /** Whose account it is, shown. */
  username: string
  /** A heading line under the title: which application asked. */
  subtitle: string
  /** What the fields hold: the account's values, or those just sent when they were refused. */
  values: ProfileValues
  /** Why the values sent were refused, one line each. */
  errors?: readonly string[] | undefined
  /** The fields whose values were refused: marked invalid, and the first of them has the focus. */
  invalid?: readonly string[] | undefined
}

/**
 * The realm's "Update Account Information" page, asked for by an application (keycloak-js
 * `login({ action: 'UPDATE_PROFILE' })`): the update password page's look, form secret and Cancel button.
 */
export function renderUpdateProfilePage(options: UpdateProfilePageOptions): string {
  const invalid = options.errors?.length ? options.invalid ?? [] : []
  const focused = [EMAIL_FIELD, FIRST_NAME_FIELD, LAST_NAME_FIELD].find((name) => invalid.includes(name)) ?? EMAIL_FIELD
  // A refused field is marked so, and the reasons are read out with it when the focus lands there: screen readers
  // often miss an alert that is there when the page loads.
  const field = (name: keyof ProfileValues, label: string, type: 'text' | 'email', autocomplete: string) => `<label for="${name}">${label}</label>
<input id="${name}" name="${name}" type="${type}" autocomplete="${autocomplete}" required maxlength="${PROFILE_FIELD_LENGTHS[name]}" value="${escapeHtml(options.values[name])}"${invalid.includes(name) ? ' aria-invalid="true" aria-describedby="profile-errors"' : ''}${name === focused ? ' autofocus' : ''}>`
  const errors = options.errors?.length ? `<p class="error" id="profile-errors" role="alert">${options.errors.map(escapeHtml).join('<br>')}</p>` : ''
  return styledPage('Update Account Information', `<h1>Update Account Information</h1>
<p class="subtitle">${escapeHtml(options.subtitle)}</p>
${errors}
<form method="post" action="${escapeHtml(options.action)}">
<input type="hidden" name="${FORM_SECRET_FIELD}" value="${escapeHtml(options.formSecret)}">
<p>Username: ${escapeHtml(options.username)}</p>
${field('email', 'Email', 'email', 'email')}
${field('firstName', 'First name', 'text', 'given-name')}
${field('lastName', 'Last name', 'text', 'family-name')}
<button type="submit">Submit</button>
<button type="submit" name="${CANCEL_FIELD}" value="true" formnovalidate>Cancel</button>
</form>`)
}
