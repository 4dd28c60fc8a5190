/**
 * `${NAME}` and `${NAME:-default}` in the configuration file's string values, taken from the environment, so that
 * secrets (and whatever differs between machines) stay out of the file. Substituted after the YAML is parsed: a
 * value with a colon, a `#` or a line break cannot change the file's structure, and a key is never substituted.
 */

/** `$${`, which stands for a literal `${`, or `${` (its reference runs to the first `}`); any other `$` is itself. */
const OPENING = /\$\$\{|\$\{/g
const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([^]*))?$/
/** A value the file gives no part of: references without a default, nothing written beside them. */
const ONLY_REFERENCES = /^(?:\$\{[A-Za-z_][A-Za-z0-9_]*\})+$/

export interface Substituted {
  value: unknown
  /** One line each, with the setting's path: the variable's name, never a value. */
  problems: string[]
  /** The settings whose whole value came from the environment (`${NAME}` without a default, nothing written beside it). */
  fromEnvironment: Set<string>
  /** The settings with a `${NAME}` in them. */
  substituted: Set<string>
  /** The settings left as written, for a problem above: what the schema would say of them waits for their values. */
  unresolved: Set<string>
}

export function substituteEnvironment(input: unknown, env: NodeJS.ProcessEnv): Substituted {
  const problems: string[] = []
  const fromEnvironment = new Set<string>()
  const substituted = new Set<string>()
  const unresolved = new Set<string>()
  const walk = (value: unknown, path: string[]): unknown => {
    if (typeof value === 'string') return substituteString(value, path.join('.') || '(top level)')
    if (Array.isArray(value)) return value.map((item, i) => walk(item, [...path, String(i)]))
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, walk(item, [...path, key])]))
    return value
  }
  const substituteString = (text: string, setting: string): string => {
    if (ONLY_REFERENCES.test(text)) fromEnvironment.add(setting)
    let notReference = false
    const result = replaceReferences(text, (match, inside) => {
      if (match === '$${') return '${'
      const reference = inside === undefined ? null : REFERENCE.exec(inside)
      if (!reference) {
        // The text is not repeated: it may be a secret written in the file that happens to hold "${".
        notReference = true
        unresolved.add(setting)
        return match
      }
      substituted.add(setting)
      const name = reference[1]!
      const fallback = reference[2]
      // `${A:-${B}}` ends at the first `}`: its default would be the text "${B" and a "}" after it, a value no one
      // meant (a secret anyone could guess), so a default holding "${" is refused, not taken as written.
      if (fallback?.includes('${')) {
        problems.push(`${setting}: the default of \${${name}:-...} holds "\${": references do not nest; write a default without one`)
        unresolved.add(setting)
        return match
      }
      // Only the environment's own variables: `${constructor}` is no variable, though every object has one.
      const found = Object.hasOwn(env, name) ? env[name] : undefined
      if (found) return found
      if (fallback !== undefined) return fallback
      problems.push(`${setting}: the environment variable ${name} is not set or empty (\${${name}:-default} would give a default)`)
      unresolved.add(setting)
      return match
    })
    // Once a setting, however many there are.
    if (notReference) problems.push(`${setting}: "\${" starts no substitution: write \${NAME} or \${NAME:-default} (a letter or "_", then letters, digits or "_"), or $\${ for a literal "\${"`)
    return result
  }
  return { value: walk(input, []), problems, fromEnvironment, substituted, unresolved }
}

/**
 * Calls `replace` with each `$${` (no `inside`) and each `${...}` (`inside`: up to the first `}`; undefined when no `}`
 * follows, and `match` is then `${` alone), in one pass: a value with many `${` and no `}` after them is not scanned
 * to its end again from each one.
 */
function replaceReferences(text: string, replace: (match: string, inside: string | undefined) => string): string {
  let out = ''
  let from = 0
  /** The first `}` at or after the current `${`, once looked for: -1 when there is none. */
  let close = -2
  for (const opening of text.matchAll(OPENING)) {
    const at = opening.index
    if (at < from) continue
    out += text.slice(from, at)
    if (opening[0] === '$${') {
      out += replace('$${', undefined)
      from = at + 3
      continue
    }
    if (close !== -1 && close < at) close = text.indexOf('}', at + 2)
    if (close === -1) {
      out += replace('${', undefined)
      from = at + 2
    } else {
      out += replace(text.slice(at, close + 1), text.slice(at + 2, close))
      from = close + 1
    }
  }
  return out + text.slice(from)
}
