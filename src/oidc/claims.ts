import type { Account, AccountClaims, KoaContextWithOIDC } from 'oidc-provider'
import type { RealmClientConfig, RealmConfig, ScopeMapping } from '../config/realms.ts'
import type { Accounts } from '../directory/accounts.ts'
import { UsernameTaken } from '../errors.ts'
import { invalidGrant } from './password-grant.ts'
import type { Store } from '../store/store.ts'
import { issuedBefore, lastMillisecondOf, type User } from '../store/users.ts'

/**
 * What Keycloak puts in its tokens, built from Gatehouse's accounts, so services written for Keycloak read
 * the same claims: `preferred_username`, `email`, `name`, `realm_access.roles`, `azp`, `typ`, `sid`, ...
 */

/** Scopes a client may ask for: Keycloak's default and optional client scopes. */
export const SUPPORTED_SCOPES = ['openid', 'profile', 'email', 'roles', 'web-origins', 'acr', 'basic', 'address', 'phone', 'offline_access']

/** The scopes of one realm: Keycloak's, and the realm's own `client_scopes`. */
export function realmScopes(realm: RealmConfig): string[] {
  return [...new Set([...SUPPORTED_SCOPES, ...realm.client_scopes])]
}
/** Keycloak's default client scopes shown in `scope`: every token has them, requested or not. */
export const DEFAULT_SCOPES = ['profile', 'email']

/** Which claims each scope releases in ID tokens and at userinfo (OpenID Connect Core §5.4). */
export const SCOPE_CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username'],
  email: ['email', 'email_verified'],
}

/**
 * Keycloak's account client. Nearly every access token of a realm names it in `aud`, whatever client it was issued
 * to (below), so it tells no client's tokens from another's: no place may take it as its audience.
 */
export const ACCOUNT_CLIENT = 'account'

/** Keycloak gives every user the realm's default roles and the account console roles (whence `aud: account`). */
export const ACCOUNT_ROLES = ['manage-account', 'manage-account-links', 'view-profile']

/**
 * What access control adds to a realm's access tokens, as Keycloak would carry it: `groups` as group paths (a
 * Group Membership mapper with full paths: `/Organization` and `/Organization/Team`), roles in `realm_access.roles`.
 */
export interface Memberships {
  groups: string[]
  roles: string[]
}

export function realmRoles(realm: RealmConfig, user: User): string[] {
  const roles = [defaultRoles(realm), 'offline_access', 'uma_authorization']
  if (user.isSuperuser) roles.push('admin')
  return roles
}

/** Keycloak's composite role that every user of the realm holds. */
const defaultRoles = (realm: RealmConfig) => `default-roles-${realm.name.toLowerCase()}`

/** The roles an access token carries: `realm_access.roles`, and `resource_access` by client id. */
export interface TokenRoles {
  realm: string[]
  clients: Record<string, { roles: string[] }>
}

/** The role a client's scope mapping names: a realm role (no `client`), or a client's. */
export interface ScopedRole {
  readonly client?: string
  readonly role: string
}

/** A scope mapping as the configuration writes it (src/config/realms.ts), read into the role it names. */
export function scopedRole(mapping: ScopeMapping): ScopedRole {
  if (typeof mapping !== 'string') return { role: mapping.realm_role }
  const slash = mapping.indexOf('/')
  return slash < 0 ? { role: mapping } : { client: mapping.slice(0, slash), role: mapping.slice(slash + 1) }
}

/** Limits a token's roles to those its client may carry, by the token's scope. */
export type RoleScope = (held: TokenRoles, tokenScope: string | undefined) => TokenRoles

/**
 * Keycloak's `TokenManager.getAccess` for a client with "Full scope allowed" off: the user's roles that are the
 * client's own, or in its scope mappings (its dedicated scope's, and the requested client scopes': the built-in
 * `offline_access` scope maps the realm role of that name), composites expanded (`RoleUtils`); undefined for a
 * client with full scope, whose tokens carry every role. Compiled once per client.
 */
export function compileRoleScope(realm: RealmConfig, client: RealmClientConfig): RoleScope | undefined {
  if (client.full_scope_allowed) return undefined
  const own = client.client_id === ACCOUNT_CLIENT ? ACCOUNT_ROLES : Object.keys(client.roles ?? {})
  const mapped: ScopedRole[] = [...own.map((role) => ({ client: client.client_id, role })), ...(client.scope ?? []).map(scopedRole)]
  const always = expandComposites(realm, mapped)
  const offline = expandComposites(realm, [...mapped, { role: 'offline_access' }])
  return (held, tokenScope) => {
    const scope = tokenScope?.split(' ').includes('offline_access') ? offline : always
    const clients: TokenRoles['clients'] = {}
    for (const [clientId, { roles }] of Object.entries(held.clients)) {
      const kept = roles.filter((role) => scope.clients.get(clientId)?.has(role))
      if (kept.length) clients[clientId] = { roles: kept }
    }
    return { realm: held.realm.filter((role) => scope.realm.has(role)), clients }
  }
}

