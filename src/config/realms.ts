import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { z } from 'zod'
import { AccessRulesSchema } from './access.ts'
import { ACCOUNT_CLIENT, ACCOUNT_ROLES, scopedRole } from '../oidc/claims.ts'
import { isLoopbackHost } from './sso.ts'

/**
 * The `realms` section: Gatehouse's Keycloak-compatible OpenID Connect provider (src/oidc/). Names and defaults
 * follow Keycloak's, so a realm exported from Keycloak maps onto this one option at a time.
 */

/** The members of a JWK that hold private or symmetric key material (RFC 7518 §6). */
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

/**
 * A client's public key, checked here: the provider takes a key pair pasted whole as an invalid client
 * (`invalid_client_metadata` at every token request), and one of a key type it does not know as no key at all
 * (`invalid_client`), neither with a word to the gateway's log.
 */
const clientPublicJwk = z.record(z.string(), z.unknown()).superRefine((jwk, ctx) => {
  const secret = PRIVATE_JWK_MEMBERS.filter((member) => jwk[member] !== undefined)
  if (secret.length) {
    ctx.addIssue({ code: 'custom', message: `holds private key material (${secret.map((member) => `"${member}"`).join(', ')}): give the client's public key only` })
    return
  }
  try {
    createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is no public key (an RSA, EC or OKP JWK, RFC 7517)' })
  }
})

const realmName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be letters, digits, ".", "_" or "-"')
const clientId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/, 'must be letters, digits, ".", "_", ":" or "-"')
const absoluteUrl = z.url({ protocol: /^https?$/ })
/**
 * A redirect URI as Keycloak takes it: exact, or ending in `*` to allow every URI that starts with the rest
 * (`https://app.example.com/*`). The wildcard is allowed in the path only, so it can never widen the host.
 */
const redirectUri = z.string().refine((value) => {
  const prefix = value.endsWith('*') ? value.slice(0, -1) : value
  if (prefix.includes('*')) return false
  const url = URL.parse(prefix)
  if (!url || !/^https?:$/.test(url.protocol) || url.hash || url.username || url.password) return false
  // With a wildcard, the host must be closed by a path: `https://app*` would match `https://app.evil.example`.
  return !value.endsWith('*') || /^https?:\/\/[^/?#]+\//.test(prefix)
}, 'must be an absolute http(s) URL, optionally ending in "*" after its host (https://app.example.com/*)')
  // Keycloak compares a pattern with a query as written, `*` and all: taken as a wildcard here, it would allow
  // whatever a caller adds to the query; taken as written, it would surprise whoever wrote it.
  .refine((value) => !(value.endsWith('*') && value.includes('?')), 'cannot end in "*" after a query ("?"): a wildcard covers a path (https://app.example.com/*) and every query under it')
/**
 * Where the realm posts what ends a client's sessions (a logout token, OpenID Connect Back-Channel Logout 1.0 §2.2;
 * Keycloak's admin calls, `k_logout`): an absolute URL without a fragment, over https, or http to a loopback host
 * only, since what it is sent would cross the network in clear.
 */
const logoutReceiverUrl = (example: string) => z.string().superRefine((value, ctx) => {
  const url = URL.parse(value)
  if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: `must be an absolute https URL (${example})` })
  } else if (value.includes('#')) {
    ctx.addIssue({ code: 'custom', message: 'must not have a fragment (#...)' })
  } else if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    ctx.addIssue({ code: 'custom', message: 'must be https:// (http:// only to a loopback host: 127.0.0.0/8, ::1 or localhost), since the logout token would cross the network in clear' })
  }
})
/** Keycloak's "Web origins": an origin, `+` (the origins of the redirect URIs) or `*` (any origin). */
const webOrigin = z.string().refine((value) => value === '+' || value === '*' || URL.parse(value)?.origin === value, 'must be an origin (https://app.example.com), "+" or "*"')
/**
 * A client role's name as Keycloak takes one (RoleContainerResource with ReservedCharValidator): none of RFC 3986's
 * reserved characters, so `protect('<client>:<role>')` and the admin API's `/roles/<name>` paths read it whole; at
 * most 255 characters (Keycloak's role name column). Gatehouse also refuses control characters and spaces at either
 * end, which no adapter could match as typed.
 */
