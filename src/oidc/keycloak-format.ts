import type { FastifyReply } from 'fastify'
import { hash } from 'node:crypto'
import type { KoaContextWithOIDC } from 'oidc-provider'
import { decodeJwt, type JWTPayload } from 'jose'
import type { RealmClientConfig } from '../config/realms.ts'
import type { User } from '../store/users.ts'
import { accessTokenAudience } from './claims.ts'
import { webOriginAllowed } from './redirects.ts'
import { SESSION_COOKIE as GATEWAY_SESSION_COOKIE } from '../auth/session.ts'
import { keycloakSid, refreshTokenType, sessionCookieValue, type KeycloakTokens, type RefreshTokenRecord } from './keycloak-tokens.ts'
import epochTime from './provider-clock.ts'
import { escapeHtml, styledPage, UNFRAMED_PAGE_HEADERS, unframedPageHeaders } from '../pages/html.ts'
import { ClientTokensThrottled, DatabaseUnavailable, DirectoryUnavailable, PasswordChecksBusy } from '../errors.ts'
import { TooManyUserCodeGuesses } from './user-code-guesses.ts'
import { asProviderStep, errors } from './provider-errors.ts'
import { LOGIN_PATH } from '../gateway/policy.ts'
import { wantsHtml } from '../http/negotiation.ts'

/**
 * Keycloak's wire format on top of oidc-provider's: the extra token response members, the order Keycloak
 * writes them in, and its error wording. Applied by one Koa middleware (`provider.use`), after oidc-provider
 * has answered, so the protocol itself stays oidc-provider's.
 */

export interface KeycloakShapeOptions {
  /** The realm's name, which Keycloak's `WWW-Authenticate` challenges name. */
  realm: string
  /** Grant types the token endpoint knows (others are `unsupported_grant_type`, before anything else is checked). */
  grantTypes: ReadonlySet<string>
  client(clientId: string): RealmClientConfig | undefined
  /** Whether the client must use PKCE (Keycloak's client with PKCE enforced). */
  requiresPkce(clientId: string): boolean
  /** The username of the account a refresh token speaks for (introspection names it). */
  username(accountId: string): Promise<string | undefined>
  /** The id of a client's service account user: its tokens' `sub` (introspection names it). */
  serviceAccountId(clientId: string): Promise<string>
  /** Userinfo's answer for a live service account token (by its record's id), which oidc-provider does not find. */
  serviceAccountUserinfo(jti: string): Promise<ServiceAccountUserinfo | undefined>
  /** Whether the account of this id is there and enabled, disabled, or gone (deleted, or no account's id). */
  accountState(accountId: string): Promise<'active' | 'disabled' | 'gone'>
  tokens: KeycloakTokens
  /** Where the realm's cookies live (`/realms/<realm>/`). */
  cookiePath: string
  /** The login status iframe's path under the issuer. */
  checkSessionIframe: string
  /**
   * Ends the gateway session its cookie names: logging out of the realm's browser session logs out of the gateway.
   * False when it is the live session of someone else than the realm session's `accountId`, which it leaves alone.
   */
  endGatewaySession(cookie: string, accountId: string | undefined, address: string | undefined): Promise<boolean>
  /**
   * Ends the sign-in a `sid` of an account names: the realm browser session of that `uid` (its sign-ins' grants, the
   * gateway session linked to it), or a password login; false when none is live.
   */
  endSignIn(sid: string, accountId: string | undefined, address: string | undefined): Promise<boolean>
  /** Keycloak's logout with a refresh token revoked this one (its grant with it): the session it was of ends (provider.ts). */
  loggedOutWithRefreshToken(token: RefreshTokenRecord & { grantId?: string | undefined }, address: string | undefined): Promise<void>
  /** Told each logout at the realm that ended an account's sign-in, with the client's address (the audit trail's `logout`). */
  signedOut?: ((accountId: string, address: string | undefined) => void) | undefined
}

/** Keycloak's answer for a path that is not an endpoint of the realm (RESTEasy's wording). */
export const NO_SUCH_ENDPOINT = { error: 'Unable to find matching target resource method', error_description: 'For more on this error consult the server log.' }
/**
 * The cookie Keycloak's login status iframe reads (login-status-iframe.ftl): the SHA-256 of the browser
 * session's `sid`. Not HttpOnly, by design: the iframe's script compares it with the `sid` of the app's token.
 */
export const SESSION_STATE_COOKIE = 'KEYCLOAK_SESSION'
/** Keycloak's "Device polling interval". */
export const DEVICE_POLLING_SECONDS = 5

/** What Gatehouse tells oidc-provider's middleware about a request (src/oidc/routes.ts sets it). */
export const PROVIDER_REQUEST = Symbol('gatehouse request')
export interface ProviderRequest {
  /** The request's log (its id on every line). */
  log: { error(fields: object, message: string): void }
  /** The trusted client address (Fastify's `request.ip`), which the password grant's lockout counts by. */
  address: string
  /** A revocation made from Keycloak's logout-by-refresh-token: answered 204, as Keycloak does. */
  logout: boolean
  /** The user code a link to the device page carried (`verification_uri_complete`): shown in its form, not sent. */
  prefilledUserCode?: string | undefined
  /**
   * What Gatehouse revokes itself besides the token oidc-provider looked up: a personal token named at the platform's
   * `/o/revoke_token/` (src/oidc/routes.ts). Run only once oidc-provider authenticated the client and answered 200,
   * and before that answer is sent, so that the token is refused from the moment the client reads it.
   */
  revokeAlso?: (() => Promise<void>) | undefined
  /**
   * A revocation at the realm of a value that is no token the realm signed: Keycloak's TokenRevocationEndpoint answers
   * it 200 with `invalid_token` in the body (`checkToken`), once the client authenticated.
   */
  unreadableToken?: boolean | undefined
  /**
   * A logout whose refresh token Gatehouse refused (src/oidc/routes.ts): Keycloak's LogoutEndpoint authenticates the
   * client first, so the refusal is the answer only once oidc-provider authenticated it (a revocation of no token).
   */
  refusedOnceAuthenticated?: { status: number; error: string; description: string } | undefined
  /**
   * The `aud` of the access token being introspected, as it was signed (absent from a token that names none): its
   * audiences may be other than its client's now, since a reload changed the services (the OAuth2 applications').
   */
  introspectedAudience?: { aud: unknown } | undefined
  /** A userinfo request refused for how it carries its token, answered once oidc-provider set its CORS (`userinfoRefused`). */
  userinfoRefusal?: UserinfoRefusal | undefined
  /**
   * The account of the refresh token a token request brought, as its verified JWT names it: its record may be gone with
   * its account's end, and Keycloak's refusal names what became of the account (`tokenError`).
   */
  refreshTokenAccount?: string | undefined
  /**
   * When the refresh token a token request brought expires (epoch seconds), as its verified JWT says: one whose record
   * its grant's `refresh_tokens_per_grant_limit` ended is taken for one used before only until then
   * (provider.ts `staleRefreshTokensEndTheirGrant`), as an expired one is refused for that first.
   */
  refreshTokenExpiry?: number | undefined
  /**
   * Whether the browser's request was https as the gateway judges it for its own cookies (src/auth/csrf.ts `isSecure`):
   * the realm's cookies are Secure then, and only then.
   */
  secure: boolean
  /**
   * Who the browser's gateway session signs in silently, judged as the realm's login step judges it
   * (src/oidc/interactions.ts `silentGatewaySignIn`), with that session's key hash; undefined without a live one, or
   * when `accepts` refuses it (before it counts as a sign-in started). Absent where no browser asks.
   */
  signedInAtGateway?: ((accepts?: (signedIn: GatewaySignIn) => boolean) => Promise<GatewaySignIn | undefined>) | undefined
  /** The account of the browser's live gateway session, if it has one; counts no sign-in. Absent where no browser asks. */
  gatewayAccount?: (() => Promise<number | undefined>) | undefined
  /**
   * The account of the browser's live gateway session, without the CSRF check an unsafe request needs to act as it:
   * only to count what the browser does against its account (the device page's wrong codes). Absent where no browser asks.
   */
  sessionAccount?: (() => Promise<number | undefined>) | undefined
}

