import type { FastifyBaseLogger } from 'fastify'
import type { KoaContextWithOIDC } from 'oidc-provider'
import type { RealmClientConfig } from '../config/realms.ts'
import { escapeHtml } from '../errors.ts'
import { accessTokenAudience } from './claims.ts'

/**
 * Keycloak's wire format on top of oidc-provider's: the extra token response members, the order Keycloak
 * writes them in, and its error wording. Applied by one Koa middleware (`provider.use`), after oidc-provider
 * has answered, so the protocol itself stays oidc-provider's.
 */

export interface KeycloakShapeOptions {
  /** Grant types the token endpoint knows (others are `unsupported_grant_type`, before anything else is checked). */
  grantTypes: ReadonlySet<string>
  client(clientId: string): RealmClientConfig | undefined
}

/** What Gatehouse tells oidc-provider's middleware about a request (src/oidc/routes.ts sets it). */
export const PROVIDER_REQUEST = Symbol('gatehouse request')
export interface ProviderRequest {
  log: FastifyBaseLogger
  /** The trusted client address (Fastify's `request.ip`), which the password grant's lockout counts by. */
  address: string
  /** A revocation made from Keycloak's logout-by-refresh-token: answered 204, as Keycloak does. */
  logout: boolean
}

export interface KeycloakError {
  status: number
  error: string
  error_description: string
}

