import { AccessAdmin, keepAuditorRoleWithFlag } from './access/admin.ts'
import { MembershipMappings } from './access/mappings.ts'
import { AccessModel, keycloakMemberships } from './access/model.ts'
import { compileGatewayRules, compileServiceRules, configuredNames, usernamesInRules, type ServiceRules } from './access/rules.ts'
import { compileClientAccess, compileClientRoles, type ClientAccessCheck, type ClientRolesOf } from './access/client-access.ts'
import { accessEntryRule } from './access/service-access.ts'
import type { GatewayRequest } from './http/gateway-request.ts'
import { mappingActor, signingIn, SYSTEM_ACTOR } from './audit/actor.ts'
import { changesBetween } from './audit/changes.ts'
import { auditedSession, sessionFields } from './audit/sessions.ts'
import { AuditTrail } from './audit/trail.ts'
import { BasicAuthenticator } from './auth/basic.ts'
import { CredentialCache } from './auth/credential-cache.ts'
import { CsrfPolicy } from './auth/csrf.ts'
import { Lockout } from './directory/lockout.ts'
import { OidcBearerAuthenticator } from './auth/oidc-bearer.ts'
import { AuthPipeline } from './auth/pipeline.ts'
import { SessionAuthenticator } from './auth/session.ts'
import { endLinkedRealmSessions, SessionManager } from './auth/session-manager.ts'
import { InvalidSession } from './errors.ts'
import { PersonalTokens } from './auth/personal-tokens.ts'
import { TokenAuthenticator } from './auth/token.ts'
import type { Config } from './config/schema.ts'
import { auditedUser, serializeUser } from './api/users.ts'
import { Accounts } from './directory/accounts.ts'
import type { AfterDirectoryLogin, LdapDirectory } from './directory/ldap.ts'
import type { DirectoryAccountCheck } from './directory/ldap-check.ts'
import { SIGN_IN_START_WINDOW_MS, SignInStarts } from './directory/sign-in-starts.ts'
import { LocalPasswords } from './directory/local.ts'
import { argon2Tasks, boundPasswordChecksWaiting } from './directory/passwords.ts'
import { IdentitySigner } from './gateway/identity.ts'
import { authorize, type Decision } from './gateway/authorize.ts'
import { publishedPath } from './gateway/policy.ts'
import { compilePlaces, type Place, type Places } from './gateway/places.ts'
import { compileRoutes, RouteTable, type Route } from './gateway/routes.ts'
import { restartOnlyChanges } from './config/reload.ts'
import { BodyBudget } from './gateway/request-buffer.ts'
import { compileTrustedProxies, type ProxyTrust } from './gateway/trusted-proxies.ts'
import { GatewayMetrics } from './metrics/metrics.ts'
import { endApplicationTokens } from './oidc/applications.ts'
import { OidcRealms } from './oidc/realm.ts'
import { RuntimeSettings } from './settings/runtime.ts'
import { EventBus } from './store/event-bus.ts'
import type { Store } from './store/store.ts'

/**
 * Gatehouse's parts, wired once. The HTTP server (src/server.ts) and the CLI commands both work through
 * this, so a change made from the CLI has the same effects (events, ended sessions) as one made over HTTP.
 */
