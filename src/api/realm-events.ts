import { z } from 'zod'
import type { App } from '../app.ts'
import { NotFound } from '../errors.ts'
import type { AuditEntry } from '../store/audit.ts'
import type { Condition } from '../store/list-filter.ts'
import { AUDITORS } from './activitystream.ts'
import type { GatewayApi } from './gateway-api.ts'

/** Keycloak's event types for the audit operations a realm has. */
const TYPES: Record<string, string> = { login: 'LOGIN', login_error: 'LOGIN_ERROR', logout: 'LOGOUT' }
const OPERATIONS = Object.fromEntries(Object.entries(TYPES).map(([operation, type]) => [type, operation]))
/** Keycloak's `error` for Gatehouse's refusal codes; other codes are shown as they are. */
const ERRORS: Record<string, string> = {
  invalid_credentials: 'invalid_user_credentials',
  account_locked: 'user_temporarily_disabled',
  login_throttled: 'user_temporarily_disabled',
  account_disabled: 'user_disabled',
}

/**
 * Keycloak's DateUtil: an epoch timestamp in milliseconds, or a yyyy-MM-dd day (UTC) taken from its start or to its
 * end; anything else is Keycloak's 400, in its words.
 */
const when = (name: 'dateFrom' | 'dateTo') => z.string()
  .refine((value) => /^\d{1,15}$/.test(value) || (/^\d{4}-\d{2}-\d{2}$/.test(value) && isRealDay(value)), `Invalid value for '${name}', expected format is yyyy-MM-dd or an Epoch timestamp`)
  .transform((value) => /^\d+$/.test(value) ? Number(value) : Date.parse(`${value}${name === 'dateFrom' ? 'T00:00:00Z' : 'T23:59:59.999Z'}`))
const type = z.enum(Object.keys(OPERATIONS) as [string, ...string[]], { error: `Event types here: ${Object.keys(OPERATIONS).join(', ')}.` })
/** A parameter JAX-RS binds to one value: given twice, the first counts. */
const once = <S extends z.ZodType>(schema: S) => z.preprocess((value) => Array.isArray(value) ? value[0] : value, schema)
/**
 * Keycloak's parameters of `getEvents`; a parameter it does not know is ignored, as JAX-RS ignores it (zod's
 * default drops unknown keys).
 */
const query = z.object({
  type: z.union([type, z.array(type)]).optional(),
  // Events record no client here: a filter that cannot be applied is refused rather than answered unfiltered.
  client: z.never({ error: 'Events here do not record the client: filter by type, user, ipAddress or date.' }).optional(),
  // A user's id: 32-bit, as the database holds it (a larger one is bad input, not a database error).
  user: once(z.string().regex(/^[1-9][0-9]{0,9}$/, 'Enter a user id.').transform(Number).pipe(z.number().max(2 ** 31 - 1, 'Enter a user id.'))).optional(),
  ipAddress: once(z.string().min(1).max(64)).optional(),
  dateFrom: once(when('dateFrom')).optional(),
  dateTo: once(when('dateTo')).optional(),
  direction: once(z.enum(['asc', 'desc'], { error: 'Invalid value for sortDirection, expected value is asc or desc' })).default('desc'),
  first: once(z.coerce.number().int().min(0).max(1_000_000)).default(0),
  max: once(z.coerce.number().int().min(1).max(1000)).default(100),
})

function isRealDay(value: string): boolean {
  const date = new Date(`${value}T00:00:00Z`)
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value)
}

/**
 * A realm's login events the way Keycloak's admin API lists them (`GET /admin/realms/{realm}/events`): logins and
 * failed logins at the realm's OpenID Connect endpoints and login page, newest first, with Keycloak's parameters
 * (`type`, `user`, `ipAddress`, `dateFrom`, `dateTo`, `direction`, `first`, `max`) and fields. The same entries are in the
 * activity stream (`realm` filter), which also has the gateway's own logins.
 */
export function realmEventRoutes(api: GatewayApi, app: App): void {
  const realms = new Set(app.config.realms.map((realm) => realm.name))
  api.get('/admin/realms/:realm/events', { config: AUDITORS, schema: { params: z.object({ realm: z.string() }), querystring: query } }, async (request) => {
    const { realm } = request.params
    if (!realms.has(realm)) throw new NotFound('Realm not found.')
    const input = request.query
    const types = input.type === undefined ? Object.keys(OPERATIONS) : [input.type].flat()
    const all: Condition[] = [
      exact('realm', realm),
      { field: 'operation', lookup: 'in', value: types.map((t) => OPERATIONS[t]!), negate: false },
      ...(input.user === undefined ? [] : [exact('created_by', input.user)]),
      ...(input.ipAddress === undefined ? [] : [exact('source_address', input.ipAddress)]),
      ...(input.dateFrom === undefined ? [] : [{ field: 'created', lookup: 'gte', value: input.dateFrom, negate: false } as const]),
      ...(input.dateTo === undefined ? [] : [{ field: 'created', lookup: 'lte', value: input.dateTo, negate: false } as const]),
    ]
    const filter = { all, any: [], search: [], order: [{ field: 'id', descending: input.direction === 'desc' }] }
    const { entries } = await app.store.audit.list({ filter, offset: input.first, limit: input.max })
    return entries.map((entry) => keycloakEvent(entry, realm))
  })
}

function exact(field: string, value: string | number): Condition {
  return { field, lookup: 'exact', value, negate: false }
}

function keycloakEvent(entry: AuditEntry, realm: string) {
  return {
    time: entry.created,
    type: TYPES[entry.operation] ?? entry.operation.toUpperCase(),
    realmId: realm,
    clientId: null,
    userId: entry.actorId === null ? null : String(entry.actorId),
    ipAddress: entry.sourceAddress,
    ...(entry.code ? { error: ERRORS[entry.code] ?? entry.code } : {}),
    details: { auth_method: 'openid-connect', username: entry.actorUsername },
  }
}

