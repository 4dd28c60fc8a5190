import type { Generated } from 'kysely'

/**
 * The tables as Kysely sees them. Times are epoch milliseconds in BIGINT columns on both backends;
 * booleans are INTEGER 0/1 on SQLite and BOOLEAN on PostgreSQL, so rows are read through `Boolean()`.
 */
export interface Tables {
  users: UsersTable
  settings: SettingsTable
  events: EventsTable
  signing_keys: SigningKeysTable
  gateway_processes: GatewayProcessesTable
  sessions: SessionsTable
  tokens: TokensTable
  oidc_records: OidcRecordsTable
  sso_identities: SsoIdentitiesTable
  ldap_entries: LdapEntriesTable
  sso_logins: SsoLoginsTable
  sso_logout_tokens: SsoLogoutTokensTable
  login_failures: LoginFailuresTable
  login_address_failures: LoginAddressFailuresTable
  organizations: OrganizationsTable
  teams: TeamsTable
  role_definitions: RoleDefinitionsTable
  role_user_assignments: RoleUserAssignmentsTable
  role_team_assignments: RoleTeamAssignmentsTable
  oauth2_applications: OAuth2ApplicationsTable
  audit_entries: AuditEntriesTable
  leases: LeasesTable
}

export interface OAuth2ApplicationsTable {
  id: Generated<number>
  realm: string
  client_id: string
  client_secret_hash: string | null
  previous_client_secret_hash: string | null
  previous_secret_expires_at: number | null
  name: string
  description: string
  client_type: string
  authorization_grant_type: string
  redirect_uris: string
  pkce_required: boolean | number
  user_id: number | null
  organization_id: number | null
  created_at: number
  modified_at: number
}

export interface LeasesTable {
  name: string
  holder: string
  expires_at: number
}

export interface GatewayProcessesTable {
  id: string
  heartbeat_at: number
  last_event_id: number
}

export interface UsersTable {
  id: Generated<number>
  username: string
  email: string
  first_name: string
  last_name: string
  password_hash: string | null
  is_superuser: boolean | number
  is_active: boolean | number
  source: string
  external: boolean | number
  is_system_auditor: Generated<boolean | number>
  group_names: Generated<string>
  created_at: number
  modified_at: number
  last_login: number | null
  /** Sessions and OpenID Connect codes and tokens of the account issued before this (epoch ms) are refused; 0: none (migration 020). */
  not_before: Generated<number>
  /** Personal tokens of the account created before this (epoch ms) are refused; 0: none (migration 020). */
  tokens_not_before: Generated<number>
  /** The SHA-256 (hex) of the password hash an import stored last; null: none (migration 039). */
  imported_password_digest: Generated<string | null>
  /** Whether an import last made the account active (true) or disabled (false); null: none did (migration 042). */
  imported_active: Generated<boolean | number | null>
  /** Whether an import last made the account a superuser, and a Platform Auditor; null: none did (migration 043). */
  imported_superuser: Generated<boolean | number | null>
  imported_auditor: Generated<boolean | number | null>
}

export interface SettingsTable {
  key: string
  value: string
  modified_at: number
}

export interface EventsTable {
  id: Generated<number>
  topic: string
  key: string
  created_at: number
}

export interface SigningKeysTable {
  kid: string
  purpose: string
  alg: string
  private_jwk: string
  public_jwk: string
  created_at: number
  /** When a key published ahead of signing was published (migration 028); null for one that signed at once. */
  published_at: number | null
  retire_at: number | null
}

export interface SessionsTable {
  id: Generated<number>
  key_hash: string
  user_id: number
  created_at: number
  expires_at: number
  ip: string
  user_agent: string
  /** The single sign-on provider a session was started through (migration 033), and what it named it by. */
  sso_provider: string | null
  sso_subject: string | null
  sso_sid: string | null
  /** The provider's ID token, kept for `id_token_hint` when the provider has `sign_out_at_provider` (migration 035). */
  sso_id_token: string | null
  /** Whether the provider had the person log in during the sign-in that started it (migration 044). */
  sso_fresh_login: Generated<boolean | number | null>
}

export interface TokensTable {
  id: Generated<number>
  user_id: number
  token_hash: string
  scope: string
  description: string
  created_at: number
  modified_at: number
  expires_at: number
  last_used_at: number | null
  /** The token this one was created with (migration 026). */
  parent_token_id: number | null
  /** The OIDC access token this one was created with: its `jti`, grant, realm and `iat` (migration 027). */
  parent_access_token: string | null
  parent_grant_id: string | null
  parent_realm: string | null
  parent_issued_at: number | null
}

export interface OidcRecordsTable {
  model: string
  id: string
  payload: string
  grant_id: string | null
  uid: string | null
  user_code: string | null
  /** The payload's `accountId`: the Gatehouse user id of sessions, grants, codes and tokens. */
  account_id: string | null
  /** Of a realm's browser session: the key hash of the gateway session of the same browser (migration 016). */
  gateway_session: string | null
  expires_at: number | null
  /** Of a realm's browser session that was ended: when. The row, emptied, refuses every save of it until it expires (migration 018). */
  ended_at: number | null
  consumed_at: number | null
}

export interface LdapEntriesTable {
  user_id: number
  entry_id: string
  created_at: number
}

export interface SsoIdentitiesTable {
  id: Generated<number>
  issuer: string
  subject: string
  user_id: number
  provider: string
  created_at: number
  last_login_at: number
}

export interface SsoLogoutTokensTable {
  key_hash: string
  /** The SHA-256 of the whole token; null for tokens taken before migration 036. */
  token_hash: string | null
  expires_at: number
}

export interface SsoLoginsTable {
  id: Generated<number>
  key_hash: string
  provider: string
  next_url: string
  created_at: number
  expires_at: number
  /** Whether the provider was asked for a fresh login (`prompt=login`, migration 044). */
  prompt_login: Generated<boolean | number | null>
}

export interface LoginFailuresTable {
  username: string
  failures: number
  last_failure_at: number
  locked_until: number | null
}

export interface LoginAddressFailuresTable {
  address: string
  window_start: number
  failures: number
  last_failure_at: number
}

export interface AuditEntriesTable {
  id: Generated<number>
  created_at: number
  operation: string
  content_type: string
  object_id: string | null
  object_name: string | null
  actor_id: number | null
  actor_username: string | null
  source_address: string | null
  auth_method: string | null
  code: string | null
  realm: string | null
  changes: string | null
  /** `sign_in` or `change` (src/store/audit.ts `AuditKind`); the count bound deletes sign-ins first (migration 034). */
  kind: Generated<string>
}

export interface OrganizationsTable {
  id: Generated<number>
  name: string
  description: string
  created_at: number
  modified_at: number
}

export interface TeamsTable {
  id: Generated<number>
  name: string
  organization_id: number
  description: string
  created_at: number
  modified_at: number
}

export interface RoleDefinitionsTable {
  id: Generated<number>
  name: string
  description: string
  content_type: string | null
  /** A JSON array of permission names (src/access/permissions.ts). */
  permissions: string
  managed: boolean | number
  created_at: number
  modified_at: number
}

export interface RoleUserAssignmentsTable {
  id: Generated<number>
  role_definition_id: number
  user_id: number
  /** `organization`, `team`, or `platform` (then `object_id` is 0). */
  object_type: string
  object_id: number
  created_at: number
}

export interface RoleTeamAssignmentsTable {
  id: Generated<number>
  role_definition_id: number
  team_id: number
  object_type: string
  object_id: number
  created_at: number
}