export interface App {
  /** The configuration: as it was at start, but for `services`, which a reload replaces (`reloadServices`). */
  readonly config: Config
  readonly store: Store
  readonly bus: EventBus
  readonly settings: RuntimeSettings
  readonly accounts: Accounts
  readonly auth: AuthPipeline
  readonly tokens: PersonalTokens
  readonly identity: IdentitySigner
  readonly sessions: SessionManager
  readonly csrf: CsrfPolicy
  /** The configured services, longest prefix first (the same as `places.services`): `services.routes` now. */
  readonly routes: readonly Route[]
  /** The services' routes in use, which a reload of the configuration file replaces whole. */
  readonly services: RouteTable
  /**
   * The memory that the request bodies the gateway reads whole for itself (its API's and its realms') hold at once:
   * `server.api_body_buffers_mb`, an eighth of it per client address (src/api/body-parsers.ts, src/oidc/routes.ts `readRealmBody`).
   */
  readonly ownBodies: BodyBudget
  /** Organizations, teams and roles, in memory (src/access/model.ts). */
  readonly access: AccessModel
  /** Each service's compiled access rules, by service name; a service without rules is absent. */
  readonly serviceRules: ReadonlyMap<string, ServiceRules>
  /** Every change to organizations, teams, roles and assignments, with who may make it. */
  readonly accessAdmin: AccessAdmin
  /** Whether a user may sign in to a realm client (its `access` rules). */
  readonly clientAccess: ClientAccessCheck
  /** The roles of a realm's clients a user holds (their `roles` rules), as access tokens carry them. */
  readonly clientRoles: ClientRolesOf
  /** Teams and organizations from directory groups and SSO claims, applied at each login. */
  readonly memberships: MembershipMappings
  /** The LDAP directory, when one is configured: single sign-on may not take the username of a person in it. */
  readonly directory: LdapDirectory | undefined
  /** Disables directory accounts whose entry is gone (src/directory/ldap-check.ts), when a directory is configured. */
  readonly directoryCheck: DirectoryAccountCheck | undefined
  /** How many sign-ins each client address started lately: each start writes a record (src/directory/sign-in-starts.ts). */
  readonly signInStarts: SignInStarts
  /** The route table: every place a request can land, compiled once. */
  readonly places: Places
  /** Whether a peer is one of `server.trusted_proxies`, believed about the client it forwards for. */
  readonly trustsProxy: ProxyTrust
  /** The OpenID Connect realms (src/oidc/). */
  readonly oidc: OidcRealms
  /** What /metrics shows (src/metrics/). */
  readonly metrics: GatewayMetrics
  /** Who did what, when and from where (src/audit/). */
  readonly audit: AuditTrail
  /** The URL clients reach Gatehouse at: issuer of the tokens it signs, base of its redirects. */
  publicUrl: string
  /** The path of `server.public_url` ('' at the root): the start of every path the gateway writes for a client. */
  readonly publishedPath: string
  /**
   * The one decision, for every place, on whether a request gets in (src/gateway/authorize.ts). `clientTarget`: the
   * target as the client addressed it, when that is not this request's own (a forward-auth question's original).
   */
  authorize(request: GatewayRequest, place: Place, clientTarget?: string): Promise<Decision>
  /**
   * Serves `config`'s services (routes, access rules, what they take of OIDC tokens, the audiences of the OAuth2
   * applications' tokens minted from now on) in place of those running; nothing else of it is used. Returns the
   * settings it left as they were and that would need a restart, and the applications' audiences when they changed.
   */
  reloadServices(config: Config): { needsRestart: string[]; applicationAudiences?: readonly string[] }
  close(): Promise<void>
}

export interface AppOptions {
  /** Addresses for services whose upstream is `builtin:demo`, by service name. */
  upstreams?: ReadonlyMap<string, URL>
  publicUrl?: string
  /** How many gateway processes `serve --workers` runs (this one among them): known before their heartbeats are (the lockout). */
  processes?: number
}

