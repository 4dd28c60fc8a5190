import Provider, { errors, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider'
import type { RealmClientConfig, RealmConfig } from '../config/realms.ts'
import type { Accounts } from '../directory/accounts.ts'
import { DatabaseUnavailable } from '../errors.ts'
import type { OidcRecordRepository } from '../store/oidc.ts'
import { StoreAdapter, type AdapterDependencies } from './adapter.ts'
import { accessTokenAudience, ACCOUNT_ROLES, accountFinder, DEFAULT_SCOPES, profileClaims, realmRoles, SCOPE_CLAIMS, ServiceAccounts, SUPPORTED_SCOPES } from './claims.ts'
import type { RealmKeySet } from './keys.ts'
import { keycloakShapes, loggedOutPage, logoutConfirmPage, PROVIDER_REQUEST, renderErrorPage, type ProviderRequest } from './keycloak-format.ts'
import { buildResourceServerInfo, invalidGrant, PASSWORD_GRANT, PASSWORD_GRANT_PARAMETERS, passwordGrant } from './password-grant.ts'

/** Keycloak's endpoint paths, relative to the issuer `<public URL>/realms/<realm>`. */
export const KEYCLOAK_ROUTES = {
  authorization: '/protocol/openid-connect/auth',
  token: '/protocol/openid-connect/token',
  jwks: '/protocol/openid-connect/certs',
  userinfo: '/protocol/openid-connect/userinfo',
  end_session: '/protocol/openid-connect/logout',
  introspection: '/protocol/openid-connect/token/introspect',
  revocation: '/protocol/openid-connect/revoke',
  pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
} as const

/** Where the login step of the authorization code flow happens (src/oidc/interactions.ts). */
export const LOGIN_ACTIONS = '/login-actions/'
/** Where a browser the gateway sent to log in comes back to (src/oidc/routes.ts). */
export const GATEWAY_CALLBACK = '/gatehouse/callback'

export const GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials', PASSWORD_GRANT])

export interface ProviderOptions {
  realm: RealmConfig
  issuer: string
  keys: RealmKeySet
  records: OidcRecordRepository
  accounts: Accounts
  serviceAccounts: ServiceAccounts
  trustProxy: boolean
  revoke: AdapterDependencies['revoke']
}

/**
 * One realm's oidc-provider instance. Everything Keycloak-specific goes through oidc-provider's extension
 * points: the password grant (`registerGrantType`), claims (`findAccount`, `extraTokenClaims`,
 * `formats.customizers.jwt`), JWT access tokens (a resource server with `accessTokenFormat: 'jwt'`, the realm's
 * only one), persistence (`adapter`), consent-free first-party clients (`loadExistingGrant`), the login page
 * (`interactions.url`), Keycloak's paths (`routes`), and its response shapes (a `provider.use` middleware).
 */
export function buildProvider(options: ProviderOptions): Provider {
  const { realm, issuer, keys } = options
  const clients = new Map(realm.clients.map((c) => [c.client_id, c]))
  const resource = `urn:gatehouse:realm:${realm.name}`
  const resourceServer = () => buildResourceServerInfo(realm.access_token_seconds, keys.activeKid)
  const findAccount = accountFinder(options.accounts)
  const adapterDeps = {
    records: options.records,
    revoke: options.revoke,
    detectsRefreshTokenReuse: (clientId: string) => clients.get(clientId)?.refresh_token_rotation === true,
  }

  const configuration: Configuration = {
    adapter: (model: string) => new StoreAdapter(model, adapterDeps),
    clients: realm.clients.map((client) => clientMetadata(client, issuer)),
    jwks: { keys: keys.privateJwks as never },
    findAccount,
    claims: SCOPE_CLAIMS,
    scopes: SUPPORTED_SCOPES,
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    clientBasedCORS: (_ctx, origin, client) => client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false,
    cookies: {
      names: { session: 'gatehouse_oidc_session', interaction: 'gatehouse_oidc_interaction', resume: 'gatehouse_oidc_resume' },
      // Only the realm's paths see the SSO session cookie, never the services behind the gateway.
      long: { httpOnly: true, sameSite: 'lax', path: `/realms/${realm.name}/` },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Keycloak: a confidential client may introspect any token of its realm, a public client only its own.
      introspection: { enabled: true, allowedPolicy: async (_ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === client.clientId },
      // Only the client a token was issued to may revoke it (RFC 7009 §2.1).
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      userinfo: { enabled: true },
      // Sender-constrained tokens would need proof checks at the gateway too; Gatehouse takes bearer tokens only.
      dPoP: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource: logoutConfirmPage, postLogoutSuccessSource: loggedOutPage },
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
    extraTokenClaims: async (_ctx, token) => keycloakTokenClaims(token as unknown as IssuedToken, realm, options),
    formats: {
      customizers: {
        jwt: async (_ctx, token, jwt) => {
          await keycloakJwt(token as unknown as IssuedToken, jwt, clients, options.serviceAccounts)
          await recordIssuedToken(token as unknown as IssuedToken, jwt.payload)
        },
      },
    },
    ttl: {
      AccessToken: realm.access_token_seconds,
      ClientCredentials: realm.access_token_seconds,
      IdToken: realm.access_token_seconds,
      AuthorizationCode: 60,
      Interaction: 1800,
      Session: realm.sso_session_max_seconds,
      Grant: realm.sso_session_max_seconds,
      // SSO Session Idle, but never past SSO Session Max.
      RefreshToken: (_ctx, token) => Math.max(1, Math.min(realm.sso_session_idle_seconds, realm.sso_session_max_seconds - (token as unknown as { totalLifetime(): number }).totalLifetime())),
    },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    loadExistingGrant: (ctx) => grantWithoutConsent(ctx, resource),
    interactions: { url: (_ctx, interaction) => `/realms/${realm.name}${LOGIN_ACTIONS}${interaction.uid}` },
    routes: KEYCLOAK_ROUTES,
    renderError: renderErrorPage,
  }

  const provider = new Provider(issuer, configuration)
  provider.proxy = options.trustProxy
  provider.registerGrantType(PASSWORD_GRANT, passwordGrant({ accounts: options.accounts, findAccount, resource, resourceServer }), PASSWORD_GRANT_PARAMETERS)
  provider.use(keycloakShapes({ grantTypes: GRANT_TYPES, client: (id) => clients.get(id) }))
  // Token errors carry their reason in `error_detail`, which oidc-provider keeps out of the response; Keycloak's
  // wording is chosen from it (keycloak-format.ts).
  provider.on('grant.error', (ctx, error) => {
    ctx.state.failure = error
  })
  // Failures inside oidc-provider (answered `server_error`) and around it (answered 500 by Koa) go to the request's log;
  // a database outage is answered 503 (DatabaseUnavailable's statusCode) and logged once by the server, not per request.
  const logFailure = (ctx: { req: unknown }, error: unknown) => {
    if (error instanceof DatabaseUnavailable) return
    ;(ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.log.error({ err: error, realm: realm.name }, 'OpenID Connect provider failed')
  }
  provider.on('server_error', logFailure)
  // Koa's own 'error' event, which oidc-provider's typings leave out.
  ;(provider as unknown as NodeJS.EventEmitter).on('error', (error: unknown, ctx: { req: unknown }) => logFailure(ctx, error))
  return provider
}

function clientMetadata(client: RealmClientConfig, issuer: string): ClientMetadata {
  const grantTypes = [
    client.standard_flow && 'authorization_code',
    (client.standard_flow || client.direct_access_grants) && 'refresh_token',
    client.direct_access_grants && PASSWORD_GRANT,
    client.service_accounts && 'client_credentials',
  ].filter((g): g is string => typeof g === 'string')
  return {
    client_id: client.client_id,
    ...(client.public_client ? { token_endpoint_auth_method: 'none' } : { client_secret: client.secret, token_endpoint_auth_method: 'client_secret_basic' }),
    grant_types: grantTypes,
    response_types: client.standard_flow ? ['code'] : [],
    redirect_uris: client.standard_flow ? [...client.redirect_uris, `${issuer}${GATEWAY_CALLBACK}`] : [],
    post_logout_redirect_uris: client.post_logout_redirect_uris,
  }
}

/** The fields of oidc-provider's AccessToken / ClientCredentials models that Gatehouse reads. */
interface IssuedToken {
  kind: string
  jti: string
  accountId?: string
  clientId: string
  grantId?: string
  sid?: string
  scope?: string
  extra?: Record<string, unknown>
  adapter: { upsert(id: string, payload: Record<string, unknown>, expiresIn: number): Promise<void> }
  constructor: { IN_PAYLOAD: string[] }
}

/** `extraTokenClaims`: the user's Keycloak claims, in the access token and in its introspection. */
async function keycloakTokenClaims(token: IssuedToken, realm: RealmConfig, options: ProviderOptions): Promise<Record<string, unknown>> {
  const user = token.kind === 'ClientCredentials'
    ? await options.serviceAccounts.userFor(token.clientId)
    : token.accountId ? await options.accounts.get(Number(token.accountId)) : undefined
  if (!user || !user.isActive) throw invalidGrant('Account disabled')
  const { sub: _sub, ...profile } = profileClaims(user)
  return {
    typ: 'Bearer',
    azp: token.clientId,
    ...(token.sid ? { sid: token.sid } : {}),
    acr: '1',
    realm_access: { roles: realmRoles(realm, user) },
    resource_access: { account: { roles: ACCOUNT_ROLES } },
    ...profile,
    ...(token.kind === 'ClientCredentials' ? { client_id: token.clientId } : {}),
  }
}

/** `formats.customizers.jwt`: Keycloak's header and audience, and the service account's own `sub`. */
async function keycloakJwt(token: IssuedToken, jwt: { header?: Record<string, unknown>; payload: Record<string, unknown> }, clients: Map<string, RealmClientConfig>, serviceAccounts: ServiceAccounts): Promise<void> {
  jwt.header = { typ: 'JWT' }
  const payload = jwt.payload
  payload.aud = accessTokenAudience(clients.get(token.clientId))
  if (token.kind === 'ClientCredentials') {
    payload.sub = String((await serviceAccounts.userFor(token.clientId)).id)
    if (!token.scope) token.scope = payload.scope = DEFAULT_SCOPES.join(' ')
  } else {
    delete payload.client_id
  }
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
  await token.adapter.upsert(token.jti, payload, Number(claims.exp) - Math.floor(Date.now() / 1000))
}

/**
 * `loadExistingGrant`: every client of a realm is first-party, so, as Keycloak does without "Consent required",
 * the user is never asked to consent; the grant simply covers what the client asked for.
 */
async function grantWithoutConsent(ctx: KoaContextWithOIDC, resource: string) {
  const { oidc } = ctx
  if (!oidc.session?.accountId || !oidc.client) return undefined
  const grantId = oidc.result?.consent?.grantId ?? oidc.session.grantIdFor(oidc.client.clientId)
  const grant = (grantId ? await oidc.provider.Grant.find(grantId) : undefined)
    ?? new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId })
  const scope = [...new Set([...DEFAULT_SCOPES, ...oidc.requestParamScopes])].filter((s) => SUPPORTED_SCOPES.includes(s)).join(' ')
  grant.addOIDCScope(scope)
  grant.addResourceScope(resource, scope)
  await grant.save()
  return grant
}
