import { z } from 'zod'
import type { App } from '../app.ts'
import { NotFound } from '../errors.ts'
import { auditFilterFields, type AuditEntry, type LinkedObjects, numericId } from '../store/audit.ts'
import { GATEWAY_API, type GatewayApi } from './gateway-api.ts'
import { listQuery, readBoolean, rewrittenParameters } from './list-query.ts'
import { paged } from './pagination.ts'
import { userUrl } from './summaries.ts'
import { idParam } from './validation.ts'

/**
 * The platform's content type model (`ContentType.model`, its class name in lower case) of each kind Gatehouse names
 * otherwise; users, organizations and teams are named alike. An entry shows it as `content_type_model`, and
 * `content_type__model=` finds entries by it, as on the platform.
 */
const PLATFORM_MODELS: Readonly<Record<string, string>> = Object.freeze({
  application: 'oauth2application',
  token: 'oauth2accesstoken',
  role_definition: 'roledefinition',
  role_user_assignment: 'roleuserassignment',
  role_team_assignment: 'roleteamassignment',
})
const KINDS_BY_MODEL: ReadonlyMap<string, string> = new Map(Object.entries(PLATFORM_MODELS).map(([kind, model]) => [model, kind]))

export function platformModel(kind: string): string {
  return Object.hasOwn(PLATFORM_MODELS, kind) ? PLATFORM_MODELS[kind]! : kind
}

/** The kind of the entries of a platform model; none for a kind the platform's model names otherwise (`application`). */
function kindOfModel(model: string): string | undefined {
  return KINDS_BY_MODEL.get(model) ?? (Object.hasOwn(PLATFORM_MODELS, model) ? undefined : model)
}

const MODEL_FILTER = /^((?:or__|chain__)?(?:not__)?)content_type__model(?:__(exact|iexact|in|isnull))?$/

/**
 * `content_type__model` filters, as the platform's clients write them (`?content_type__model=user`), turned into the
 * list's `content_type` filters on the kinds those models are. A model no entry has matches nothing: the kind is
 * never null, so `content_type__isnull=true` says so. Other lookups stay as sent, and are refused as unknown; a value
 * refused is refused under the parameter sent.
 */
const byPlatformModel = rewrittenParameters(MODEL_FILTER, ([, prefix = '', lookup = 'exact'], key, value, add, context) => {
  if (lookup === 'isnull') {
    if (readBoolean(value) === undefined) context.addIssue({ code: 'custom', path: [key], message: 'Enter true or false.' })
    else add(`${prefix}content_type__isnull`, value)
    return
  }
  if (lookup === 'in' && value === '') {
    context.addIssue({ code: 'custom', path: [key], message: 'Cannot provide an empty value for __in.' })
    return
  }
  const kinds = (lookup === 'in' ? value.split(',') : [value]).map((model) => kindOfModel(lookup === 'iexact' ? model.toLowerCase() : model))
  const found = kinds.filter((kind) => kind !== undefined)
  if (!found.length) add(`${prefix}content_type__isnull`, 'true')
  else add(`${prefix}content_type${lookup === 'in' ? '__in' : ''}`, found.join(','))
})

const listEntries = z.preprocess(byPlatformModel, listQuery(auditFilterFields))

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
    // What this process recorded and has not written yet (the trail writes every flush_ms) is written first: a client
    // reading the stream right after a change it made here finds the change, in the order it was made.
    await app.audit.flush()
    const order = filter.order.length ? filter.order : NEWEST_FIRST
    const { count, entries } = await app.store.audit.list({ filter: { ...filter, order }, offset: page.offset, limit: page.pageSize })
    const linked = await app.store.audit.linkedObjects(entries, Date.now())
    return paged(request, page, count, entries.map((entry) => serializeEntry(entry, linked)))
  })

  api.get('/activitystream/:id/', { config: AUDITORS, schema: { params: idParam } }, async (request) => {
    const entry = await app.store.audit.findById(request.params.id)
    if (!entry) throw new NotFound('No such entry.')
    return serializeEntry(entry, await app.store.audit.linkedObjects([entry], Date.now()))
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
 * `auth_method`, `code` (why a login failed) and `realm` (an OpenID Connect login's), and its `kind`, a sign-in or a
 * change (the platform's stream has changes alone). `linked` says which of the
 * users and objects it names still exist: only those are linked, as the platform links only what it can find.
 */
export function serializeEntry(entry: AuditEntry, linked: LinkedObjects) {
  const actor = entry.actorId === null ? undefined : linked.users.get(entry.actorId)
  const contentObject = contentObjectUrl(entry, linked)
  return {
    id: entry.id,
    type: 'activitystream',
    url: `${GATEWAY_API}/activitystream/${entry.id}/`,
    related: {
      ...(actor ? { created_by: userUrl(entry.actorId!) } : {}),
      ...(contentObject ? { content_object: contentObject } : {}),
    },
    summary_fields: {
      ...(entry.actorUsername === null ? {} : { created_by: actorSummary(entry, actor) }),
      content_object: contentObjectSummary(entry, linked),
    },
    created: new Date(entry.created).toISOString(),
    created_by: entry.actorId,
    operation: entry.operation,
    changes: entry.changes,
    content_type: entry.contentType,
    content_type_model: platformModel(entry.contentType),
    object_id: entry.objectId,
    related_content_type: null,
    related_content_type_model: null,
    related_object_id: null,
    source_address: entry.sourceAddress,
    auth_method: entry.authMethod,
    code: entry.code,
    realm: entry.realm,
    kind: entry.kind,
  }
}

type LinkedUser = LinkedObjects['users'] extends ReadonlyMap<number, infer User> ? User : never

/**
 * Who acted, as the platform summarizes a user (id, username, first and last name). The username is the one the
 * entry recorded, which `created_by__username=` filters on; the names are the account's, none once it is gone. A
 * failed login's has the username tried and no id (docs/audit.md).
 */
function actorSummary(entry: AuditEntry, actor: LinkedUser | undefined) {
  return { id: entry.actorId, username: entry.actorUsername, first_name: actor?.firstName ?? '', last_name: actor?.lastName ?? '' }
}

/** The detail URL of the object acted on while it exists; every kind linked has its collection at its plural. */
function contentObjectUrl(entry: AuditEntry, linked: LinkedObjects): string | undefined {
  const id = numericId(entry.objectId)
  if (id === undefined) return undefined
  const exists = entry.contentType === 'user' ? linked.users.has(id) : linked.objects.has(`${entry.contentType}:${id}`)
  return exists ? `${GATEWAY_API}/${entry.contentType}s/${id}/` : undefined
}

/**
 * The object acted on as the entry recorded it (its name then; kept after it is gone), its id a number where it is a
 * row's, as the platform's summaries give it; a user still there adds the platform's user summary fields.
 */
function contentObjectSummary(entry: AuditEntry, linked: LinkedObjects) {
  const id = numericId(entry.objectId)
  const user = entry.contentType === 'user' && id !== undefined ? linked.users.get(id) : undefined
  return {
    id: id ?? entry.objectId,
    name: entry.objectName,
    ...(user ? { username: user.username, first_name: user.firstName, last_name: user.lastName } : {}),
  }
}
