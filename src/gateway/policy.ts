import type { GatewayRequest } from '../http/gateway-request.ts'
import { InsufficientScope } from '../errors.ts'
import { wantsHtml, isSafeMethod } from '../http/negotiation.ts'
import type { Principal } from '../auth/principal.ts'
import type { Config } from '../config/schema.ts'

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

/**
 * The path of `server.public_url` without its last slash: '' at the root or without one. A proxy in front that
 * publishes the gateway under `/edge/` takes it off before forwarding, so every path the gateway writes for a client
 * (a redirect, a form's action, a cookie's `Path`) must start with it again.
 */
export function publishedPath(config: Pick<Config, 'server'>): string {
  return config.server.public_url === undefined ? '' : new URL(config.server.public_url).pathname.replace(/\/$/, '')
}

/** The gateway's login page, published under `published`, for a browser to come back to `next` (as the browser addresses it). */
export function gatewayLoginUrl(published: string): (next: string) => string {
  return (next) => `${published}${LOGIN_PATH}?next=${encodeURIComponent(next)}`
}

/** A read-scoped OAuth2 token may only read (the platform's `read` scope). */
export function scopeRefusal(principal: Principal, method: string): InsufficientScope | undefined {
  return principal.scope === 'read' && !isSafeMethod(method) ? new InsufficientScope() : undefined
}
