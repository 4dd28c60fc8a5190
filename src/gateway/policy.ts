import type { GatewayRequest } from '../http/gateway-request.ts'
import { InsufficientScope } from '../errors.ts'
import { wantsHtml, isSafeMethod } from '../http/negotiation.ts'
import type { Principal } from '../auth/principal.ts'

export const LOGIN_PATH = '/api/gateway/v1/login/'

export type UnauthenticatedMode = 'auto' | 'redirect' | '401'

/**
 * `redirect` sends every method to the login page, as the platform the first document describes does; `auto`
 * only browsers navigating. The same holds for a credential that failed (expired, forged): the platform sends
 * those to the login page too, while API clients under `auto` keep the 401 that says what was wrong.
 */
export function redirectsToLogin(request: GatewayRequest, mode: UnauthenticatedMode): boolean {
  return mode === 'redirect' || (mode === 'auto' && wantsHtml(request) && (request.method === 'GET' || request.method === 'HEAD'))
}

export function gatewayLoginUrl(next: string): string {
  return `${LOGIN_PATH}?next=${encodeURIComponent(next)}`
}

/** A read-scoped OAuth2 token may only read (the platform's `read` scope). */
export function scopeRefusal(principal: Principal, method: string): InsufficientScope | undefined {
  return principal.scope === 'read' && !isSafeMethod(method) ? new InsufficientScope() : undefined
}