/**
 * Scope mappings with Keycloak's composites among the roles Gatehouse gives expanded: `default-roles-<realm>` holds
 * `offline_access`, `uma_authorization` and the account console's `view-profile` and `manage-account`, which holds
 * `manage-account-links` (RealmManager's realm setup). Gatehouse's own roles have no composites.
 */
function expandComposites(realm: RealmConfig, mappings: readonly ScopedRole[]): { realm: Set<string>; clients: Map<string, Set<string>> } {
  const compositeOf = ({ client, role }: ScopedRole): ScopedRole[] => {
    if (client === undefined && role === defaultRoles(realm)) {
      return [{ role: 'offline_access' }, { role: 'uma_authorization' }, { client: 'account', role: 'view-profile' }, { client: 'account', role: 'manage-account' }]
    }
    return client === 'account' && role === 'manage-account' ? [{ client: 'account', role: 'manage-account-links' }] : []
  }
  const scope = { realm: new Set<string>(), clients: new Map<string, Set<string>>() }
  const visit = (mapping: ScopedRole): void => {
    const { client, role } = mapping
    const roles = client === undefined ? scope.realm : scope.clients.get(client) ?? scope.clients.set(client, new Set()).get(client)!
    if (roles.has(role)) return
    roles.add(role)
    compositeOf(mapping).forEach(visit)
  }
  mappings.forEach(visit)
  return scope
}

export function profileClaims(user: User): Record<string, unknown> {
  const name = [user.firstName, user.lastName].filter(Boolean).join(' ')
  return {
    sub: String(user.id),
    preferred_username: user.username,
    ...(name ? { name } : {}),
    ...(user.firstName ? { given_name: user.firstName } : {}),
    ...(user.lastName ? { family_name: user.lastName } : {}),
    ...(user.email ? { email: user.email } : {}),
    // Gatehouse does not verify addresses; Keycloak says false for unverified ones.
    email_verified: false,
  }
}

/**
 * The access token `aud`, as Keycloak's "audience resolve" mapper makes it: every client whose roles the token
 * carries in `resource_access` (Keycloak's `account` always, with full scope), but the client the token is for, then
 * the client's configured audiences; undefined for none.
 */
export function accessTokenAudience(clientId: string, client: RealmClientConfig | undefined, resourceAccess: unknown): string | string[] | undefined {
  const holders = Object.entries((resourceAccess ?? {}) as Record<string, { roles?: unknown[] } | undefined>)
    // `account` stays even in a token of a client of that name: such tokens always named it, and would name nothing.
    .filter(([holder, access]) => (holder !== clientId || holder === 'account') && access?.roles?.length)
    .map(([holder]) => holder)
  const audiences = [...new Set([...holders, ...(client?.audiences ?? [])])]
  // A token without client roles of others (a client without full scope) has no `aud`, as Keycloak's.
  return audiences.length > 1 ? audiences : audiences[0]
}

/** The scope string in Keycloak's order: openid first, then the defaults, then the rest as requested. */
export function orderScopes(scopes: Iterable<string>): string {
  const set = new Set(scopes)
  const first = ['openid', ...DEFAULT_SCOPES].filter((s) => set.has(s))
  return [...first, ...[...set].filter((s) => !first.includes(s))].join(' ')
}

/** What a grant's access tokens are issued for again and again, on the grant of one login: a refresh, a code of `prompt=none`. */
const COUNTED_SOURCES: ReadonlySet<string> = new Set(['RefreshToken', 'AuthorizationCode'])

/**
 * oidc-provider's `findAccount`: an active Gatehouse user by id (the `sub`). `onRefresh` judges a user again when a
 * refresh token of `clientId` is used; it throws to refuse the refresh (the client's access rules no longer let the
 * user in). `confirmOnRefresh` asks then whether the account still stands where it came from (a directory account
 * whose entry is gone does not, and is disabled), as Keycloak's LDAP federation checks the entry at a refresh.
 * `countGrantTokens` counts the tokens of a refresh, or of a code's redemption, that passed all of these at the token
 * endpoint, last, by its grant; it throws to refuse them (too many of the grant's).
 */
