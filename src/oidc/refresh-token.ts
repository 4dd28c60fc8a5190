import type { IncomingMessage, ServerResponse } from 'node:http'
import type Provider from 'oidc-provider'
import type { KoaContextWithOIDC } from 'oidc-provider'
import type { StoreAdapter } from './adapter.ts'
import { authenticatedClient, clientCredentialsOf, leftToProvider, plainForm } from './client-credentials.ts'
import { idTokenClaims } from './id-token-claims.ts'

/**
 * The `refresh_token` grant without oidc-provider's HTTP stack (Koa, its router and a dozen middlewares), for the
 * plain request clients send most: a configured client's id (and secret, in the form or HTTP basic, for a
 * confidential one), the refresh token's id (routes.ts swapped Keycloak's JWT for it), nothing else. The steps
 * are oidc-provider's refresh grant (lib/actions/grants/refresh_token.js) in its order (but for the new refresh
 * token's save, made while the access token is), with its own models and helpers on a context of its own kind: the same token checks, grant and account checks (`findAccount`, where
 * provider.ts judges the client's access rules again), rotation, access token (provider.ts `keycloakJwt`,
 * `recordIssuedToken`), ID token (its claims: Keycloak's is the one signed), and keycloak-format.ts `tokenResponse`
 * makes Keycloak's answer of it as for oidc-provider's.
 *
 * Every check comes before anything is written: a request any check refuses, or one that asks for anything this
 * does not do (DPoP, mutual TLS, attestation, rich authorization details, a scope or resource member, a
 * consumed token, which oidc-provider answers by revoking the grant), is left to oidc-provider, which finds the
 * world unchanged and answers it as always (the refresh counted for `access_tokens_per_grant_limit` is not counted
 * again: provider.ts counts a request once); the database failing is answered at once (`leftToProvider`). Once the
 * old token is consumed the request is answered here; a failure from then on is the request's error, not
 * oidc-provider's to try again.
 */

const PLAIN_MEMBERS = new Set(['grant_type', 'client_id', 'client_secret', 'refresh_token'])
const GRANT_TYPE = 'refresh_token'

export interface RefreshTokenOptions {
  provider: Provider
  /** Whether the client is one of the realm's configured ones (an OAuth2 application's is left to oidc-provider). */
  configured(clientId: string): boolean
  /** Keycloak's answer for oidc-provider's, as keycloak-format.ts makes it for the token endpoint. */
  answer(body: Record<string, unknown>, oidc: KoaContextWithOIDC['oidc']): Promise<Record<string, unknown>>
  /** Told of each token issued, as oidc-provider's `grant.success` tells it. */
  tokensIssued?: ((grantType: string) => void) | undefined
}

/** Keycloak's token answer, or undefined: oidc-provider is to answer the request (`request` as it would get it). */
export type RefreshTokenShortcut = (form: Buffer, request: IncomingMessage, response: ServerResponse) => Promise<Record<string, unknown> | undefined>

/** oidc-provider's own helpers, loaded with it (its entry point waits for a realm's first request). */
interface GrantHelpers {
  als: { run<T>(store: unknown, fn: () => T): T }
  instance(provider: Provider): { configuration: any; grantTypeParams: Map<string | undefined, Set<string>> }
  Params: new (allowList: Set<string>, params: Record<string, string>) => Record<string, unknown>
  validateGrant(provider: Provider, ctx: unknown, grantId: string): Promise<any>
  validateAccount(provider: Provider, ctx: unknown, token: unknown, label: string): Promise<any>
  checkAccountMismatch(token: unknown, grant: unknown): void
  createAccessToken(provider: Provider, ctx: unknown, source: Record<string, unknown>, gty: string | undefined): any
  filterClaims(source: unknown, target: string, grant: unknown): Record<string, unknown>
  accountClaims(ctx: unknown, use: string, scope: string, claims: unknown, rejected: unknown): Promise<Record<string, unknown>>
  resolveResource(ctx: unknown, model: unknown, config: unknown, scopes: Set<string>): Promise<string | undefined>
  validateResourceServer(info: unknown): unknown
  applyAuthorizationDetails(provider: Provider, ctx: unknown, token: unknown, source: unknown): Promise<void>
  buildTokenResponse(provider: Provider, members: Record<string, unknown>): Record<string, unknown>
}

let grantHelpers: GrantHelpers | undefined
/** oidc-provider's helpers, loaded with the first grant served without its HTTP stack. */
async function providerGrantHelpers(): Promise<GrantHelpers> {
  return (grantHelpers ??= await loadGrantHelpers())
}

