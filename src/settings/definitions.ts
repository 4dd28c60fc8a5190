import { z } from 'zod'

/**
 * Settings an administrator changes at run time (GET/PATCH /api/gateway/v1/settings/), stored in the database
 * and applied by every gateway process without a restart. Names follow the automation platform's gateway.
 */
/**
 * A whole number in range (seconds, counts). Neither it nor the switches (`z.boolean()`) word their own complaints:
 * the API words them as Django REST framework's IntegerField and BooleanField do (src/api/validation.ts), as it words
 * every other field: `Ensure this value is greater than or equal to 60.`, `Must be a valid boolean.`
 */
const count = (min: number, max: number) => z.number().int().min(min).max(max)

export const settingsSchema = z.object({
  gateway_basic_auth_enabled: z.boolean().default(true)
    .describe('Gateway basic auth enabled: accept HTTP basic credentials. Off: basic credentials get 401.'),
  session_cookie_age: count(60, 30 * 24 * 3600).default(900)
    .describe('Session cookie age: seconds a login session lasts (minimum 60).'),
  sessions_per_user_limit: count(0, 10_000).default(0)
    .describe('Most login sessions one user may have at once; a new login ends the oldest beyond it (0 = no limit).'),
  allow_external_users_to_create_oauth2_tokens: z.boolean().default(false)
    .describe('Allow external users (LDAP, single sign-on) to create OAuth2 tokens.'),
  oauth2_access_token_expire_seconds: count(60, 10 * 365 * 24 * 3600).default(31536000)
    .describe('Default and maximum lifetime of a personal OAuth2 token, in seconds (default: one year).'),
  login_failures_before_lockout: count(0, 1000).default(10)
    .describe('Failed password checks in a row for one username before further checks are refused for a while (0 = no lockout).'),
  login_lockout_seconds: count(1, 24 * 3600).default(60)
    .describe('Seconds a username stays locked after too many failed password checks.'),
  login_failures_per_address: count(0, 100_000).default(30)
    .describe('Failed password checks from one client address, for any usernames, within login_address_window_seconds before further checks from it are refused until the window ends (0 = no limit).'),
  login_address_window_seconds: count(10, 24 * 3600).default(300)
    .describe('The window, in seconds, in which login_failures_per_address are counted.'),
  login_lockout_spares_clean_addresses: z.boolean().default(true)
    .describe('While a username is locked, still check passwords from client addresses with no failed login in the last 12 hours, so that guessing a username cannot lock its owner out.'),
  local_password_min_length: count(0, 256).default(12)
    .describe('Fewest characters a new password of a local account must have (0 = no minimum). Passwords already set keep working.'),
  local_password_refuse_common: z.boolean().default(true)
    .describe('Refuse a new local password that is one of about 49,000 commonly used ones, or the same as the username.'),
}).strict()

export type Settings = Readonly<z.output<typeof settingsSchema>>


/** The settings by category, as the platform groups its settings (`settings/<category>/`); each is in one. */
export const settingCategories = {
  authentication: {
    name: 'Authentication',
    settings: ['gateway_basic_auth_enabled', 'login_failures_before_lockout', 'login_lockout_seconds', 'login_failures_per_address', 'login_address_window_seconds', 'login_lockout_spares_clean_addresses'],
  },
  session: { name: 'Sessions', settings: ['session_cookie_age', 'sessions_per_user_limit'] },
  oauth2: { name: 'OAuth 2', settings: ['allow_external_users_to_create_oauth2_tokens', 'oauth2_access_token_expire_seconds'] },
  password: { name: 'Password policy', settings: ['local_password_min_length', 'local_password_refuse_common'] },
} as const satisfies Record<string, { name: string; settings: readonly (keyof Settings)[] }>
export const settingNames = Object.keys(settingsSchema.shape) as (keyof Settings)[]
// Parsed once: without zod's compiled fast path, which costs more to make than it saves here (src/config/load.ts).
export const defaultSettings: Settings = Object.freeze(settingsSchema.parse({}, { jitless: true }))
