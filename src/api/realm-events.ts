import { z } from 'zod'
import type { App } from '../app.ts'
import { NotFound } from '../errors.ts'
import type { AuditEntry } from '../store/audit.ts'
import type { Condition } from '../store/list-filter.ts'
import { assertMayAudit } from './activitystream.ts'
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

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'Enter a date as yyyy-MM-dd.').refine((value) => !Number.isNaN(Date.parse(value)), 'Enter a real date.')
const type = z.enum(Object.keys(OPERATIONS) as [string, ...string[]], { error: `Event types here: ${Object.keys(OPERATIONS).join(', ')}.` })
const query = z.object({
  type: z.union([type, z.array(type)]).optional(),
  // A user's id: 32-bit, as the database holds it (a larger one is bad input, not a database error).
  user: z.string().regex(/^[1-9][0-9]{0,9}$/, 'Enter a user id.').transform(Number).pipe(z.number().max(2 ** 31 - 1, 'Enter a user id.')).optional(),
  ipAddress: z.string().min(1).max(64).optional(),
  dateFrom: day.optional(),
  dateTo: day.optional(),
  first: z.coerce.number().int().min(0).max(1_000_000).default(0),
  max: z.coerce.number().int().min(1).max(1000).default(100),
}).strict()

/**
 * A realm's login events the way Keycloak's admin API lists them (`GET /admin/realms/{realm}/events`): logins and
 * failed logins at the realm's OpenID Connect endpoints and login page, newest first, with Keycloak's parameters
 * (`type`, `user`, `ipAddress`, `dateFrom`, `dateTo`, `first`, `max`) and fields. The same entries are in the
 * activity stream (`realm` filter), which also has the gateway's own logins.
 */
export function realmEventRoutes(api: GatewayApi, app: App): void {
  const realms = new Set(app.config.realms.map((realm) => realm.name))
  api.get('/admin/realms/:realm/events', { schema: { params: z.object({ realm: z.string() }), querystring: query } }, async (request) => {
    assertMayAudit(request)
    const { realm } = request.params
    if (!realms.has(realm)) throw new NotFound('Realm not found.')
    const input = request.query
    const types = input.type === undefined ? Object.keys(OPERATIONS) : [input.type].flat()
    const all: Condition[] = [
      exact('realm', realm),
      { field: 'operation', lookup: 'in', value: types.map((t) => OPERATIONS[t]!), negate: false },
      ...(input.user === undefined ? [] : [exact('created_by', input.user)]),
      ...(input.ipAddress === undefined ? [] : [exact('source_address', input.ipAddress)]),
      ...(input.dateFrom === undefined ? [] : [{ field: 'created', lookup: 'gte', value: Date.parse(`${input.dateFrom}T00:00:00Z`), negate: false } as const]),
      ...(input.dateTo === undefined ? [] : [{ field: 'created', lookup: 'lte', value: Date.parse(`${input.dateTo}T23:59:59.999Z`), negate: false } as const]),
    ]
    const filter = { all, any: [], search: [], order: [{ field: 'id', descending: true }] }
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

