import { compileGatewayRules, type AccessDecision, type ServiceRules } from '../access/rules.ts'
import { queryOverrideRefusal } from '../access/method-override.ts'
import { pendingOverride } from '../access/service-access.ts'
import type { App } from '../app.ts'
import type { AuthMethod } from '../config/schema.ts'
import { findApiRoute, gatewayApiRoutes } from '../api/route-table.ts'
import { ALLOW, superuserOnly, type Access, type Place } from '../gateway/places.ts'
import { scopeRefusal } from '../gateway/policy.ts'
import type { GatewayRequest } from '../http/gateway-request.ts'
import { GatehouseError } from '../errors.ts'
import { assertSafePath, assertWellFormedEscapes, decodedPath, mergeSlashes, splitTarget } from '../http/request-target.ts'
import { UI_PATH } from '../ui/routes.ts'
import { heldToScope, policyRefusal, takesAccessToken } from '../auth/oidc-bearer.ts'
import { accessTokenAudience, ACCOUNT_ROLES, compileRoleScope } from '../oidc/claims.ts'
import type { User } from '../store/users.ts'
import { printable } from '../logging/printable.ts'
import { withApp } from './actions.ts'
import { UsageError, type StorageOptions } from './common.ts'

interface CheckOptions extends StorageOptions {
  authMethod: AuthMethod
  scope?: string[]
  /** The OIDC access token is an OAuth2 application's (from `/o/token/`), not a configured client's. */
  application?: boolean
  /** The realm client the OIDC access token was issued to, `REALM/CLIENT_ID`. */
  client?: string
  address: string
}

/** `access check`: what the running gateway would decide for a user's request, from the same rules engine. */
export async function checkAccess(user: string, method: string, path: string, options: CheckOptions): Promise<void> {
  await withApp(options, (app) => check(app, user, method.toUpperCase(), path, options))
}

export async function checkClientAccess(user: string, client: string, options: StorageOptions & { address: string }): Promise<void> {
  await withApp(options, (app) => checkClient(app, user, client, options.address))
}

/**
 * The `read` or `write` scope a token of these scopes is held to at the place, as the gateway holds it: a personal
 * token has one of them, `write` when made without a scope (src/auth/personal-tokens.ts), and rules read it alone,
 * not as a set of scopes; an OIDC token as src/auth/oidc-bearer.ts holds it there, by the place's policy and whether
 * it is an OAuth2 application's.
 */
function tokenScope(app: App, place: Place | undefined, options: CheckOptions, scopes: ReadonlySet<string> | undefined): { scope?: 'read' | 'write'; scopes?: ReadonlySet<string> } {
  if (options.authMethod === 'token') return { scope: !scopes || scopes.has('write') ? 'write' : 'read' }
  if (options.authMethod !== 'oidc') return {}
  const scope = place && heldToScope(scopes ?? new Set(), app.oidc.policyFor(place.service), options.application === true)
  return { ...(scopes ? { scopes } : {}), ...(scope ? { scope } : {}) }
}

/** A personal token's scope is `read`, `write` or both (the API's `scope`): another is a usage mistake, not a token. */
function assertPersonalScopes(options: CheckOptions): void {
  const other = options.authMethod === 'token' && options.scope?.find((scope) => scope !== 'read' && scope !== 'write')
  if (other !== undefined && other !== false) throw new UsageError(`--scope of a personal token (--auth-method token) is read or write, not "${other}"`)
}

/**
 * Whether the place takes the credential: one of the types it accepts, or, at a place that takes personal tokens, an
 * OAuth2 application's token, as the gateway takes them (src/auth/oidc-bearer.ts).
 */
function placeTakes(app: App, place: Place, options: CheckOptions): boolean {
  if (options.authMethod !== 'oidc') return place.accepts.includes(options.authMethod)
  return takesAccessToken(place.accepts, app.oidc.policyFor(place.service), options.application === true)
}

/** Why the place refuses the credential type, with what it takes instead. */
function notTakenReason(app: App, place: Place, isService: boolean, options: CheckOptions): string {
  const which = options.authMethod === 'oidc' ? (options.application ? 'an OAuth2 application\'s token' : 'a realm client\'s token (oidc)') : `${options.authMethod} credentials`
  const applications = takesAccessToken(place.accepts, app.oidc.policyFor(place.service), true) && !place.accepts.includes('oidc') ? ' (and, of OpenID Connect tokens, only those of OAuth2 applications)' : ''
  return `${isService ? 'the service' : 'this place'} does not accept ${which}; it accepts: ${place.accepts.join(', ')}${applications}`
}

