import { hash } from 'node:crypto'
import type { default as Provider, AdapterPayload, ClientMetadata, Configuration, ExternalSigningKey, KoaContextWithOIDC } from 'oidc-provider'
import type { RealmClientConfig, RealmConfig } from '../config/realms.ts'
import type { Accounts } from '../directory/accounts.ts'
import { issuedBefore, lastMillisecondOf, type User } from '../store/users.ts'
import { ClientTokensThrottled, DatabaseUnavailable, DirectoryUnavailable, PasswordChecksBusy, recordedError } from '../errors.ts'
import type { FixedWindowCounts } from '../http/fixed-window.ts'
import { DeviceCodeAlreadyUsed, errors, providerInternals } from './provider-errors.ts'
import type { OidcRecordRepository } from '../store/oidc.ts'
import { browserSessionStart, StoreAdapter, type AdapterDependencies } from './adapter.ts'
import { clientCredentialsShortcut, type ClientCredentialsShortcut } from './client-credentials.ts'
import { refreshTokenShortcut, type RefreshTokenShortcut } from './refresh-token.ts'
import { ApplicationClientAdapter, APPLICATION_SCOPES, type ApplicationClients, compareHashedSecrets, providerClientSecret } from './applications.ts'
import { type Memberships, type RoleScope, type TokenRoles, accessTokenAudience, ACCOUNT_ROLES, accountFinder, compileRoleScope, DEFAULT_SCOPES, orderScopes, profileClaims, realmRoles, realmScopes, SCOPE_CLAIMS, ServiceAccounts } from './claims.ts'
import type { RealmKeySet } from './keys.ts'
import { DEVICE_POLLING_SECONDS, deviceCodePage, deviceConfirmPage, deviceDonePage, formPostPolicy, implicitFlowRefusal, keycloakPkceDescription, keycloakShapes, loggedOutPage, logoutConfirmPage, PROVIDER_REQUEST, renderErrorPage, tokenResponse, type GatewaySignIn, type ProviderRequest, type ServiceAccountUserinfo } from './keycloak-format.ts'
import { LOGIN_STATUS_IFRAME } from './keycloak-pages.ts'
import { rememberAdapterSessions } from './admin-url.ts'
import { keycloakSid, refreshTokenType, type KeycloakTokens, type RefreshTokenRecord } from './keycloak-tokens.ts'
import { allowWildcardRedirects, clientRedirectUris, webOriginAllowed, webOrigins } from './redirects.ts'
import { idTokenClaims } from './id-token-claims.ts'
import { providerSigningKeys } from './signing-keys.ts'
import { refreshTokenOrigin, timeOrderedTokenIds, TIME_DIGITS } from './token-ids.ts'
import { clientAssertionTimeProblem } from './client-assertions.ts'
import { TooManyUserCodeGuesses, UserCodeGuesses } from './user-code-guesses.ts'
import type { LoginName } from './login-name.ts'
import { accessDenied, buildResourceServerInfo, grantedScope, invalidGrant, PASSWORD_GRANT, PASSWORD_GRANT_PARAMETERS, passwordGrant, passwordGrantShortcut, type PasswordGrantShortcut } from './password-grant.ts'
import type { ClientAccessCheck, ClientRolesOf } from '../access/client-access.ts'
import { SESSION_COOKIE } from '../auth/session.ts'
// @ts-expect-error: oidc-provider declares types for its entry point only; this is the `interactionPolicy` it exports.
import * as interactionPolicy from 'oidc-provider/lib/helpers/interaction_policy/index.js'
// @ts-expect-error: as above; the function oidc-provider names a model's events with (`RefreshToken`: `refresh_token`).
import snakeCase from 'oidc-provider/lib/helpers/_/snake_case.js'
import { accountAction, interactionPolicyWithActions, KC_ACTION_DESCRIPTION, KC_ACTION_PARAMETER, kcActionResponse } from './app-initiated-actions.ts'
import epochTime, { providerNow, setProviderClock, useProviderClock } from './provider-clock.ts'
import { DEVICE_CODE_GRANT, GATEWAY_CALLBACK, KEYCLOAK_ROUTES, LOGIN_ACTIONS, REALM_INTERACTION_COOKIE, REALM_RESUME_COOKIE, REALM_SESSION_COOKIE, realmResource } from './provider-paths.ts'
import { recordKey } from './record-keys.ts'

/**
 * The `token_type_hint` values Keycloak's introspection takes: the ids of its introspection providers
 * (AccessTokenIntrospectionProviderFactory, RefreshTokenIntrospectionProviderFactory, and authorization services'
 * RPTIntrospectionProviderFactory). Gatehouse finds the token whatever its hint says, as without one.
 */
const INTROSPECTION_HINTS = new Set(['access_token', 'refresh_token', 'requesting_party_token'])

/**
 * Keycloak's TokenIntrospectionEndpoint answers any other hint (an empty one too) 400 "Unsupported token type.", but
 * only once the client is authenticated and the token present: so an introspection oidc-provider answered 200 is
 * turned into that refusal, and its own refusals stand. Introspection changes nothing, so nothing is undone.
 */
async function refuseUnknownTokenTypeHint(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next()
  if (ctx.oidc?.route !== 'introspection' || ctx.status !== 200) return
  const hint = (ctx.oidc.body as Record<string, unknown> | undefined)?.token_type_hint
  if (hint === undefined || INTROSPECTION_HINTS.has(hint as string)) return
  ctx.status = 400
  ctx.body = { error: 'invalid_request', error_description: 'Unsupported token type.' }
}

/** oidc-provider's refusal of `prompt=none` with another value, which routes.ts leaves only for `none login`. */
const NONE_NOT_ALONE = 'prompt none must only be used alone'

/**
 * Keycloak answers `prompt=none login` as any passive login that would need its form (AuthorizationEndpointBase
 * `handleBrowserAuthenticationRequest`: `login` makes its cookie authenticator step aside): `login_required`, without
 * a description, as its `sendError` words it. So it words every passive login it cannot finish (`login_required`,
 * `interaction_required`, `consent_required`): keycloak-connect's check-sso takes `error` out of the application's
 * address, and a description would stay in it.
 */
const PASSIVE_REFUSALS = new Set(['login_required', 'interaction_required', 'consent_required'])

function passiveLoginRequired<Out extends { error?: string; error_description?: string }>(out: Out): Out {
  const noneNotAlone = out.error === 'invalid_request' && out.error_description === NONE_NOT_ALONE
  if (!noneNotAlone && !(out.error !== undefined && PASSIVE_REFUSALS.has(out.error))) return out
  const { error_description: _, ...rest } = out
  return (noneNotAlone ? { ...rest, error: 'login_required' } : rest) as Out
}

/** How long a login under way (an interaction, an anonymous browser session) is kept: Keycloak's "Login timeout". */
const LOGIN_UNDER_WAY_SECONDS = 1800

export const GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials', PASSWORD_GRANT, DEVICE_CODE_GRANT])

/**
 * oidc-provider itself (Koa and every endpoint): loaded for a realm's first request, not at start. Loaded once: a
 * dynamic `import()` asks the module loader to resolve the specifier again every time, which showed in the token
 * endpoint's profile. Its clock is `clock` (epoch ms), the process's view of the database's (provider-clock.ts).
 */
let providerClass: Promise<typeof Provider> | undefined
/** oidc-provider's class for keys that sign outside it (signing-keys.ts), loaded with it. */
let signingKeyClass: typeof ExternalSigningKey | undefined
export function loadProviderClass(clock: () => number): Promise<typeof Provider> {
  setProviderClock(clock)
  useProviderClock()
  // @ts-expect-error: oidc-provider declares types for its entry point only.
  providerClass ??= Promise.all([import('oidc-provider'), import('oidc-provider/lib/actions/end_session.js')]).then(([module, endSession]: [typeof import('oidc-provider'), { confirm: Middleware[] }]) => {
    signingKeyClass = module.ExternalSigningKey
    // Before the first provider is built: each one takes the confirmation's steps as they are then.
    endSession.confirm.splice(endSession.confirm.length - 1, 0, endHintedSessionInstead)
    return module.default
  }, (error: unknown) => {
    providerClass = undefined
    throw error
  })
  return providerClass
}

