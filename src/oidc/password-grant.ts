import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type Provider from 'oidc-provider'
import type { Account, KoaContextWithOIDC } from 'oidc-provider'
import type { Accounts } from '../directory/accounts.ts'
import { AccountDisabled, AccountLocked, GatehouseError, InvalidCredentials, LoginThrottled } from '../errors.ts'
import type { User } from '../store/users.ts'
import { errors } from './provider-errors.ts'
import { DEFAULT_SCOPES, orderScopes } from './claims.ts'
import { idTokenClaims } from './id-token-claims.ts'
import epochTime from './provider-clock.ts'
import { PROVIDER_REQUEST, type ProviderRequest } from './keycloak-format.ts'
import type { SignatureAlg } from './keys.ts'
import type { ClientAccessCheck } from '../access/client-access.ts'
import { leftToProvider } from './client-credentials.ts'
import { plainGrant } from './refresh-token.ts'
import type { LoginName } from './login-name.ts'
import { clientGone } from '../http/client-gone.ts'

export const PASSWORD_GRANT = 'password'
/** The reason kept for a login refused during a lockout: Keycloak words it as a wrong password, but answers 400. */
export const LOCKED = 'user temporarily locked'
/** The grant's form parameters besides grant_type and client authentication (RFC 6749 §4.3.2). */
export const PASSWORD_GRANT_PARAMETERS = ['username', 'password', 'scope']

export interface PasswordGrantOptions {
  /** The realm's name, for the audit trail. */
  realm: string
  accounts: Accounts
  /** Whether the user may sign in to the client (its `access` rules). */
  clientAccess?: ClientAccessCheck | undefined
  /** The account a typed login name means (case, e-mail address: login-name.ts). */
  loginName(name: string): Promise<LoginName>
  findAccount(ctx: KoaContextWithOIDC, sub: string): Promise<Account | undefined>
  /** The scopes a client of the realm may ask for. */
  scopes: readonly string[]
  /** The realm's resource indicator and its resource server, which make access tokens JWTs. */
  resource: string
  resourceServer(): ReturnType<typeof buildResourceServerInfo>
}

export function buildResourceServerInfo(scopes: readonly string[], accessTokenSeconds: number, alg: SignatureAlg, kid: string) {
  return {
    scope: scopes.join(' '),
    audience: 'account',
    accessTokenTTL: accessTokenSeconds,
    accessTokenFormat: 'jwt' as const,
    jwt: { sign: { alg, kid } },
  }
}

/**
 * The resource owner password credentials grant (RFC 6749 §4.3), registered with oidc-provider's
 * `registerGrantType`: what `curl ... grant_type=password` gets from Keycloak. oidc-provider has authenticated
 * the client and checked the grant is allowed for it before this runs. Each login is a new session (a Grant),
 * and the tokens are made by oidc-provider's own models, so refresh, introspection, revocation and logout
 * treat them like any other.
 */
export function passwordGrant(options: PasswordGrantOptions) {
  return async function passwordGrantHandler(ctx: KoaContextWithOIDC): Promise<void> {
    ctx.body = await passwordGrantAnswer(options, ctx)
  }
}

/**
 * The grant's answer, in oidc-provider's members (keycloak-format.ts makes Keycloak's of them). `recording` is told
 * before the grant's first record is saved: what comes before it may be done again.
 */