async function loadGrantHelpers(): Promise<GrantHelpers> {
  // @ts-expect-error: oidc-provider declares types for its entry point only.
  const [als, weakCache, params, source, common, resolveResource, results, authorization, response, filterClaims, accountClaims] = await Promise.all([import('oidc-provider/lib/helpers/als.js'), import('oidc-provider/lib/helpers/weak_cache.js'), import('oidc-provider/lib/helpers/params.js'), import('oidc-provider/lib/helpers/grant_source.js'), import('oidc-provider/lib/helpers/grant_common.js'), import('oidc-provider/lib/helpers/resolve_resource.js'), import('oidc-provider/lib/helpers/configuration_result.js'), import('oidc-provider/lib/helpers/grant_authorization.js'), import('oidc-provider/lib/helpers/grant_response.js'), import('oidc-provider/lib/helpers/filter_claims.js'), import('oidc-provider/lib/helpers/account_claims.js')])
  return {
    als: als.default,
    instance: weakCache.default,
    Params: params.default,
    validateGrant: source.validateGrant,
    validateAccount: common.validateAccount,
    checkAccountMismatch: common.checkAccountMismatch,
    createAccessToken: common.createAccessToken,
    filterClaims: filterClaims.default,
    accountClaims: accountClaims.default,
    resolveResource: resolveResource.default,
    validateResourceServer: results.resourceServer,
    applyAuthorizationDetails: authorization.applyAuthorizationDetails,
    buildTokenResponse: response.buildTokenResponse,
  }
}

export function refreshTokenShortcut(options: RefreshTokenOptions): RefreshTokenShortcut {
  return async (form, request, response) => {
    const plain = await plainGrant(options, { grantType: GRANT_TYPE, members: PLAIN_MEMBERS, required: 'refresh_token' }, form, request, response)
    return plain && plain.helpers.als.run(plain.ctx, () => refresh(options, plain.helpers, plain.ctx))
  }
}

/**
 * A plain request for a grant, ready for its steps: a form of the grant's `members` only, `required` among them,
 * percent-encoded only when `encoded` (`plainForm`), from a configured client authenticated as oidc-provider does, on a context of oidc-provider's kind (run the steps
 * in `helpers.als`). Undefined when oidc-provider is to answer the request.
 */
