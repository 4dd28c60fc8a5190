/**
 * `${NAME}` and `${NAME:-default}` in the configuration file's string values, taken from the environment, so that
 * secrets (and whatever differs between machines) stay out of the file. Substituted after the YAML is parsed: a
 * value with a colon, a `#` or a line break cannot change the file's structure, and a key is never substituted.
 */

/** `${` up to the first `}`, or `$${`, which stands for a literal `${`; any other `$` is itself. */
const EXPRESSION = /\$\$\{|\$\{([^}]*)\}|\$\{/g
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
    return text.replace(EXPRESSION, (match, inside: string | undefined) => {
      if (match === '$${') return '${'
      const reference = inside === undefined ? null : REFERENCE.exec(inside)
      if (!reference) {
        // The text is not repeated: it may be a secret written in the file that happens to hold "${".
        problems.push(`${setting}: "\${" starts no substitution: write \${NAME} or \${NAME:-default} (a letter or "_", then letters, digits or "_"), or $\${ for a literal "\${"`)
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
  }
  return { value: walk(input, []), problems, fromEnvironment, substituted, unresolved }
}