async function passwordGrantAnswer(options: PasswordGrantOptions, ctx: KoaContextWithOIDC, recording = () => {}): Promise<Record<string, unknown>> {
  const { provider, client } = ctx.oidc
  const params = ctx.oidc.params ?? {}
  if (!client) throw new errors.InvalidClient('client not found')
  const username = params.username as string | undefined
  const password = params.password as string | undefined
  if (username === undefined) throw new errors.InvalidRequest('Missing parameter: username')
  const scope = grantedScope(params.scope as string | undefined, options.scopes)
  const address = (ctx.req as { [PROVIDER_REQUEST]?: ProviderRequest })[PROVIDER_REQUEST]?.address
  const user = await checkedOnce(ctx.req, async () => checkCredentials(options.accounts, await options.loginName(username), password ?? '', address, options.realm, clientGone(ctx.res)))
  const refusal = options.clientAccess?.(options.realm, client.clientId, user, address ?? '')
  if (refusal) throw accessDenied(refusal)
  await recordLogin(options.accounts, user)

  const accountId = String(user.id)
  const account = await options.findAccount(ctx, accountId)
  if (!account) throw invalidGrant('Account disabled')
  ctx.oidc.entity('Account', account)

  const grant = new provider.Grant({ accountId, clientId: client.clientId })
  grant.addOIDCScope(scope)
  grant.addResourceScope(options.resource, scope)
  // The id its save would give it, given now: the tokens name the grant before it is saved with them.
  const grantId = (grant.jti = (grant as unknown as { generateTokenId(): string }).generateTokenId())
  ctx.oidc.entity('Grant', grant)
  // Keycloak's session id: `sid` in the tokens, `session_state` in the response.
  const sid = randomUUID()

  const authTime = epochTime()
  const accessToken = new provider.AccessToken({ accountId, client, grantId, gty: PASSWORD_GRANT, sid })
  // Its claims say when the person signed in (provider.ts `keycloakTokenClaims`); the model keeps no such member.
  Object.assign(accessToken, { authTime })
  accessToken.resourceServer = new provider.ResourceServer(options.resource, options.resourceServer())
  accessToken.scope = scope
  ctx.oidc.entity('AccessToken', accessToken)
  const refreshToken = client.grantTypeAllowed('refresh_token') ? new provider.RefreshToken({
    accountId, client, grantId, gty: PASSWORD_GRANT, scope, sid, resource: options.resource, rotations: 0, authTime, acr: '1',
  }) : undefined
  if (refreshToken) ctx.oidc.entity('RefreshToken', refreshToken)
  recording()
  // Saved side by side (oidc-provider saves one after the other): their records are queued in the same turn, and so
  // written in one statement (src/store/oidc.ts `upsert`), not in three.
  const [, accessTokenValue, refreshTokenValue] = await Promise.all([grant.save(), accessToken.save(), refreshToken?.save()])

  let idToken: string | Record<string, unknown> | undefined
  if (scope.split(' ').includes('openid')) {
    const token = new provider.IdToken(await account.claims('id_token', scope, {}, []), { ctx })
    // IdToken releases the claims of these scopes (oidc-provider's own grants set it the same way).
    Object.assign(token, { scope })
    token.set('sid', sid)
    token.set('acr', '1')
    // Its claims: the answer's ID token is Keycloak's, signed from them (id-token-claims.ts).
    idToken = await idTokenClaims(provider, token, ctx) ?? await token.issue({ use: 'idtoken' })
  }

  return {
    access_token: accessTokenValue,
    expires_in: accessToken.expiration,
    refresh_token: refreshTokenValue,
    id_token: idToken,
    scope,
    token_type: accessToken.tokenType,
  }
}

/**
 * The password check's outcome by request: a request that the shortcut (below) leaves to oidc-provider after the
 * check gets the same outcome there, so that its password is checked, counted by the lockout and audited once.
 */
const checked = new WeakMap<object, Promise<User>>()
function checkedOnce(request: object, check: () => Promise<User>): Promise<User> {
  let outcome = checked.get(request)
  if (!outcome) checked.set(request, (outcome = check()))
  return outcome
}

const PLAIN_MEMBERS = new Set(['grant_type', 'client_id', 'client_secret', ...PASSWORD_GRANT_PARAMETERS])

export interface PasswordGrantShortcutOptions extends PasswordGrantOptions {
  provider: Provider
  /** Whether the client is one of the realm's configured ones (an OAuth2 application's is left to oidc-provider). */
  configured(clientId: string): boolean
  /** Keycloak's answer for oidc-provider's, as keycloak-format.ts makes it for the token endpoint. */
  answer(body: Record<string, unknown>, oidc: KoaContextWithOIDC['oidc']): Promise<Record<string, unknown>>
  /** Told of each token issued, as oidc-provider's `grant.success` tells it. */
  tokensIssued?: ((grantType: string) => void) | undefined
}

