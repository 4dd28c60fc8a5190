/**
 * The before and after of a change, in the platform's activity-stream shape (django-ansible-base's
 * `changes`: `added_fields`, `removed_fields`, `changed_fields` with `[old, new]`). Secrets never appear: a
 * secret field that changed shows `$encrypted$` on both sides, as the platform shows stored secrets.
 */
export interface Changes {
  added_fields: Record<string, unknown>
  removed_fields: Record<string, unknown>
  changed_fields: Record<string, [unknown, unknown]>
}

export const ENCRYPTED = '$encrypted$'

/** Field names whose values are secrets wherever they appear. */
const SECRET = /(^|_)(password|secret|token|key|hash)$/i
/** Bookkeeping that changes with every write, or links: not a change anyone made. */
const IGNORED = new Set(['modified', 'url', 'related', 'summary_fields', 'last_used', 'last_login'])

export type Fields = Readonly<Record<string, unknown>>

export function changesBetween(before: Fields | undefined, after: Fields | undefined): Changes {
  const changes: Changes = { added_fields: {}, removed_fields: {}, changed_fields: {} }
  const names = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])
  for (const name of names) {
    if (IGNORED.has(name)) continue
    const had = before !== undefined && name in before
    const has = after !== undefined && name in after
    const secret = SECRET.test(name)
    if (had && has) {
      if (!sameValue(before![name], after![name])) changes.changed_fields[name] = secret ? [ENCRYPTED, ENCRYPTED] : [before![name], after![name]]
    } else if (has) {
      changes.added_fields[name] = secret ? ENCRYPTED : after![name]
    } else if (had) {
      changes.removed_fields[name] = secret ? ENCRYPTED : before![name]
    }
  }
  return changes
}

/** Whether nothing was added, removed or changed. */
export function isEmpty(changes: Changes): boolean {
  for (const fields of [changes.added_fields, changes.removed_fields, changes.changed_fields]) for (const _ in fields) return false
  return true
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b)
}