/** The OIDC access token the request carries, as a place's policy judges it: its realm, kind and audiences. */
interface DescribedToken {
  realm: string
  application: boolean
  /** `aud` and `azp` together, as the realm would issue them to the user now. */
  audiences: string[]
  /** Why the user could not be issued such a token at all (the client's access rules), none when they could. */
  refusal?: string
}

/**
 * The token `--client` or `--application` describes, with the audiences its realm gives the user's token now: the
 * clients whose roles it carries (Keycloak's `account` among them, and only those in scope for a client without full
 * scope), the client's configured audiences, and the client itself as `azp` (src/oidc/provider.ts); an application's
 * are those the applications' realm gives every application (the gateway's, and the first of each of its services').
 */
function describedToken(app: App, user: User, options: CheckOptions, scopes: ReadonlySet<string> | undefined): DescribedToken | undefined {
  if (options.authMethod !== 'oidc') return undefined
  const held = (realm: string) => ({ realm: [], clients: { ...app.clientRoles(realm, user, options.address), account: { roles: ACCOUNT_ROLES } } })
  const holders = (audience: string | string[] | undefined) => (audience === undefined ? [] : [audience].flat())
  if (options.application) {
    const realm = app.oidc.applicationsRealm
    if (!realm?.applications) throw new UsageError('--application: no realm issues the OAuth2 applications\' tokens (the configuration has no realms)')
    const roles = held(realm.name).clients
    return { realm: realm.name, application: true, audiences: [...new Set([...holders(accessTokenAudience('', undefined, roles)), ...realm.applications.audiences])] }
  }
  const { realm, clientId, configured } = realmClient(app, options.client!)
  const roles = compileRoleScope(app.oidc.get(realm)!.config, configured)?.(held(realm), [...(scopes ?? [])].join(' ')) ?? held(realm)
  const refusal = user.isActive ? app.clientAccess(realm, clientId, user, options.address) : undefined
  return { realm, application: false, audiences: [...holders(accessTokenAudience(clientId, configured, roles.clients)), clientId], ...(refusal ? { refusal } : {}) }
}

/** Why the place refuses the token: its policy (realm, audiences), or the user could not have been issued it. */
function tokenRefusal(app: App, place: Place, token: DescribedToken | undefined): string | undefined {
  if (!token) return undefined
  if (token.refusal) return `the user cannot be issued a token of that client: ${token.refusal}`
  const refusal = policyRefusal(token, app.oidc.policyFor(place.service))
  return refusal && `401: ${refusal} The token's realm is ${token.realm}, its aud and azp name ${token.audiences.join(', ')}`
}

/** A configuration without services (none given) judges only the gateway's own paths: say so, and how to give one. */
function noServicesHint(app: App): string {
  return app.config.services.length ? '' : ' (the configuration has no services: give the one the gateway runs with --config, or --demo for the demo\'s)'
}

/**
 * Where a request for one of the gateway's own paths lands: the web interface's pages (its administration for
 * superusers), or the gateway API route the path reaches, with the access the route declares.
 */
async function gatewayPlace(app: App, method: string, path: string): Promise<{ place: Place; access: Access; description: string }> {
  if (path.startsWith(`${UI_PATH}admin/`)) return { place: app.places.uiAdmin, access: 'superuser', description: `web interface, administration: ${WHO_MAY.superuser}` }
  if (path.startsWith(UI_PATH)) return { place: app.places.ui, access: 'user', description: `web interface: ${WHO_MAY.user}` }
  if (!path.startsWith('/api/')) throw new UsageError(`no service or gateway path at ${path}${noServicesHint(app)}`)
  const route = findApiRoute(await gatewayApiRoutes(app), method, path)
  if (!route && !path.startsWith('/api/gateway/')) throw new UsageError(`no service or gateway API route at ${method} ${path}${noServicesHint(app)}`)
  if (!route) throw new UsageError(`no gateway API route for ${method} ${path}`)
  return { place: app.places.gatewayApi[route.access], access: route.access, description: `API, route ${route.method} ${route.url}: ${WHO_MAY[route.access]}` }
}

