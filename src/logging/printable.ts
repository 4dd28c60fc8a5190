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

/** What JSON.stringify leaves as it is of those, and the line and paragraph separators (which end a line for some readers). */
const RAW_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/**
 * A value as one line of JSON that no terminal acts on: JSON.stringify escapes C0 controls, not DEL, C1 (U+009B is an
 * escape sequence's start on its own) or the bidirectional overrides; each is written as its `\u` escape, which JSON
 * reads back as the same character.
 */
export function printableJson(value: unknown): string {
  return printableLine(JSON.stringify(value))
}

const ANY_RAW_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/

/**
 * A line of JSON as `printableJson` writes it. The test comes first: most lines have none of those characters, and
 * this runs for every line the log writes.
 */
export function printableLine(line: string): string {
  return ANY_RAW_IN_JSON.test(line) ? line.replace(RAW_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : line
}

/** What `printable` escapes and the line and paragraph separators, but for the line feed and the tab, which lay out a stack trace for people. */
const UNPRINTABLE_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/**
 * A parsed log line with each string in it printable, for a destination that writes its values, not its JSON (a
 * terminal's readable lines): line feeds and tabs stay, so that a stack trace is laid out as lines.
 */
export function printableValues<T>(value: T): T {
  if (typeof value === 'string') return value.replace(UNPRINTABLE_BUT_LAYOUT, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) as T
  if (Array.isArray(value)) return value.map(printableValues) as T
  if (value && typeof value === 'object') {
    const copy: Record<string, unknown> = {}
    for (const [key, member] of Object.entries(value)) copy[printable(key)] = printableValues(member)
    return copy as T
  }
  return value
}