export async function createApp(config: Config, store: Store, options: AppOptions = {}): Promise<App> {
  const bus = new EventBus(store, { maxStaleMs: config.auth.max_stale_seconds * 1000 })
  // Before anything is loaded: what other processes change while this one loads reaches it once its bus starts.
  await bus.readFromHere()
  const settings = new RuntimeSettings(store, bus, { maxStaleMs: config.auth.max_stale_seconds * 1000 })
  await settings.reload()
  settings.start()
  boundPasswordChecksWaiting(config.auth.password_checks_waiting)
  // Workers of one `serve --workers` know their number at once; other processes on the database, by their heartbeats.
  const lockout = new Lockout(store, () => ({
    failuresBeforeLockout: settings.current.login_failures_before_lockout,
    lockoutSeconds: settings.current.login_lockout_seconds,
    failuresPerAddress: settings.current.login_failures_per_address,
    addressWindowSeconds: settings.current.login_address_window_seconds,
    lockSparesCleanAddresses: settings.current.login_lockout_spares_clean_addresses,
  }), () => Math.max(options.processes ?? 1, 1 + bus.otherProcesses))
  const accounts = new Accounts(store, bus, [new LocalPasswords(store)], lockout, () => ({
    minLength: settings.current.local_password_min_length,
    refuseCommon: settings.current.local_password_refuse_common,
  }))
  const access = new AccessModel(store, bus, usernamesInRules(config))
  await access.reload()
  access.start(config.auth.max_stale_seconds * 1000)
  const accessAdmin = new AccessAdmin(store, bus, access, configuredNames(config))
  const audit = new AuditTrail(store, config.audit)
  const memberships = new MembershipMappings(accessAdmin, access, audit)
  accounts.onChange((tx, user) => keepAuditorRoleWithFlag(tx, user))
  // The directory's code loads only for a configuration that has one.
  let directory: LdapDirectory | undefined
  let directoryCheck: DirectoryAccountCheck | undefined
  if (config.ldap) {
    const [{ LdapDirectory, LdapPasswords, normalizeDn }, { DirectoryAccountCheck }] = await Promise.all([import('./directory/ldap.ts'), import('./directory/ldap-check.ts')])
    directory = new LdapDirectory(config.ldap)
    const mappings = config.ldap.memberships
    const afterSync: AfterDirectoryLogin = (user, found) => memberships.apply('ldap', user, mappings, found.groupDns, normalizeDn)
    const ldap = new LdapPasswords(directory, store, accounts, afterSync)
    const order = config.auth.password_sources
    accounts.addPasswordSource(ldap, order.includes('ldap') && order.indexOf('ldap') < order.indexOf('local') ? 0 : undefined)
    directoryCheck = new DirectoryAccountCheck(directory, store, accounts, audit, { intervalSeconds: config.ldap.account_check.interval_seconds, pageSize: config.ldap.account_check.page_size, afterSync })
  }

  const basicCache = new CredentialCache(config.auth.basic_cache_seconds)
  accounts.onForget((userId) => basicCache.forgetUser(userId))
  settings.onChange(() => basicCache.clear())
  bus.onMissed(() => basicCache.clear())

  const publicUrl = (options.publicUrl ?? config.server.public_url ?? `http://${config.server.host}:${config.server.port}`).replace(/\/$/, '')
  const identity = new IdentitySigner(store, bus, publicUrl, {
    tokenSeconds: config.auth.identity_token_seconds,
    rotationSeconds: config.auth.identity_key_rotation_seconds,
    jwksMaxAgeSeconds: config.auth.identity_jwks_max_age_seconds,
    maxStaleSeconds: config.auth.max_stale_seconds,
  })
  // The keys' times are the database's (identity.ts): read it before the first keys are.
  await bus.readClock()
  await identity.load()
  accounts.onForget((userId) => identity.forgetUser(userId))
  access.onReload((users) => {
    if (!users) return identity.forgetAll()
    for (const userId of users) identity.forgetUser(userId)
  })

  const csrf = new CsrfPolicy(config.server.trusted_origins, () => identity.issuer)
  const auth = new AuthPipeline(bus, accounts, (request) => csrf.isSecure(request), () => identity.stamp())
  auth.add(new BasicAuthenticator(accounts, settings, basicCache))

  const sessions = new SessionManager(store, bus, settings)
  // In the change's own transaction: a new password, a disabled or a deleted account ends every session of the user
  // and every one of the OpenID Connect provider's (sessions, those linked to no gateway session too, grants, refresh
  // and access tokens), as Keycloak refuses a disabled user's; its codes and device codes stay until they expire,
  // unusable without their grant, so that one redeemed is refused "User disabled" as Keycloak refuses it (the store's
  // destroyByAccount); enabled again, the account signs in anew. The
  // personal tokens end too when asked. The user's event makes every process drop what it remembers of them
  // (sessions, tokens, verified access tokens), so they need no events of their own. What a request writes for the
  // account just after this is refused where it is used (the account is looked up then: `accountFinder`).
  accounts.onChange(async (tx, user, change) => {
    if (change.passwordChanged || change.deactivated || change.deleted) {
      await endLinkedRealmSessions(tx, await tx.sessions.deleteForUser(user.id))
      await tx.oidc.destroyByAccount(String(user.id))
    }
    if (change.revokeTokens) change.tokensRevoked = await tx.tokens.deleteByUser(user.id)
  })
  // The applications a deleted user owned go with them, and the tokens they issued, as the platform's cascade
  // (OAuth2Application.user, on_delete CASCADE) deletes them and their tokens.
  accounts.onChange(async (tx, user, change, announce) => {
    if (!change.deleted) return
    change.applicationsDeleted = await tx.applications.deleteOwnedBy(user.id)
    await endApplicationTokens(tx, announce, change.applicationsDeleted.map((application) => application.clientId))
  })
  accounts.onForget((userId) => sessions.forgetUser(userId))
  auth.add(new SessionAuthenticator(sessions, csrf))
  const tokens = new PersonalTokens(store, bus, settings)
  accounts.onForget((userId) => tokens.forgetUser(userId))
  auth.add(new TokenAuthenticator(tokens))
  const metrics = new GatewayMetrics(['gateway', 'ui', ...config.services.map((service) => service.name), ...config.realms.map((realm) => `realms/${realm.name}`)])
  // A realm's logout ends the gateway session of the same browser: recorded as the gateway's own logout records it (the
  // session's `delete`, which gatehouse_revocations_total counts), by its user, from where the logout came.
  const auditGatewaySessionEnded = (ended: Awaited<ReturnType<SessionManager['end']>>, address: string | undefined) => {
    if (!ended) return
    void accounts.get(ended.userId).then((user) => user?.username, () => undefined).then((username) => {
      audit.signInSession({ userId: ended.userId, username: username ?? null, address: address ?? null, method: 'oidc' }, 'delete', auditedSession(ended), sessionFields(ended))
    })
  }
  const endGatewaySession = (cookie: string, accountId: string | undefined, address: string | undefined) => sessions.resolve(cookie).then(async (session) => {
    if (accountId !== undefined && String(session.userId) !== accountId) return false
    auditGatewaySessionEnded(await sessions.end(session.keyHash), address)
    return true
  }, () => true)
  // The gateway session a realm session of the same browser is linked to: a live one of the same user. A cookie of a
  // session that was ended names it still: the realm session being saved (loaded before the end, saved after it, by a
  // request of the same browser) must not outlive it, and the save finds it gone (StoreAdapter). One that merely
  // expired links nothing: the realm session has a lifetime of its own.
  const gatewaySessionOf = (cookie: string, userId: number) => sessions.resolve(cookie).then(
    (session) => session.userId === userId ? session.keyHash : undefined,
    (error: unknown) => error instanceof InvalidSession && SessionManager.wellFormed(cookie) ? SessionManager.hashOf(cookie) : undefined)
  const endLinkedGatewaySession = async (keyHash: string, accountId: string | undefined, address: string | undefined) => {
    const session = await sessions.get(keyHash)
    if (session && String(session.userId) === accountId) auditGatewaySessionEnded(await sessions.end(keyHash), address)
  }
  const clientAccess = compileClientAccess(config, access, () => settings.current.allow_external_users_to_create_oauth2_tokens)
  const clientRoles = compileClientRoles(config, access)
  const oidc = new OidcRealms(config, { store, bus, accounts, publicUrl: () => app.publicUrl, endGatewaySession, gatewaySessionOf, endLinkedGatewaySession, confirmAccount: directoryCheck && ((user) => directoryCheck.confirm(user)), memberships: (user) => keycloakMemberships(access.of(user)), clientAccess, clientRoles, tokensIssued: metrics.oidcTokensIssued, logoutTokensSent: metrics.logoutTokensSent, signedOut: (realm, accountId, address) => auditRealmLogout(audit, accounts, realm, accountId, address) })
  if (oidc.configured) auth.add(new OidcBearerAuthenticator(oidc, accounts, bus))

  let serviceRules = compileServiceRules(config)
  // A service's access rules are one more entry rule of its place, judged by `authorize` after authentication.
  const accessRules = (service: string) => {
    const rules = serviceRules.get(service)
    return rules ? [accessEntryRule(rules, access)] : []
  }
  // One budget for the bodies held by all services at once, those of a reload included.
  const bodyBudget = new BodyBudget(config.server.body_buffers_mb * 1024 * 1024)
  const services = new RouteTable(compileRoutes(config, options.upstreams, oidc, accessRules, { routes: [], bodyBudget }), bodyBudget)
  const published = publishedPath(config)
  const ownAddress = { published }
  const gatewayRules = compileGatewayRules(config)
  const gatewayEntry = gatewayRules ? [accessEntryRule(gatewayRules, access)] : []

  auditSignIns(audit, accounts, lockout)
  audit.onEntry(metrics.auditEntry)
  metrics.watchAuditDrops(() => audit.droppedTotal)
  metrics.watchPasswordChecks(() => argon2Tasks.refused)
  metrics.watchCaches({ basic_credentials: basicCache.stats, accounts: accounts.stats, sessions: sessions.stats, personal_tokens: tokens.stats })
  metrics.watchBus(bus)
  metrics.watchDatabase(store.database)
  let running = config
  const app: App = {
    get config() {
      return running
    },
    store,
    bus,
    settings,
    accounts,
    auth,
    tokens,
    identity,
    sessions,
    csrf,
    access,
    get serviceRules() {
      return serviceRules
    },
    accessAdmin,
    clientAccess,
    clientRoles,
    memberships,
    directory,
    directoryCheck,
    signInStarts: new SignInStarts({ perAddress: config.auth.sign_in_starts_per_address, total: config.auth.sign_in_starts_total, windowMs: SIGN_IN_START_WINDOW_MS }),
    get routes() {
      return services.routes
    },
    services,
    ownBodies: ownBodiesBudget(config),
    places: compilePlaces(config, services, gatewayEntry),
    trustsProxy: compileTrustedProxies(config.server.trusted_proxies),
    oidc,
    metrics,
    audit,
    get publicUrl() {
      return identity.issuer
    },
    set publicUrl(url: string) {
      identity.issuer = url.replace(/\/$/, '')
    },
    publishedPath: published,
    authorize: (request, place, clientTarget) => authorize(auth, csrf, request, place, clientTarget === undefined ? ownAddress : { published, target: clientTarget }),
    reloadServices(next) {
      const needsRestart = [...restartOnlyChanges(running, next)]
      // The services are compiled with the running settings around them (server.remove_request_headers, the login
      // page's published path, gateway.oidc): a setting the log says was not applied must not apply to the services
      // that changed, nor to the gateway's own token policy, which the services' policies are built beside.
      const applied: Config = { ...running, services: next.services }
      // The login URLs and token policies first: the routes compiled next take theirs.
      const { applicationAudiences } = oidc.applyServices(applied)
      serviceRules = compileServiceRules(applied)
      // What the new rules name is kept from organization admins, as what the old ones named was.
      access.useNamesInRules(usernamesInRules(applied))
      accessAdmin.useConfiguredNames(configuredNames(applied))
      const routes = compileRoutes(applied, options.upstreams, oidc, accessRules, services)
      metrics.addPlaces(applied.services.map((service) => service.name))
      running = applied
      services.replace(routes)
      return { needsRestart, ...(applicationAudiences ? { applicationAudiences } : {}) }
    },
    async close() {
      // Each closes even if another failed: a failed audit flush must not lose the tokens' last-use times.
      settings.stop()
      access.stop()
      await directoryCheck?.stop()
      // Logout tokens already queued are sent, for a few seconds (a CLI that disabled someone waits for them); what
      // hanging receivers leave waiting then is dropped, so that they cannot hold the stop for the queue's length.
      const results = await Promise.allSettled([tokens.close(), audit.close(), oidc.backchannelLogouts.stop()])
      await bus.stop()
      for (const result of results) if (result.status === 'rejected') throw result.reason
    },
  }
  return app
}

