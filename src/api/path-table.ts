/**
 * The paths of the gateway API as Fastify's router (find-my-way) matches them, for the requests it answers without
 * a route of their own (src/api/methods.ts): a path's parameters match one segment of at most 100 characters (the
 * router's `maxParamLength`), a path without parameters wins over one with, and segment by segment a fixed one over a
 * parameter; the request's path is compared as the router decodes it (every escape but those of reserved characters,
 * which no path of the API holds).
 */

/** find-my-way's default, which Fastify keeps: a longer parameter matches no route. */
const MAX_PARAM_LENGTH = 100
const PARAMETER = /^:[A-Za-z0-9_]+$/

interface Parametric<T> {
  readonly pattern: RegExp
  /** Per segment, 0 for a fixed one and 1 for a parameter: the router's order of preference. */
  readonly rank: readonly number[]
  readonly value: T
}

export class PathTable<T> {
  readonly #fixed = new Map<string, T>()
  readonly #parametric: Parametric<T>[] = []

  /**
   * Adds a path as declared (`/api/gateway/v1/users/:id/`); false for one this table cannot match as the router
   * does (a parameter within a segment, a wildcard, a regular expression), which must keep a route of its own.
   */
  add(url: string, value: T): boolean {
    const segments = url.split('/')
    if (segments.some((segment) => /[:*(]/.test(segment) && !PARAMETER.test(segment))) return false
    if (!url.includes(':')) {
      this.#fixed.set(url, value)
      return true
    }
    const source = segments.map((segment) => PARAMETER.test(segment) ? `[^/]{1,${MAX_PARAM_LENGTH}}` : segment.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('/')
    this.#parametric.push({ pattern: new RegExp(`^${source}$`), rank: segments.map((segment) => PARAMETER.test(segment) ? 1 : 0), value })
    this.#parametric.sort((a, b) => compareRanks(a.rank, b.rank))
    return true
  }

  /** The value of the path the router would match for a request target (its path, up to `?` or `#`). */
  find(target: string): T | undefined {
    let end = target.length
    for (let i = 0; i < target.length; i++) {
      const code = target.charCodeAt(i)
      if (code === 63 || code === 35) {
        end = i
        break
      }
    }
    let path = end === target.length ? target : target.slice(0, end)
    if (path.includes('%')) {
      try {
        path = decodeURI(path)
      } catch {
        // Refused before any route's handler runs (src/http/request-target.ts), whichever route it matched.
        return undefined
      }
    }
    const fixed = this.#fixed.get(path)
    if (fixed !== undefined) return fixed
    for (const { pattern, value } of this.#parametric) if (pattern.test(path)) return value
    return undefined
  }

  /**
   * Whether the router prefers declared path `a` to `b` for some request both match (segments as split at `/`): both
   * match it when, segment by segment, they are the same or either is a parameter (which never matches an empty
   * segment), and the first segment where one has a parameter and the other not decides. Same-ranked paths, and any
   * path this table cannot hold, count as preferred: the caller keeps a route for them.
   */
  static prefers(a: readonly string[], b: readonly string[]): boolean {
    if (a.length !== b.length) return false
    if (a.some((segment) => /[*(]/.test(segment)) || b.some((segment) => /[*(]/.test(segment))) return true
    let decided: boolean | undefined
    for (let i = 0; i < a.length; i++) {
      const left = a[i]!
      const right = b[i]!
      const leftParam = left.startsWith(':')
      const rightParam = right.startsWith(':')
      if (leftParam && rightParam) continue
      if (leftParam || rightParam) {
        if ((leftParam ? right : left) === '') return false
        decided ??= rightParam
        continue
      }
      if (left !== right) return false
    }
    return decided ?? true
  }
}

function compareRanks(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}
