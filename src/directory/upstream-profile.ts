/**
 * The profile text an LDAP directory or an upstream OpenID Connect provider sends for an account (names, e-mail
 * address), made fit to store. People often edit their own entries there, and what they may type (a NUL, a line
 * break, text longer than the users table's columns) must not stop their sign-in: the store refuses a NUL (PostgreSQL
 * cannot hold one), which would refuse every login of that person.
 */

/** Column widths of the users table (migration 001_core). */
const MAX_NAME = 150
export const MAX_EMAIL = 254

/**
 * Control characters (C0, DEL, C1) never belong in a name or an address, nor do the bidirectional formatting
 * characters (Unicode TR 9: the embeddings and overrides U+202A-U+202E, the isolates U+2066-U+2069, the marks
 * U+200E and U+200F), which make the text after them read otherwise than it is stored ("Trojan Source",
 * CVE-2021-42574): a name shown in an audit trail or a list could pass for another. Text in right-to-left scripts
 * needs none of them.
 */
const BIDI_FORMATTING_CLASS = String.raw`\u200E\u200F\u202A-\u202E\u2066-\u2069`
const BIDI_FORMATTING = new RegExp(`[${BIDI_FORMATTING_CLASS}]`, 'u')
const CONTROL_CLASS = String.raw`[\p{Cc}${BIDI_FORMATTING_CLASS}]`
/** For `replace`, which needs the global flag; `test` with one would go on from where the last match ended. */
const CONTROLS = new RegExp(CONTROL_CLASS, 'gu')
const ANY_CONTROL = new RegExp(CONTROL_CLASS, 'u')
const NOT_IN_ADDRESS = String.raw`[^\s@\p{Cc}${BIDI_FORMATTING_CLASS}]+`
const EMAIL = new RegExp(`^${NOT_IN_ADDRESS}@${NOT_IN_ADDRESS}$`, 'u')
export const BIDI_FORMATTING_REFUSED = 'Remove the bidirectional formatting characters (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).'

/** Whether a name an administrator gives is free of bidirectional formatting characters (refused rather than removed). */
export function withoutBidiFormatting(value: string): boolean {
  return !BIDI_FORMATTING.test(value)
}

export const CONTROLS_REFUSED = 'Remove the control characters (a line break, a tab, an escape) and the bidirectional formatting characters (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).'

/**
 * Whether the name of an organization or a team is free of control and bidirectional formatting characters: access
 * rules and administrators pick them by name, and `Ops` followed by a right-to-left override would pass for `Ops`.
 */
export function withoutControls(value: string): boolean {
  return !ANY_CONTROL.test(value)
}

/**
 * A first or last name without its control characters, a lone surrogate (JSON may carry one) made U+FFFD, cut to the
 * column's width on a whole character.
 */
export function profileName(value: string): string {
  const name = value.replace(CONTROLS, '').toWellFormed()
  return name.length <= MAX_NAME ? name : [...name].slice(0, MAX_NAME).join('')
}

/** The address when it looks like one and fits, else none (''): a control character or a lone surrogate makes it no address. */
export function profileEmail(value: string): string {
  return value.length <= MAX_EMAIL && EMAIL.test(value) && value.isWellFormed() ? value : ''
}
