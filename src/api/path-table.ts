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

/**
 * The parametric paths as a tree of their segments, as the router keeps them: a request's path walks it segment by
 * segment, the fixed child before the parameter, and goes back to the parameter only where the fixed branch ends in
 * no path. That finds the path the router prefers, comparing the request with the paths of its own branch only:
 * a scan of every path's pattern cost an id path (`users/5/`) some 2.5-7 µs (docs/performance.md).
 */
interface Branch<T> {
  readonly fixed: Map<string, Branch<T>>
  parameter?: Branch<T>
  /** The path that ends here; the first added, where two differ only in their parameters' names. */
  value?: T
}

const branch = <T>(): Branch<T> => ({ fixed: new Map() })

export class PathTable<T> {
  readonly #fixed = new Map<string, T>()
  readonly #parametric: Branch<T> = branch()

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
    let at = this.#parametric
    for (const segment of segments) {
      if (PARAMETER.test(segment)) {
        at = at.parameter ??= branch()
        continue
      }
      let next = at.fixed.get(segment)
      if (!next) at.fixed.set(segment, (next = branch()))
      at = next
    }
    at.value ??= value
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
    return findIn(this.#parametric, path.split('/'), 0)
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

/** The value of the path under `at` that the router prefers for the segments from `index` on. */
function findIn<T>(at: Branch<T>, segments: readonly string[], index: number): T | undefined {
  if (index === segments.length) return at.value
  const segment = segments[index]!
  const fixed = at.fixed.get(segment)
  const found = fixed && findIn(fixed, segments, index + 1)
  if (found !== undefined) return found
  return at.parameter && segment.length > 0 && segment.length <= MAX_PARAM_LENGTH ? findIn(at.parameter, segments, index + 1) : undefined
}
