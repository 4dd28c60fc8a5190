import { z } from 'zod'
import { type Settings, settingsSchema } from './definitions.ts'

/**
 * The automation platform's names for the settings Gatehouse has, so its clients (the collection's `settings`
 * module reads `settings/all/` and writes back the names it was given) work unchanged. Each is shown next to
 * Gatehouse's own name and accepted in its place. `OAUTH2_PROVIDER` is an object in the platform; Gatehouse
 * has only its `ACCESS_TOKEN_EXPIRE_SECONDS`.
 */
const ALIASES = [
  { name: 'SESSION_COOKIE_AGE', setting: 'session_cookie_age' },
  { name: 'ALLOW_OAUTH2_FOR_EXTERNAL_USERS', setting: 'allow_external_users_to_create_oauth2_tokens' },
  { name: 'OAUTH2_PROVIDER', setting: 'oauth2_access_token_expire_seconds', key: 'ACCESS_TOKEN_EXPIRE_SECONDS' },
  // The platform's local password policy; the collection's settings module shows it in its examples.
  { name: 'password_min_length', setting: 'local_password_min_length' },
] as const satisfies readonly { name: string; setting: keyof Settings; key?: string }[]

type Alias = typeof ALIASES[number]

const shape = settingsSchema.shape

function inner(setting: keyof Settings): z.ZodType {
  return shape[setting].unwrap()
}

function aliasSchema(alias: Alias): z.ZodType {
  return 'key' in alias ? z.object({ [alias.key]: inner(alias.setting).optional() }).strict() : inner(alias.setting)
}

/** Settings by both names: Gatehouse's, then the platform's for those that have one. */
export function withPlatformNames(values: Partial<Settings>): Record<string, unknown> {
  const shown: Record<string, unknown> = { ...values }
  for (const alias of ALIASES) {
    if (!(alias.setting in values)) continue
    const value = values[alias.setting]
    shown[alias.name] = 'key' in alias ? { [alias.key]: value } : value
  }
  return shown
}

/**
 * The body of a change to some of `settings`, by either name: each one named is checked, none is filled in
 * with its default, an unknown name is refused, and the same setting given twice with different values too.
 */
export function changesSchema(settings: readonly (keyof Settings)[]): z.ZodType<Partial<Settings>> {
  const aliases = ALIASES.filter((alias) => settings.includes(alias.setting))
  const fields: Record<string, z.ZodType> = Object.fromEntries(settings.map((name) => [name, inner(name).optional()]))
  for (const alias of aliases) fields[alias.name] = aliasSchema(alias).optional()
  return z.object(fields).strict().transform((input, context) => {
    const changes: Record<string, unknown> = {}
    for (const name of settings) if (input[name] !== undefined) changes[name] = input[name]
    for (const alias of aliases) {
      const given = input[alias.name]
      if (given === undefined) continue
      const value = 'key' in alias ? (given as Record<string, unknown>)[alias.key] : given
      if (value === undefined) continue
      if (alias.setting in changes && changes[alias.setting] !== value) {
        context.addIssue({ code: 'custom', path: [alias.name], message: `Gives ${alias.setting} a different value than its own name does.` })
      }
      changes[alias.setting] = value
    }
    return changes as Partial<Settings>
  })
}