export function keycloakShapes(options: KeycloakShapeOptions) {
  return async function keycloakShapes(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    await next()
    const oidc = (ctx as { oidc?: KoaContextWithOIDC['oidc'] }).oidc
    if (!oidc) {
      if (ctx.status === 404 && !ctx.body) ctx.body = { error: 'not_found', error_description: 'No such endpoint in this realm' }
      return
    }
    const body = ctx.body as Record<string, unknown> | undefined
    if (oidc.route === 'token') {
      if (ctx.status === 200 && body && typeof body.access_token === 'string') ctx.body = tokenResponse(body, oidc)
      else if (ctx.status >= 400 && body && typeof body.error === 'string') {
        const error = tokenError(body, ctx, options)
        ctx.status = error.status
        ctx.body = { error: error.error, error_description: error.error_description }
      }
    } else if (oidc.route === 'introspection' && ctx.status === 200 && body?.active === true) {
      if (typeof body.preferred_username === 'string') body.username = body.preferred_username
      if (body.token_type === 'Bearer' && body.aud === undefined && typeof body.client_id === 'string') {
        body.aud = accessTokenAudience(options.client(body.client_id))
      }
    } else if (oidc.route === 'revocation' && (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.logout && ctx.status === 200) {
      ctx.status = 204
      ctx.body = null
    } else if (ctx.status === 401 && body?.error === 'invalid_client') {
      ctx.body = { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' }
    }
  }
}

/** Keycloak's members, in Keycloak's order (RFC 6749 §5.1 plus `refresh_expires_in`, `not-before-policy`, `session_state`). */
function tokenResponse(body: Record<string, unknown>, oidc: KoaContextWithOIDC['oidc']): Record<string, unknown> {
  const refreshToken = oidc.entities.RefreshToken
  const sid = oidc.entities.AccessToken?.sid
  const response: Record<string, unknown> = {
    access_token: body.access_token,
    expires_in: body.expires_in,
    refresh_expires_in: body.refresh_token && refreshToken ? refreshToken.expiration : 0,
  }
  if (body.refresh_token) response.refresh_token = body.refresh_token
  response.token_type = 'Bearer'
  if (body.id_token) response.id_token = body.id_token
  response['not-before-policy'] = 0
  if (sid) response.session_state = sid
  response.scope = body.scope ?? ''
  return response
}

const GRANT_NOT_ALLOWED: Record<string, string> = {
  password: 'Client not allowed for direct access grants',
  client_credentials: 'Client not enabled to retrieve service account',
  authorization_code: 'Client not allowed to exchange code',
  refresh_token: 'Client not allowed to refresh tokens',
}

/** oidc-provider's reasons (`error_detail`) for refusing a refresh token, in Keycloak's words. */
const REFRESH_ERRORS: Record<string, string> = {
  'refresh token already used': 'Maximum allowed refresh token reuse exceeded',
  'refresh token is expired': 'Token is not active',
  'grant not found': 'Session not active',
  'grant is expired': 'Session not active',
  'refresh token invalid (referenced account not found)': 'User disabled',
}

const CODE_ERRORS: Record<string, string> = {
  'authorization code redirect_uri mismatch': 'Incorrect redirect_uri',
  'code_verifier must be provided': 'PKCE code verifier not specified',
  'code_verifier does not match code_challenge': 'PKCE verification failed: Code mismatch',
}

/**
 * Keycloak's error for a failed token request. Keycloak checks the request before the client, so a missing,
 * repeated or unknown `grant_type` is reported first, whatever else oidc-provider found wrong.
 */
export function tokenError(body: Record<string, unknown>, ctx: KoaContextWithOIDC, options: KeycloakShapeOptions): KeycloakError {
  const error = String(body.error)
  const description = String(body.error_description ?? '')
  const detail = String((ctx.state.failure as { error_detail?: unknown } | undefined)?.error_detail ?? '')
  const params = ctx.oidc.params as Record<string, unknown> | undefined
  const grantType = params?.grant_type
  const bad = (text: string, code = 'invalid_request'): KeycloakError => ({ status: 400, error: code, error_description: text })

  if (!params) return ctx.is('application/x-www-form-urlencoded') ? bad('Invalid request body') : bad('Missing form parameter: grant_type')
  if (Object.values(params).some(Array.isArray) || /must not be provided twice/.test(description)) return bad('duplicated parameter')
  if (grantType === undefined) return bad('Missing form parameter: grant_type')
  if (!options.grantTypes.has(String(grantType))) return bad('Unsupported grant_type', 'unsupported_grant_type')
  if (description === 'no client authentication mechanism provided') return { status: 401, error: 'invalid_client', error_description: 'Missing client_id parameter' }
  if (error === 'invalid_client') return { status: 401, error, error_description: 'Invalid client or Invalid client credentials' }
  if (description === 'requested grant type is not allowed for this client') {
    return bad(GRANT_NOT_ALLOWED[String(grantType)] ?? 'Client not allowed for this grant type', 'unauthorized_client')
  }
  const missing = /^missing required parameters? (.+)$/.exec(description)
  if (missing) return bad(`Missing parameter: ${missing[1]!.replace(/'/g, '').replace(/ and /g, ', ')}`)
  if (error === 'invalid_scope') return bad(`Invalid scopes: ${String(body.scope ?? params.scope ?? '')}`.trim(), 'invalid_scope')
  if (error === 'invalid_grant') {
    if (grantType === 'refresh_token') return bad(REFRESH_ERRORS[detail] ?? 'Invalid refresh token', 'invalid_grant')
    if (grantType === 'authorization_code') return bad(CODE_ERRORS[detail] ?? 'Code not valid', 'invalid_grant')
  }
  return { status: error === 'server_error' ? 500 : 400, error, error_description: description }
}

/** oidc-provider's `renderError`: the page a browser sees when an authorization or logout request is wrong. */
export async function renderErrorPage(ctx: KoaContextWithOIDC, out: { error?: string; error_description?: string }): Promise<void> {
  ctx.type = 'html'
  ctx.body = simplePage('Sign-in failed', `<p>${escapeHtml(out.error_description ?? 'The request could not be processed.')}</p><p><code>${escapeHtml(out.error ?? 'invalid_request')}</code></p>`)
}

/**
 * oidc-provider's logout confirmation. Keycloak asks only when the request does not name the session with
 * `id_token_hint`; with one, the page submits itself (a browser without scripts still gets the button).
 */
export async function logoutConfirmPage(ctx: KoaContextWithOIDC, form: string): Promise<void> {
  ctx.type = 'html'
  const automatic = ctx.oidc.params?.id_token_hint
    ? `<script>const form = document.getElementById('op.logoutForm'); form.insertAdjacentHTML('beforeend', '<input type="hidden" name="logout" value="yes">'); form.submit()</script>`
    : ''
  ctx.body = simplePage('Log out', `<p>Do you want to log out?</p>${form}<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Log out</button>${automatic}`)
}

export async function loggedOutPage(ctx: KoaContextWithOIDC): Promise<void> {
  ctx.type = 'html'
  ctx.body = simplePage('Logged out', '<p>You are logged out.</p>')
}

/** A minimal page in the style of the login page, for the few HTML answers of the provider. */
export function simplePage(title: string, content: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(title)} · Gatehouse</title></head><body><main><h1>${escapeHtml(title)}</h1>${content}</main></body></html>`
}