/** Who may call a route of each access (src/gateway/places.ts `Access`), in words. */
const WHO_MAY: Record<Access, string> = {
  open: 'anyone',
  public: 'anyone while gateway.public_paths lists it, else signed-in callers whom gateway.access allows',
  user: 'signed-in callers whom gateway.access allows',
  superuser: 'superusers (and a Platform Auditor, to read) whom gateway.access allows',
  sign_out: 'every signed-in caller, whatever gateway.access says (anyone may end their own session)',
}

async function userNamed(app: App, username: string) {
  // In any letter case, as the rules name users and realm logins find them.
  const found = await app.store.users.findCaseVariant(username)
  if (!found) throw new UsageError(`no user "${username}"`)
  return (await app.accounts.get(found.id))!
}

/** The realm client `REALM/CLIENT_ID` names, as configured. */
function realmClient(app: App, client: string) {
  const [realm, clientId] = client.split('/', 2)
  const configured = app.config.realms.find((r) => r.name === realm)?.clients.find((c) => c.client_id === clientId)
  if (!realm || !clientId || !configured) {
    throw new UsageError(`no realm client "${client}" (write it REALM/CLIENT_ID)`)
  }
  return { realm, clientId, configured }
}

async function checkClient(app: App, username: string, client: string, address: string): Promise<void> {
  const { realm, clientId, configured } = realmClient(app, client)
  const user = await userNamed(app, username)
  const refusal = user.isActive ? app.clientAccess(realm, clientId, user, address) : 'The account is disabled.'
  const lines = [`client: ${realm}/${clientId}`, `user: ${user.username}`, refusal ? `decision: deny (${refusal})` : 'decision: allow']
  // What `resource_access` of the user's access tokens would say of this client now (those of a client with full
  // scope, or whose `scope` names the role).
  if (configured.roles) lines.push(`client roles: ${app.clientRoles(realm, user, address)[clientId]?.roles.join(', ') ?? '(none)'}`)
  process.stdout.write(lines.map(printable).join('\n') + '\n')
  if (refusal) process.exitCode = 1
}

/**
 * The path of a request target as the gateway reads it (src/http/request-target.ts): runs of slashes merged, then
 * refused when its escapes are malformed or it could step out of a prefix (`refusal`, the gateway's 400), and
 * otherwise with its escapes decoded (`decoded`), as the router picks the service and the rules judge it.
 */
function readTarget(target: string): { path: string; decoded: string; refusal?: string } {
  const merged = mergeSlashes(target)
  const { path } = splitTarget(merged)
  // Not a path at all: no service or route is found for it, a usage mistake said as such.
  if (!path.startsWith('/')) return { path, decoded: path }
  try {
    assertSafePath(path)
    assertWellFormedEscapes(merged)
    return { path, decoded: decodedPath(path) }
  } catch (error) {
    if (!(error instanceof GatehouseError)) throw error
    return { path, decoded: path, refusal: `${error.status} ${error.code}: ${error.message}` }
  }
}

