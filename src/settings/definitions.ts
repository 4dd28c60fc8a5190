import { z } from 'zod'

/**
 * Settings an administrator changes at run time (GET/PATCH /api/gateway/v1/settings/), stored in the database
 * and applied by every gateway process without a restart. Names follow the automation platform's gateway.
 */
/**
 * A switch and a whole number in range (seconds, counts), read as Django REST framework's BooleanField and
 * IntegerField read them (`to_internal_value` in rest_framework/fields.py), since the platform's settings serializer
 * is made of those: a form sends every value as text, and the platform's clients send `"false"` or `"1200"`.
 * Neither words its own complaints: the API words them as those fields do (src/api/validation.ts), as it words every
 * other field: `Ensure this value is greater than or equal to 60.`, `Must be a valid boolean.`
 */
export const toggle = () => z.preprocess(asBoolean, z.boolean())
/**
 * A whole number in range as IntegerField reads it, for every field of the gateway API that the platform would declare
 * one (a setting, `grace_seconds`, `expires_in`): `30`, `"30"`, `" 30 "`, `"30.0"` and `30.0` are 30; `"30.5"`, `""` and
 * `true` are no integer. The bound first, and alone when it fails: a number past it may be past the safe integers
 * too, which `.int()` would name as well (two messages where IntegerField gives one).
 */
export const integer = (min: number, max: number) => z.preprocess(asInteger, z.number().max(max, { abort: true }).int().min(min))

/** BooleanField's TRUE_VALUES and FALSE_VALUES that are text, compared lowercased as Django REST framework 3.15 does
 * (earlier versions listed a few case variants only); its numbers are 1 and 0 (1.0, 0.0). */
const TRUE_WORDS = new Set(['t', 'y', 'yes', 'true', 'on', '1'])
const FALSE_WORDS = new Set(['f', 'n', 'no', 'false', 'off', '0'])

/** A spelling of true or false as BooleanField reads it, as that boolean; anything else as it is, for a schema to refuse. */
export function asBoolean(input: unknown): unknown {
  if (input === 1) return true
  if (input === 0) return false
  if (typeof input !== 'string') return input
  const word = input.toLowerCase()
  return TRUE_WORDS.has(word) ? true : FALSE_WORDS.has(word) ? false : input
}

/** IntegerField's guard against long text (MAX_STRING_LENGTH), and what Python's `int()` takes once a zero fraction is cut. */
const MAX_STRING_LENGTH = 1000
const ZERO_FRACTION = /\.0*\s*$/
const PYTHON_INT = /^\s*([+-]?[0-9]+(?:_[0-9]+)*)\s*$/

/** Text that IntegerField reads as a number becomes that number; anything else is left for the schema to refuse. */
function asInteger(input: unknown, context: z.core.$RefinementCtx): unknown {
  if (typeof input !== 'string') return input
  if (input.length > MAX_STRING_LENGTH) {
    context.addIssue({ code: 'custom', message: 'String value too large.', input })
    return z.NEVER
  }
  const digits = PYTHON_INT.exec(input.replace(ZERO_FRACTION, ''))?.[1]
  return digits === undefined ? input : Number(digits.replaceAll('_', ''))
}

export const settingsSchema = z.object({
  gateway_basic_auth_enabled: toggle().default(true)
    .describe('Gateway basic auth enabled: accept HTTP basic credentials. Off: basic credentials get 401.'),
  session_cookie_age: integer(60, 30 * 24 * 3600).default(900)
    .describe('Session cookie age: seconds a login session lasts (minimum 60).'),
  sessions_per_user_limit: integer(0, 10_000).default(1000)
    .describe('Most login sessions one user may have at once; a new login ends the oldest beyond it (0 = no limit).'),
  allow_external_users_to_create_oauth2_tokens: toggle().default(false)
    .describe('Allow external users (LDAP, single sign-on) to create OAuth2 tokens.'),
  oauth2_access_token_expire_seconds: integer(60, 10 * 365 * 24 * 3600).default(31536000)
    .describe('Default and maximum lifetime of a personal OAuth2 token, in seconds (default: one year).'),
  oauth2_tokens_per_user_limit: integer(0, 1_000_000).default(10_000)
    .describe('Most personal OAuth2 tokens one user may have, expired ones included (they stay until deleted); creating one more is refused (0 = no limit).'),
  login_failures_before_lockout: integer(0, 1000).default(10)
    .describe('Failed password checks in a row for one username before further checks are refused for a while (0 = no lockout).'),
  login_lockout_seconds: integer(1, 24 * 3600).default(60)
    .describe('Seconds a username stays locked after too many failed password checks.'),
  login_failures_per_address: integer(0, 100_000).default(30)
    .describe('Failed password checks from one client address, for any usernames, within login_address_window_seconds before further checks from it are refused until the window ends (0 = no limit).'),
  login_address_window_seconds: integer(10, 24 * 3600).default(300)
    .describe('The window, in seconds, in which login_failures_per_address are counted.'),
  login_lockout_spares_clean_addresses: toggle().default(true)
    .describe('While a username is locked, still check passwords from client addresses with no failed login in the last 12 hours, so that guessing a username cannot lock its owner out.'),
  local_password_min_length: integer(0, 256).default(12)
    .describe('Fewest characters a new password of a local account must have (0 = no minimum). Passwords already set keep working.'),
  local_password_refuse_common: toggle().default(true)
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
  oauth2: { name: 'OAuth 2', settings: ['allow_external_users_to_create_oauth2_tokens', 'oauth2_access_token_expire_seconds', 'oauth2_tokens_per_user_limit'] },
  password: { name: 'Password policy', settings: ['local_password_min_length', 'local_password_refuse_common'] },
} as const satisfies Record<string, { name: string; settings: readonly (keyof Settings)[] }>
export const settingNames = Object.keys(settingsSchema.shape) as (keyof Settings)[]
// Parsed once: without zod's compiled fast path, which costs more to make than it saves here (src/config/load.ts).
export const defaultSettings: Settings = Object.freeze(settingsSchema.parse({}, { jitless: true }))