/** Keycloak's token answer, or undefined: oidc-provider is to answer the request (`request` as it would get it). */
export type PasswordGrantShortcut = (form: Buffer, request: IncomingMessage, response: ServerResponse) => Promise<Record<string, unknown> | undefined>

/**
 * The password grant without oidc-provider's HTTP stack (Koa, its router and a dozen middlewares: a fifth of the
 * event loop's work for each grant), for the plain request scripts send: a configured client's id (and secret, in
 * the form or HTTP basic), the username, the password and at most a scope, nothing else, percent-encoded or not
 * (read as oidc-provider reads them: client-credentials.ts `plainForm`) (refresh-token.ts and
 * client-credentials.ts do the same for their grants). The client is authenticated as oidc-provider does, and the
 * grant is the same handler on a context of oidc-provider's kind. Every refusal, a wrong password among them, is
 * left to oidc-provider, which answers it as always: the check it then makes has the outcome of this one
 * (`checkedOnce`). The database failing is answered at once (`leftToProvider`), and so is any failure once the
 * grant's records are being saved.
 */
export function passwordGrantShortcut(options: PasswordGrantShortcutOptions): PasswordGrantShortcut {
  return async (form, request, response) => {
    const plain = await plainGrant(options, { grantType: PASSWORD_GRANT, members: PLAIN_MEMBERS, required: 'username', encoded: true }, form, request, response)
    if (!plain) return undefined
    const { ctx, helpers } = plain
    let recorded = false
    let body: Record<string, unknown>
    try {
      body = await helpers.als.run(ctx, () => passwordGrantAnswer(options, ctx, () => {
        recorded = true
      }))
    } catch (error) {
      // Once the grant is being saved, oidc-provider would save another: the failure is this request's.
      if (recorded) throw error
      return leftToProvider(error)
    }
    options.tokensIssued?.(PASSWORD_GRANT)
    return options.answer(body, ctx.oidc)
  }
}

/** Keycloak's default scopes plus what was asked for; an unknown scope is refused, not ignored. */
export function grantedScope(requested: string | undefined, supported: readonly string[]): string {
  const asked = (requested ?? '').split(' ').filter(Boolean)
  const unknown = asked.filter((s) => !supported.includes(s))
  if (unknown.length) throw new errors.InvalidScope('Invalid scopes', unknown.join(' '))
  return orderScopes([...DEFAULT_SCOPES, ...asked])
}

/** Gatehouse's password check (every password source, lockout) in Keycloak's words. */
async function checkCredentials(accounts: Accounts, login: LoginName, password: string, address: string | undefined, realm: string, signal: AbortSignal): Promise<User> {
  try {
    return await accounts.checkPassword(login.username, password, address, { method: 'oidc', realm, recordsLogin: true }, login.account, signal)
  } catch (error) {
    if (error instanceof GatehouseError && error.status < 500) {
      // A throttled client address is refused like a locked user: the check did not happen.
      if (error instanceof AccountLocked || error instanceof LoginThrottled) throw Object.assign(new errors.InvalidGrant(LOCKED), { error_description: 'Invalid user credentials' })
      throw invalidGrant(error instanceof AccountDisabled ? 'Account disabled' : 'Invalid user credentials')
    }
    throw error
  }
}

/** Records the login, refused in Keycloak's words when the password it verified was changed meanwhile. */
async function recordLogin(accounts: Accounts, user: User): Promise<void> {
  try {
    await accounts.recordLogin(user)
  } catch (error) {
    if (error instanceof InvalidCredentials) throw invalidGrant('Invalid user credentials')
    throw error
  }
}

/**
 * A user the client's `access` rules refuse: 400 `access_denied`, Keycloak's answer when its Deny Access step
 * refuses a direct grant, with the refusal's explanation.
 */
export function accessDenied(description: string): InstanceType<typeof errors.AccessDenied> {
  return Object.assign(new errors.AccessDenied(description), { error_description: description, status: 400, statusCode: 400 })
}

/** oidc-provider's InvalidGrant keeps its message out of the response; Keycloak's wording belongs in it. */
export function invalidGrant(description: string): InstanceType<typeof errors.InvalidGrant> {
  return Object.assign(new errors.InvalidGrant(description), { error_description: description })
}
