import type { FastifyInstance, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { App } from '../app.ts'
import { NotFound, PermissionDenied } from '../errors.ts'
import type { AuditEntry, AuditFilter } from '../store/audit.ts'
import { principalOf } from './access.ts'
import { paged, readPage } from './pagination.ts'
import { parseInput } from './validation.ts'

const word = z.string().min(1).max(200)
const id = z.string().regex(/^[1-9][0-9]{0,9}$/, 'Enter a whole number.').transform(Number)
const time = z.iso.datetime({ offset: true, error: 'Enter a date and time in ISO 8601 with a time zone, e.g. 2026-01-31T12:00:00Z.' }).transform((value) => Date.parse(value))

/**
 * The activity stream's filters: exact matches on the entry's fields, a time range and an order. Anything else
 * in the query, or a value of the wrong form, is a 400 naming the parameter (as the platform's filters answer).
 */
const filters = z.object({
  page: z.string().optional(),
  page_size: z.string().optional(),
  operation: word.optional(),
  operation__in: z.string().regex(/^[a-z_]+(,[a-z_]+)*$/, 'Enter operations separated by commas.').optional(),
  content_type: word.optional(),
  object_id: word.optional(),
  object_name: word.optional(),
  created_by: id.optional(),
  created_by__username: word.optional(),
  source_address: word.optional(),
  auth_method: word.optional(),
  code: word.optional(),
  realm: word.optional(),
  created__gte: time.optional(),
  created__lte: time.optional(),
  order_by: z.enum(['id', '-id', 'created', '-created'], { error: 'Order by id, -id, created or -created.' }).optional(),
}).strict()

/**
 * The audit trail as the platform's activity stream (django-ansible-base's `Entry`): `/activitystream/`, paged
 * and filterable like other lists. Superusers and system auditors read it; it is never written through the API.
 */
export function activityStreamRoutes(api: FastifyInstance, app: App): void {
  api.get('/api/gateway/v1/activitystream/', async (request) => {
    assertMayAudit(request)
    const page = readPage(request)
    const { filter, newestFirst } = readFilter(request)
    const { count, entries } = await app.store.audit.list(filter, { offset: page.offset, limit: page.pageSize, newestFirst })
    return paged(request, page, count, entries.map(serializeEntry))
  })

  api.get('/api/gateway/v1/activitystream/:id/', async (request) => {
    assertMayAudit(request)
    const raw = (request.params as { id: string }).id
    if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new NotFound('No such entry.')
    const { entries } = await app.store.audit.list({ id: Number(raw) }, { offset: 0, limit: 1, newestFirst: false })
    if (!entries[0]) throw new NotFound('No such entry.')
    return serializeEntry(entries[0])
  })
}

export function assertMayAudit(request: FastifyRequest): void {
  const { user } = principalOf(request)
  if (!user.isSuperuser && !user.isSystemAuditor) throw new PermissionDenied('Only superusers and system auditors read the activity stream.')
}

function readFilter(request: FastifyRequest): { filter: AuditFilter; newestFirst: boolean } {
  const query = request.query as Record<string, unknown>
  const repeated = Object.keys(query).filter((name) => Array.isArray(query[name]))
  const input = parseInput(filters, Object.fromEntries(Object.entries(query).map(([name, value]) => [name, repeated.includes(name) ? 0 : value])))
  const operations = [...(input.operation ? [input.operation] : []), ...(input.operation__in?.split(',') ?? [])]
  return {
    filter: {
      operation: operations.length ? operations : undefined,
      contentType: input.content_type,
      objectId: input.object_id,
      objectName: input.object_name,
      actorId: input.created_by,
      actorUsername: input.created_by__username,
      sourceAddress: input.source_address,
      authMethod: input.auth_method,
      code: input.code,
      realm: input.realm,
      createdFrom: input.created__gte,
      createdTo: input.created__lte,
    },
    newestFirst: input.order_by?.startsWith('-') ?? false,
  }
}

/**
 * An entry in the platform's shape (`id`, `url`, `related`, `summary_fields`, `created`, `created_by`,
 * `operation`, `changes`, `content_type`, `object_id`, ...), plus where it came from: `source_address`,
 * `auth_method`, `code` (why a login failed) and `realm` (an OpenID Connect login's).
 */
export function serializeEntry(entry: AuditEntry) {
  return {
    id: entry.id,
    url: `/api/gateway/v1/activitystream/${entry.id}/`,
    related: entry.actorId === null ? {} : { created_by: `/api/gateway/v1/users/${entry.actorId}/` },
    summary_fields: {
      created_by: entry.actorUsername === null ? null : { id: entry.actorId, username: entry.actorUsername },
      content_object: { id: entry.objectId, name: entry.objectName },
    },
    created: new Date(entry.created).toISOString(),
    created_by: entry.actorId,
    operation: entry.operation,
    changes: entry.changes,
    content_type: entry.contentType,
    content_type_model: entry.contentType,
    object_id: entry.objectId,
    related_content_type: null,
    related_content_type_model: null,
    related_object_id: null,
    source_address: entry.sourceAddress,
    auth_method: entry.authMethod,
    code: entry.code,
    realm: entry.realm,
  }
}