type Middleware = (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>

/** Each realm's `endSignIn` and `signedOut`, for the step all realms' logout confirmations share. */
const signInEnds = new WeakMap<Provider, { endSignIn: EndSignIn; signedOut: ProviderOptions['signedOut'] }>()

/**
 * Ends the sign-in a Keycloak session id (`sid`) of an account names: a realm browser session, or a login no browser
 * session holds (a password login); false when neither is live.
 */
type EndSignIn = (sid: string, accountId: string | undefined, address: string | undefined) => Promise<boolean>

/**
 * The confirmed logout of a browser whose request named another of the realm's sessions (its `id_token_hint`, which
 * `logoutConfirmPage` noted): that session ends, with every client it signed in to and the gateway session linked to
 * it, and the browser's own session stays, as Keycloak's LogoutEndpoint (`doBrowserLogout`) logs out the user session
 * of a validated hint rather than the cookie's. oidc-provider would end the cookie's session, the one the person
 * was not asked about. Runs after oidc-provider checked the form's anti-forgery secret; the browser is sent on as
 * oidc-provider sends it (lib/actions/end_session.js): to the post-logout URI with the request's `state`, or to the
 * page saying it is logged out.
 */
async function endHintedSessionInstead(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  const { session } = ctx.oidc
  const state = session?.state as { hintedSession?: unknown; hintedAccount?: unknown; postLogoutRedirectUri?: unknown; state?: unknown } | undefined
  const realmLogout = signInEnds.get(ctx.oidc.provider)
  if (typeof state?.hintedSession !== 'string' || !realmLogout) return next()
  const hintedAccount = typeof state.hintedAccount === 'string' ? state.hintedAccount : undefined
  const address = (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.address
  if (await realmLogout.endSignIn(state.hintedSession, hintedAccount, address) && hintedAccount !== undefined) realmLogout.signedOut?.(hintedAccount, address)
  session!.state = undefined
  const back = new URL(typeof state.postLogoutRedirectUri === 'string' ? state.postLogoutRedirectUri : ctx.oidc.urlFor('end_session_success'))
  if (typeof state.postLogoutRedirectUri === 'string' && typeof state.state === 'string') back.searchParams.set('state', state.state)
  ctx.status = 303
  ctx.redirect(back.href)
}

export interface ProviderOptions {
  /** From `loadProviderClass`. */
  providerClass: typeof Provider
  realm: RealmConfig
  issuer: string
  keys: RealmKeySet
  /** The service-account tokens issued to each client (realm.ts `clientTokenCounts`), kept by the realm across rebuilds. */
  clientTokens: FixedWindowCounts<string>
  /** The access tokens each grant got by refreshing (realm.ts `grantTokenCounts`), kept by the realm across rebuilds. */
  grantTokens: FixedWindowCounts<string>
  tokens: KeycloakTokens
  records: OidcRecordRepository
  accounts: Accounts
  serviceAccounts: ServiceAccounts
  loginName(name: string): Promise<LoginName>
  endGatewaySession(cookie: string, accountId: string | undefined, address: string | undefined): Promise<boolean>
  /**
   * The key hash of the gateway session a `gateway_sessionid` cookie names: a live one, if it is `userId`'s; one that
   * no longer exists (it was ended), whoever's it was, so that the save it is asked for ends the realm session.
   */
  gatewaySessionOf(cookie: string, userId: number): Promise<string | undefined>
  memberships?: ((user: User) => Memberships) | undefined
  /** Asked at each refresh: false refuses it (realm.ts). */
  confirmAccount?: ((user: User) => Promise<boolean>) | undefined
  clientAccess?: ClientAccessCheck | undefined
  /** The user's roles of the realm's clients (their `roles` rules), judged at each token's issue. */
  clientRoles?: ClientRolesOf | undefined
  revoke: AdapterDependencies['revoke']
  /** For the realm that serves the platform's OAuth2 applications (src/oidc/applications.ts). */
  applications?: ApplicationClients | undefined
  /** The realm's not-before (epoch seconds, `Realm.logoutAll`): tokens issued in an earlier second are not active. */
  notBefore(): Promise<number>
  /** Told each grant the token endpoint answered with tokens (metrics count them). */
  tokensIssued?: ((grantType: string) => void) | undefined
  /** Told each logout at the realm (its end-session endpoint, or with a refresh token) that ended an account's sign-in. */
  signedOut?: ((accountId: string, address: string | undefined) => void) | undefined
  /**
   * Told, at a logout at the end-session endpoint, each client of the browser session that has a back-channel logout
   * URI or an admin URL, with the grant of its sign-in.
   */
  loggedOut?: ((clientId: string, accountId: string, sid: string | undefined, grantId: string | undefined) => void) | undefined
  /**
   * Ends the realm browser session of this uid, telling each client it signed in to (realm.ts); false when it had
   * ended already.
   */
  endBrowserSession?: ((uid: string, address: string | undefined) => Promise<boolean>) | undefined
  /**
   * Whether a device code polls again before `intervalSeconds` have passed since its last poll, counting this one
   * (realm.ts): asked only of a poll by the code's own client, authenticated (`slowDownFastPolls`).
   */
  devicePolledTooSoon?: ((deviceCode: string, intervalSeconds: number) => boolean) | undefined
}

/**
 * One realm's oidc-provider instance. Everything Keycloak-specific goes through oidc-provider's extension
 * points: the password grant (`registerGrantType`), claims (`findAccount`, `extraTokenClaims`,
 * `formats.customizers.jwt`), JWT access tokens (a resource server with `accessTokenFormat: 'jwt'`, the realm's
 * only one), persistence (`adapter`), consent-free first-party clients (`loadExistingGrant`), the login page
 * (`interactions.url`), Keycloak's paths (`routes`), and its response shapes (a `provider.use` middleware).
 */
export function buildProvider(options: ProviderOptions): { provider: Provider; clientCredentials: ClientCredentialsShortcut; refreshToken: RefreshTokenShortcut; password: PasswordGrantShortcut } {
  const { realm, issuer, keys } = options
  // `/realms/<name>`, under the path the gateway is published at: the paths the browser addresses the realm by.
  const realmPath = new URL(issuer).pathname
  const configured = new Map(realm.clients.map((c) => [c.client_id, c]))
  // What each configured client's tokens carry of its own. An OAuth2 application has full scope, as a Keycloak client
  // by default, and no web origins.
  const tokenClaimsOfClients = new Map(realm.clients.map((c): [string, ClientTokenClaims] => [c.client_id, { roleScope: compileRoleScope(realm, c), allowedOrigins: c.web_origins.length ? [...webOrigins(c)] : undefined }]))
  // Applications as oidc-provider last found them, for the Keycloak-shaped steps that look a client up by id.
  const applications = new Map<string, RealmClientConfig>()
  const clients = { get: (id: string) => configured.get(id) ?? applications.get(id) }
  const requiresPkce = (clientId: string) => pkceRequired(clients.get(clientId))
  /** An authorization refusal as oidc-provider words it, with Keycloak's words for PKCE and the implicit flow. */
  const inKeycloakWords = <Out extends { error?: string; error_description?: string }>(ctx: KoaContextWithOIDC, out: Out): Out => {
    const implicit = implicitFlowRefusal(out.error, ctx.oidc.params?.response_type)
    if (implicit) return { ...out, ...implicit }
    // Keycloak's AuthorizationEndpointChecker reads an unknown response_mode as a bad parameter.
    if (out.error === 'unsupported_response_mode') return { ...out, error: 'invalid_request', error_description: 'Invalid parameter: response_mode' }
    const clientId = ctx.oidc.client?.clientId
    const description = out.error_description === undefined || clientId === undefined ? undefined : keycloakPkceDescription(out.error_description, requiresPkce(clientId))
    return description === undefined ? out : { ...out, error_description: description }
  }
  const resource = realmResource(realm.name)
  const scopes = options.applications ? [...new Set([...realmScopes(realm), ...APPLICATION_SCOPES])] : realmScopes(realm)
  const resourceServer = () => buildResourceServerInfo(scopes, realm.access_token_seconds, realm.default_signature_algorithm, keys.activeKid)
  // A refresh judges the client's access rules again: a user who left the team a client admits gets no new tokens.
  const clientAccess = options.clientAccess
  const checkClientAccess = clientAccess && ((ctx: KoaContextWithOIDC, clientId: string, user: User) => {
    const refusal = clientAccess(realm.name, clientId, user, (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.address ?? '')
    if (refusal) throw accessDenied(refusal)
  })
  // Past `access_tokens_per_grant_limit`, counted once a refresh or a code's redemption passed every other check,
  // before a refresh token is used up. A code is used up as it is read (adapter.ts `#claimCode`): refused so, it is
  // put back, unused, for the retry the answer's Retry-After invites while it lives, which would otherwise be taken for
  // a code used twice and end the grant (the database failing then leaves it used: the refusal stands).
  // A refresh token used already is not counted: oidc-provider takes it for a stolen one next and ends its grant,
  // which no count may put off (a code used already is refused before its account is looked up). A request counts
  // once: the refresh shortcut that counted it may leave it to oidc-provider (refresh-token.ts), which looks its
  // account up again.
  const countedRequests = new WeakSet<object>()
  const countGrantTokens = async (ctx: KoaContextWithOIDC, grantId: string, source: { kind?: string; jti?: string; consumed?: unknown }) => {
    if (source.consumed !== undefined || countedRequests.has(ctx.req)) return
    try {
      refuseClientTokensPastLimit(options.grantTokens, grantId)
    } catch (refusal) {
      if (source.kind === 'AuthorizationCode' && typeof source.jti === 'string') {
        // Its payload as oidc-provider saved it: using it up left its record only what finds its grant (adapter.ts `usedCodePayload`).
        const code = source as { jti: string; getValueAndPayload(): Promise<{ payload: AdapterPayload }> }
        const adapter = (provider.AuthorizationCode as unknown as { adapter: StoreAdapter }).adapter
        await code.getValueAndPayload().then(({ payload }) => adapter.release(code.jti, payload)).catch(() => undefined)
      }
      throw refusal
    }
    countedRequests.add(ctx.req)
  }
  const findAccount = accountFinder(options.accounts, checkClientAccess, options.confirmAccount, countGrantTokens)
  const adapterDeps: AdapterDependencies = {
    realm: realm.name,
    records: options.records,
    revoke: options.revoke,
    detectsRefreshTokenReuse: (clientId: string) => clients.get(clientId)?.refresh_token_rotation === true,
    gatewaySession: (accountId) => gatewaySessionOfRequest(options, accountId),
    grantsPerUserLimit: realm.grants_per_user_limit,
    refreshTokensPerGrantLimit: realm.refresh_tokens_per_grant_limit,
    browserSessionIdleSeconds: realm.sso_session_idle_seconds + SESSION_IDLE_WINDOW_SECONDS,
    browserSessionMaxSeconds: realm.sso_session_max_seconds,
  }

  const configuration: Configuration = {
    adapter: (model: string) => model === 'Client' && options.applications
      ? new ApplicationClientAdapter(realm.name, options.applications, applications)
      : new StoreAdapter(model, adapterDeps),
    clients: realm.clients.map((client) => clientMetadata(client, issuer)),
    // ID tokens are signed with the realm's algorithm, whatever client (configured or application) they are for.
    clientDefaults: { grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: realm.default_signature_algorithm },
    jwks: { keys: providerSigningKeys(signingKeyClass!, keys.privateJwks) },
    findAccount,
    claims: SCOPE_CLAIMS,
    scopes,
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'none'],
    assertJwtClientAuthClaimsAndHeader: (_ctx, claims) => {
      const problem = clientAssertionTimeProblem(claims, epochTime())
      if (problem) throw new errors.InvalidClientAuth(problem)
    },
    clientBasedCORS: (_ctx, origin, client) => webOriginAllowed(clients.get(client.clientId), origin),
    // Keycloak's ID tokens carry the profile and email claims of the default scopes, in every flow.
    conformIdTokenClaims: false,
    pkce: { required: (_ctx, client) => requiresPkce(client.clientId) },
    cookies: {
      names: { session: REALM_SESSION_COOKIE, interaction: REALM_INTERACTION_COOKIE, resume: REALM_RESUME_COOKIE },
      // Only the realm's paths see the SSO session cookie, never the services behind the gateway.
      long: { httpOnly: true, sameSite: 'lax', path: `${realmPath}/` },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    features: {
      devInteractions: { enabled: false },
      // The realm's keys sign with node:crypto (signing-keys.ts).
      externalSigningSupport: { enabled: true, ack: 'experimental-01' },
      clientCredentials: { enabled: true },
      // Keycloak: a confidential client may introspect any token of its realm, a public client only its own.
      // A disabled user's tokens are not active, nor those of a client the realm no longer has (Keycloak's TokenManager
      // checks both).
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => (client.clientAuthMethod !== 'none' || token.clientId === client.clientId) &&
          await tokenUserActive(token as unknown as IssuedToken, options) && (token.clientId === client.clientId || (token.clientId !== undefined && await ctx.oidc.provider.Client.find(token.clientId) !== undefined)),
      },
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => revocationAllowed(client.clientId, token as unknown as RevocableToken) },
      userinfo: { enabled: true },
      // Sender-constrained tokens would need proof checks at the gateway too; Gatehouse takes bearer tokens only.
      dPoP: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource: logoutConfirmPage, postLogoutSuccessSource: loggedOutPage },
      // Takes the clients' `backchannel_logout_uri` and advertises the feature in discovery; the delivery is
      // Gatehouse's (`deliverLogoutTokensLater`).
      backchannelLogout: { enabled: true },
      // RFC 8628, with Keycloak's code shape (eight letters, XXXX-XXXX) and its pages in Gatehouse's words.
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        userCodeInputSource: deviceCodePage,
        userCodeConfirmSource: deviceConfirmPage,
        successSource: deviceDonePage,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== resource) throw new errors.InvalidTarget()
          return resourceServer()
        },
      },
    },
    extraTokenClaims: async (ctx, token) => keycloakTokenClaims(token as unknown as IssuedToken, ctx, realm, options, tokenClaimsOfClients.get((token as unknown as IssuedToken).clientId)),
    formats: {
      customizers: {
        jwt: async (_ctx, token, jwt) => {
          if (token.kind === 'ClientCredentials') refuseClientTokensPastLimit(options.clientTokens, (token as unknown as IssuedToken).clientId)
          await keycloakJwt(token as unknown as IssuedToken, jwt, clients, options.serviceAccounts)
          await recordIssuedToken(token as unknown as IssuedToken, jwt.payload)
        },
      },
    },
    ttl: {
      // Never past the end of the session they are of, as Keycloak caps them (TokenManager): a token refreshed near
      // SSO Session Max worked on where its session no longer did, and a gateway that had verified it kept taking it.
      AccessToken: (ctx) => sessionTokenSeconds(realm, ctx),
      ClientCredentials: realm.access_token_seconds,
      IdToken: (ctx) => sessionTokenSeconds(realm, ctx),
      AuthorizationCode: 60,
      // Keycloak's "OAuth 2.0 Device Code Lifespan".
      DeviceCode: realm.device_code_seconds,
      Interaction: LOGIN_UNDER_WAY_SECONDS,
      // A browser session nobody signed in to yet (the logout or device code form's, kept for its anti-forgery secret)
      // lasts as a login under way does; a signed-in one until it is idle too long (each request that loads it saves it
      // again with this, so an authorization slides it), never past SSO Session Max.
      Session: (_ctx, session) => session.accountId ? signedInSessionSeconds(realm, session) : Math.min(LOGIN_UNDER_WAY_SECONDS, realm.sso_session_max_seconds),
      // SSO Session Idle, but never past SSO Session Max.
      // SSO Session Idle, but never past SSO Session Max; offline tokens by the offline limits instead.
      RefreshToken: (_ctx, token) => refreshTokenSeconds(realm, token as unknown as { scope?: string; totalLifetime(): number }),
      // An offline grant outlives the SSO session it came from (Keycloak's offline session).
      Grant: (_ctx, grant) => refreshTokenType(grant.getOIDCScope()) === 'Offline' ? realm.offline_session_max_seconds : realm.sso_session_max_seconds,
    },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    loadExistingGrant: async (ctx) => {
      // A browser signed in at the realm already gets codes without the login page, whose step checks the client's
      // access rules (interactions.ts): they are checked here for it, refused as there, with error=access_denied.
      const accountId = ctx.oidc.session?.accountId
      const user = checkClientAccess && ctx.oidc.client && accountId ? await options.accounts.get(Number(accountId)) : undefined
      if (user) checkClientAccess!(ctx, ctx.oidc.client!.clientId, user)
      return grantWithoutConsent(ctx, resource, scopes)
    },
    interactions: { url: (_ctx, interaction) => `${realmPath}${LOGIN_ACTIONS}${interaction.uid}`, policy: acceptingSelectAccount(askingWhenTheGatewayHasAnotherPerson(interactionPolicyWithActions())) },
    // keycloak-js `login({ action })` (app-initiated-actions.ts) and `login({ idpHint })` (interactions.ts). `prompt`'s
    // entry is no parameter of its own: it is the step that answers `prompt=none` from the gateway session (`silentSignIn`).
    extraParams: { [KC_ACTION_PARAMETER]: null, [KC_IDP_HINT]: null, prompt: silentSignIn(checkClientAccess) },
    routes: KEYCLOAK_ROUTES,
    renderError: (ctx, out) => renderErrorPage(ctx, inKeycloakWords(ctx, out)),
  }

  const provider = new options.providerClass(issuer, configuration)
  // Always behind Gatehouse, which passes the public URL's scheme and host as forwarding headers (routes.ts).
  provider.proxy = true
  secureAsTheGatewayJudges(provider)
  const endSignIn: EndSignIn = async (sid, accountId, address) =>
    await options.endBrowserSession?.(sid, address) === true || (accountId !== undefined && await endPasswordLogin(options, sid, accountId))
  signInEnds.set(provider, { endSignIn, signedOut: options.signedOut })
  allowWildcardRedirects(provider, (clientId) => configured.has(clientId))
  spareIdTokenSignatures(provider)
  acrOfAuthorization(provider)
  keepNoEmptySessions(provider)
  stampRefreshTokensOnce(provider)
  eventNamesOnce(provider)
  timeOrderedTokenIds(provider)
  deliverLogoutTokensLater(options.providerClass, provider, options.loggedOut)
  // Every response mode (query, fragment, form_post, ...) sends the refusal back to the client in Keycloak's words,
  // and an application-initiated action's outcome with the code, as Keycloak does. A refusal in form_post is the same
  // page as a success, answered 200 as Keycloak's form_post builder answers both (oidc-provider answers it with the
  // refusal's 400), so that the browser shows it and posts it on to the client like any other.
  const responseModes = providerInternals(provider).responseModes
  for (const [mode, send] of responseModes) {
    responseModes.set(mode, async (ctx, redirectUri, out) => {
      const answer = kcActionResponse(ctx, passiveLoginRequired(inKeycloakWords(ctx, out)))
      if (mode !== 'form_post') return send(ctx, redirectUri, answer)
      ctx.status = 200
      // oidc-provider adds the hash of the page's one script to the script-src it finds as it writes the page.
      ctx.set('content-security-policy', 'script-src')
      await send(ctx, redirectUri, answer)
      ctx.set('content-security-policy', formPostPolicy(ctx.response.get('content-security-policy')))
    })
  }
  consumeOnce(options.providerClass, provider)
  usedCodesEndTheirGrant(options.providerClass, provider)
  replayOnce(provider)
  approveDeviceCodesOnce(provider)
  boundUserCodeGuesses(options.providerClass, provider)
  slowDownFastPolls(options.providerClass, provider, options.devicePolledTooSoon)
  compareHashedSecrets(provider)
  const passwordGrantOptions = { realm: realm.name, accounts: options.accounts, clientAccess: options.clientAccess, loginName: options.loginName, findAccount, scopes, resource, resourceServer }
  provider.registerGrantType(PASSWORD_GRANT, passwordGrant(passwordGrantOptions), PASSWORD_GRANT_PARAMETERS)
  serviceAccountScopes(provider, scopes)
  refreshScopes(provider)
  staleRefreshTokensEndTheirGrant(provider, adapterDeps.detectsRefreshTokenReuse)
  provider.use(keycloakShapes({ realm: realm.name, grantTypes: GRANT_TYPES, client: (id) => clients.get(id), requiresPkce, username: async (id) => (await options.accounts.get(Number(id)))?.username, serviceAccountUserinfo: (jti) => serviceAccountUserinfo(provider, options, jti), serviceAccountId: async (clientId) => String((await options.serviceAccounts.userFor(clientId)).id), accountState: (id) => accountState(options.accounts, id), tokens: options.tokens, cookiePath: `${realmPath}/`, checkSessionIframe: LOGIN_STATUS_IFRAME, endGatewaySession: options.endGatewaySession, endSignIn, loggedOutWithRefreshToken: (token, address) => loggedOutWithRefreshToken(options, token, address), signedOut: options.signedOut }))
  provider.use(refuseUnknownTokenTypeHint)
  provider.use(sessionCookieUntilSessionMax(realm))
  if (options.applications) provider.use(earlierAccessTokensEndOnRefresh(provider, options.records, (id) => configured.has(id)))
  // keycloak-connect's session id, sent with its code, for the admin call that ends that session (admin-url.ts).
  provider.use(rememberAdapterSessions({ records: options.records, hasAdminUrl: (id) => configured.get(id)?.admin_url !== undefined, keptSeconds: Math.max(realm.sso_session_max_seconds, realm.offline_session_max_seconds) }))
  // Token errors carry their reason in `error_detail`, which oidc-provider keeps out of the response; Keycloak's
  // wording is chosen from it (keycloak-format.ts).
  provider.on('grant.success', (ctx) => options.tokensIssued?.(String(ctx.oidc.params?.grant_type ?? 'unknown')))
  provider.on('grant.error', (ctx, error) => {
    ctx.state.failure = error
  })
  // Failures inside oidc-provider (answered `server_error`) and around it (answered 500 by Koa) go to the request's log;
  // a database outage is answered 503 (DatabaseUnavailable's statusCode) and logged once by the server, not per request;
  // a full password-check queue is answered 503 too (PasswordChecksBusy's), and is load, not a failure to log; a
  // directory that cannot be asked is answered 503 and logged with its reason, as everywhere (recordedError).
  const logFailure = (ctx: { req: unknown }, error: unknown) => {
    if (error instanceof DatabaseUnavailable || error instanceof PasswordChecksBusy || error instanceof ClientTokensThrottled) return
    const log = (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.log
    if (error instanceof DirectoryUnavailable) {
      if (log) recordedError({}, error, log)
      return
    }
    log?.error({ err: error, realm: realm.name }, 'OpenID Connect provider failed')
  }
  provider.on('server_error', (ctx, error) => {
    // Which failure it was decides the token endpoint's answer (keycloak-format.ts `tokenEndpointFailure`).
    ctx.state.failure = error
    logFailure(ctx, error)
  })
  // Koa's own 'error' event, which oidc-provider's typings leave out.
  ;(provider as unknown as NodeJS.EventEmitter).on('error', (error: unknown, ctx: { req: unknown }) => logFailure(ctx, error))
  const clientCredentials = clientCredentialsShortcut({ provider, configured: (id) => configured.has(id), resource, resourceServer, tokensIssued: options.tokensIssued })
  const shortcut = { provider, configured: (id: string) => configured.has(id), answer: (body: Record<string, unknown>, oidc: KoaContextWithOIDC['oidc']) => tokenResponse(body, oidc, options.tokens), tokensIssued: options.tokensIssued }
  const refreshToken = refreshTokenShortcut(shortcut)
  const password = passwordGrantShortcut({ ...passwordGrantOptions, ...shortcut })
  return { provider, clientCredentials, refreshToken, password }
}