const clientRoleName = z.string()
  .min(1, 'a role needs a name')
  .max(255, 'a role name has at most 255 characters')
  .refine((name) => !/[\x00-\x1F\x7F]/.test(name), 'must not contain control characters')
  .refine((name) => name.trim() === name, 'must not start or end with a space')
  .superRefine((name, ctx) => {
    const reserved = /[:/?#@!$&()*+,;=[\]\\]/.exec(name)?.[0]
    if (reserved) ctx.addIssue({ code: 'custom', message: `must not contain "${reserved}" (Keycloak refuses RFC 3986's reserved characters in role names)` })
  })
const scopedRoleName = z.string()
  .min(1, 'a role needs a name')
  .max(512, 'a role name has at most 512 characters')
  .refine((name) => !/[\x00-\x1F\x7F]/.test(name), 'must not contain control characters')
  .refine((name) => name.trim() === name, 'must not start or end with a space')

/**
 * A scope mapping as the file writes it: a realm role by name (`Team Member`), another client's role as
 * `<client_id>/<role>` (client ids and client role names have no `/`), or a realm role whose name has a `/` (the
 * gateway API's role definitions may, Keycloak's realm roles may not) as `{ realm_role: <name> }`, which the plain
 * form would read as a client's role. `scopedRole` (src/oidc/claims.ts) reads one into the role it names.
 */
const scopeMapping = z.union([
  scopedRoleName,
  z.object({
    realm_role: scopedRoleName.describe('A realm role\'s name, taken whole: for one with a `/` in it (`Ops/Admin`).'),
  }).strict(),
])
const scopeName = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,100}$/, 'must be a scope token (RFC 6749 §3.3): printable characters without spaces, quotes or backslashes')

