import { z } from 'zod'

/**
 * The `realms` section: Gatehouse's Keycloak-compatible OpenID Connect provider (src/oidc/). Names and defaults
 * follow Keycloak's, so a realm exported from Keycloak maps onto this one option at a time.
 */

const realmName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be letters, digits, ".", "_" or "-"')
const clientId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/, 'must be letters, digits, ".", "_", ":" or "-"')
const absoluteUrl = z.url({ protocol: /^https?$/ })

export const RealmClientSchema = z.object({
  client_id: clientId
    .describe('The client\'s `client_id`, e.g. `end-users`. It is the `azp` of the tokens the client gets.'),
  public_client: z.boolean().default(true)
    .describe('A public client (Keycloak: "Client authentication" off) has no secret and sends only `client_id`; scripts and browser apps are public clients. A confidential client authenticates with `secret` (HTTP basic or `client_secret` in the form).'),
  secret: z.string().min(16).max(512).optional()
    .describe('The confidential client\'s secret (at least 16 characters). Required when `public_client` is false.'),
  direct_access_grants: z.boolean().default(false)
    .describe('Keycloak\'s "Direct access grants": allow the `password` grant (username and password posted to the token endpoint, as `curl` and scripts do).'),
  standard_flow: z.boolean().default(true)
    .describe('Keycloak\'s "Standard flow": allow the `authorization_code` grant (browser login through the login page; public clients must use PKCE S256).'),
  service_accounts: z.boolean().default(false)
    .describe('Keycloak\'s "Service accounts roles": allow the `client_credentials` grant for a confidential client; its tokens name the user `service-account-<client_id>`.'),
  redirect_uris: z.array(absoluteUrl).default([])
    .describe('Where the authorization endpoint may send the browser back with a code (exact URLs, no wildcards).'),
  post_logout_redirect_uris: z.array(absoluteUrl).default([])
    .describe('Where the logout endpoint may send the browser afterwards (exact URLs).'),
  refresh_token_rotation: z.boolean().default(false)
    .describe('Keycloak\'s "Revoke refresh token": each refresh token may be used once, and using one again ends its session (reuse detection). Off, as in Keycloak, earlier refresh tokens stay valid until they expire; scripts that keep refreshing with their first refresh token need it off.'),
  audiences: z.array(z.string().min(1).max(200)).default([])
    .describe('Extra `aud` values for this client\'s access tokens, besides Keycloak\'s `account` (what Keycloak\'s audience mappers add).'),
}).strict()

export const RealmSchema = z.object({
  name: realmName
    .describe('The realm name: the issuer is `<public URL>/realms/<name>`, the endpoints are under `/realms/<name>/protocol/openid-connect/`.'),
  access_token_seconds: z.number().int().min(10).max(86400).default(300)
    .describe('Access token (and ID token) lifetime, in seconds (Keycloak: "Access Token Lifespan", 5 minutes).'),
  sso_session_idle_seconds: z.number().int().min(60).max(30 * 86400).default(1800)
    .describe('A session ends when it is not refreshed for this long: the refresh token lifetime (Keycloak: "SSO Session Idle", 30 minutes).'),
  sso_session_max_seconds: z.number().int().min(60).max(365 * 86400).default(36000)
    .describe('A session ends this long after login, however often it is refreshed (Keycloak: "SSO Session Max", 10 hours).'),
  signing_key_rotation_seconds: z.number().int().min(3600).max(365 * 86400).default(30 * 86400)
    .describe('How often the realm\'s RS256 signing key is replaced. The old key stays in the JWKS (`certs`) until every token it signed has expired.'),
  clients: z.array(RealmClientSchema).min(1)
    .describe('The realm\'s clients.'),
}).strict().superRefine((realm, ctx) => {
  const ids = new Set<string>()
  realm.clients.forEach((client, i) => {
    if (ids.has(client.client_id)) ctx.addIssue({ code: 'custom', path: ['clients', i, 'client_id'], message: `duplicate client_id "${client.client_id}"` })
    ids.add(client.client_id)
    if (!client.public_client && !client.secret) ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: 'a confidential client needs a secret' })
    if (client.public_client && client.secret) ctx.addIssue({ code: 'custom', path: ['clients', i, 'secret'], message: 'a public client has no secret' })
    if (client.public_client && client.service_accounts) ctx.addIssue({ code: 'custom', path: ['clients', i, 'service_accounts'], message: 'service accounts need a confidential client' })
  })
  if (realm.sso_session_idle_seconds > realm.sso_session_max_seconds) {
    ctx.addIssue({ code: 'custom', path: ['sso_session_idle_seconds'], message: 'must not exceed sso_session_max_seconds' })
  }
})

/** Per service: which realm's tokens it takes, and which client a browser logs in through. */
export const ServiceOidcSchema = z.object({
  realm: realmName.optional()
    .describe('The realm whose tokens the service accepts. Default: the only realm.'),
  client_id: clientId.optional()
    .describe('The client a browser is sent to log in with when the service redirects (`unauthenticated`). Default: the realm\'s first client with `standard_flow`.'),
  audiences: z.array(z.string().min(1).max(200)).default([])
    .describe('When set, a token must name one of these in `aud` or `azp`. Default: tokens issued to any client of the realm.'),
}).strict()

export type RealmConfig = z.output<typeof RealmSchema>
export type RealmClientConfig = z.output<typeof RealmClientSchema>
export type ServiceOidcConfig = z.output<typeof ServiceOidcSchema>