function clientMetadata(client: RealmClientConfig, issuer: string): ClientMetadata {
  const grantTypes = [
    client.standard_flow && 'authorization_code',
    (client.standard_flow || client.direct_access_grants || client.device_authorization_grant) && 'refresh_token',
    client.direct_access_grants && PASSWORD_GRANT,
    client.service_accounts && 'client_credentials',
    client.device_authorization_grant && DEVICE_CODE_GRANT,
  ].filter((g): g is string => typeof g === 'string')
  const { redirectUris, postLogoutRedirectUris } = clientRedirectUris(client)
  return {
    client_id: client.client_id,
    ...clientAuthentication(client),
    grant_types: grantTypes,
    response_types: client.standard_flow ? ['code'] : [],
    redirect_uris: client.standard_flow ? [...redirectUris, `${issuer}${GATEWAY_CALLBACK}`] : [],
    post_logout_redirect_uris: postLogoutRedirectUris,
    // Without `backchannel_logout_session_required`, which would have oidc-provider put its own `sid`, one per client,
    // in the client's codes and tokens, in place of the browser session's that Keycloak's tokens share: the logout
    // token names that one anyway (`deliverLogoutTokensLater`).
    // oidc-provider's end-session endpoint hands on only the clients that have one (`deliverLogoutTokensLater`), which
    // decides what each is sent: an admin URL stands in for it, and is sent only the admin call (admin-url.ts).
    ...(client.backchannel_logout_uri ?? client.admin_url ? { backchannel_logout_uri: client.backchannel_logout_uri ?? client.admin_url } : {}),
  }
}