export const RealmClientSchema = z.object({
  access: AccessRulesSchema.optional()
    .describe('Who may sign in to this client (authorization code, password and device grants), in the rules of a service\'s `access` (docs/access.md). Absent: every user.'),
  roles: z.record(clientRoleName, AccessRulesSchema).optional()
    .describe('The client\'s roles (Keycloak\'s client roles), each with the rules of a service\'s `access` (docs/access.md) saying who holds it: judged at each token\'s issue and refresh, the roles whose rules allow the user go into `resource_access.<client_id>.roles` of the realm\'s access tokens (keycloak-connect `protect(\'<role>\')`).'),
  client_id: clientId
    .describe('The client\'s `client_id`, e.g. `end-users`. It is the `azp` of the tokens the client gets.'),
  public_client: z.boolean().default(true)
    .describe('A public client (Keycloak: "Client authentication" off) has no secret and sends only `client_id`; scripts and browser apps are public clients. A confidential client authenticates with `secret` (HTTP basic or `client_secret` in the form).'),
  secret: z.string().min(16).max(512).optional()
    .describe('The confidential client\'s secret (at least 16 characters, any of them; printable ASCII for `client-secret-jwt`). Required when `public_client` is false. Keep it out of the file: `secret: ${NAME}` takes it from an environment variable.'),
  previous_secret: z.object({
    secret: z.string().min(16).max(512).describe('The secret being replaced.'),
    expires: z.iso.datetime({ offset: true }).describe('When it stops authenticating: an ISO 8601 time with its offset (`2026-12-06T12:00:00Z`).'),
  }).strict().optional()
    .describe('During a rotation of a `client-secret` client\'s secret, the secret it had, still accepted beside `secret` until `expires` (Keycloak\'s rotated secret, "Rotated Secret Expiration"), so that the client\'s deployments can take the new one one by one. Remove it once they all have.'),
  direct_access_grants: z.boolean().default(false)
    .describe('Keycloak\'s "Direct access grants": allow the `password` grant (username and password posted to the token endpoint, as `curl` and scripts do).'),
  standard_flow: z.boolean().default(true)
    .describe('Keycloak\'s "Standard flow": allow the `authorization_code` grant (browser login through the login page; public clients must use PKCE S256).'),
  service_accounts: z.boolean().default(false)
    .describe('Keycloak\'s "Service accounts roles": allow the `client_credentials` grant for a confidential client; its tokens name the user `service-account-<client_id>`.'),
  redirect_uris: z.array(redirectUri).default([])
    .describe('Where the authorization endpoint may send the browser back with a code (Keycloak\'s "Valid redirect URIs"): exact URLs, or a prefix ending in `*`, e.g. `https://app.example.com/*`; `http://127.0.0.1/…` or `http://localhost/…` without a port takes any port (native applications).'),
  post_logout_redirect_uris: z.array(z.union([z.literal('+'), redirectUri])).default([])
    .describe('Where the logout endpoint may send the browser afterwards (Keycloak\'s "Valid post logout redirect URIs"): URLs as in `redirect_uris`, or `+` for the redirect URIs themselves.'),
  backchannel_logout_uri: logoutReceiverUrl('https://app.example.com/backchannel-logout').optional()
    .describe('Keycloak\'s "Backchannel logout URL" (OpenID Connect Back-Channel Logout 1.0): when a realm session this client signed in to ends (a browser session, or a password login), the realm POSTs a signed `logout_token` there, so the application can end its own session. https, or http to a loopback host; no fragment.'),
  backchannel_logout_session_required: z.boolean().default(true)
    .describe('Keycloak\'s "Backchannel logout session required" (the client metadata of the same name): the application needs the logout token to name the session that ended (`sid`, as its ID tokens do). Gatehouse always names it, with the user (`sub`), so this is always met; it is taken so that clients written for Keycloak or the specification load unchanged.'),
  admin_url: logoutReceiverUrl('https://app.example.com/').optional()
    .describe('Keycloak\'s "Admin URL", for keycloak-connect (Node.js), which takes no back-channel logout token: when a realm browser session this client signed in to ends, the realm POSTs a signed `LOGOUT` action to `<admin_url>/k_logout` naming the application\'s own sessions (the `client_session_state` keycloak-connect sent with the code), so that it ends them. https, or http to a loopback host; no fragment.'),
  web_origins: z.array(webOrigin).default(['+'])
    .describe('Keycloak\'s "Web origins": the origins whose scripts may call the token, introspection, revocation and account endpoints (CORS, with credentials) and use the login status iframe. `+` means the origins of `redirect_uris`, `*` any origin.'),
  pkce: z.enum(['required', 'optional']).optional()
    .describe('Whether the authorization code flow must use PKCE (S256). Default: `required` for public clients (a public client has no other proof that the code is its own, OAuth 2.0 Security BCP), `optional` for confidential ones, as Keycloak\'s default. Set `optional` for public clients whose adapter sends no PKCE (keycloak-connect).'),
  device_authorization_grant: z.boolean().default(false)
    .describe('Keycloak\'s "OAuth 2.0 Device Authorization Grant" (RFC 8628): command-line tools show a code the user enters at `/realms/<realm>/device`.'),
  client_authenticator: z.enum(['client-secret', 'client-secret-jwt', 'client-jwt']).default('client-secret')
    .describe('How a confidential client authenticates (Keycloak\'s "Client Authenticator"): `client-secret` (HTTP basic or `client_secret` in the form), `client-secret-jwt` (a JWT signed with the secret, RFC 7523), `client-jwt` (a JWT signed with the client\'s private key, verified with `jwks_url` or `jwks`).'),
  jwks_url: absoluteUrl.optional()
    .describe('For `client-jwt`: where the client publishes its public keys (Keycloak\'s "JWKS URL").'),
  jwks: z.object({ keys: z.array(clientPublicJwk).min(1).describe('The keys (JWK, RFC 7517).') }).optional()
    .describe('For `client-jwt`: the client\'s public keys, inline, as a JWK Set.'),
  refresh_token_rotation: z.boolean().default(false)
    .describe('Keycloak\'s "Revoke refresh token": each refresh token may be used once, and using one again ends its session (reuse detection). Off, as in Keycloak, earlier refresh tokens stay valid until they expire; scripts that keep refreshing with their first refresh token need it off.'),
  audiences: z.array(z.string().min(1).max(200)).default([])
    .describe('Extra `aud` values for this client\'s access tokens, besides Keycloak\'s `account` (what Keycloak\'s audience mappers add).'),
  full_scope_allowed: z.boolean().default(true)
    .describe('Keycloak\'s "Full scope allowed" (`fullScopeAllowed`): the client\'s access tokens carry every role the user holds, of the realm and of every client, and name those clients in `aud`. Off, they carry only the client\'s own roles and those in its `scope`, so a token the client leaks opens less.'),
  scope: z.array(scopeMapping).optional()
    .describe('With `full_scope_allowed: false`, the roles the client\'s access tokens may carry besides its own (Keycloak\'s scope mappings of its dedicated scope): realm roles by name (`offline_access`, `Team Member`, `default-roles-<realm>` with what it holds), other clients\' roles as `<client_id>/<role>` (`operators-console/viewer`, `account/view-profile`), and a realm role whose name has a `/` as `{ realm_role: Ops/Admin }`. A user still holds only the roles their rules give them.'),
}).strict()

