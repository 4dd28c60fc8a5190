import { UnsafePath } from '../errors.ts'

// Percent-encoded slash, backslash or NUL; a literal backslash; or a `.`/`..` segment, literal or encoded.
const UNSAFE = /%(2f|5c|00)|\\|(^|\/)(\.|%2e){1,2}(\/|$)/i

/**
 * Refuses request targets that could reach another service or escape a prefix once some server along the
 * way decodes or normalises them. They are refused rather than normalised, so what Gatehouse routed is
 * byte for byte what the upstream receives.
 */
export function assertSafePath(path: string): void {
  if (!path.startsWith('/') || UNSAFE.test(path)) {
    throw new UnsafePath()
  }
}

export function splitTarget(url: string): { path: string; query: string } {
  const q = url.indexOf('?')
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q) }
}