/** A browser's live gateway session: its user, its key hash, and when it was signed in (epoch ms, the password's time). */
export interface GatewaySignIn {
  user: User
  gatewaySession: string | undefined
  signedInAt: number | undefined
  /**
   * Whether the person proved who they are when the gateway session started (a password, or a single sign-on in
   * which the provider had them log in): only such a session answers a fresh login it was sent to make.
   */
  freshSignIn?: boolean
}

export interface KeycloakError {
  status: number
  error: string
  error_description: string
  /** Headers the answer carries besides the endpoint's own. */
  headers?: Record<string, string>
}

/** oidc-provider's description of its `server_error` (lib/helpers/err_out.js), which tells nothing of the failure. */
const SERVER_ERROR_DESCRIPTION = 'oops! something went wrong'

/**
 * The token endpoint's answer when Gatehouse fails rather than the request, whichever step failed (a shortcut,
 * client-credentials.ts and refresh-token.ts, or oidc-provider when its adapter throws): the database not answering
 * is 503 `temporarily_unavailable` with Retry-After, as Gatehouse answers an outage everywhere (src/errors.ts
 * DatabaseUnavailable), in RFC 6749 §4.1.2.1's word for it; so is a directory (LDAP) that cannot be asked in time
 * (DirectoryUnavailable), with its own message; too many password checks waiting is 503 `password_checks_busy` with
 * Retry-After; anything else is oidc-provider's 500 `server_error`.
 * Keycloak answers both 500 `unknown_error` (its KeycloakErrorHandler): docs/oidc.md notes the difference. Nothing
 * of the failure itself is shown; it is logged where it happened.
 */
export function tokenEndpointFailure(failure: unknown): KeycloakError {
  if (failure instanceof DatabaseUnavailable) {
    return { status: 503, error: 'temporarily_unavailable', error_description: DatabaseUnavailable.defaultMessage, headers: { 'retry-after': String(DatabaseUnavailable.retryAfterSeconds) } }
  }
  if (failure instanceof DirectoryUnavailable) {
    return { status: 503, error: 'temporarily_unavailable', error_description: failure.message, headers: { 'retry-after': String(DirectoryUnavailable.retryAfterSeconds) } }
  }
  // Its own code, as sign_ins_throttled has at the realm's endpoints: Keycloak has no such bound to name it.
  if (failure instanceof PasswordChecksBusy) {
    return { status: 503, error: failure.code, error_description: failure.message, headers: { 'retry-after': String(PasswordChecksBusy.retryAfterSeconds) } }
  }
  if (failure instanceof ClientTokensThrottled) {
    return { status: 429, error: failure.code, error_description: failure.message, headers: { 'retry-after': String(failure.retryAfterSeconds) } }
  }
  return { status: 500, error: 'server_error', error_description: SERVER_ERROR_DESCRIPTION }
}

/** The endpoints besides the token endpoint that programs call, whose failures are answered as its are. */
const OUTAGE_ROUTES: ReadonlySet<string> = new Set(['userinfo', 'introspection', 'revocation'])