/** Scope tokens, one space apart: what oidc-provider's token endpoint takes (its helpers/is_valid_scope.js). */
const SCOPE_SYNTAX = /^[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*$/u

export async function plainGrant(options: Pick<RefreshTokenOptions, 'provider' | 'configured'>, grant: { grantType: string; members: ReadonlySet<string>; required: string; encoded?: boolean }, form: Buffer, request: IncomingMessage, response: ServerResponse): Promise<{ ctx: KoaContextWithOIDC; helpers: GrantHelpers } | undefined> {
  const members = plainForm(form, request.headers, grant.members, grant.encoded)
  const credentials = members && clientCredentialsOf(members, request.headers)
  if (!members || !credentials || members.get('grant_type') !== grant.grantType || !members.get(grant.required) || !options.configured(credentials.clientId)) return undefined
  // A scope oidc-provider refuses before any grant runs (a stray space, say) is its to refuse here too.
  const scope = members.get('scope')
  if (scope !== undefined && !SCOPE_SYNTAX.test(scope)) return undefined
  const helpers = grantHelpers ?? await providerGrantHelpers()
  const client = await authenticatedClient(options.provider, credentials.clientId, credentials.secret, grant.grantType).catch(leftToProvider)
  if (!client) return undefined
  return { ctx: providerContext(options.provider, request, response, helpers, members, client, grant.grantType), helpers }
}

/**
 * A context as oidc-provider's router gives its token endpoint's middlewares (Koa's, with an OIDCContext for the
 * `token` route), after its client authentication and parameter steps: the client, and the grant's parameters.
 */
function providerContext(provider: Provider, request: IncomingMessage, response: ServerResponse, helpers: GrantHelpers, members: Map<string, string>, client: unknown, grantType: string): KoaContextWithOIDC {
  const ctx = provider.createContext(request, response) as unknown as KoaContextWithOIDC & { _matchedRouteName: string }
  ctx._matchedRouteName = 'token'
  const oidc = new (provider as unknown as { OIDCContext: new (ctx: unknown) => KoaContextWithOIDC['oidc'] }).OIDCContext(ctx)
  Object.defineProperty(ctx, 'oidc', { value: oidc })
  ;(oidc as { params: unknown }).params = new helpers.Params(allowedParams(provider, helpers, grantType), Object.fromEntries(members))
  oidc.entity('Client', client as never)
  return ctx
}

/** A grant's parameters and the client's credentials, by provider and grant: its grants are registered once, when it is built. */
const allowedParamsOf = new WeakMap<Provider, Map<string, Set<string>>>()
function allowedParams(provider: Provider, helpers: GrantHelpers, grantType: string): Set<string> {
  let byGrant = allowedParamsOf.get(provider)
  if (!byGrant) allowedParamsOf.set(provider, (byGrant = new Map()))
  let allowed = byGrant.get(grantType)
  if (!allowed) byGrant.set(grantType, (allowed = new Set([...helpers.instance(provider).grantTypeParams.get(grantType)!, 'client_id', 'client_secret'])))
  return allowed
}

/** oidc-provider's refresh grant, checks first: undefined whenever one refuses or the request is not plain. */
async function refresh(options: RefreshTokenOptions, helpers: GrantHelpers, ctx: KoaContextWithOIDC): Promise<Record<string, unknown> | undefined> {
  const { provider } = options
  const { configuration } = helpers.instance(provider)
  const { rotateRefreshToken, features: { userinfo, resourceIndicators } } = configuration
  const client = ctx.oidc.client as unknown as { clientId: string; tlsClientCertificateBoundAccessTokens?: boolean; dpopBoundAccessTokens?: boolean; idTokenEncryptedResponseEnc?: string }
  if (rotateRefreshToken !== true || client.tlsClientCertificateBoundAccessTokens || client.dpopBoundAccessTokens || client.idTokenEncryptedResponseEnc) return undefined

  let checked
  try {
    checked = await checkedRefresh(provider, helpers, ctx, { userinfo, resourceIndicators })
  } catch (error) {
    return leftToProvider(error)
  }
  if (!checked) return undefined
  const { refreshToken, grant, account, resource, resourceServerInfo } = checked

  try {
    // The adapter's step of consuming, not the model's (provider.ts `consumeOnce`): a token another
    // refresh consumed since this one read it is left to oidc-provider, which finds it consumed and answers its reuse.
    if (!(await (refreshToken.adapter as StoreAdapter).consumeFirst(refreshToken.jti))) return undefined
  } catch (error) {
    return leftToProvider(error)
  }
  refreshToken.emit('consumed')
  // From here on the request is answered here: oidc-provider would find the old token consumed. For a client
  // with reuse detection it stays consumed whatever fails next (the database does not answer to put it back): that
  // token used again is taken for a stolen one, and ends its session (docs/oidc.md).
  ctx.oidc.entity('RotatedRefreshToken', refreshToken)
  const rotated = rotatedToken(provider, ctx, refreshToken)
  const scope = rotated.scopes as Set<string>
  // Saved side by side (oidc-provider saves one, then makes the other): their two records are queued in the same
  // turn, and so written in one statement (src/store/oidc.ts `upsert`), not in two one turn apart.
  const [value, at] = await Promise.all([rotated.save() as Promise<string>, issueAccessToken(provider, helpers, ctx, { rotated, grant, account, resource, resourceServerInfo })])
  const idToken = await refreshedIdToken(provider, helpers, ctx, { rotated, at: at.token, grant, scope })
  const body = helpers.buildTokenResponse(provider, {
    accessToken: at.value,
    authorizationDetails: at.token.rar,
    expiresIn: at.token.expiration,
    idToken,
    refreshToken: value,
    scope: rotated.scope ? at.token.scope : (at.token.scope || undefined),
    tokenType: at.token.tokenType,
  })
  options.tokensIssued?.(GRANT_TYPE)
  return options.answer(body, ctx.oidc)
}

/**
 * The members of the refresh token that replaces a consumed one, in the order oidc-provider's refresh grant gives
 * them (the saved record's members follow it): the old token's, with `client` and one more rotation. Those the old
 * token has not are left out rather than given as undefined: the model copies each member given, one property
 * definition at a time, at its construction and again at its save, which writes none that is undefined.
 */
const ROTATED_MEMBERS = ['accountId', 'acr', 'amr', 'authTime', 'claims', 'client', 'expiresWithSession', 'iiat', 'grantId', 'gty', 'nonce', 'resource', 'rotations', 'scope', 'sessionUid', 'sid', 'rar', 'x5t#S256', 'jkt', 'attestationJkt'] as const

/** The refresh token that replaces the consumed one (`rotateRefreshToken: true`), yet to be saved: the same grant, one more rotation. */
function rotatedToken(provider: Provider, ctx: KoaContextWithOIDC, refreshToken: any): any {
  const members: Record<string, unknown> = {}
  for (const name of ROTATED_MEMBERS) {
    const value = name === 'client' ? ctx.oidc.client : name === 'rotations' ? (typeof refreshToken.rotations === 'number' ? refreshToken.rotations + 1 : 1) : refreshToken[name]
    if (value !== undefined) members[name] = value
  }
  const rotated = new provider.RefreshToken(members as never) as any
  if (rotated.gty && !rotated.gty.endsWith(GRANT_TYPE)) rotated.gty = `${rotated.gty} ${GRANT_TYPE}`
  ctx.oidc.entity('RefreshToken', rotated)
  return rotated
}

/** The access token of the refresh, for the resource and scope oidc-provider gives it, saved (and so signed and recorded). */
async function issueAccessToken(provider: Provider, helpers: GrantHelpers, ctx: KoaContextWithOIDC, from: { rotated: any; grant: any; account: any; resource: string | undefined; resourceServerInfo: unknown }): Promise<{ token: any; value: string }> {
  const { rotated, grant, resource } = from
  const at = helpers.createAccessToken(provider, ctx, {
    accountId: from.account.accountId,
    expiresWithSession: rotated.expiresWithSession,
    grantId: rotated.grantId,
    sessionUid: rotated.sessionUid,
    sid: rotated.sid,
  }, rotated.gty)
  if (at.gty && !at.gty.endsWith(GRANT_TYPE)) at.gty = `${at.gty} ${GRANT_TYPE}`
  const scope = rotated.scopes as Set<string>
  if (resource) {
    at.resourceServer = new provider.ResourceServer(resource, from.resourceServerInfo as never)
    at.scope = grant.getResourceScopeFiltered(resource, [...scope].filter(Set.prototype.has.bind(at.resourceServer.scopes)))
  } else {
    at.claims = rotated.claims
    at.scope = grant.getOIDCScopeFiltered(scope)
  }
  await helpers.applyAuthorizationDetails(provider, ctx, at, rotated)
  ctx.oidc.entity('AccessToken', at)
  return { token: at, value: await at.save() }
}

/**
 * The claims of the ID token oidc-provider would issue (its `issueIdToken`, lib/helpers/grant_common.js), not
 * signed: the answer's ID token is Keycloak's, signed from them (id-token-claims.ts). Undefined without `openid`,
 * as oidc-provider gives none then.
 */
async function refreshedIdToken(provider: Provider, helpers: GrantHelpers, ctx: KoaContextWithOIDC, from: { rotated: any; at: any; grant: any; scope: Set<string> }): Promise<Record<string, unknown> | undefined> {
  const { rotated, at, grant, scope } = from
  if (!scope.has('openid')) return undefined
  const { conformIdTokenClaims, features: { userinfo } } = helpers.instance(provider).configuration
  const claims = helpers.filterClaims(rotated.claims, 'id_token', grant)
  const rejected = grant.getRejectedOIDCClaims()
  const token = new (provider.IdToken as any)({
    ...await helpers.accountClaims(ctx, 'id_token', typeof rotated.scope === 'string' ? rotated.scope : [...scope].join(' '), claims, rejected),
    acr: rotated.acr,
    amr: rotated.amr,
    auth_time: rotated.authTime,
  }, { ctx })
  token.scope = conformIdTokenClaims && userinfo.enabled && !at.aud ? 'openid' : grant.getOIDCScopeFiltered(scope)
  token.mask = claims
  token.rejected = rejected
  token.set('nonce', rotated.nonce)
  token.set('sid', rotated.sid)
  return idTokenClaims(provider, token, ctx)
}

/**
 * The refresh grant's checks, in oidc-provider's order, none of which writes anything: the token (this client's,
 * unexpired, unbound, not consumed), its grant, its account, and the resource its access token is for (which
 * oidc-provider resolves after rotating, from a token with the same resource and scope). Undefined, or a throw,
 * when oidc-provider is to answer.
 */
async function checkedRefresh(provider: Provider, helpers: GrantHelpers, ctx: KoaContextWithOIDC, config: { userinfo: unknown; resourceIndicators: any }) {
  const refreshToken = await provider.RefreshToken.find(String(ctx.oidc.params!.refresh_token), { ignoreExpiration: true }) as any
  if (!refreshToken || refreshToken.clientId !== (ctx.oidc.client as { clientId: string }).clientId || refreshToken.isExpired) return undefined
  if (refreshToken['x5t#S256'] || refreshToken.jkt || refreshToken.attestationJkt || refreshToken.rar !== undefined || refreshToken.consumed) return undefined
  const grant = await helpers.validateGrant(provider, ctx, refreshToken.grantId)
  ctx.oidc.entity('RefreshToken', refreshToken)
  ctx.oidc.entity('Grant', grant)
  const account = await helpers.validateAccount(provider, ctx, refreshToken, 'refresh token')
  helpers.checkAccountMismatch(refreshToken, grant)
  ctx.oidc.entity('Account', account)
  const resource = await helpers.resolveResource(ctx, refreshToken, config, refreshToken.scopes)
  const resourceServerInfo = resource ? helpers.validateResourceServer(await config.resourceIndicators.getResourceServerInfo(ctx, resource, ctx.oidc.client)) : undefined
  return { refreshToken, grant, account, resource, resourceServerInfo }
}