export const RealmSchema = z.object({
  name: realmName
    .describe('The realm name: the issuer is `<public URL>/realms/<name>`, the endpoints are under `/realms/<name>/protocol/openid-connect/`.'),
  access_token_seconds: z.number().int().min(10).max(86400).default(300)
    .describe('Access token (and ID token) lifetime, in seconds (Keycloak: "Access Token Lifespan", 5 minutes).'),
  sso_session_idle_seconds: z.number().int().min(60).max(30 * 86400).default(1800)
    .describe('A session ends when it is idle for this long: the refresh token lifetime; a browser session, two minutes more after its last login, authorization or refresh (Keycloak: "SSO Session Idle", 30 minutes).'),
  sso_session_max_seconds: z.number().int().min(60).max(365 * 86400).default(36000)
    .describe('A session ends this long after login, however often it is refreshed (Keycloak: "SSO Session Max", 10 hours).'),
  offline_session_idle_seconds: z.number().int().min(60).max(365 * 86400).default(30 * 86400)
    .describe('An offline session (a refresh token of scope `offline_access`, typ `Offline`) ends when it is not refreshed for this long (Keycloak: "Offline Session Idle", 30 days). Offline sessions survive logout of the session they came from.'),
  offline_session_max_seconds: z.number().int().min(60).max(3 * 365 * 86400).default(60 * 86400)
    .describe('An offline session ends this long after login, however often it is refreshed (Keycloak: "Offline Session Max", 60 days; Gatehouse always applies it, see docs/oidc.md).'),
  grants_per_user_limit: z.number().int().min(1).max(100_000).default(1000)
    .describe('The most live grants (logins: browser sign-ins, password and device logins, offline sessions) one user holds in the realm at once. A new one past it ends the oldest, with their tokens, as Keycloak\'s "User Session Count Limiter" set to terminate the oldest session does; without a bound a script looping over the token endpoint would fill the database, and ending its account would take as long.'),
  client_credentials_tokens_limit: z.number().int().min(0).max(1_000_000).default(10_000)
    .describe('The most access tokens one client may get by the `client_credentials` grant within `access_token_seconds`, in each process; past it the token endpoint answers 429 `client_tokens_throttled` with Retry-After until that time ends. Each such token is a row until it expires (so that it can be revoked and introspected), and Keycloak, which stores them nowhere, needs no such bound; without one a service looping over the grant added a row a request. 0 = no limit.'),
  refresh_tokens_per_grant_limit: z.number().int().min(1).max(100_000).default(100)
    .describe('The most refresh tokens one grant (one login) keeps at once. Each refresh issues a new one; for a client without `refresh_token_rotation` the earlier ones stay valid until they expire, as in Keycloak, and so each is a row until then. A new one past the limit ends the oldest; for a client with `refresh_token_rotation` one so ended that was used (a later token of its chain of refreshes is kept) is still one used before, and brought back before it expires ends its grant as a reused one does. Keycloak\'s refresh tokens are signed and stored nowhere, so it needs no such bound; without one a script refreshing in a loop would add a row a refresh, kept up to 30 days.'),
  access_tokens_per_grant_limit: z.number().int().min(0).max(1_000_000).default(300)
    .describe('The most access tokens one grant (one login) gets by refreshing, or by redeeming codes (a browser\'s `prompt=none` requests), within `access_token_seconds`, in each process; past it the token endpoint answers 429 `client_tokens_throttled` with Retry-After until that time ends, and a refresh token or code refused so stays as it was, for a retry after that time. Each access token is a row until it expires (so that it can be revoked and introspected), and Keycloak, which stores them nowhere, needs no such bound; without one a script refreshing in a loop added a row a refresh. 0 = no limit.'),
  device_code_seconds: z.number().int().min(60).max(86400).default(600)
    .describe('How long a device login (the device authorization grant) waits for its user to enter the code; past it, polling is answered `expired_token` (Keycloak: "OAuth 2.0 Device Code Lifespan", 10 minutes).'),
  login_with_email: z.boolean().default(true)
    .describe('Keycloak\'s "Login with email": users may log in with their e-mail address instead of their username (when exactly one account has it).'),
  client_scopes: z.array(scopeName).default([])
    .describe('Extra optional scopes every client of the realm may request, besides Keycloak\'s built-in ones (Keycloak: client scopes), e.g. `read` and `write` for the gateway\'s own API.'),
  default_signature_algorithm: z.enum(['RS256', 'ES256']).default('RS256')
    .describe('What the realm signs access and ID tokens with (Keycloak: "Default Signature Algorithm"). RS256, as Keycloak, is what most services expect; ES256 (ECDSA P-256) costs a tenth of an RS256 signature at the token endpoint, for services that take it. Changing it gives the realm a new key: tokens signed before stop verifying.'),
  signing_key_rotation_seconds: z.number().int().min(3600).max(365 * 86400).default(30 * 86400)
    .describe('How often the realm\'s signing key is replaced. The old key stays in the JWKS (`certs`) until every token it signed has expired.'),
  clients: z.array(RealmClientSchema).min(1)
    .describe('The realm\'s clients.'),
}).strict().superRefine((realm, ctx) => {
  const ids = new Set<string>()
  realm.clients.forEach((client, i) => {
    if (ids.has(client.client_id)) ctx.addIssue({ code: 'custom', path: ['clients', i, 'client_id'], message: `duplicate client_id "${client.client_id}"` })
    ids.add(client.client_id)
    if (!client.public_client && client.client_authenticator !== 'client-jwt' && !client.secret) ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: 'a confidential client needs a secret' })
    if (client.client_id === 'account' && client.roles) ctx.addIssue({ code: 'custom', path: ['clients', i, 'roles'], message: `the account client's roles are Keycloak's own (${ACCOUNT_ROLES.join(', ')})` })
    checkScopeMappings(realm, client).forEach(({ path, message }) => ctx.addIssue({ code: 'custom', path: ['clients', i, 'scope', ...path], message }))
    if (client.public_client && client.secret) ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: 'a public client has no secret' })
    if (client.public_client && client.service_accounts) ctx.addIssue({ code: 'custom', path: ['clients', i, 'service_accounts'], message: 'service accounts need a confidential client' })
    if (client.public_client && client.client_authenticator !== 'client-secret') ctx.addIssue({ code: 'custom', path: ['clients', i, 'client_authenticator'], message: 'a public client does not authenticate' })
    if (client.client_authenticator === 'client-jwt' && !client.jwks_url === !client.jwks) ctx.addIssue({ code: 'custom', path: ['clients', i, 'jwks_url'], message: 'client-jwt needs exactly one of jwks_url and jwks' })
    if (client.client_authenticator !== 'client-jwt' && (client.jwks_url || client.jwks)) ctx.addIssue({ code: 'custom', path: ['clients', i, 'jwks_url'], message: 'keys are only used with client_authenticator client-jwt' })
    if (client.previous_secret && (client.public_client || client.client_authenticator !== 'client-secret')) ctx.addIssue({ code: 'custom', path: ['clients', i, 'previous_secret'], message: 'only a client-secret client has a previous secret (a client-secret-jwt secret is the one key its JWTs are signed with)' })
    if (client.client_authenticator === 'client-jwt' && client.secret) ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: 'a client-jwt client authenticates with its key, not a secret' })
    // oidc-provider takes the secret as given for the HMAC key; a `client-secret` one outside ASCII is given as its hash.
    if (client.client_authenticator === 'client-secret-jwt' && client.secret && !/^[\x20-\x7E]*$/.test(client.secret)) {
      ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: 'a client-secret-jwt secret must be printable ASCII (it is the key its JWTs are signed with)' })
    }
  })
  if (realm.sso_session_idle_seconds > realm.sso_session_max_seconds) {
    ctx.addIssue({ code: 'custom', path: ['sso_session_idle_seconds'], message: 'must not exceed sso_session_max_seconds' })
  }
  if (realm.offline_session_idle_seconds > realm.offline_session_max_seconds) {
    ctx.addIssue({ code: 'custom', path: ['offline_session_idle_seconds'], message: 'must not exceed offline_session_max_seconds' })
  }
})