export function keycloakShapes(options: KeycloakShapeOptions) {
  return async function keycloakShapes(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    // Set before the page is written: oidc-provider adds the hash of each script it writes (its self-submitting
    // forms) to this policy's script-src.
    ctx.set('content-security-policy', REALM_PAGE_POLICY)
    await next()
    const oidc = (ctx as { oidc?: KoaContextWithOIDC['oidc'] }).oidc
    if (oidc?.route === 'end_session' && ctx.status === 200 && !oidc.session?.accountId) {
      await endHintedSession(ctx, oidc, options)
      if (ctx.cookies.get(GATEWAY_SESSION_COOKIE)) await askBeforeEndingGatewaySession(ctx)
    }
    // Keycloak's logout answers its errors with its error page (LogoutEndpoint, ErrorPage) whatever the client accepts,
    // as the refusals made before oidc-provider sees the request are (routes.ts `logoutFailed`); oidc-provider answers
    // a client that prefers JSON (curl's `*/*`) in JSON.
    const refused = ctx.body as { error?: unknown; error_description?: unknown } | undefined
    if (oidc && LOGOUT_ROUTES.has(oidc.route) && ctx.status >= 400 && !ctx.response.is('html') && typeof refused?.error === 'string') {
      await renderErrorPage(ctx, { error: refused.error, ...(typeof refused.error_description === 'string' ? { error_description: refused.error_description } : {}) })
    }
    if (typeof ctx.body === 'string' && ctx.response.is('html')) ctx.body = accessibleAutoPost(ctx.body)
    // The form_post page keeps the policy it was written with (`formPostPolicy`).
    const formPost = isFormPostResponse(ctx, oidc)
    if (ctx.response.is('html') && !formPost) {
      // No page is kept by a cache, as Keycloak sends its pages (its forms' secrets, the code a device shows).
      ctx.set({ ...REALM_PAGE_HEADERS, 'content-security-policy': ctx.response.get('content-security-policy') || REALM_PAGE_POLICY, 'cache-control': 'no-store' })
    } else if (!formPost) {
      ctx.remove('content-security-policy')
    }
    if (!oidc) {
      if (ctx.status === 404 && !ctx.body) {
        // Koa answers 200 once a body is set on a response whose status was never set explicitly. A browser
        // navigating gets the error page (`errorPage`).
        if (wantsHtml(ctx.req)) {
          ctx.set({ ...UNFRAMED_PAGE_HEADERS, 'cache-control': 'no-store' })
          ctx.type = 'html'
          ctx.body = sorryPage('Page not found')
        } else {
          ctx.body = NO_SUCH_ENDPOINT
        }
        ctx.status = 404
      }
      return
    }
    keycloakCors(ctx, oidc)
    const body = ctx.body as Record<string, unknown> | undefined
    if (oidc.route === 'token') {
      ctx.set('pragma', 'no-cache')
      if (ctx.status === 200 && body && typeof body.access_token === 'string') ctx.body = await tokenResponse(body, oidc, options.tokens)
      else if (ctx.status >= 400 && body && typeof body.error === 'string') {
        const error = await tokenError(body, ctx, options)
        ctx.status = error.status
        // Keycloak's token endpoint answers every error in its body alone (ClientAuthUtil `errorResponse` for a client
        // that failed to authenticate): oidc-provider's challenge would name its own words for it.
        ctx.remove('www-authenticate')
        for (const [name, value] of Object.entries(error.headers ?? {})) ctx.set(name, value)
        ctx.body = { error: error.error, error_description: error.error_description }
      }
    } else if (ctx.status >= 500 && body?.error === 'server_error' && OUTAGE_ROUTES.has(oidc.route)) {
      // oidc-provider words every failure "oops! something went wrong": an outage is answered as the token endpoint
      // answers it, with when to try again.
      const failure = tokenEndpointFailure(ctx.state.failure)
      ctx.status = failure.status
      for (const [name, value] of Object.entries(failure.headers ?? {})) ctx.set(name, value)
      ctx.set('cache-control', 'no-store')
      ctx.body = { error: failure.error, error_description: failure.error_description }
    } else if (oidc.route === 'introspection' && ctx.status === 200 && body?.active === true) {
      await describeIntrospected(body, oidc, options, providerRequestOf(ctx)?.introspectedAudience)
    } else if (oidc.route === 'revocation' && (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.logout && ctx.status === 200) {
      // Found, and so revoked: a token whose session ended already is answered alike, and ends nothing more.
      const revoked = oidc.entities.RefreshToken as unknown as (RefreshTokenRecord & { grantId?: string }) | undefined
      if (revoked) {
        await options.loggedOutWithRefreshToken(revoked, providerRequestOf(ctx)?.address)
        options.signedOut?.(revoked.accountId, providerRequestOf(ctx)?.address)
      }
      ctx.status = 204
      ctx.body = null
    } else if (oidc.route === 'revocation' && ctx.status === 200 && providerRequestOf(ctx)?.refusedOnceAuthenticated) {
      const { status, error, description } = providerRequestOf(ctx)!.refusedOnceAuthenticated!
      ctx.status = status
      ctx.body = { error, error_description: description }
    } else if (oidc.route === 'revocation' && ctx.status === 200 && providerRequestOf(ctx)?.unreadableToken) {
      ctx.body = { error: 'invalid_token', error_description: 'Invalid token' }
    } else if (oidc.route === 'revocation' && ctx.status === 200 && providerRequestOf(ctx)?.revokeAlso) {
      await revokeAlso(ctx, providerRequestOf(ctx)!)
    } else if (oidc.route === 'introspection' && isClientAuthenticationFailure(ctx.status, body)) {
      // Keycloak's TokenIntrospectionEndpoint answers any failed client authentication so (`authorizeClient`), with
      // no challenge: oidc-provider's would name another error than the body.
      ctx.status = 401
      ctx.remove('www-authenticate')
      ctx.body = { error: 'invalid_request', error_description: 'Authentication failed.' }
    } else if (oidc.route === 'revocation' && ctx.status === 400 && body?.error_description === NO_CLIENT_AUTHENTICATION) {
      // Keycloak's revocation, and its logout with a refresh token, authenticate the client as its token endpoint
      // does (`AuthorizeClientUtil.authorizeClient`), so a request naming no client is answered alike.
      ctx.status = 401
      ctx.body = { error: 'invalid_client', error_description: 'Missing client_id parameter' }
    } else if (ctx.status === 401 && body?.error === 'invalid_client') {
      // Keycloak's ClientAuthUtil `errorResponse` sends no challenge with it.
      ctx.remove('www-authenticate')
      ctx.body = { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' }
    } else if ((oidc.route === 'introspection' || oidc.route === 'revocation') && ctx.status === 400 && typeof body?.error_description === 'string') {
      ctx.body = { error: body.error, error_description: tokenParameterError(oidc.route, body.error_description) }
    } else if (oidc.route === 'userinfo' && ctx.status === 401 && providerRequestOf(ctx)?.userinfoRefusal) {
      // oidc-provider got no token (routes.ts `userinfoTarget`), and answered with its CORS for any origin.
      const refusal = USERINFO_REFUSALS[providerRequestOf(ctx)!.userinfoRefusal!]
      userinfoRefused(ctx, options.realm, 400, 'invalid_request', refusal.description)
      if (!refusal.cors) for (const name of CORS_FIELDS) ctx.remove(name)
    } else if (oidc.route === 'userinfo' && ctx.status === 401 && body?.error === 'invalid_token') {
      // routes.ts gives oidc-provider the record id of a token the realm signed (`accessTokenRecordId`).
      const recordId = body.error_description === NO_ACCESS_TOKEN ? undefined : /^Bearer (\S+)$/.exec(ctx.get('authorization'))?.[1]
      const serviceAccount = recordId === undefined ? undefined : await options.serviceAccountUserinfo(recordId)
      const origin = ctx.get('origin')
      if (body.error_description === NO_ACCESS_TOKEN) userinfoRefused(ctx, options.realm, 401)
      else if (!serviceAccount) userinfoRefused(ctx, options.realm, 401, 'invalid_token', 'Token verification failed')
      else if (!serviceAccount.claims) userinfoRefused(ctx, options.realm, 403, 'insufficient_scope', 'Missing openid scope')
      else if (origin && !webOriginAllowed(options.client(serviceAccount.clientId), origin)) {
        // As oidc-provider refuses a person's token from an origin its client does not allow (its clientBasedCORS).
        const description = `origin ${origin} not allowed for client: ${serviceAccount.clientId}`
        ctx.status = 400
        for (const name of CORS_FIELDS) if (name !== 'access-control-expose-headers') ctx.remove(name)
        ctx.set('www-authenticate', `Bearer realm="${String(oidc.provider.issuer)}", error="invalid_request", error_description="${description}"`)
        ctx.body = { error: 'invalid_request', error_description: description }
      } else {
        ctx.status = 200
        ctx.remove('www-authenticate')
        ctx.body = serviceAccount.claims
      }
    } else if (oidc.route === 'userinfo' && ctx.status === 403 && body?.error === 'insufficient_scope') {
      userinfoRefused(ctx, options.realm, 403, 'insufficient_scope', 'Missing openid scope')
    } else if (oidc.route === 'pushed_authorization_request' && ctx.status === 400 && typeof body?.error_description === 'string' && oidc.client) {
      // Keycloak's ParEndpoint checks a pushed request as its authorization endpoint does (AuthorizationEndpointChecker).
      body.error_description = keycloakPkceDescription(body.error_description, options.requiresPkce(oidc.client.clientId)) ?? body.error_description
    } else if (oidc.route === 'device_authorization' && ctx.status === 400 && body?.error_description === `${DEVICE_GRANT} is not allowed for this client`) {
      // Keycloak's OAuth2DeviceAuthorizationEndpoint, for a client without the device grant.
      ctx.body = { error: 'unauthorized_client', error_description: 'Client is not allowed to initiate OAuth 2.0 Device Authorization Grant. The flow is disabled for the client.' }
    } else if (oidc.route === 'device_authorization' && ctx.status === 200 && body) {
      // Keycloak's device authorization response names the polling interval (RFC 8628 §3.2).
      body.interval = DEVICE_POLLING_SECONDS
    } else if (oidc.route === 'jwks' && ctx.status === 200 && Array.isArray(body?.keys)) {
      // oidc-provider publishes a key's certificate (x5c) but not its thumbprints, which Keycloak's JWKS has.
      for (const key of body.keys as Record<string, unknown>[]) Object.assign(key, certificateThumbprints(key.x5c))
      // Keycloak's certs endpoint answers application/json unless the client asks for exactly the JWK set type.
      if (ctx.get('accept') !== JWK_SET_TYPE) ctx.type = 'application/json'
    } else if (oidc.route === 'discovery' && ctx.status === 200 && body) {
      // keycloak-js's login status iframe (keycloak-pages.ts), which oidc-provider does not know.
      body.check_session_iframe = `${String(body.issuer)}${options.checkSessionIframe}`
      Object.assign(body, keycloakDiscoveryFields(body))
    } else if ((oidc.route === 'authorization' || oidc.route === 'resume') && ctx.status >= 300 && ctx.status < 400) {
      // Keycloak's authorization endpoint redirects with 302 (OIDCRedirectUriBuilder), oidc-provider with 303.
      ctx.status = 302
      setSessionStateCookie(ctx, oidc, options.cookiePath)
      addSessionState(ctx, oidc)
    } else if (isFormPostResponse(ctx, oidc)) {
      addSessionState(ctx, oidc)
    } else if (oidc.route === 'end_session_confirm' && (oidc.session as unknown as { destroyed?: boolean } | undefined)?.destroyed) {
      ctx.cookies.set(SESSION_STATE_COOKIE, null, { path: options.cookiePath, httpOnly: false })
      if (oidc.session?.accountId) options.signedOut?.(oidc.session.accountId, providerRequestOf(ctx)?.address)
      // The logout that signs the previous person out when someone else logs in at the realm's login page in the same
      // browser leaves alone the gateway session that login just opened.
      const gatewaySession = ctx.cookies.get(GATEWAY_SESSION_COOKIE)
      if (gatewaySession && await options.endGatewaySession(gatewaySession, oidc.session?.accountId, providerRequestOf(ctx)?.address)) {
        ctx.cookies.set(GATEWAY_SESSION_COOKIE, null, { path: '/', httpOnly: true, sameSite: 'lax' })
      }
    }
  }
}

/**
 * The fields Keycloak's discovery always publishes (OIDCWellKnownProvider) that oidc-provider leaves out, with the
 * realm's own values: its introspection and revocation endpoints authenticate clients as its token endpoint does (a
 * public client with its id alone, for its own tokens); the prompts it answers are Keycloak's (`create` only where
 * registration is allowed, which it never is here: routes.ts `registrationNotAllowed`); `acr` is Keycloak's without
 * levels of authentication, `1` for a login form and `0` for a sign-in from a session (provider.ts `grantAcr`), which
 * Keycloak publishes as `["0", "1"]` for a browser flow without step-up conditions (LoAUtil); userinfo answers JSON
 * only (`none`: no client can ask for a signed answer); and no client must push its requests.
 */
function keycloakDiscoveryFields(body: Record<string, unknown>): Record<string, unknown> {
  const methods = body.token_endpoint_auth_methods_supported
  const algorithms = body.token_endpoint_auth_signing_alg_values_supported
  return {
    introspection_endpoint_auth_methods_supported: methods,
    introspection_endpoint_auth_signing_alg_values_supported: algorithms,
    revocation_endpoint_auth_methods_supported: methods,
    revocation_endpoint_auth_signing_alg_values_supported: algorithms,
    prompt_values_supported: ['none', 'login', 'consent'],
    acr_values_supported: ['0', '1'],
    userinfo_signing_alg_values_supported: ['none'],
    require_pushed_authorization_requests: false,
  }
}

/**
 * Keycloak's introspection answers with the token's own claims (AccessTokenIntrospectionProvider) plus `client_id`,
 * `username` and `token_type`. oidc-provider leaves out the `jti` (it was handed the `jti` as the token, routes.ts)
 * and, for a refresh token, Keycloak's `typ`, `azp` and `aud` (the issuer), which its JWT carries.
 */
async function describeIntrospected(body: Record<string, unknown>, oidc: KoaContextWithOIDC['oidc'], options: KeycloakShapeOptions, signed: ProviderRequest['introspectedAudience']): Promise<void> {
  const refresh = oidc.entities.RefreshToken as unknown as RefreshTokenRecord | undefined
  if (refresh) {
    const typ = refreshTokenType(refresh.scope)
    Object.assign(body, { jti: refresh.jti, aud: body.iss, typ, azp: refresh.clientId, token_type: typ })
    const username = await options.username(refresh.accountId)
    if (username !== undefined) body.username = username
    return
  }
  const access = (oidc.entities.AccessToken ?? oidc.entities.ClientCredentials) as unknown as { jti: string } | undefined
  if (access) body.jti = access.jti
  // A service account's token has no account in its record: its `sub` is the service account user's (provider.ts
  // `keycloakJwt`), as Keycloak's introspection gives the token's subject.
  const serviceAccount = oidc.entities.ClientCredentials as unknown as { clientId: string } | undefined
  if (serviceAccount && body.sub === undefined) body.sub = await options.serviceAccountId(serviceAccount.clientId)
  if (typeof body.preferred_username === 'string') body.username = body.preferred_username
  if (body.token_type === 'Bearer' && body.aud === undefined && typeof body.client_id === 'string') {
    const aud = signed ? signed.aud : accessTokenAudience(body.client_id, options.client(body.client_id), body.resource_access)
    if (aud !== undefined) body.aud = aud
  }
}

function providerRequestOf(ctx: KoaContextWithOIDC): ProviderRequest | undefined {
  return (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]
}

/**
 * Holds the revocation's 200 until the request's `revokeAlso` has done; a failure of it (the database not answering)
 * is answered as the token endpoint answers one (`tokenEndpointFailure`), never with a 200 that says it was revoked.
 */
async function revokeAlso(ctx: KoaContextWithOIDC, request: ProviderRequest): Promise<void> {
  try {
    await request.revokeAlso!()
  } catch (error) {
    if (!(error instanceof DatabaseUnavailable)) request.log.error({ err: error }, 'Revoking a personal token failed')
    const failure = tokenEndpointFailure(error)
    ctx.status = failure.status
    for (const [name, value] of Object.entries(failure.headers ?? {})) ctx.set(name, value)
    ctx.body = { error: failure.error, error_description: failure.error_description }
  }
}

/** oidc-provider's answer to a client that sent no credentials, or wrong ones. */
const NO_CLIENT_AUTHENTICATION = 'no client authentication mechanism provided'
function isClientAuthenticationFailure(status: number, body: Record<string, unknown> | undefined): boolean {
  return (status === 401 && body?.error === 'invalid_client') || (status === 400 && body?.error_description === NO_CLIENT_AUTHENTICATION)
}

const JWK_SET_TYPE = 'application/jwk-set+json'

/** A live service account token at userinfo: its client, and the claims it answers with when it has `openid`. */
export interface ServiceAccountUserinfo {
  clientId: string
  claims?: Record<string, unknown>
}

/** oidc-provider's description of a userinfo request without an access token. */
const NO_ACCESS_TOKEN = 'no access token provided'

/** How a userinfo request carries its token wrongly (routes.ts `userinfoTarget`). */
export type UserinfoRefusal = 'duplicate_parameter' | 'two_methods'
/**
 * Keycloak's words for them (UserInfoEndpoint), and whether its answer has CORS fields: a repeated `access_token` is
 * refused before its CORS allows any origin, a token in the form besides the header's after.
 */
const USERINFO_REFUSALS: Record<UserinfoRefusal, { description: string; cors: boolean }> = {
  duplicate_parameter: { description: 'Duplicate parameter', cors: false },
  two_methods: { description: 'More than one method used for including an access token', cors: true },
}

/**
 * A userinfo refusal as Keycloak's UserInfoEndpoint answers every one (its OAuth2Error with `json(false)`): the error
 * only in the `WWW-Authenticate` challenge, which names the realm (its name, not oidc-provider's issuer URL), with an
 * empty text body. A request without a token gets the challenge without an error (RFC 6750 §3.1). Its CORS, when it
 * has any, exposes the challenge and nothing else.
 */
function userinfoRefused(ctx: KoaContextWithOIDC, realm: string, status: number, error?: string, description?: string): void {
  ctx.status = status
  ctx.set('www-authenticate', error === undefined ? `Bearer realm="${realm}"` : `Bearer realm="${realm}", error="${error}", error_description="${description}"`)
  ctx.body = ''
  ctx.type = 'text/plain; charset=utf-8'
  if (ctx.response.get('access-control-allow-origin')) ctx.set('access-control-expose-headers', 'WWW-Authenticate')
}

/** Keycloak's words for a missing or repeated parameter at introspection (TokenIntrospectionEndpoint) and revocation (TokenRevocationEndpoint). */
function tokenParameterError(route: string, description: string): string {
  if (description === "missing required parameter 'token'") return route === 'introspection' ? 'Token not provided.' : 'Token not provided'
  if (/must not be provided twice$/.test(description)) return 'duplicated parameter'
  return description
}

/**
 * The page that carries an authorization response to the client (`response_mode=form_post`): a client may load the
 * authorization endpoint in a hidden frame to renew its tokens silently, so that page stays frameable, as Keycloak's.
 */
function isFormPostResponse(ctx: KoaContextWithOIDC, oidc: KoaContextWithOIDC['oidc'] | undefined): boolean {
  return (oidc?.route === 'authorization' || oidc?.route === 'resume') && ctx.status === 200
}

/**
 * oidc-provider's self-submitting page (lib/response_modes/form_post.js: the form_post response mode, and a logout of
 * a browser without a session) with what the realm's other pages have for assistive technology: its language, its
 * main landmark, and a heading for the button a browser without scripts shows. Any other page is left as it is.
 */
function accessibleAutoPost(page: string): string {
  if (!page.startsWith(AUTO_POST_PAGE)) return page
  return page
    .replace('<html>', '<html lang="en">')
    .replace('<body>', '<body>\n<main>')
    .replace('</body>', '</main>\n</body>')
    .replace('<noscript>', '<noscript>\n      <h1>Continue</h1>')
}
/** How oidc-provider's self-submitting page begins. */
const AUTO_POST_PAGE = '<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv="X-UA-Compatible" content="IE=edge">\n  <title>Submitting Callback</title>'

/**
 * The form_post page's policy: it loads nothing and runs only its own script (`scriptPolicy`: the policy
 * oidc-provider added that script's hash to as it wrote the page), so markup that ever slipped past escaping would
 * run nothing. No `form-action`: browsers hold a form's post to it through the redirects that answer the post
 * (Chromium does), and a client's redirect URI often sends the browser on to the application at another origin.
 * No `frame-ancestors`: it stays frameable (`isFormPostResponse`).
 */
export function formPostPolicy(scriptPolicy: string): string {
  const scripts = /(?:^|;)\s*script-src((?:\s+'sha256-[A-Za-z0-9+/=]+')+)\s*(?:;|$)/.exec(scriptPolicy)?.[1]?.trim()
  return `default-src 'none'; script-src ${scripts ?? "'none'"}; base-uri 'none'`
}

/**
 * CORS as Keycloak's (DefaultCors): a request without an Origin gets no CORS fields at all (oidc-provider answers it
 * `Access-Control-Allow-Origin: *`), and a preflight is answered 200 with Keycloak's fixed list of headers, its
 * methods for the endpoints that take only POST, and its hour of `Max-Age`.
 */
function keycloakCors(ctx: KoaContextWithOIDC, oidc: KoaContextWithOIDC['oidc']): void {
  if (!ctx.get('origin')) {
    for (const name of CORS_FIELDS) ctx.remove(name)
    return
  }
  allowCredentials(ctx, oidc)
  if (ctx.method !== 'OPTIONS' || ctx.status !== 204 || !String(oidc.route).startsWith('cors.')) return
  ctx.status = 200
  ctx.body = ''
  ctx.remove('content-type')
  ctx.set('access-control-allow-headers', `${KEYCLOAK_ALLOW_HEADERS}${CREDENTIALED_CORS_ROUTES.has(String(oidc.route)) ? ', Authorization' : ''}`)
  if (POST_ONLY_CORS_ROUTES.has(String(oidc.route))) ctx.set('access-control-allow-methods', 'POST, OPTIONS')
  ctx.set('access-control-max-age', String(KEYCLOAK_CORS_MAX_AGE_SECONDS))
}
const CORS_FIELDS = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age']
/** Keycloak's `Cors.DEFAULT_ALLOW_HEADERS`; `Authorization` is added where it authenticates (`auth()`). */
const KEYCLOAK_ALLOW_HEADERS = 'Origin, Accept, X-Requested-With, Content-Type, Access-Control-Request-Method, Access-Control-Request-Headers, DPoP'
const KEYCLOAK_CORS_MAX_AGE_SECONDS = 3600
const POST_ONLY_CORS_ROUTES = new Set(['cors.token', 'cors.introspection', 'cors.revocation'])

/**
 * oidc-provider answers CORS for the token, userinfo, introspection and revocation endpoints only for the client's
 * allowed origins (`clientBasedCORS`), but without `Access-Control-Allow-Credentials`; keycloak-js sends its token
 * requests with credentials, and Keycloak's Cors (`auth()`) answers these endpoints, and their preflights, with it.
 * A preflight names no client, so it allows any origin, as Keycloak's does: the request itself is still held to the
 * client's web origins.
 */
function allowCredentials(ctx: KoaContextWithOIDC, oidc: KoaContextWithOIDC['oidc']): void {
  const origin = ctx.response.get('access-control-allow-origin')
  if (!origin || origin === '*' || !CREDENTIALED_CORS_ROUTES.has(String(oidc.route))) return
  ctx.set('access-control-allow-credentials', 'true')
}
const CREDENTIALED_CORS_ROUTES = new Set(['token', 'userinfo', 'introspection', 'revocation', 'cors.token', 'cors.userinfo', 'cors.introspection', 'cors.revocation'])

/**
 * Keycloak's authorization response names the browser session (`session_state`, the `sid` of the tokens the code
 * gives), which clients that watch the session through `check_session_iframe` (oidc-client-ts) need. oidc-provider
 * answers with `code`, `state` and `iss` only; `session_state` is added after them, in the redirect's query or
 * fragment, or as one more input of the form_post page.
 */
function addSessionState(ctx: KoaContextWithOIDC, oidc: KoaContextWithOIDC['oidc']): void {
  const sid = (oidc.session as unknown as { uid?: string } | undefined)?.uid
  if (!sid) return
  const parameter = `session_state=${encodeURIComponent(sid)}`
  const location = ctx.response.get('location')
  if (typeof location === 'string' && location) {
    if (/[?#&]code=/.test(location)) ctx.redirect(`${location}&${parameter}`)
    return
  }
  if (typeof ctx.body === 'string' && ctx.body.includes('<input type="hidden" name="code"')) {
    ctx.body = ctx.body.replace(/(<input type="hidden" name="code" value="[^"]*"\/>)/, `$1\n<input type="hidden" name="session_state" value="${escapeHtml(sid)}"/>`)
  }
}

/** After a browser login, the login status iframe's cookie for the browser session's `sid`. */
function setSessionStateCookie(ctx: KoaContextWithOIDC, oidc: KoaContextWithOIDC['oidc'], path: string): void {
  const session = oidc.session as unknown as { accountId?: string; uid?: string } | undefined
  if (!session?.accountId || !session.uid) return
  // Embedded in another site's page, the iframe sees the cookie only if it is SameSite=None, which needs https.
  ctx.cookies.set(SESSION_STATE_COOKIE, sessionCookieValue(session.uid), { path, httpOnly: false, secure: ctx.secure, sameSite: ctx.secure ? 'none' : 'lax', overwrite: true })
}

/** RFC 7517 §4.8-4.9: the SHA-1 and SHA-256 thumbprints of a JWK's first certificate. */
function certificateThumbprints(x5c: unknown): Record<string, string> {
  if (!Array.isArray(x5c) || typeof x5c[0] !== 'string') return {}
  const der = Buffer.from(x5c[0], 'base64')
  return { x5t: hash('sha1', der, 'base64url'), 'x5t#S256': hash('sha256', der, 'base64url') }
}

/**
 * Keycloak's members, in Keycloak's order (RFC 6749 §5.1 plus `refresh_expires_in`, `not-before-policy`,
 * `session_state`), with Keycloak's JWT refresh token and ID token (keycloak-tokens.ts).
 */
export async function tokenResponse(body: Record<string, unknown>, oidc: KoaContextWithOIDC['oidc'], tokens: KeycloakTokens): Promise<Record<string, unknown>> {
  const refreshToken = oidc.entities.RefreshToken as unknown as RefreshTokenRecord | undefined
  const accessToken = oidc.entities.AccessToken as unknown as { sid?: string; sessionUid?: string; extra?: { sid?: unknown } } | undefined
  const serviceAccount = oidc.entities.ClientCredentials as unknown as { clientId: string; scope?: string } | undefined
  const sid = accessToken ? keycloakSid(accessToken) : undefined
  const response: Record<string, unknown> = {
    access_token: body.access_token,
    expires_in: body.expires_in,
    refresh_expires_in: body.refresh_token && refreshToken ? refreshToken.expiration : 0,
  }
  if (body.refresh_token && refreshToken) response.refresh_token = await tokens.refreshToken(refreshToken)
  response.token_type = 'Bearer'
  // oidc-provider's ID token, or the claims of one it was spared signing (id-token-claims.ts).
  if (body.id_token) {
    const source = (oidc.entities.RefreshToken ?? oidc.entities.AuthorizationCode ?? oidc.entities.DeviceCode) as unknown as { authTime?: number } | undefined
    // The access token's claims beside the standard ones are its model's `extra` (provider.ts `keycloakTokenClaims`).
    const access = accessToken?.extra ? { value: String(body.access_token), claims: accessToken.extra } : String(body.access_token)
    response.id_token = await tokens.idToken(body.id_token as string | JWTPayload, access, source?.authTime)
  } else if (serviceAccount?.scope?.split(' ').includes('openid')) {
    response.id_token = await tokens.idToken(serviceAccountIdClaims(String(body.access_token), serviceAccount.clientId), String(body.access_token), undefined)
  }
  response['not-before-policy'] = 0
  if (sid) response.session_state = sid
  response.scope = body.scope ?? ''
  return response
}

/** The claims of a service account's access token that Keycloak's mappers leave out of its ID token. */
const ACCESS_TOKEN_ONLY = new Set(['jti', 'aud', 'typ', 'azp', 'sid', 'scope', 'allowed-origins', 'realm_access', 'resource_access', 'groups'])

/**
 * The ID token claims of a `client_credentials` grant with `openid`, which oidc-provider gives none (no person signed
 * in) and Keycloak does (OAuth2GrantTypeBase `createTokenResponse`, TokenManager `generateIDToken`): the service
 * account user's, from the access token just signed, for the client, without its roles and scope; no `sid` (Keycloak's
 * service account sessions are transient) and no `auth_time`.
 */
function serviceAccountIdClaims(accessToken: string, clientId: string): JWTPayload {
  const claims: JWTPayload = { aud: clientId }
  for (const [name, value] of Object.entries(decodeJwt(accessToken))) if (!ACCESS_TOKEN_ONLY.has(name)) claims[name] = value
  return claims
}

const GRANT_NOT_ALLOWED: Record<string, string> = {
  password: 'Client not allowed for direct access grants',
  client_credentials: 'Client not enabled to retrieve service account',
  authorization_code: 'Client not allowed to exchange code',
  refresh_token: 'Client not allowed to refresh tokens',
  'urn:ietf:params:oauth:grant-type:device_code': 'Client not allowed OAuth 2.0 Device Authorization Grant',
}

/** Keycloak's words for the device grant's answers while the user has not finished (DeviceGrantType). */
const DEVICE_ERRORS: Record<string, string> = {
  authorization_pending: 'The authorization request is still pending',
  slow_down: 'Slow down',
  expired_token: 'Device code is expired',
  access_denied: 'The end user denied the authorization request',
}

/** Keycloak's words for a refresh token of another client, at a refresh (TokenManager `refreshAccessToken`) and at a logout. */
export const REFRESH_CLIENT_MISMATCH = 'Invalid refresh token. Token client and authorized client don\'t match'

/** oidc-provider's reasons (`error_detail`) for refusing a refresh token, in Keycloak's words. */
const REFRESH_ERRORS: Record<string, string> = {
  'refresh token already used': 'Maximum allowed refresh token reuse exceeded',
  'refresh token is expired': 'Token is not active',
  'grant not found': 'Session not active',
  'grant is expired': 'Session not active',
  'refresh token invalid (referenced account not found)': 'User disabled',
  'client mismatch': REFRESH_CLIENT_MISMATCH,
}

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'

const CODE_ERRORS: Record<string, string> = {
  'authorization code redirect_uri mismatch': 'Incorrect redirect_uri',
  // A code, or its grant, issued to another client of the realm (grant_source.js); Keycloak's words for it.
  'client mismatch': 'Auth error: Found different client_id in clientSession',
  'code_verifier must be provided': 'PKCE code verifier not specified',
  'code_verifier does not match code_challenge': 'PKCE verification failed: Code mismatch',
}

/**
 * Keycloak's error for a failed token request. Keycloak checks the request before the client, so a missing,
 * repeated or unknown `grant_type` is reported first, whatever else oidc-provider found wrong.
 */
export async function tokenError(body: Record<string, unknown>, ctx: KoaContextWithOIDC, options: KeycloakShapeOptions): Promise<KeycloakError> {
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
  if (error === 'server_error') return tokenEndpointFailure(ctx.state.failure)
  if (description === 'no client authentication mechanism provided') return { status: 401, error: 'invalid_client', error_description: 'Missing client_id parameter' }
  if (error === 'invalid_client') return { status: 401, error, error_description: 'Invalid client or Invalid client credentials' }
  if (description === 'requested grant type is not allowed for this client') {
    // Keycloak's ClientCredentialsGrantType answers 401, and names a public client's reason; the other grants 400.
    if (grantType === 'client_credentials') {
      const publicClient = ctx.oidc.client?.clientAuthMethod === 'none'
      return { status: 401, error: 'unauthorized_client', error_description: publicClient ? 'Public client not allowed to retrieve service account' : GRANT_NOT_ALLOWED.client_credentials! }
    }
    return bad(GRANT_NOT_ALLOWED[String(grantType)] ?? 'Client not allowed for this grant type', 'unauthorized_client')
  }
  const missing = /^missing required parameters? (.+)$/.exec(description)
  if (missing && grantType === 'authorization_code') return codeWithoutParameter(ctx, params, options)
  if (missing) return bad(`Missing parameter: ${missing[1]!.replace(/'/g, '').replace(/ and /g, ', ')}`)
  // Keycloak names the whole requested scope (OAuth2GrantTypeBase), not only the unknown values.
  if (error === 'invalid_scope') return bad(`Invalid scopes: ${String(params.scope ?? body.scope ?? '')}`.trim(), 'invalid_scope')
  // Keycloak's direct grant answers a missing username 401 (ValidateUsername). Wrong credentials were 401 too
  // (ValidatePassword) until Keycloak 26.6, which answers every invalid_grant of this grant 400, as RFC 6749 §5.2 has
  // it: so does Gatehouse, a login during a brute-force lock included, with the same words.
  if (grantType === 'password' && error === 'invalid_request' && description === 'Missing parameter: username') {
    return { status: 401, error, error_description: description }
  }
  if (error === 'invalid_grant') {
    // Keycloak checks a refresh token's own `exp` first (TokenManager `verifyRefreshToken`); its record here is gone
    // with its expiry, and oidc-provider finds none.
    if (grantType === 'refresh_token' && detail === 'refresh token not found' && refreshTokenExpired(ctx)) return bad(REFRESH_ERRORS['refresh token is expired']!, 'invalid_grant')
    // Keycloak judges a code's user before the client the code is of (AuthorizationCodeGrantType), where oidc-provider
    // compares the client first (a code kept past its sign-in's end, as an offline one, is found and compared).
    const codeOfAnotherClient = grantType === 'authorization_code' && detail === 'client mismatch'
    const ended = ACCOUNT_JUDGED.has(detail) || codeOfAnotherClient ? await endedAccountError(ctx, grantType, params, options) : undefined
    if (ended) return bad(ended, 'invalid_grant')
    if (grantType === 'refresh_token') return bad(REFRESH_ERRORS[detail] ?? 'Invalid refresh token', 'invalid_grant')
    if (grantType === 'authorization_code') return bad(CODE_ERRORS[detail] ?? 'Code not valid', 'invalid_grant')
    if (grantType === DEVICE_GRANT) return bad('Device code not valid', 'invalid_grant')
  }
  if (grantType === DEVICE_GRANT && DEVICE_ERRORS[error]) return bad(DEVICE_ERRORS[error]!, error)
  return { status: 400, error, error_description: description }
}

/** Whether the refresh token the request brought, verified, is past its `exp`. */
function refreshTokenExpired(ctx: KoaContextWithOIDC): boolean {
  const expiry = providerRequestOf(ctx)?.refreshTokenExpiry
  return expiry !== undefined && expiry <= epochTime()
}

/** Keycloak's refusal of a grant whose user is disabled (AuthorizationCodeGrantType, DeviceGrantType, TokenManager). */
const USER_DISABLED = 'User disabled'

/**
 * oidc-provider's reasons for refusing a code, device code or refresh token that its account's end explains:
 * disabling or deleting the account ends its sessions, grants and refresh tokens (src/app.ts); a refresh token is
 * then not found, nor a code of an ended session, or else its grant is not (a code outlives them: src/store/oidc.ts
 * `CODE_MODELS`). Keycloak keeps a disabled user's sessions, and judges the user before the session
 * (AuthorizationCodeGrantType, DeviceGrantType, TokenManager `validateToken`).
 */
const ACCOUNT_JUDGED: ReadonlySet<string> = new Set([
  'refresh token not found',
  'authorization code not found',
  'device code not found',
  'grant not found',
  'grant is expired',
  'refresh token invalid (referenced account not found)',
  'authorization code invalid (referenced account not found)',
  'device code invalid (referenced account not found)',
])

/**
 * Keycloak's words for a grant refused because its user was disabled or deleted after it began: "User disabled" for
 * a disabled one; for a deleted one, whose sessions Keycloak removes with it, a refresh's "Session not active" (a
 * code's and a device code's refusals stay as they are: Keycloak no longer finds them either). The account is the one
 * the refresh token's verified JWT names (routes.ts), or the code's record. Undefined when it stands: the refusal is
 * another one.
 */
async function endedAccountError(ctx: KoaContextWithOIDC, grantType: unknown, params: Record<string, unknown>, options: KeycloakShapeOptions): Promise<string | undefined> {
  let accountId: string | undefined
  if (grantType === 'refresh_token') accountId = providerRequestOf(ctx)?.refreshTokenAccount
  else if (grantType === 'authorization_code' || grantType === DEVICE_GRANT) {
    const value = grantType === DEVICE_GRANT ? params.device_code : params.code
    const model = grantType === DEVICE_GRANT ? ctx.oidc.provider.DeviceCode : ctx.oidc.provider.AuthorizationCode
    const adapter = (model as unknown as { adapter: { accountOf?(id: string): Promise<string | undefined> } }).adapter
    // The database failing now leaves the refusal as it was.
    if (typeof value === 'string') accountId = await adapter.accountOf?.(value).catch(() => undefined)
  }
  if (accountId === undefined) return undefined
  const state = await options.accountState(accountId).catch(() => 'active' as const)
  if (state === 'disabled') return USER_DISABLED
  return state === 'gone' && grantType === 'refresh_token' ? 'Session not active' : undefined
}

/**
 * Keycloak's code exchange (AuthorizationCodeGrantType) asks only for `code`, then reads the code, and compares the
 * `redirect_uri` it was issued for with the one sent, absent or not: a live code of this client without it is an
 * "Incorrect redirect_uri", anything else not a valid code. oidc-provider asks for both before it reads the code.
 */
async function codeWithoutParameter(ctx: KoaContextWithOIDC, params: Record<string, unknown>, options: KeycloakShapeOptions): Promise<KeycloakError> {
  if (typeof params.code !== 'string') return { status: 400, error: 'invalid_request', error_description: 'Missing parameter: code' }
  // Reading a code uses it up (adapter.ts `#claimCode`), as Keycloak's `parseCode` removes it before its checks; one
  // used already ends its grant as it is read, and is refused (provider.ts `usedCodesEndTheirGrant`).
  let code: { isExpired: boolean; consumed?: unknown; clientId?: string | undefined } | undefined
  try {
    code = (await asProviderStep(ctx, () => ctx.oidc.provider.AuthorizationCode.find(params.code as string))) ?? undefined
  } catch (failure) {
    return failure instanceof errors.InvalidGrant ? { status: 400, error: 'invalid_grant', error_description: 'Code not valid' } : tokenEndpointFailure(failure)
  }
  // Keycloak judges the code's user before the `redirect_uri`, and before the client the code is of.
  if (await endedAccountError(ctx, 'authorization_code', params, options) === USER_DISABLED) return { status: 400, error: 'invalid_grant', error_description: USER_DISABLED }
  const live = code !== undefined && !code.isExpired && !code.consumed && code.clientId === ctx.oidc.client?.clientId
  return { status: 400, error: 'invalid_grant', error_description: live ? CODE_ERRORS['authorization code redirect_uri mismatch']! : 'Code not valid' }
}

/**
 * oidc-provider's refusals of an authorization request's PKCE parameters (sender_constraints.js `checkPKCE`,
 * pkce_format.js) in Keycloak's words (AuthorizationEndpointChecker): `required` is Keycloak's client with PKCE
 * enforced (S256), where any other method is "not matching the configured one". Undefined for any other refusal.
 */
export function keycloakPkceDescription(description: string, required: boolean): string | undefined {
  switch (description) {
    case 'Authorization Server policy requires PKCE to be used for this request':
    case 'code_challenge_method must be provided':
      return 'Missing parameter: code_challenge_method'
    case 'not supported value of code_challenge_method':
      return required ? 'Invalid parameter: code challenge method is not matching the configured one' : 'Invalid parameter: code_challenge_method'
    case 'code_challenge must be provided with code_challenge_method':
      return 'Missing parameter: code_challenge'
  }
  return /^code_challenge (must be a string with a m(in|ax)imum length|contains invalid characters)/.test(description) ? 'Invalid parameter: code_challenge' : undefined
}

const RESPONSE_TYPE_VALUES = new Set(['code', 'token', 'id_token', 'none'])

/**
 * Keycloak's refusal of an implicit or hybrid request (`response_type` with `token` or `id_token`), which every
 * client gets, Gatehouse having no "Implicit Flow Enabled" (AuthorizationEndpointChecker `checkResponseType`). keycloak-js
 * with `flow: 'implicit'` or `'hybrid'` hands it to `onAuthError` and rejects `init` with it. Undefined for any
 * other refusal, and for a `response_type` Keycloak would not parse (it answers "Invalid parameter: response_type").
 */
export function implicitFlowRefusal(error: string | undefined, responseType: unknown): { error: string; error_description: string } | undefined {
  if (error !== 'unsupported_response_type' || typeof responseType !== 'string') return undefined
  const values = responseType.split(' ')
  if (!values.every((value) => RESPONSE_TYPE_VALUES.has(value)) || !values.some((value) => value === 'token' || value === 'id_token')) return undefined
  return { error: 'unauthorized_client', error_description: 'Client is not allowed to initiate browser login with given response_type. Implicit flow is disabled for the client.' }
}

/**
 * Keycloak's words (LogoutEndpoint: `Messages.INVALID_PARAMETER`, `INVALID_REDIRECT_URI`, `FAILED_LOGOUT`) for
 * oidc-provider's refusals of a logout request and of its confirmation.
 */
const LOGOUT_REFUSALS: Readonly<Record<string, string>> = {
  'could not decode id_token_hint': 'Invalid parameter: id_token_hint',
  'could not validate id_token_hint': 'Invalid parameter: id_token_hint',
  'client_id does not match the provided id_token_hint': 'Invalid parameter: id_token_hint',
  'unrecognized id_token_hint audience': 'Invalid parameter: id_token_hint',
  'post_logout_redirect_uri not registered': 'Invalid redirect uri',
  'could not find logout details': 'Logout failed',
}
const LOGOUT_ROUTES: ReadonlySet<string> = new Set(['end_session', 'end_session_confirm'])

/** oidc-provider's `renderError`: the page a browser sees when an authorization or logout request is wrong. */
export async function renderErrorPage(ctx: KoaContextWithOIDC, out: { error?: string; error_description?: string }): Promise<void> {
  ctx.type = 'html'
  if (LOGOUT_ROUTES.has(ctx.oidc?.route)) {
    // As the logout refusals Gatehouse makes before oidc-provider sees the request (routes.ts `logoutFailed`).
    ctx.body = simplePage('Logout failed', `<p>${escapeHtml(LOGOUT_REFUSALS[out.error_description ?? ''] ?? out.error_description ?? 'Logout failed')}</p>`)
    return
  }
  const description = out.error === 'invalid_redirect_uri' ? INVALID_REDIRECT_URI : out.error_description
  ctx.body = simplePage('Sign-in failed', `<p>${escapeHtml(description ?? 'The request could not be processed.')}</p><p><code>${escapeHtml(out.error ?? 'invalid_request')}</code></p>`)
}

/** Keycloak's words for a redirect URI the client does not allow (AuthorizationEndpointChecker `checkRedirectUri`). */
const INVALID_REDIRECT_URI = 'Invalid parameter: redirect_uri'

const SUBMIT_LOGOUT = `const form = document.getElementById('op.logoutForm'); form.insertAdjacentHTML('beforeend', '<input type="hidden" name="logout" value="yes">'); form.submit()`
/** The realm's pages run no script but the logout page's own, and those oidc-provider writes. */
const REALM_PAGE_HEADERS = unframedPageHeaders([SUBMIT_LOGOUT])
const REALM_PAGE_POLICY = REALM_PAGE_HEADERS['content-security-policy']!

/**
 * oidc-provider's logout confirmation, for a browser with a session (without one, oidc-provider goes on by itself).
 * Keycloak (LogoutEndpoint) asks unless `id_token_hint` names this very session (its `sid`): then the page submits
 * itself (a browser without scripts still gets the button). oidc-provider takes any valid ID token of the realm as
 * the hint, so a link from another site with someone's ID token would otherwise log the person out unasked.
 */
export async function logoutConfirmPage(ctx: KoaContextWithOIDC, form: string): Promise<void> {
  ctx.type = 'html'
  const hint = ctx.oidc.params?.id_token_hint
  const session = ctx.oidc.session as unknown as { uid?: string; accountId?: string; state?: Record<string, unknown> } | undefined
  const hinted = typeof hint === 'string' ? decodeJwt(hint) : undefined
  const hintedSid = hinted?.sid
  const automatic = hintedSid !== undefined && session?.uid !== undefined && hintedSid === session.uid
    ? `<script>${SUBMIT_LOGOUT}</script>`
    : ''
  // The hint names another session: that is the one the confirmation ends (provider.ts `endHintedSessionInstead`),
  // with the account it is of, by which a password login's is found. Kept with the form's secret, in the browser's
  // session that oidc-provider saves after this page.
  if (typeof hintedSid === 'string' && hintedSid !== '' && !automatic && session?.accountId && session.state) {
    session.state.hintedSession = hintedSid
    session.state.hintedAccount = hinted?.sub
  }
  ctx.body = simplePage('Log out', `<p>Do you want to log out?</p>${form}<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Log out</button>${automatic}`)
}

/**
 * A logout request from a browser without a realm session ends the session its `id_token_hint` names, as Keycloak's
 * LogoutEndpoint ends the user session of a valid hint when the browser has no session cookie (the application's
 * browser lost its cookies, or another one brings the token): oidc-provider ends only the session of the request's
 * cookie, and would leave that one, and its refresh tokens, alive. oidc-provider has verified the hint's signature.
 */
async function endHintedSession(ctx: KoaContextWithOIDC, oidc: KoaContextWithOIDC['oidc'], options: KeycloakShapeOptions): Promise<void> {
  const hint = (oidc.entities as { IdTokenHint?: { payload?: { sid?: unknown; sub?: unknown } } }).IdTokenHint
  const sid = hint?.payload?.sid
  const sub = typeof hint?.payload?.sub === 'string' ? hint.payload.sub : undefined
  if (typeof sid !== 'string' || sid === '') return
  const address = providerRequestOf(ctx)?.address
  if (await options.endSignIn(sid, sub, address) && sub !== undefined) options.signedOut?.(sub, address)
}

/**
 * A browser without a realm session that oidc-provider would log out unasked (a form that submits itself: it has
 * nothing of the realm's to end) may still hold a gateway session, which the logout ends (`endGatewaySession`): a
 * link from another site would end it. Keycloak asks whenever the browser has a session and the request names
 * none of it (LogoutEndpoint); so does this, with oidc-provider's own form and anti-forgery secret, which its
 * confirmation step checks. Nothing names a gateway session as `id_token_hint` names a realm session, so the page
 * never submits itself.
 */
async function askBeforeEndingGatewaySession(ctx: KoaContextWithOIDC): Promise<void> {
  const { secret } = ctx.oidc.session!.state as { secret: string }
  const form = `<form id="op.logoutForm" method="post" action="${escapeHtml(ctx.oidc.urlFor('end_session_confirm'))}"><input type="hidden" name="xsrf" value="${escapeHtml(secret)}"/></form>`
  // The self-submitting form's script is no longer on the page, nor in its policy.
  ctx.set('content-security-policy', REALM_PAGE_POLICY)
  await logoutConfirmPage(ctx, form)
}

const USER_CODE_FIELD_ID = 'user-code'

/** RFC 8628 §3.3: where the user types the code their device shows (oidc-provider's `userCodeInputSource`). */
export async function deviceCodePage(ctx: KoaContextWithOIDC, form: string, _out: unknown, error?: Error & { userCode?: string }): Promise<void> {
  ctx.type = 'html'
  if (error instanceof TooManyUserCodeGuesses) ctx.set('retry-after', String(error.retryAfterSeconds))
  const wrongCode = error !== undefined && !(error instanceof TooManyUserCodeGuesses) && Boolean(error.userCode || error.name === 'NoCodeError')
  const problem = !error ? '' : error instanceof TooManyUserCodeGuesses
    ? error.byAddress
      ? `<p id="device-error" role="alert">Too many wrong codes were entered from your network. <a href="${escapeHtml(gatewayLoginBack(ctx))}">Sign in</a>, then enter the code your device shows, or wait a few minutes.</p>`
      : '<p id="device-error" role="alert">Too many wrong codes were entered. Wait a few minutes, then enter the code your device shows.</p>'
    : wrongCode
    ? '<p id="device-error" role="alert">That code is not valid or has expired. Check the code on your device and try again.</p>'
    : '<p id="device-error" role="alert">The device login could not be completed. Start again on your device.</p>'
  // oidc-provider's input selects its text with an inline `onfocus` handler, which the realm pages' policy (no inline
  // script but the pages' own, by hash) blocks with a console error; the field works the same without it. It has a
  // placeholder but no label, which a screen reader would not read once the field holds a code: the page's words
  // label it, and the page's problem is read out with it.
  const prefilled = error ? undefined : (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.prefilledUserCode
  const attributes = (prefilled === undefined ? '' : `value="${escapeHtml(prefilled)}" `) + `id="${USER_CODE_FIELD_ID}" ` +
    (problem ? 'aria-describedby="device-error" ' : '') + (wrongCode ? 'aria-invalid="true" ' : '')
  const input = form.replace(/\sonfocus="[^"]*"/, '').replace(/(<input\s+)(?=[^>]*name="user_code")/, `$1${attributes}`)
  ctx.body = simplePage('Device login', `<p><label for="${USER_CODE_FIELD_ID}">Enter the code your device shows.</label></p>${problem}${input}<button type="submit" form="op.deviceInputForm">Continue</button>`)
}

/**
 * The gateway's login page, coming back to the device page: a browser signed in there counts its wrong codes against
 * its account, not its address (user-code-guesses.ts). The realm's issuer is `<public URL>/realms/<name>`.
 */
function gatewayLoginBack(ctx: KoaContextWithOIDC): string {
  const devicePage = new URL(ctx.oidc.urlFor('code_verification'))
  const gateway = ctx.oidc.issuer.slice(0, ctx.oidc.issuer.lastIndexOf('/realms/'))
  return `${gateway}${LOGIN_PATH}?${new URLSearchParams({ next: devicePage.pathname })}`
}

/** Before logging in: the user checks that the code and the application are the ones on their device. */
export async function deviceConfirmPage(ctx: KoaContextWithOIDC, form: string, client: { clientId: string }, _info: unknown, userCode: string): Promise<void> {
  ctx.type = 'html'
  ctx.body = simplePage('Confirm device login', `<p>The application <strong>${escapeHtml(client.clientId)}</strong> asks to sign in with the code</p>` +
    `<p><code>${escapeHtml(userCode)}</code></p><p>Continue only if your device shows this code and you started this login.</p>${form}` +
    `<button autofocus type="submit" form="op.deviceConfirmForm">Continue</button> <button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Cancel</button>`)
}

export async function deviceDonePage(ctx: KoaContextWithOIDC): Promise<void> {
  ctx.type = 'html'
  ctx.body = simplePage('Device login complete', '<p>You are logged in on your device. You can close this window.</p>')
}

export async function loggedOutPage(ctx: KoaContextWithOIDC): Promise<void> {
  ctx.type = 'html'
  ctx.body = simplePage('Logged out', '<p>You are logged out.</p>')
}

/** A minimal page in the style of the login page, for the few HTML answers of the provider. */
export function simplePage(title: string, content: string): string {
  return styledPage(title, `<h1>${escapeHtml(title)}</h1>${content}`)
}

/**
 * The page a browser navigating gets for a path or method no endpoint answers: Keycloak's KeycloakErrorHandler
 * renders its error page for a request that accepts HTML, and JSON for any other.
 */
export function errorPage(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').headers(UNFRAMED_PAGE_HEADERS).type('text/html; charset=utf-8')
    .send(sorryPage(message))
}

function sorryPage(message: string): string {
  return simplePage('We are sorry...', `<p>${escapeHtml(message)}</p>`)
}

