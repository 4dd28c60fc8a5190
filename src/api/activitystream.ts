import type { App } from '../app.ts'
import { NotFound } from '../errors.ts'
import { auditFilterFields, type AuditEntry } from '../store/audit.ts'
import type { GatewayApi } from './gateway-api.ts'
import { listQuery } from './list-query.ts'
import { paged } from './pagination.ts'
import { userUrl } from './summaries.ts'
import { idParam } from './validation.ts'

const listEntries = listQuery(auditFilterFields)

/**
 * The audit trail as the platform's activity stream (django-ansible-base's `Entry`): `/activitystream/`, paged and
 * filtered like every list (src/api/list-query.ts: `operation=`, `created__gte=`, `created_by__username=`,
 * `order_by=id`, ...), newest first unless ordered, as the platform's view orders it (`order_by('-id')`): a client
 * reading the first page for what just happened must find it there. Superusers and system auditors read it
 * (AUDITORS); it is never written through the API.
 */
export function activityStreamRoutes(api: GatewayApi, app: App): void {
  api.get('/activitystream/', { config: AUDITORS, schema: { querystring: listEntries } }, async (request) => {
    const { page, filter } = request.query
    const order = filter.order.length ? filter.order : NEWEST_FIRST
    const { count, entries } = await app.store.audit.list({ filter: { ...filter, order }, offset: page.offset, limit: page.pageSize })
    return paged(request, page, count, entries.map(serializeEntry))
  })

  api.get('/activitystream/:id/', { config: AUDITORS, schema: { params: idParam } }, async (request) => {
    const entry = await app.store.audit.findById(request.params.id)
    if (!entry) throw new NotFound('No such entry.')
    return serializeEntry(entry)
  })
}

const NEWEST_FIRST = [{ field: 'id', descending: true }] as const

/**
 * Who reads the audit trail: superusers, and system auditors, whom a superusers' route lets read (src/gateway/places.ts).
 * Declared on the route, so the caller is refused before the query is read, as for every superusers' route.
 */
export const AUDITORS = { access: 'superuser' } as const

/**
 * An entry in the platform's shape (`id`, `url`, `related`, `summary_fields`, `created`, `created_by`,
 * `operation`, `changes`, `content_type`, `object_id`, ...), plus where it came from: `source_address`,
 * `auth_method`, `code` (why a login failed) and `realm` (an OpenID Connect login's).
 */
export function serializeEntry(entry: AuditEntry) {
  return {
    id: entry.id,
    type: 'activitystream',
    url: `/api/gateway/v1/activitystream/${entry.id}/`,
    related: entry.actorId === null ? {} : { created_by: userUrl(entry.actorId) },
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