/**
 * A client's scope mappings: only with full scope off (they change nothing otherwise, and a reader would take them to),
 * and each `<client_id>/<role>` a role the realm's clients have, so that a mistyped one is not silently never carried.
 * Realm roles are not checked: the gateway API makes them at run time.
 */
function checkScopeMappings(realm: { clients: readonly z.output<typeof RealmClientSchema>[] }, client: z.output<typeof RealmClientSchema>): { path: (string | number)[]; message: string }[] {
  if (!client.scope) return []
  if (client.full_scope_allowed) return [{ path: [], message: 'scope mappings apply only with full_scope_allowed: false' }]
  return client.scope.map(scopedRole).flatMap(({ client: holder, role }, j) => {
    if (holder === undefined) return []
    const entry = `${holder}/${role}`
    const roles = holder === 'account' ? ACCOUNT_ROLES : Object.keys(realm.clients.find((c) => c.client_id === holder)?.roles ?? {})
    if (!roles.length) return [{ path: [j], message: `"${entry}": the realm has no client "${holder}" with roles (a realm role whose name has a "/" is written { realm_role: "${entry}" })` }]
    return roles.includes(role) ? [] : [{ path: [j], message: `"${entry}": client "${holder}" has no role "${role}" (its roles: ${roles.join(', ')})` }]
  })
}

