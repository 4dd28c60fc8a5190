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
  oidc_records: OidcRecordsTable
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
  created_at: number
  modified_at: number
  last_login: number | null
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
  retire_at: number | null
}

export interface OidcRecordsTable {
  model: string
  id: string
  payload: string
  grant_id: string | null
  uid: string | null
  user_code: string | null
  expires_at: number | null
  consumed_at: number | null
}
