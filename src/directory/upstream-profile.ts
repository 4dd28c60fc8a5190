/**
 * The profile text an LDAP directory or an upstream OpenID Connect provider sends for an account (names, e-mail
 * address), made fit to store. People often edit their own entries there, and what they may type (a NUL, a line
 * break, text longer than the users table's columns) must not stop their sign-in: the store refuses a NUL (PostgreSQL
 * cannot hold one), which would refuse every login of that person.
 */

/** Column widths of the users table (migration 001_core). */
const MAX_NAME = 150
const MAX_EMAIL = 254

/** Control characters (C0, DEL, C1) never belong in a name or an address. */
const CONTROLS = /\p{Cc}/gu
const EMAIL = /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+$/u

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
