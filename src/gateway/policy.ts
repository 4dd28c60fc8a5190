import type { FastifyRequest } from 'fastify'
import type { AuthMethod } from '../config/schema.ts'
import { InsufficientScope, wantsHtml } from '../errors.ts'
import type { Principal } from '../auth/principal.ts'

export const LOGIN_PATH = '/api/gateway/v1/login/'

/** The WWW-Authenticate challenges (RFC 9110 §11.6.1) for the credential types a place accepts. */
export function challengesFor(accepts: readonly AuthMethod[]): string[] {
  const challenges: string[] = []
  if (accepts.includes('basic')) challenges.push('Basic realm="Gatehouse", charset="UTF-8"')
  if (accepts.includes('token') || accepts.includes('oidc')) challenges.push('Bearer realm="Gatehouse"')
  return challenges
}

export type UnauthenticatedMode = 'auto' | 'redirect' | '401'

/**
 * `redirect` sends every method to the login page, as the platform the first document describes does; `auto`
 * only browsers navigating. The same holds for a credential that failed (expired, forged): the platform sends
 * those to the login page too, while API clients under `auto` keep the 401 that says what was wrong.
 */
export function redirectsToLogin(request: FastifyRequest, mode: UnauthenticatedMode): boolean {
  return mode === 'redirect' || (mode === 'auto' && wantsHtml(request) && (request.method === 'GET' || request.method === 'HEAD'))
}

export function gatewayLoginUrl(next: string): string {
  return `${LOGIN_PATH}?next=${encodeURIComponent(next)}`
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** A read-scoped OAuth2 token may only read (the platform's `read` scope). */
export function scopeRefusal(principal: Principal, method: string): InsufficientScope | undefined {
  return principal.scope === 'read' && !SAFE_METHODS.has(method) ? new InsufficientScope() : undefined
}

export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method)
}