async function check(app: App, username: string, method: string, target: string, options: CheckOptions): Promise<void> {
  if (options.application && options.authMethod !== 'oidc') throw new UsageError(`--application describes an OpenID Connect token: it goes with --auth-method oidc, not ${options.authMethod}`)
  if (options.client !== undefined && options.authMethod !== 'oidc') throw new UsageError(`--client describes an OpenID Connect token: it goes with --auth-method oidc, not ${options.authMethod}`)
  if (options.client !== undefined && options.application) throw new UsageError('--client names a realm client, --application an OAuth2 application: give one of them')
  // A realm client's token is taken by its realm and audiences: without the client, a decision would guess them.
  if (options.authMethod === 'oidc' && !options.application && options.client === undefined) throw new UsageError('--auth-method oidc: give --client REALM/CLIENT_ID, the realm client the token was issued to (or --application for an OAuth2 application\'s token)')
  assertPersonalScopes(options)
  const { path, decoded, refusal } = readTarget(target)
  // As the proxy routes (and forward authentication, src/gateway/forward-auth.ts): the service by the decoded path,
  // none when the path as written does not start with its prefix.
  const route = app.routes.find((r) => decoded.startsWith(r.prefix) && path.startsWith(r.prefix))
  const own = route || refusal ? undefined : await gatewayPlace(app, method, decoded)
  const user = await userNamed(app, username)
  const access = app.access.of(user)
  const list = (items: readonly string[]) => items.join(', ') || '(none)'
  const lines = [
    route ? `service: ${route.name}` : own ? `the gateway's own ${own.description}` : `path: ${path}`,
    `user: ${user.username}${user.isSuperuser ? ' (superuser)' : ''}${user.isSystemAuditor ? ' (Platform Auditor)' : ''}${user.isActive ? '' : ' (disabled: every request is refused)'}`,
    `  teams: ${list(access.teams.map((t) => t.name))}`,
    `  organizations: ${list(access.organizations.map((o) => o.name))}`,
    `  roles: ${list(access.roles)}`,
  ]
  const rules: ServiceRules | undefined = route ? app.serviceRules.get(route.name) : compileGatewayRules(app.config)
  const place = route ?? own?.place
  const scopes = options.scope ? new Set(options.scope) : undefined
  const principal = { userId: user.id, user, method: options.authMethod, ...tokenScope(app, place, options, scopes) }
  if (options.authMethod === 'token' && !scopes) lines.push('token scope: write (no --scope given: a personal token made without one has write; --scope read for a read-only one)')
  const token = describedToken(app, user, options, scopes)
  const notForPlace = place && tokenRefusal(app, place, token)
  // Checked before the rules, as at the gateway (src/gateway/authorize.ts): a read token may only read.
  const scopeProblem = scopeRefusal(principal, method)
  let allowed = true
  // The route's own check comes first, as at the gateway: superusers only (a Platform Auditor may read).
  const superusersOnly = own?.place.who === 'superuser'
  const builtIn = superusersOnly ? superuserOnly.decide({ userId: user.id, user, method: options.authMethod }, { method } as GatewayRequest) : ALLOW
  if (superusersOnly) lines.push(`built-in check: superusers only (a Platform Auditor may read): ${builtIn === ALLOW ? 'allow' : 'deny'}`)
  if (refusal) {
    allowed = false
    lines.push(`decision: deny (the gateway refuses this path: ${refusal})`)
  } else if (route?.isPublic(path) || own?.place.isPublic(path)) {
    // Also for a disabled account: the gateway takes its credential on a public path as none, and lets it in.
    lines.push('decision: allow (a public path: no rules apply)')
  } else if (place && !placeTakes(app, place, options)) {
    allowed = false
    lines.push(`decision: deny (${notTakenReason(app, place, route !== undefined, options)})`)
  } else if (notForPlace) {
    allowed = false
    lines.push(`decision: deny (${notForPlace})`)
  } else if (!user.isActive) {
    allowed = false
    lines.push('decision: deny (the account is disabled)')
  } else if (scopeProblem) {
    allowed = false
    lines.push(`decision: deny (${scopeProblem.message})`)
  } else if (builtIn !== ALLOW) {
    allowed = false
    lines.push(`decision: deny (the route is for superusers: ${builtIn.message})`)
  } else if (own?.access === 'sign_out') {
    lines.push('decision: allow (gateway.access does not apply to ending one\'s own session)')
  } else if (!rules) {
    lines.push(`decision: allow (${route ? 'the service has' : 'the gateway has'} no access rules: every signed-in caller)`)
  } else {
    const decide = (asMethod: string) => rules.decide({ principal, access, method: asMethod, path: decoded, address: options.address })
    const decision = decide(method)
    // A POST naming another method in the service's override parameter, in its query, is judged as that one too, as
    // at the gateway (src/access/service-access.ts); a body's is judged there, not here.
    let overridden: AccessDecision | undefined
    const pending = decision.allowed && method === 'POST' ? pendingOverride(rules, decide, (refused) => (overridden = refused)) : undefined
    const inQuery = pending && queryOverrideRefusal(pending, splitTarget(mergeSlashes(target)).query)
    allowed = decision.allowed && !inQuery
    if (inQuery) lines.push(`decision: deny${overridden?.rule === undefined ? '' : ` by rule ${overridden.rule}: ${overridden.description}`} (${inQuery.message})`)
    else lines.push(`decision: ${decision.allowed ? 'allow' : 'deny'}${decision.rule === undefined ? ' (no rule matched)' : ` by rule ${decision.rule}: ${decision.description}`}`)
  }
  process.stdout.write(lines.map(printable).join('\n') + '\n')
  if (!allowed) process.exitCode = 1
}
