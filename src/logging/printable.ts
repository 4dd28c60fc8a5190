/**
 * Control characters (C0, DEL, C1) and the bidirectional overrides and isolates: what would reach a terminal as an
 * escape sequence (moving the cursor, rewriting the window title, hiding or reordering what follows) rather than text.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g

/**
 * Text that others chose (a token's description, a team's name, a data directory's path) as it may be printed on an
 * operator's terminal: each character that would act on the terminal, or break the line, written as its `\u` escape
 * instead.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
