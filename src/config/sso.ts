import { isIPv4 } from 'node:net'
import { z } from 'zod'
import { membershipMappingsSchema } from './access.ts'
import { BARE_URL_MESSAGE, isBareUrl } from './urls.ts'

/**
 * The `sso` section: upstream OpenID Connect providers people sign in with (docs/sso.md). Only checked
 * here; each provider's discovery document is fetched on the first sign-in (src/directory/sso.ts).
 */

const claimName = z.string().regex(/^[A-Za-z0-9_:.-]{1,100}$/, 'must be a claim name (letters, digits and _ : . -)')
const groupValue = z.string().min(1).max(1024)
/** RFC 6749 section 3.3: scope tokens are printable ASCII without space, quote or backslash. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,200}$/, 'must be a scope token (printable characters, no spaces)')
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')

export const SsoProviderSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be lower-case letters, digits, "_" or "-"')
    .describe('Short name of the provider, used in its URLs (`/api/gateway/v1/login/sso/<name>/`) and in `ui_auth`.'),
  label: z.string().trim().min(1).max(100)
    .describe('Shown on the login page as "Sign in with <label>".'),
  issuer: z.url({ protocol: /^https?$/ }).max(400).refine(isBareUrl, BARE_URL_MESSAGE)
    .describe('The provider\'s issuer identifier; its discovery document is `<issuer>/.well-known/openid-configuration`, and the `iss` of its ID tokens must equal it.'),
  client_id: z.string().min(1).max(255)
    .describe('The client identifier Gatehouse was registered with at the provider.'),
  client_secret: z.string().min(1).optional()
    .describe('The client secret. Keep it out of the file: `client_secret: ${NAME}` (an environment variable, as any string value may take), or `client_secret_env`. Without either, Gatehouse is a public client (PKCE only).'),
  client_secret_env: envName.optional()
    .describe('Name of the environment variable holding the client secret; read when Gatehouse starts.'),
  token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post', 'none']).optional()
    .describe('How Gatehouse authenticates at the token endpoint. Default: `client_secret_basic` with a secret, `none` without.'),
  scopes: z.array(scopeToken).min(1).default(['openid', 'profile', 'email'])
    .refine((scopes) => scopes.includes('openid'), 'must include openid')
    .describe('Scopes asked for. `openid` is required; add `groups` (or what your provider calls it) for group mappings.'),
  claims: z.object({
    username: claimName.default('preferred_username').describe('Claim holding the account\'s username in Gatehouse.'),
    email: claimName.default('email').describe('Claim holding the email address.'),
    first_name: claimName.default('given_name').describe('Claim holding the first name.'),
    last_name: claimName.default('family_name').describe('Claim holding the last name.'),
    groups: claimName.default('groups').describe('Claim holding the user\'s groups: a list of strings (or one string).'),
  }).strict().default({ username: 'preferred_username', email: 'email', first_name: 'given_name', last_name: 'family_name', groups: 'groups' })
    .describe('Which claims of the ID token and the UserInfo response fill the account.'),
  superuser_groups: z.array(groupValue).default([])
    .describe('Group values whose members are superusers. When set, every sign-in sets or clears is_superuser from membership; when empty, is_superuser is left as an administrator set it.'),
  auditor_groups: z.array(groupValue).default([])
    .describe('Group values whose members are system auditors; set or cleared on every sign-in like superuser_groups.'),
  named_groups: z.record(z.string().regex(/^[\w.@+-]{1,150}$/, 'group names are 1-150 letters, digits and @ . + - _'), z.array(groupValue).min(1)).default({})
    .describe('Gatehouse group name -> group values in the provider\'s groups claim. The account\'s groups are replaced on every sign-in.'),
  memberships: membershipMappingsSchema(groupValue, 'Values of the groups claim whose holders get the membership.'),
  allow_insecure_http: z.boolean().default(false)
    .describe('Allow an `http://` issuer. Only for a provider on the same machine (tests, development): its host must be a loopback one (127.0.0.0/8, ::1, localhost), since codes and tokens then cross the network in clear.'),
  sign_out_at_provider: z.boolean().default(false)
    .describe('When a person signs out of Gatehouse in a browser, send them on to the provider\'s `end_session_endpoint` (OpenID Connect RP-Initiated Logout 1.0), so they are signed out there too. Gatehouse then keeps each sign-in\'s ID token with its session, for `id_token_hint`.'),
  sign_out_id_token_hint: z.boolean().default(true)
    .describe('With `sign_out_at_provider`: send the sign-in\'s ID token as `id_token_hint` to the `end_session_endpoint`. Off, the ID token is not kept with the session, and the provider may ask the person to confirm the sign-out (Keycloak\'s "Send id_token_hint in logout requests").'),
  sign_out_client_id: z.boolean().default(true)
    .describe('With `sign_out_at_provider`: send `client_id` to the `end_session_endpoint`. Off for a provider that refuses it (Keycloak\'s "Send client ID in logout requests").'),
  timeout_seconds: z.number().positive().max(120).default(10)
    .describe('Time each request to the provider (discovery, token, UserInfo, keys) may take before the sign-in fails with 503 sso_provider_unavailable.'),
}).strict().superRefine((provider, ctx) => {
  if (provider.client_secret !== undefined && provider.client_secret_env !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['client_secret'], message: 'set at most one of client_secret and client_secret_env' })
  }
  const hasSecret = provider.client_secret !== undefined || provider.client_secret_env !== undefined
  if (provider.token_endpoint_auth_method === 'none' && hasSecret) {
    ctx.addIssue({ code: 'custom', path: ['token_endpoint_auth_method'], message: 'is none, but a client secret is set' })
  }
  if (provider.token_endpoint_auth_method && provider.token_endpoint_auth_method !== 'none' && !hasSecret) {
    ctx.addIssue({ code: 'custom', path: ['token_endpoint_auth_method'], message: `${provider.token_endpoint_auth_method} needs client_secret or client_secret_env` })
  }
  const issuer = URL.parse(provider.issuer)
  if (issuer?.protocol === 'http:' && !provider.allow_insecure_http) {
    ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'must be https:// (set allow_insecure_http only for a provider on this machine)' })
  } else if (issuer?.protocol === 'http:' && !isLoopbackHost(issuer.hostname)) {
    ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'must be https:// (allow_insecure_http allows http:// only on a loopback host: 127.0.0.0/8, ::1 or localhost)' })
  }
})

/**
 * Whether a URL's host name (as URL parses it: IPv4 normalised, IPv6 in brackets) never leaves this machine.
 * Only there may codes and tokens travel in clear; a host name that merely looks local (`localhost.example.com`,
 * `127.0.0.1.nip.io`) is resolved by DNS and is not.
 */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || (isIPv4(hostname) && hostname.startsWith('127.'))
}

export const SsoProvidersSchema = z.array(SsoProviderSchema).default([]).superRefine((providers, ctx) => {
  const names = new Set<string>()
  providers.forEach((provider, i) => {
    if (names.has(provider.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate provider name "${provider.name}"` })
    names.add(provider.name)
  })
}).describe('Upstream OpenID Connect providers shown as "Sign in with <label>" on the login page (docs/sso.md). None by default.')

export type SsoProviderConfig = z.output<typeof SsoProviderSchema>