/** An audience a place (a service, the gateway's API) takes tokens for: not one that every token of the realm names. */
const placeAudience = z.string().min(1).max(200).refine((audience) => audience !== ACCOUNT_CLIENT, {
  message: `"${ACCOUNT_CLIENT}" is in the aud of nearly every token of a realm, whatever its client (Keycloak's account client): name the place's own client or audience`,
})

/** Per service: which realm's tokens it takes, and which client a browser logs in through. */
export const ServiceOidcSchema = z.object({
  realm: realmName.optional()
    .describe('The realm whose tokens the service accepts. Default: the only realm.'),
  client_id: clientId.optional()
    .describe('The client a browser is sent to log in with when the service redirects (`unauthenticated`). Default: the realm\'s first client with `standard_flow` (two services that take it so accept each other\'s tokens: config check warns of it).'),
  audiences: z.array(placeAudience).default([])
    .describe('A token must name one of these in `aud` or `azp`. Default: the service\'s name and its `client_id` (explicit or default), but never `account`, so a token meant for another client or service is refused.'),
}).strict()

/**
 * The audiences a service takes by default: its name and its client. Never Keycloak's account client, which nearly
 * every token of the realm names in `aud`: a service named `account` would otherwise take every client's tokens.
 */
export function defaultServiceAudiences(serviceName: string, clientId: string | undefined): string[] {
  return [serviceName, ...(clientId ? [clientId] : [])].filter((audience) => audience !== ACCOUNT_CLIENT)
}

/** The client a service of the realm logs browsers in with when its `oidc.client_id` is unset: the first with `standard_flow`. */
export function defaultServiceClient(realm: RealmConfig): string | undefined {
  return realm.clients.find((client) => client.standard_flow)?.client_id
}

/** For the gateway's own API (`gateway.oidc`): which realms' tokens it takes, and which of them are meant for it. */
export const GatewayOidcSchema = z.object({
  realms: z.array(realmName).optional()
    .describe('The realms whose tokens the gateway API accepts. Default: every realm.'),
  audiences: z.array(placeAudience).min(1).default(['gateway'])
    .describe('A token must name one of these in `aud` or `azp` (give a client the audience with its `audiences`). A token with scope `write` may change things; any other token may only read (GET, HEAD, OPTIONS), as a personal token of scope `read`.'),
  applications_realm: realmName.optional()
    .describe('The realm whose clients the platform\'s OAuth2 applications (`/api/gateway/v1/applications/`, `/o/token/`) are. Default: the first realm.'),
}).strict()

export type RealmConfig = z.output<typeof RealmSchema>
export type RealmClientConfig = z.output<typeof RealmClientSchema>
export type ScopeMapping = z.output<typeof scopeMapping>
export type ServiceOidcConfig = z.output<typeof ServiceOidcSchema>
export type GatewayOidcConfig = z.output<typeof GatewayOidcSchema>