export function accountFinder(accounts: Accounts, onRefresh?: (ctx: KoaContextWithOIDC, clientId: string, user: User) => void, confirmOnRefresh?: (user: User) => Promise<boolean>, countGrantTokens?: (ctx: KoaContextWithOIDC, grantId: string, source: { kind?: string; jti?: string; consumed?: unknown }) => Promise<void>) {
  return async function findAccount(ctx: KoaContextWithOIDC, sub: string, token?: { kind?: string; clientId?: string; iat?: number; grantId?: string; jti?: string; consumed?: unknown }): Promise<Account | undefined> {
    if (!/^[1-9][0-9]{0,14}$/.test(sub)) return undefined
    const user = await accounts.get(Number(sub))
    if (!user || !user.isActive) {
      if (!token) signOutSession(ctx, sub)
      return undefined
    }
    // A code or token issued before the account's not-before (the one that redeems or refreshes it, or userinfo's),
    // or, without one, the browser's realm session signed in before it: that session is signed out.
    if (typeof token?.iat === 'number' && issuedBefore(user, lastMillisecondOf(token.iat))) return undefined
    if (!token && sessionSignedInBefore(ctx, sub, user)) {
      signOutSession(ctx, sub)
      return undefined
    }
    if (token?.kind === 'RefreshToken' && confirmOnRefresh && !(await confirmOnRefresh(user))) return undefined
    if (onRefresh && token?.kind === 'RefreshToken' && token.clientId) onRefresh(ctx, token.clientId, user)
    if (countGrantTokens && COUNTED_SOURCES.has(token?.kind ?? '') && typeof token?.grantId === 'string' && ctx?.oidc?.route === 'token') await countGrantTokens(ctx, token.grantId, token)
    return { accountId: sub, claims: () => profileClaims(user) as AccountClaims }
  }
}

const CASE_VARIANT_HOLDS_NAME = 'The service account\'s username belongs to another account, spelled in another letter case.'

/**
 * The realm browser session of an account that is disabled or gone, met at the authorization endpoint (oidc-provider
 * looks its account up without a token only there): the request goes on as from a browser signed in as nobody, so
 * it gets the login page, or `login_required` with `prompt=none`, as Keycloak answers for a disabled user's session.
 * Disabling an account ends its realm sessions; this holds even for one whose record outlived that (fail closed),
 * where oidc-provider would otherwise go on without the account and fail.
 */
function sessionSignedInBefore(ctx: KoaContextWithOIDC, sub: string, user: User): boolean {
  const session = ctx.oidc?.session as { accountId?: string; loginTs?: number } | undefined
  return session?.accountId === sub && typeof session.loginTs === 'number' && issuedBefore(user, lastMillisecondOf(session.loginTs))
}

function signOutSession(ctx: KoaContextWithOIDC, sub: string): void {
  const session = ctx.oidc?.session as { accountId?: string } | undefined
  // Deleted, not set: oidc-provider's session takes no empty account, and a deletion leaves it unsaved, as it was.
  if (session?.accountId === sub) delete session.accountId
}

/**
 * A confidential client with service accounts acts as the user `service-account-<client_id>`, as in Keycloak.
 * The account has no password, so it can only be used through the client_credentials grant.
 */
export class ServiceAccounts {
  readonly #store: Store
  readonly #accounts: Accounts
  readonly #ids = new Map<string, number>()

  constructor(store: Store, accounts: Accounts) {
    this.#store = store
    this.#accounts = accounts
  }

  static username(clientId: string): string {
    return `service-account-${clientId.toLowerCase()}`.replace(/[^\w.@+-]/g, '-').slice(0, 150)
  }

  async userFor(clientId: string): Promise<User> {
    const known = this.#ids.get(clientId)
    const user = known === undefined ? undefined : await this.#accounts.get(known)
    if (user) return user
    const username = ServiceAccounts.username(clientId)
    let found = await this.#store.users.findCaseVariant(username)
    // Single sign-on and LDAP name their accounts as their upstream does, where a person may choose the name: such
    // an account is that person's, never the client's (Keycloak links a service account to its client, not by name).
    if (found && found.source !== 'local') throw invalidGrant(`The service account's username belongs to an ${found.source === 'sso' ? 'SSO' : 'LDAP'} account.`)
    // Another spelling is another account, and the name cannot be made beside it (Accounts refuses case variants).
    if (found && found.username !== username) throw invalidGrant(CASE_VARIANT_HOLDS_NAME)
    if (!found) {
      try {
        found = await this.#accounts.create({ username, email: '' })
      } catch (error) {
        if (!(error instanceof UsernameTaken)) throw error
        found = await this.#store.users.findByUsername(username)
        if (!found) throw invalidGrant(CASE_VARIANT_HOLDS_NAME)
      }
    }
    this.#ids.set(clientId, found.id)
    return found
  }
}
