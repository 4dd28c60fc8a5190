import type { GatewayRequest } from './gateway-request.ts'

/**
 * What a request asks for, read the same way by every layer: whether a browser is navigating (and gets pages), and
 * whether its method only reads.
 */

/** A browser navigating (Accept lists text/html before any JSON) gets pages; everything else gets JSON. */
export function wantsHtml(request: Pick<GatewayRequest, 'headers'>): boolean {
  const accept = request.headers.accept
  if (typeof accept !== 'string' || !accept.includes('text/html')) return false
  const json = accept.indexOf('application/json')
  return json === -1 || accept.indexOf('text/html') < json
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** The methods RFC 9110 §9.2.1 calls safe: they read, never change. */
export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method)
}

/** The media type of a request's body, lower-cased, without its parameters. */
export function mediaType(request: Pick<GatewayRequest, 'headers'>): string | undefined {
  const type = request.headers['content-type']
  return typeof type === 'string' ? type.split(';', 1)[0]!.trim().toLowerCase() : undefined
}