/**
 * `server.api_body_buffers_mb`, of which one client address holds at most an eighth (or one body of the largest size
 * the API takes, when that is more): the bodies of a few addresses' clients, sent slowly or held unfinished, cannot
 * take it all from everyone else (the public login, the token endpoint).
 */
function ownBodiesBudget(config: Config): BodyBudget {
  const bytes = config.server.api_body_buffers_mb * 1024 * 1024
  return new BodyBudget(bytes, { perClient: Math.max(Math.floor(bytes / 8), config.server.api_body_limit_bytes) })
}

/**
 * A logout at a realm (its end-session endpoint, or Keycloak's logout with a refresh token) is the audit trail's
 * `logout` of the account, with the realm, as Keycloak records a user event LOGOUT: the sign-ins of the realm are
 * there, and their ends should be too. An account that cannot be read (gone since, or the database not answering) is
 * named by its id alone.
 */
function auditRealmLogout(audit: AuditTrail, accounts: Accounts, realm: string, accountId: string, address: string | undefined): void {
  const id = Number(accountId)
  if (!Number.isSafeInteger(id)) return
  void accounts.get(id).then((user) => user?.username, () => undefined).then((username) => {
    audit.auth({ userId: id, username: username ?? null, address: address ?? null, method: 'oidc' }, { operation: 'logout', object: { type: 'user', id, name: username }, realm })
  })
}