/** Keycloak's parameter naming the identity provider to sign in at (keycloak-js `login({ idpHint })`). */
export const KC_IDP_HINT = 'kc_idp_hint'

/**
 * The login prompt's reason when the browser's live gateway session is another person's than its realm session: the
 * realm session's person left the browser, their gateway session expired (which ends nothing at the realm), and
 * someone else logged in at the gateway's login page, which does not see the realm's cookie to end it.
 */
export const GATEWAY_HAS_ANOTHER_PERSON = 'gateway_session_of_another_person'

/**
 * A browser signs in once, as the person of its gateway session: a realm session of someone else is not taken for
 * an authorization. The login step answers the prompt with the gateway session (interactions.ts), and oidc-provider
 * signs the realm session's person out before it signs the gateway's in, as when someone else logs in at the realm's
 * login page; `prompt=none` is answered `login_required`.
 */
function askingWhenTheGatewayHasAnotherPerson(policy: ReturnType<typeof interactionPolicy.base>): ReturnType<typeof interactionPolicy.base> {
  policy.get('login').checks.add(new interactionPolicy.Check(
    GATEWAY_HAS_ANOTHER_PERSON,
    'The browser is signed in at the gateway as another user',
    'login_required',
    async (ctx: KoaContextWithOIDC) => {
      const accountId = ctx.oidc.session?.accountId
      if (!accountId) return false
      const gatewayAccount = await (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.gatewayAccount?.()
      return gatewayAccount !== undefined && String(gatewayAccount) !== accountId
    },
  ))
  return policy
}

/**
 * `prompt=select_account` (OpenID Connect Core §3.1.2.1), which oidc-provider refuses as a value no prompt of its
 * policy can be asked for by. Keycloak accepts it and, a browser holding one account's session only
 * (keycloak/keycloak#42064), asks nothing for it: its cookie authenticator signs a browser with a session in without
 * the form, since only `prompt=login` and `max_age` require it to log in again (OIDCLoginProtocol
 * `requireReauthentication`). So here: a requestable prompt without a single check, which is never pending, and
 * leaves the login to the login prompt's own checks (a browser without a session gets the form).
 */
function acceptingSelectAccount<Policy extends unknown[]>(policy: Policy): Policy {
  const selectAccount = new interactionPolicy.Prompt({ name: 'select_account', requestable: true })
  // A requestable prompt gets a check that its value was asked for: that one would show a page for it.
  selectAccount.checks.clear()
  policy.push(selectAccount)
  return policy
}

/**
 * Keycloak's `acr` without levels of authentication (AcrProtocolMapper, AuthenticationManager `isSSOAuthentication`):
 * "1" when the person typed their password in this authorization, "0" when single sign-on signed them in without
 * the form (the realm's browser session, or the gateway's, which the login step takes for it).
 */
export const LOGIN_FORM = '1'
export const SINGLE_SIGN_ON = '0'
export type LoginAcr = typeof LOGIN_FORM | typeof SINGLE_SIGN_ON

/**
 * What the login step hands oidc-provider for the person who signed in (`interactionResult`), with the key hash of the
 * gateway session the login opened or was made with, for the save of the realm session when the login comes back to
 * the realm (`gatewaySessionOfRequest`), and how they signed in (`acr`, `acrOfAuthorization`).
 */
export function loginResult(accountId: string, gatewaySession: string | undefined, acr: LoginAcr, signedInAt?: number): { login: { accountId: string; acr: LoginAcr; gatewaySession?: string; ts?: number } } {
  // oidc-provider's `ts`: the realm session's login time (its `auth_time`), when the password was typed before now.
  const ts = signedInAt === undefined ? {} : { ts: gatewayAuthTime(signedInAt) }
  return { login: gatewaySession === undefined ? { accountId, acr, ...ts } : { accountId, acr, gatewaySession, ...ts } }
}

/** Whether the account of this `sub` is there and enabled, disabled, or gone. */
async function accountState(accounts: Accounts, sub: string): Promise<'active' | 'disabled' | 'gone'> {
  const user = /^[1-9][0-9]{0,14}$/.test(sub) ? await accounts.get(Number(sub)) : undefined
  return !user ? 'gone' : user.isActive ? 'active' : 'disabled'
}

/**
 * The `acr` of each authorization, not of the browser session: oidc-provider gives a code (and a device code) the
 * `acr` of the session's last login, so an application the session signs in later would be told the person typed
 * their password for it too. An authorization that a login finished in this request (oidc-provider's resume, with
 * the login step's result) has that login's; any other was answered by the session alone, single sign-on. The
 * authorization's tokens carry it on: its code, refresh tokens, ID and access tokens (`grantAcr`).
 */
function acrOfAuthorization(provider: Provider): void {
  Object.defineProperty(provider.OIDCContext.prototype, 'acr', {
    configurable: true,
    get(this: { result?: { login?: { acr?: unknown } } }) {
      const acr = this.result?.login?.acr
      return acr === LOGIN_FORM ? LOGIN_FORM : SINGLE_SIGN_ON
    },
  })
}

/**
 * The `acr` of the grant a token is issued under: its code's, device code's or refresh token's (the password grant's
 * refresh tokens say "1"). A grant from before `acr` was kept per authorization has none, and keeps the "1" its tokens
 * always had; so does the password grant without a refresh token, and a service account's token (Keycloak's "1" for
 * a session no browser signed in to).
 */
function grantAcr(ctx: KoaContextWithOIDC | undefined): string {
  return grantOf(ctx)?.acr === SINGLE_SIGN_ON ? SINGLE_SIGN_ON : LOGIN_FORM
}

/**
 * When the person signed in to the authorization the token comes from, as its ID token says (`auth_time`): Keycloak
 * 25 and later put it in access tokens too (the default `basic` scope's mapper of the user session's AUTH_TIME).
 */
function grantAuthTime(ctx: KoaContextWithOIDC | undefined): number | undefined {
  const authTime = grantOf(ctx)?.authTime
  return typeof authTime === 'number' ? authTime : undefined
}

/** The code, device code or refresh token a token request is answered for, which keeps its authorization's sign-in. */
function grantOf(ctx: KoaContextWithOIDC | undefined): { acr?: unknown; authTime?: unknown } | undefined {
  const entities = ctx?.oidc?.entities as Record<string, { acr?: unknown; authTime?: unknown } | undefined> | undefined
  return entities?.AuthorizationCode ?? entities?.DeviceCode ?? entities?.RotatedRefreshToken ?? entities?.RefreshToken
}

/**
 * Keycloak answers `prompt=none` (keycloak-js's check-sso) from its SSO session (AuthorizationEndpointBase
 * `handleBrowserAuthenticationRequest`: `login_required` without one, `interaction_required` for a required action).
 * A browser signs in once, so a browser without a realm session is signed in silently by its gateway session where the
 * realm's login step would take that session without its form (interactions.ts): a live gateway session of an active
 * account (`ProviderRequest.signedInAtGateway`, the step's own judgement), no fresh login asked for (`prompt=login`),
 * no level named (an essential `acr` claim), and the client's access rules passed (refused as at the step,
 * `access_denied`). The subject an `id_token_hint` names and `max_age` are compared
 * with the gateway session as Keycloak compares them with its SSO session (`OIDCLoginProtocol.requireReauthentication`,
 * oidc-provider's login checks): another person's, or a password typed longer ago than `max_age`, is `login_required`.
 * The realm session takes the gateway session's sign-in time as its own (its `auth_time`). An action the application asks for
 * (`kc_action`) needs the person: `interaction_required`, as for a realm session. Any other case is left to
 * oidc-provider, which answers `login_required`; none shows a page, and none makes a realm session.
 * It runs as oidc-provider's validation of the `prompt` parameter (`extraParams`), its last step before the browser
 * session's account is loaded: after the client, the redirect URI and PKCE were checked, so the code can go only where
 * the client registered and only to the holder of its verifier, as after any single sign-on. The realm session it
 * signs in is saved linked to that gateway session (`gatewaySessionOfRequest`), and ends with it.
 */
function silentSignIn(checkClientAccess: ((ctx: KoaContextWithOIDC, clientId: string, user: User) => void) | undefined) {
  return async (ctx: KoaContextWithOIDC): Promise<void> => {
    const { oidc } = ctx
    const session = oidc.session
    if (oidc.route !== 'authorization' || !oidc.promptPending('none') || !session || session.accountId || !oidc.client) return
    const claims = oidc.claims as { id_token?: { acr?: { essential?: unknown } } } | undefined
    // oidc-provider has turned `max_age=0` into `prompt=login` by now.
    if (oidc.promptPending('login') || claims?.id_token?.acr?.essential) return
    const hinted = (oidc.entities.IdTokenHint as { payload?: { sub?: unknown } } | undefined)?.payload?.sub
    // Judged before the session is signed in: a refusal oidc-provider's login checks made afterwards would save it.
    const accepts = (signedIn: GatewaySignIn) => gatewaySessionAnswers(signedIn, hinted, oidc.params?.max_age)
    const signedIn = await (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.signedInAtGateway?.(accepts)
    if (!signedIn) return
    checkClientAccess?.(ctx, oidc.client.clientId, signedIn.user)
    if (accountAction(oidc.params as Record<string, unknown>) !== undefined) throw new errors.InteractionRequired(KC_ACTION_DESCRIPTION)
    // A browser session that held no one (a logout form's) gets a new identifier for its first sign-in, as at a login
    // (oidc-provider's resume; its typings leave out `new`, which a session not yet saved carries).
    if (!(session as unknown as { new?: boolean }).new) session.resetIdentifier()
    const loginTs = signedIn.signedInAt === undefined ? undefined : gatewayAuthTime(signedIn.signedInAt)
    session.loginAccount({ accountId: String(signedIn.user.id), acr: SINGLE_SIGN_ON, ...(loginTs === undefined ? {} : { loginTs }) })
  }
}

/**
 * Whether the gateway session answers an authorization that names a subject (`hintedSub`, an `id_token_hint`'s `sub`,
 * which oidc-provider verified) or a `max_age`, as Keycloak's SSO session would (`OIDCLoginProtocol
 * .requireReauthentication`, and oidc-provider's login checks): the same person, whose password was typed within
 * `max_age`. A second short of `max_age` is the limit, so that oidc-provider's own check, made later in the request
 * with a later clock reading, never refuses what this took.
 */
export function gatewaySessionAnswers({ user, signedInAt }: GatewaySignIn, hintedSub: unknown, maxAge: unknown): boolean {
  if (hintedSub !== undefined && hintedSub !== String(user.id)) return false
  if (maxAge === undefined) return true
  return signedInAt !== undefined && epochTime() - gatewayAuthTime(signedInAt) < Number(maxAge)
}

/** A gateway session's sign-in time (epoch ms) as oidc-provider's login times are kept: whole seconds. */
function gatewayAuthTime(signedInAt: number): number {
  return Math.floor(signedInAt / 1000)
}

interface ProviderRequestContext {
  cookies?: { get(name: string, options: { signed: boolean }): string | undefined }
  oidc?: { result?: { login?: { accountId?: unknown; gatewaySession?: unknown } } }
}

/**
 * The gateway session of the browser whose request is saving its realm session (oidc-provider runs each request in
 * its async context, `Provider.ctx`): the `gateway_sessionid` it sent, when that is a live session of the same user.
 * A browser signs in once: the realm session made or used with a gateway session ends when that session ends.
 * Failing that, when the request finishes a login (oidc-provider's resume), the gateway session that login opened or
 * was made with (`loginResult`): the browser may have logged out between its password and its return to the realm,
 * taking the cookie with it, and the realm session it is coming back for must end with that gateway session, not
 * outlive it unlinked.
 */
async function gatewaySessionOfRequest(options: ProviderOptions, accountId: string): Promise<string | undefined> {
  const ctx = (options.providerClass as unknown as { ctx?: ProviderRequestContext }).ctx
  const cookie = ctx?.cookies?.get(SESSION_COOKIE, { signed: false })
  const ofCookie = cookie && /^[1-9][0-9]{0,14}$/.test(accountId) ? await options.gatewaySessionOf(cookie, Number(accountId)) : undefined
  const login = ctx?.oidc?.result?.login
  return ofCookie ?? (login?.accountId === accountId && typeof login.gatewaySession === 'string' ? login.gatewaySession : undefined)
}

/** Keycloak's "Client Authenticator" as oidc-provider's `token_endpoint_auth_method`. */
function clientAuthentication(client: RealmClientConfig): Omit<ClientMetadata, 'client_id'> {
  if (client.public_client) return { token_endpoint_auth_method: 'none' }
  switch (client.client_authenticator) {
    case 'client-jwt':
      return { token_endpoint_auth_method: 'private_key_jwt', ...(client.jwks_url ? { jwks_uri: client.jwks_url } : { jwks: client.jwks as never }) }
    case 'client-secret-jwt':
      return { client_secret: client.secret, token_endpoint_auth_method: 'client_secret_jwt' }
    default:
      // oidc-provider takes the secret from HTTP basic or from the form for either method, as Keycloak does.
      return { client_secret: client.secret === undefined ? undefined : providerClientSecret(client.secret, client.previous_secret), token_endpoint_auth_method: 'client_secret_basic' }
  }
}

/** PKCE is required of public clients unless the client says otherwise (config `pkce`); Keycloak makes it optional. */
function pkceRequired(client: RealmClientConfig | undefined): boolean {
  return (client?.pkce ?? (client?.public_client === false ? 'optional' : 'required')) === 'required'
}

/**
 * Keycloak's SessionTimeoutHelper.IDLE_TIMEOUT_WINDOW_SECONDS: a browser session ends once it has been idle (no login,
 * no authorization with its cookie, no refresh of one of its tokens) this much longer than SSO Session Idle.
 */
export const SESSION_IDLE_WINDOW_SECONDS = 120

/**
 * A signed-in browser session's lifetime from now: SSO Session Idle and the window, never past SSO Session Max. At
 * least a second, which oidc-provider asks for; the adapter saves a session past its maximum already expired.
 */
function signedInSessionSeconds(realm: RealmConfig, session: { loginTs?: number; iat?: number }): number {
  const left = realm.sso_session_max_seconds - (epochTime() - browserSessionStart(session, providerNow()))
  return Math.max(1, Math.min(realm.sso_session_idle_seconds + SESSION_IDLE_WINDOW_SECONDS, left))
}

/**
 * oidc-provider gives its session cookie the session's expiry, which is its idle limit now: a session that the
 * refreshes of its tokens keep alive (adapter.ts) would outlive the browser's cookie. The cookie lasts until the
 * session's end at the latest instead, SSO Session Max after it began; the server judges its idleness.
 */
function sessionCookieUntilSessionMax(realm: RealmConfig) {
  const cookie = new RegExp(`^${REALM_SESSION_COOKIE}(?:\\.sig)?=`)
  return async function sessionCookieUntilSessionMax(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    await next()
    const session = (ctx as { oidc?: KoaContextWithOIDC['oidc'] }).oidc?.session as unknown as { accountId?: string; loginTs?: number; iat?: number; exp?: number; transient?: boolean } | undefined
    if (!session?.accountId || session.transient || !session.exp) return
    const lines = ctx.response.headers['set-cookie']
    if (!Array.isArray(lines)) return
    const end = new Date((browserSessionStart(session, providerNow()) + realm.sso_session_max_seconds) * 1000).toUTCString()
    ctx.response.set('set-cookie', lines.map((line) => cookie.test(line) && !line.includes('expires=Thu, 01 Jan 1970')
      ? line.replace(/; expires=[^;]*/, `; expires=${end}`)
      : line))
  }
}

/**
 * An access or ID token's lifetime: the realm's, or what is left of the session the token is of, when less (Keycloak's
 * TokenManager caps the expiry at SSO Session Max after the session began, or the offline one for an offline
 * session). A refresh gives the chain's age (its first token was issued at the login); a code or a device code the
 * time of the login it was issued for; the password grant is a login; a token from the authorization endpoint is of
 * its browser session.
 */
function sessionTokenSeconds(realm: RealmConfig, ctx: KoaContextWithOIDC | undefined): number {
  const lifetime = realm.access_token_seconds
  const entities = ctx?.oidc?.entities as { RefreshToken?: { scope?: string; totalLifetime(): number }; AuthorizationCode?: { authTime?: number; scope?: string }; DeviceCode?: { authTime?: number; scope?: string } } | undefined
  const refreshed = entities?.RefreshToken
  const code = entities?.AuthorizationCode ?? entities?.DeviceCode
  const scope = refreshed?.scope ?? code?.scope
  const max = refreshTokenType(scope) === 'Offline' ? realm.offline_session_max_seconds : realm.sso_session_max_seconds
  const signedIn = (ctx?.oidc?.session as { authTime?(): number | undefined } | undefined)?.authTime?.()
  const age = refreshed ? refreshed.totalLifetime()
    : code?.authTime !== undefined ? epochTime() - code.authTime
      : ctx?.oidc?.params?.grant_type === 'password' ? 0
        : signedIn !== undefined ? epochTime() - signedIn : undefined
  return age === undefined ? lifetime : Math.max(1, Math.min(lifetime, max - age))
}

/** A refresh token lives until its session is idle too long, and never past the session's maximum. */
function refreshTokenSeconds(realm: RealmConfig, token: { scope?: string; totalLifetime(): number }): number {
  const offline = refreshTokenType(token.scope) === 'Offline'
  const idle = offline ? realm.offline_session_idle_seconds : realm.sso_session_idle_seconds
  const max = offline ? realm.offline_session_max_seconds : realm.sso_session_max_seconds
  return Math.max(1, Math.min(idle, max - token.totalLifetime()))
}

/** The fields of a token oidc-provider's revocation found that Gatehouse reads. */
interface RevocableToken {
  kind: string
  clientId: string
  destroy(): Promise<void>
}

/**
 * Revocation as Keycloak's TokenRevocationEndpoint: only the client a token was issued to may revoke it (RFC 7009
 * §2.1), and another client is told so ("Unmatching clients"). A refresh token ends its session's grant (every
 * token of it, as oidc-provider does), an access token only itself: oidc-provider would end its grant too, the
 * session and its refresh token with it, where a Keycloak client revoking an access token keeps refreshing.
 */
async function revocationAllowed(clientId: string, token: RevocableToken): Promise<boolean> {
  if (token.clientId !== clientId) throw new errors.InvalidRequest('Unmatching clients')
  if (token.kind !== 'AccessToken') return true
  await token.destroy()
  return false
}

/**
 * Userinfo for a service account's token, which oidc-provider looks up as a person's (its AccessToken), and so does
 * not find. Keycloak answers it from a transient session of the service account user (UserInfoEndpoint,
 * UserSessionUtil `findValidSessionForAccessToken`): the user's claims of the token's scopes when it has `openid`,
 * 403 `insufficient_scope` when not, as for a person's token. Undefined for a value that is no live service account
 * token of the realm (expired, revoked, its client gone, its user disabled, issued before a logout-all).
 */
async function serviceAccountUserinfo(provider: Provider, options: ProviderOptions, jti: string): Promise<ServiceAccountUserinfo | undefined> {
  const token = await provider.ClientCredentials.find(jti) as unknown as IssuedToken | undefined
  if (!token || !(await provider.Client.find(token.clientId)) || !(await tokenUserActive(token, options))) return undefined
  // A token of the plain grant's shortcut names its scopes in its JWT only: the default ones (client-credentials.ts).
  const scopes = new Set(token.scope ? token.scope.split(' ') : DEFAULT_SCOPES)
  if (!scopes.has('openid')) return { clientId: token.clientId }
  const released = new Set(Object.entries(SCOPE_CLAIMS).flatMap(([scope, claims]) => scopes.has(scope) ? claims : []))
  const claims = profileClaims(await options.serviceAccounts.userFor(token.clientId))
  return { clientId: token.clientId, claims: Object.fromEntries(Object.entries(claims).filter(([name]) => released.has(name))) }
}

/**
 * Whether the user a token speaks for may still use it, and it was not issued before the account's not-before
 * (introspection answers `active: false` otherwise).
 */
async function tokenUserActive(token: IssuedToken, options: ProviderOptions): Promise<boolean> {
  // Issued before the realm's `logout-all`: a service account's token too, which no grant holds.
  if (typeof token.iat === 'number' && token.iat < await options.notBefore()) return false
  const user = token.kind === 'ClientCredentials'
    ? await options.serviceAccounts.userFor(token.clientId)
    : token.accountId ? await options.accounts.get(Number(token.accountId)) : undefined
  return user?.isActive === true && !(typeof token.iat === 'number' && issuedBefore(user, lastMillisecondOf(token.iat)))
}

/** The fields of oidc-provider's AccessToken / ClientCredentials models that Gatehouse reads. */
interface IssuedToken {
  kind: string
  jti: string
  iat?: number
  /** When the person signed in, where no entity of the request says it (password-grant.ts); never part of its record. */
  authTime?: number
  /** The address a service account's token was asked from, where no request context is at hand (client-credentials.ts). */
  requestAddress?: string
  accountId?: string
  clientId: string
  grantId?: string
  sid?: string
  sessionUid?: string
  scope?: string
  extra?: Record<string, unknown>
  adapter: { upsert(id: string, payload: Record<string, unknown>, expiresIn: number): Promise<void> }
  constructor: { IN_PAYLOAD: string[] }
}

/** A configured client's own part of its tokens' claims. */
interface ClientTokenClaims {
  /** What a client without full scope keeps of the roles (claims.ts `compileRoleScope`); none for full scope. */
  roleScope: RoleScope | undefined
  /**
   * Keycloak's `allowed-origins` (the `web-origins` scope's AllowedWebOriginsProtocolMapper): its web origins resolved,
   * an empty list when `+` resolves to none (no redirect URIs); none for a client without web origins.
   */
  allowedOrigins: readonly string[] | undefined
}

/**
 * `extraTokenClaims`: the user's Keycloak claims, in the access token and in its introspection. The client roles are
 * judged with the token request's address (`ctx`, oidc-provider's request context); a service account's from none,
 * which no `networks` condition matches, since its grant is also answered where no request context is at hand
 * (client-credentials.ts). A client without full scope gets only the roles `roleScope` keeps (claims.ts
 * `compileRoleScope`), and no `realm_access` or `resource_access` when none is left, as Keycloak's tokens. A person's
 * tokens say when they signed in (`auth_time`), a service account's do not (no login, as Keycloak's); a client with
 * web origins has them in every token (`allowed-origins`), for resource servers that answer its scripts' CORS; a
 * service account's name the client's address (`clientHost`, `clientAddress`), as Keycloak's.
 */
async function keycloakTokenClaims(token: IssuedToken, ctx: KoaContextWithOIDC | undefined, realm: RealmConfig, options: ProviderOptions, client: ClientTokenClaims | undefined): Promise<Record<string, unknown>> {
  const serviceAccount = token.kind === 'ClientCredentials'
  const user = serviceAccount
    ? await options.serviceAccounts.userFor(token.clientId)
    : token.accountId ? await options.accounts.get(Number(token.accountId)) : undefined
  if (!user || !user.isActive) throw invalidGrant('Account disabled')
  const { sub: _sub, ...profile } = profileClaims(user)
  const sid = keycloakSid(token)
  const memberships = options.memberships?.(user)
  const requestAddress = (ctx?.req as { [PROVIDER_REQUEST]?: ProviderRequest } | undefined)?.[PROVIDER_REQUEST]?.address
  const address = serviceAccount ? undefined : requestAddress
  // Keycloak's `service_account` scope: the client's address, and its host name, which Keycloak does not look up either.
  const clientAddress = serviceAccount ? token.requestAddress ?? requestAddress : undefined
  const held: TokenRoles = {
    realm: [...realmRoles(realm, user), ...(memberships?.roles ?? [])],
    clients: { ...options.clientRoles?.(realm.name, user, address), account: { roles: ACCOUNT_ROLES } },
  }
  const roles = client?.roleScope ? client.roleScope(held, token.scope) : held
  const authTime = serviceAccount ? undefined : token.authTime ?? grantAuthTime(ctx)
  return {
    ...(authTime !== undefined ? { auth_time: authTime } : {}),
    typ: 'Bearer',
    azp: token.clientId,
    ...(sid ? { sid } : {}),
    acr: grantAcr(ctx),
    ...(client?.allowedOrigins ? { 'allowed-origins': client.allowedOrigins } : {}),
    ...(roles.realm.length ? { realm_access: { roles: roles.realm } } : {}),
    ...(memberships?.groups.length ? { groups: memberships.groups } : {}),
    ...(Object.keys(roles.clients).length ? { resource_access: roles.clients } : {}),
    ...(clientAddress !== undefined ? { clientHost: clientAddress } : {}),
    ...profile,
    ...(clientAddress !== undefined ? { clientAddress } : {}),
    ...(serviceAccount ? { client_id: token.clientId } : {}),
  }
}

/**
 * The `client_credentials` grant's scope as Keycloak gives it (OAuth2GrantTypeBase `getRequestedScopes`): an unknown
 * scope asked for is refused (400 `invalid_scope`), not dropped, and the default scopes come with those asked for
 * (`openid` gives `openid profile email`), as for the password grant. oidc-provider's handler keeps only the asked
 * scopes its resource server knows; it gets them with the defaults. A request without scope is the shortcut's
 * (client-credentials.ts), whose token has the default scopes.
 */
function serviceAccountScopes(provider: Provider, supported: readonly string[]): void {
  const handlers = providerInternals(provider).grantTypeHandlers
  const handler = handlers.get('client_credentials')!
  handlers.set('client_credentials', (ctx) => {
    const params = ctx.oidc.params as { scope?: string }
    if (params.scope) params.scope = grantedScope(params.scope, supported)
    return handler(ctx)
  })
}

/**
 * The `refresh_token` grant's `scope` as Keycloak takes it (TokenManager `refreshAccessToken`, DefaultClientSessionContext
 * `fromClientSessionAndScopeParameter`, `getScopeString`): the default scopes come with those asked for, and `openid`
 * when the refresh token has it, so that a refresh asking for `openid` alone, or `profile`, gets the default scopes'
 * claims and an ID token as the refresh without a scope does. oidc-provider's handler grants exactly the scopes asked
 * (of the refresh token's): it gets them with those. A scope the refresh token does not have is still refused; a
 * token not found is left to the handler to refuse. Only a request with `scope` reads the token here (the plain
 * refresh's shortcut takes none, refresh-token.ts).
 */
function refreshScopes(provider: Provider): void {
  const handlers = providerInternals(provider).grantTypeHandlers
  const handler = handlers.get('refresh_token')!
  handlers.set('refresh_token', async (ctx) => {
    const params = ctx.oidc.params as { scope?: unknown; refresh_token?: unknown }
    if (typeof params.scope === 'string' && params.scope && typeof params.refresh_token === 'string') {
      const original = await provider.RefreshToken.find(params.refresh_token)
      if (original) {
        const kept = ['openid', ...DEFAULT_SCOPES].filter((scope) => original.scopes.has(scope))
        params.scope = orderScopes([...kept, ...params.scope.split(' ').filter(Boolean)])
      }
    }
    return handler(ctx)
  })
}

/**
 * A refresh token that its grant's `refresh_tokens_per_grant_limit` ended is, for a client with reuse detection
 * (`refresh_token_rotation`), one used before once a later token of its chain of refreshes is known: brought back, it
 * ends its grant, as one still kept and used again does (oidc-provider's refresh grant, `consumeOnce`), and is refused
 * as such. Keycloak's "Revoke refresh token" keeps no token either: its client session keeps, for each chain (its
 * tokens' `reuse_id`), the last refresh, and a token of that chain issued before it is stale, which detaches the client
 * session (TokenManager `validateTokenReuse`). Here the token's own id says which grant and chain it was of and when
 * it was issued (token-ids.ts `refreshTokenOrigin`, its JWT verified by routes.ts): a chain's tokens follow one from
 * another, each issued by using the one before, so one of a live grant with a later token of its chain still kept was
 * used, and its row can only have been ended by the limit (a grant's refresh tokens end otherwise only with it, or
 * when they expire, and the token's own expiry is judged first). Looked at only once oidc-provider found no record (a
 * refresh's fast path never gets here), after the client authenticated: a token of another client, an expired one,
 * one whose id names no grant and chain (a value no JWT of the realm carried, or a token issued before ids named them),
 * one of a grant that ended, or the last of its chain (its chain left behind by other chains of the same grant, as a
 * second sign-in of the same browser and client starts one) is refused as before, and ends nothing.
 */
function staleRefreshTokensEndTheirGrant(provider: Provider, detectsReuse: (clientId: string) => boolean): void {
  const handlers = providerInternals(provider).grantTypeHandlers
  const handler = handlers.get('refresh_token')!
  handlers.set('refresh_token', async (ctx) => {
    try {
      return await handler(ctx)
    } catch (error) {
      if (!(error instanceof errors.InvalidGrant) || (error as { error_detail?: unknown }).error_detail !== 'refresh token not found') throw error
      const grantId = await staleTokensGrant(provider, ctx, detectsReuse)
      if (grantId === undefined) throw error
      const revoke = await loadRevoke()
      await revoke(ctx, grantId)
      throw new errors.InvalidGrant('refresh token already used')
    }
  })
}

/** The live grant of this client that the refresh token the request brought was of, when its limit ended that token after it was used. */
async function staleTokensGrant(provider: Provider, ctx: KoaContextWithOIDC, detectsReuse: (clientId: string) => boolean): Promise<string | undefined> {
  const origin = refreshTokenOrigin(String(ctx.oidc.params?.refresh_token))
  const expiry = (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.refreshTokenExpiry
  const clientId = ctx.oidc.client?.clientId
  if (!origin || expiry === undefined || expiry <= epochTime() || clientId === undefined || !detectsReuse(clientId)) return undefined
  const grant = await provider.Grant.find(origin.grantId)
  if (!grant || grant.clientId !== clientId) return undefined
  const newest = await (provider.RefreshToken as unknown as { adapter: StoreAdapter }).adapter.newestOfChain(origin.grantId, origin.chain)
  return newest !== undefined && newest.slice(0, TIME_DIGITS) > origin.issued ? origin.grantId : undefined
}

/** `formats.customizers.jwt`: Keycloak's header and audience, and the service account's own `sub`. */
async function keycloakJwt(token: IssuedToken, jwt: { header?: Record<string, unknown>; payload: Record<string, unknown> }, clients: { get(id: string): RealmClientConfig | undefined }, serviceAccounts: ServiceAccounts): Promise<void> {
  jwt.header = { typ: 'JWT' }
  const payload = jwt.payload
  const aud = accessTokenAudience(token.clientId, clients.get(token.clientId), payload.resource_access)
  // Keycloak's token names no audience when none resolves (a client without full scope); oidc-provider refuses to sign
  // a payload without `aud` (it looks after this customizer), so the member stays for that look, out of the JSON.
  if (aud === undefined) Object.defineProperty(payload, 'aud', { value: [], writable: true, enumerable: false, configurable: true })
  else payload.aud = aud
  if (token.kind === 'ClientCredentials') {
    payload.sub = String((await serviceAccounts.userFor(token.clientId)).id)
    if (!token.scope) token.scope = payload.scope = DEFAULT_SCOPES.join(' ')
  } else {
    delete payload.client_id
  }
}

/**
 * Whether a request was https is the gateway's judgement, the one its own cookies follow (src/auth/csrf.ts `isSecure`:
 * X-Forwarded-Proto from a trusted proxy, or an https public URL), not the forwarding header Gatehouse gives
 * oidc-provider, which is the public URL's scheme for the URLs it builds (routes.ts): behind a TLS-terminating proxy
 * without `server.public_url`, the realms' cookies were otherwise sent without Secure, and KEYCLOAK_SESSION as
 * SameSite=Lax where keycloak-js's iframe needs SameSite=None. Koa's `secure` decides only whether cookies are (and
 * may be) Secure; Koa documents `app.request` as the prototype to extend. A request that did not come through routes.ts
 * has only its own protocol to go by.
 */
function secureAsTheGatewayJudges(provider: Provider): void {
  Object.defineProperty(provider.request, 'secure', {
    get(this: { req: { [PROVIDER_REQUEST]?: ProviderRequest }; protocol: string }): boolean {
      return this.req[PROVIDER_REQUEST]?.secure ?? this.protocol === 'https'
    },
  })
}

/**
 * Keeps realm browser sessions that hold nothing out of the database, so that requests without credentials cannot
 * fill it with sessions kept for the SSO session's whole lifetime:
 *
 * - A session cookie that names no session (made up, or its session gone) got oidc-provider an empty session that
 *   it saves whatever the request does (to write the cookie again): every authorization request with `prompt=none`,
 *   uncounted by the sign-in limits (routes.ts), saved one. It is a new session now, saved only once something is
 *   kept in it, as for a browser without the cookie.
 * - oidc-provider answers an error at the device code pages with the form again, whose new anti-forgery secret it
 *   puts in the browser's session after that session was saved or, for a browser without one (a form posted from
 *   elsewhere, a made-up login at `/device/<uid>/`), not: its `persist` then threw for a session never saved, and
 *   the request was a 500. Such a session is not saved: it has no cookie, so nothing could ever find it again. The
 *   form posts back to the same refusal; the device code page itself starts a session as before.
 */
function keepNoEmptySessions(provider: Provider): void {
  const Session = provider.Session as unknown as {
    instantiate(payload?: object): unknown
    prototype: { exp?: number; persist(): Promise<unknown> }
  }
  const instantiate = Session.instantiate
  // Session.get's empty stand-in for a session not found (`instantiate({})`); a stored one always has its fields.
  Session.instantiate = function (payload) {
    return instantiate.call(this, payload && Object.keys(payload).length === 0 ? undefined : payload)
  }
  const persist = Session.prototype.persist
  Session.prototype.persist = async function (this: { exp?: number }) {
    if (typeof this.exp !== 'number') return undefined
    return persist.call(this)
  }
}

/**
 * A refresh token's record is stamped with its `iat` and `exp` as it is saved (oidc-provider's getValueAndPayload),
 * and Keycloak's JWT of it is made afterwards from the same instance (keycloak-tokens.ts), which has neither: when
 * the second turned in between, the JWT and its introspection (the record's) disagreed by a second. Stamped on the
 * instance before it is saved, both read the same times.
 */
function stampRefreshTokensOnce(provider: Provider): void {
  const prototype = provider.RefreshToken.prototype as unknown as { iat?: number; exp?: number; expiration?: number; save(): Promise<string> }
  const save = prototype.save
  prototype.save = function (this: typeof prototype) {
    if (this.iat === undefined) {
      this.iat = epochTime()
      if (this.exp === undefined && typeof this.expiration === 'number') this.exp = this.iat + this.expiration
    }
    return save.call(this)
  }
}

/**
 * oidc-provider names a model's events (`refresh_token.saved`, `access_token.issued`, ...) by converting its kind
 * to snake case with two regular expressions at every event, and a refresh emits three or four: each kind's
 * name is converted once here, and the events are the same.
 */
function eventNamesOnce(provider: Provider): void {
  const BaseModel = Object.getPrototypeOf(provider.BaseToken) as { prototype: { kind: string; emit(eventName: string): void } }
  const prefixes = new Map<string, string>()
  BaseModel.prototype.emit = function (this: { kind: string }, eventName: string) {
    let prefix = prefixes.get(this.kind)
    if (prefix === undefined) prefixes.set(this.kind, (prefix = snakeCase(this.kind) as string))
    provider.emit(`${prefix}.${eventName}`, this)
  }
}

/**
 * Keycloak's logout with a refresh token ends the user session the token is of, and tells each of its clients
 * (LogoutEndpoint `logoutToken`, AuthenticationManager `backchannelLogout`): the token's grant was revoked by then.
 * A browser's refresh token ends that browser session, with every client it signed in to; an offline token, or a
 * password login's (a session of one client, as Keycloak's direct grant makes), tells its own client, with its `sid`.
 */
async function loggedOutWithRefreshToken(options: ProviderOptions, token: RefreshTokenRecord & { grantId?: string | undefined }, address: string | undefined): Promise<void> {
  if (token.sessionUid !== undefined && refreshTokenType(token.scope) === 'Refresh' && await options.endBrowserSession?.(token.sessionUid, address)) return
  options.loggedOut?.(token.clientId, token.accountId, keycloakSid(token), token.grantId)
}

/**
 * Ends a login that no browser session holds (a password login: Keycloak's direct grant makes a user session of one
 * client), named by its `sid` in an `id_token_hint`, as Keycloak's LogoutEndpoint ends the user session of a valid
 * hint: its grant, and with it every refresh and access token issued under it, on every process; its client is told,
 * with the `sid`, as for a logout with its refresh token. False when no live token of the account names it.
 */
async function endPasswordLogin(options: ProviderOptions, sid: string, accountId: string): Promise<boolean> {
  const grants = await options.records.grantsOfSignIn(accountId, sid, providerNow())
  if (!grants.length) return false
  const ids = grants.map((grant) => grant.grantId)
  await options.revoke(ids.map((id) => `grant:${id}`), (records) => records.endGrants(ids))
  for (const { grantId, clientId } of grants) options.loggedOut?.(clientId, accountId, sid, grantId)
  return true
}

/**
 * oidc-provider's end-session endpoint sends each client's logout token itself, and waits for every answer before it
 * answers the browser: a receiver that hangs would hold the person's logout page. Its token's `sid` is also its own,
 * one per client, where the session's ID tokens carry Keycloak's (the session `uid`, keycloak-tokens.ts `keycloakSid`).
 * Each client is handed on instead (`loggedOut`, which queues the delivery: backchannel-logout.ts), with the `sid` of
 * the session being ended (the request's, from oidc-provider's async context), and the logout goes on at once.
 */
function deliverLogoutTokensLater(providerClass: typeof Provider, provider: Provider, loggedOut: ProviderOptions['loggedOut']): void {
  const Client = provider.Client as unknown as { prototype: { backchannelLogout(this: { clientId: string }, sub: string, sid: string | undefined): Promise<void> } }
  Client.prototype.backchannelLogout = async function (this: { clientId: string }, sub: string) {
    const session = (providerClass as unknown as { ctx?: { oidc?: { session?: { uid?: string; grantIdFor(clientId: string): string | undefined } } } }).ctx?.oidc?.session
    loggedOut?.(this.clientId, sub, session?.uid, session?.grantIdFor(this.clientId))
  }
}

/**
 * Every ID token of a token response is Keycloak's, signed from the claims of oidc-provider's (keycloak-format.ts
 * `tokenResponse`), so a signature oidc-provider made would be made for nobody, at about 0.3 ms of CPU with RSA-2048.
 * Its own grants at the token endpoint (authorization code, device code) get the claims instead (id-token-claims.ts),
 * as the shortcuts and the password grant do. Anything else (a client that wants its ID tokens encrypted, a logout
 * token, an ID token anywhere but a token response) is signed as always.
 */
function spareIdTokenSignatures(provider: Provider): void {
  const IdToken = provider.IdToken as unknown as { prototype: { issue(this: IdTokenInstance, options?: { use?: string }): Promise<unknown> } }
  const issue = IdToken.prototype.issue
  IdToken.prototype.issue = async function (this: IdTokenInstance, options = {}) {
    if (options.use === 'idtoken' && this.ctx?.oidc?.route === 'token') {
      const claims = await idTokenClaims(provider, this, this.ctx)
      if (claims) return claims
    }
    return issue.call(this, options)
  }
}

interface IdTokenInstance {
  ctx?: { oidc?: { route?: string } }
}

/**
 * Device codes, and the refresh tokens of clients with reuse detection, work once, however many requests bring one at
 * the same moment. oidc-provider's grants read whether it was used, and later mark it used: requests that all read it
 * before the first marked it would all get tokens, and none would count as its reuse. The adapter marks it only if
 * it is not marked yet (`StoreAdapter.consumeFirst`); a request that finds it marked meanwhile is answered as
 * oidc-provider answers one used again (lib/actions/grants/refresh_token.js, lib/helpers/grant_source.js
 * `consumeGrantSource`): a refresh token's grant is revoked (and the token destroyed), and the request refused. A
 * device code's grant is left alone, as Keycloak revokes nothing when a device code comes again (the adapter does not
 * find one used, `StoreAdapter.find`): the request that came second is refused.
 * Authorization codes need none of it: the adapter marks one as the request finds it (`StoreAdapter` `#claimCode`).
 */
function consumeOnce(providerClass: typeof Provider, provider: Provider): void {
  for (const [Model, reused, reuseEndsGrant] of [
    [provider.RefreshToken, 'refresh token already used', true],
    [provider.DeviceCode, 'device code already consumed', false],
  ] as const) {
    ;(Model as unknown as { prototype: { consume(this: ConsumableToken): Promise<void> } }).prototype.consume = async function (this: ConsumableToken) {
      // A device code its person denied issues nothing: left unused, each poll is told `access_denied` until it
      // expires, as Keycloak tells it, rather than "Device code not valid" after the first (an answer lost, say).
      if (!reuseEndsGrant && this.error !== undefined) return
      if (!(await this.adapter.consumeFirst(this.jti))) {
        if (reuseEndsGrant) {
          const revoke = await loadRevoke()
          await Promise.all([this.destroy(), revoke((providerClass as unknown as { ctx: unknown }).ctx, this.grantId)])
        }
        throw new errors.InvalidGrant(reused)
      }
      this.emit('consumed')
    }
  }
}

/**
 * A code used already that the token endpoint is handed again ends its grant, and the tokens it gave, whatever else is
 * wrong with the request: another client of the realm, another or no PKCE verifier, another or no redirect URI. It is
 * proof enough that the code leaked (RFC 6749 §4.1.2: the server "SHOULD revoke (when possible) all tokens previously
 * issued based on that authorization code"), and Keycloak's AuthorizationCodeGrantType detaches the code's client
 * session as soon as `OAuth2CodeParser.parseCode` finds the code gone, before any of those checks, answering "Code not
 * valid". oidc-provider compares the client, PKCE and the redirect URI before it reads whether the code was used
 * (lib/actions/grants/authorization_code.js), and ends nothing when one of them fails; so the code is judged here, as
 * it is found. Only at the token endpoint, whose client authenticated first (a client that fails to is answered 401
 * and never reaches a code): for a public client that is only its id, as in Keycloak, where any client of the realm
 * that authenticates ends the session of a code used again. Not at the gateway's own sign-in callback, which a browser
 * reaches with no client (interactions.ts `gatewayCallback`).
 */
function usedCodesEndTheirGrant(providerClass: typeof Provider, provider: Provider): void {
  const AuthorizationCode = provider.AuthorizationCode as unknown as { find(id: string, options?: object): Promise<{ consumed?: unknown; grantId?: string } | undefined> }
  const find = AuthorizationCode.find
  AuthorizationCode.find = async function (id, findOptions) {
    const code = await find.call(this, id, findOptions)
    const ctx = (providerClass as unknown as { ctx?: KoaContextWithOIDC }).ctx
    if (code?.consumed === undefined || ctx?.oidc?.route !== 'token' || ctx.oidc.client === undefined) return code
    const revoke = await loadRevoke()
    await revoke(ctx, code.grantId)
    throw new errors.InvalidGrant('authorization code already consumed')
  }
}

/**
 * A client assertion's `jti` authenticates once, however many requests bring it at the same moment: oidc-provider's
 * ReplayDetection looks the `jti` up, and later saves it, so requests that all looked before the first saved would all
 * be let in. Here the record is written only where none is (`StoreAdapter.insertOnce`), in one statement, as Keycloak
 * puts it in its single-use store only if absent (AbstractBaseJWTValidator `validateTokenReuse`). Its id is
 * oidc-provider's (lib/models/replay_detection.js).
 */
function replayOnce(provider: Provider): void {
  const ReplayDetection = (provider as unknown as { ReplayDetection: { adapter: StoreAdapter; unique(iss: string, jti: string, exp: number): Promise<boolean> } }).ReplayDetection
  ReplayDetection.unique = async function (iss, jti, exp) {
    const id = hash('sha256', `${iss}${jti}`, 'base64url')
    return this.adapter.insertOnce(id, { kind: 'ReplayDetection', jti: id, iss } as AdapterPayload, exp - epochTime())
  }
}

/**
 * One person goes on to sign in for a user code, however many confirm it at the same moment. oidc-provider's device
 * page reads whether the code is on its way (`inFlight`), and later saves it so (lib/actions/code_verification.js):
 * people who all confirmed before the first saved would all go on, and the code would be given the account of
 * whoever signed in last, while each was told the device was signed in. The save that first marks it on its way is
 * made only by the request that writes a marker for the code where none is (`StoreAdapter.insertOnce`, one
 * statement); another is answered that the code was used, as Keycloak approves a code only if it is still pending.
 * The marker is kept a minute at most: by then the code's own record says it is on its way, which the page checks.
 */
function approveDeviceCodesOnce(provider: Provider): void {
  const ReplayDetection = provider.ReplayDetection as unknown as { adapter: StoreAdapter }
  const DeviceCode = provider.DeviceCode as unknown as { adapter: StoreAdapter; prototype: { save(this: DeviceCodeRecord, ...args: unknown[]): Promise<unknown> } }
  const save = DeviceCode.prototype.save
  DeviceCode.prototype.save = async function (this: DeviceCodeRecord, ...args: unknown[]) {
    if (this.inFlight === true && this.accountId === undefined && this.error === undefined) {
      // By the code's stored key: the same whether the code was found by its user code (a sealed key) or by itself.
      const id = hash('sha256', `device-code-approval:${recordKey(this.jti)}`, 'base64url')
      if (!(await ReplayDetection.adapter.insertOnce(id, { kind: 'ReplayDetection', jti: id } as AdapterPayload, 60))) throw new DeviceCodeAlreadyUsed(this.userCode)
      try {
        return await save.apply(this, args)
      } catch (error) {
        // Not marked on its way, as the store shows: the person may confirm it again. A failure after the write (a
        // connection lost after its commit), or a store that cannot be read now, keeps the marker, for its minute.
        const stored = await DeviceCode.adapter.find(this.jti).then((payload) => ({ payload }), () => undefined)
        if (stored && stored.payload?.inFlight !== true) await ReplayDetection.adapter.destroy(id).catch(() => {})
        throw error
      }
    }
    return save.apply(this, args)
  }
}

interface DeviceCodeRecord {
  jti: string
  userCode?: string
  inFlight?: boolean
  accountId?: string
  error?: string
}

/**
 * Only the device page looks a typed user code up (`DeviceCode.findByUserCode`): there each wrong code is counted
 * (before the lookup, given back when the code was right) against the browser's session, and its address (an IPv6
 * one by its /64) or, once it is signed in at the realm or the gateway, its account;
 * once one has too many the lookup is refused before it is made (user-code-guesses.ts), which the page answers 429
 * with Retry-After.
 */
function boundUserCodeGuesses(providerClass: typeof Provider, provider: Provider): void {
  const guesses = new UserCodeGuesses()
  const DeviceCode = provider.DeviceCode as unknown as { findByUserCode(userCode: string, options?: object): Promise<unknown> }
  const findByUserCode = DeviceCode.findByUserCode
  DeviceCode.findByUserCode = async function (userCode, findOptions) {
    const ctx = (providerClass as unknown as { ctx?: KoaContextWithOIDC }).ctx
    const session = ctx?.oidc?.session as { jti?: string; accountId?: string } | undefined
    const gatewayAccount = session?.accountId === undefined ? await (ctx?.req as { [PROVIDER_REQUEST]?: ProviderRequest } | undefined)?.[PROVIDER_REQUEST]?.sessionAccount?.() : undefined
    const guesser = { session: session?.jti, address: ctx?.ip ?? '', account: session?.accountId ?? (gatewayAccount === undefined ? undefined : String(gatewayAccount)) }
    const { retryAfterSeconds, byAddress } = guesses.refusal(guesser)
    if (retryAfterSeconds > 0) throw new TooManyUserCodeGuesses(retryAfterSeconds, byAddress)
    guesses.miss(guesser)
    let code: unknown
    try {
      code = await findByUserCode.call(this, userCode, findOptions)
    } catch (error) {
      // Not looked up (the database did not answer): no guess was made.
      guesses.found(guesser)
      throw error
    }
    if (code !== undefined) guesses.found(guesser)
    return code
  }
}

/**
 * A device code polled again before its interval has passed is answered `slow_down` (RFC 8628 §3.5), as Keycloak's
 * DeviceGrantType answers it once the client authenticated and the code was found, that client's and not expired
 * (an expired one is `expired_token` however soon). Counted here, as the token endpoint finds the code, so that a request that fails to
 * authenticate as the code's client (a wrong secret) or another client's is refused as it would be without it, neither
 * told that the code exists nor delaying the client's next poll. oidc-provider itself counts no polls.
 */
function slowDownFastPolls(providerClass: typeof Provider, provider: Provider, tooSoon: ProviderOptions['devicePolledTooSoon']): void {
  if (!tooSoon) return
  const DeviceCode = provider.DeviceCode as unknown as { find(id: string, options?: object): Promise<{ clientId?: string; isExpired: boolean } | undefined> }
  const find = DeviceCode.find
  DeviceCode.find = async function (id, findOptions) {
    const code = await find.call(this, id, findOptions)
    const oidc = (providerClass as unknown as { ctx?: KoaContextWithOIDC }).ctx?.oidc
    if (code && !code.isExpired && oidc?.route === 'token' && oidc.client !== undefined && code.clientId === oidc.client.clientId && tooSoon(id, DEVICE_POLLING_SECONDS)) throw new errors.SlowDown()
    return code
  }
}

interface ConsumableToken {
  jti: string
  grantId?: string
  /** A device code's: the person denied it (oidc-provider's `access_denied`). */
  error?: string
  adapter: StoreAdapter
  destroy(): Promise<void>
  emit(event: string): void
}

/** oidc-provider's revocation of a grant (lib/helpers/revoke.js), as its grants call it. */
let revokeHelper: Promise<(ctx: unknown, grantId: string | undefined) => Promise<void>> | undefined
function loadRevoke(): Promise<(ctx: unknown, grantId: string | undefined) => Promise<void>> {
  // @ts-expect-error: oidc-provider declares types for its entry point only.
  revokeHelper ??= import('oidc-provider/lib/helpers/revoke.js').then((module) => module.default)
  return revokeHelper
}

/**
 * Refuses a service-account token past the client's `client_credentials_tokens_limit`, before it is signed or stored;
 * or a refresh or a code's redemption past its grant's `access_tokens_per_grant_limit`, before a refresh token is used up.
 */
function refuseClientTokensPastLimit(counts: FixedWindowCounts<string>, key: string): void {
  const refused = counts.count(key)
  if (refused) throw new ClientTokensThrottled(refused.retryAfterSeconds)
}

/**
 * oidc-provider keeps no record of the JWT access tokens it issues. Gatehouse records each one under its `jti`, so
 * userinfo, introspection, revocation and logout can find it (src/oidc/routes.ts hands them the `jti`), and the
 * gateway can tell a revoked token from a live one. The audience is left out of the record: oidc-provider's
 * userinfo refuses tokens meant for a resource server, while Keycloak's accepts its access tokens.
 */
async function recordIssuedToken(token: IssuedToken, claims: Record<string, unknown>): Promise<void> {
  const payload: Record<string, unknown> = {}
  for (const key of token.constructor.IN_PAYLOAD) {
    const value = (token as unknown as Record<string, unknown>)[key]
    if (key !== 'aud' && value !== undefined) payload[key] = value
  }
  payload.iat = claims.iat
  payload.exp = claims.exp
  await token.adapter.upsert(token.jti, payload, Number(claims.exp) - epochTime())
}

/**
 * `loadExistingGrant`: every client of a realm is first-party, so, as Keycloak does without "Consent required",
 * the user is never asked to consent; the grant simply covers what the client asked for.
 */
async function grantWithoutConsent(ctx: KoaContextWithOIDC, resource: string, supported: readonly string[]) {
  const { oidc } = ctx
  if (!oidc.session?.accountId || !oidc.client) return undefined
  const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId)
  const found = grantId ? await oidc.provider.Grant.find(grantId) : undefined
  const grant = found ?? new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId })
  const scope = orderScopes([...DEFAULT_SCOPES, ...oidc.requestParamScopes].filter((s) => supported.includes(s)))
  grant.addOIDCScope(scope)
  grant.addResourceScope(resource, scope)
  // One found is saved only where it still is: ended meanwhile (a logout, a new password), it is not brought back
  // (src/store/oidc.ts `rewrite`).
  if (found) await (oidc.provider.Grant as unknown as { adapter: StoreAdapter }).adapter.savingAgain(found.jti, () => grant.save())
  else await grant.save()
  return grant
}

/**
 * A refresh of an OAuth2 application's tokens ends the access tokens its grant was given before, as the platform's
 * `/o/token/` does (django-oauth-toolkit's RefreshToken.revoke ends the access token the refresh token came with), and
 * with them the personal tokens made with them (adapter.ts `destroy`), before the answer is sent: a leaked access
 * token ends when its client refreshes. The realm's configured clients keep Keycloak's way, in which a refresh leaves
 * the access tokens issued before it to expire.
 */
function earlierAccessTokensEndOnRefresh(provider: Provider, records: OidcRecordRepository, configured: (clientId: string) => boolean) {
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> => {
    await next()
    const { oidc } = ctx
    if (oidc?.route !== 'token' || ctx.status !== 200 || oidc.params?.grant_type !== 'refresh_token') return
    const issued = oidc.entities.AccessToken
    const clientId = oidc.client?.clientId
    if (!issued?.grantId || !issued.jti || !clientId || configured(clientId)) return
    for (const id of await records.accessTokensOfGrant(issued.grantId, issued.jti, providerNow())) {
      await (await provider.AccessToken.find(id, { ignoreExpiration: true }))?.destroy()
    }
  }
}