/**
 * Every login's outcome and every lockout goes to the audit trail, whichever way the password came in, and so does every
 * account a directory or SSO sign-in makes or changes.
 */
function auditSignIns(audit: AuditTrail, accounts: Accounts, lockout: Lockout): void {
  accounts.onLoginAttempt(({ username, address, via, user, code }) => {
    const actor = { userId: user?.id ?? null, username, address: address ?? null, method: via.method }
    audit.auth(actor, { operation: user ? 'login' : 'login_error', object: { type: 'user', id: user?.id, name: username }, code, realm: via.realm })
  })
  lockout.onLock((username) => audit.auth(SYSTEM_ACTOR, { operation: 'lockout', object: { type: 'user', name: username }, code: 'account_locked' }))
  // An account a directory or SSO sign-in made or changed, named as the API names its own changes, by the source on
  // the user's behalf (as the memberships it maps: src/access/mappings.ts). A change that kept everything (the last
  // superuser's flag, kept below) is no entry.
  accounts.onSignInChange((source, before, after) => {
    const [was, is] = [before && serializeUser(before), serializeUser(after)]
    const { added_fields: added, removed_fields: removed, changed_fields: changed } = changesBetween(was, is)
    if (was && !Object.keys({ ...added, ...removed, ...changed }).length) return
    audit.change(mappingActor(source, after), was ? 'update' : 'create', auditedUser(after), was, is)
  })
  // The demotion a directory or SSO login asked for and did not get: what was asked, and why not.
  accounts.onLastSuperuserKept((user) => audit.refusedChange(signingIn(user, undefined, user.source), 'update', { type: 'user', id: user.id, name: user.username }, 'self_lockout', { is_superuser: true }, { is_superuser: false }))
}
