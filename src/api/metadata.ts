import { z } from 'zod'
import type { Principal } from '../auth/principal.ts'
import type { GatewayApi } from './gateway-api.ts'

/**
 * `OPTIONS` on a list endpoint: what Django REST framework's metadata class answers, which the platform's
 * clients read (the collection takes `actions.POST` for the fields a new object has). The fields come from the
 * route's own body schema, so the description cannot drift from what the route accepts.
 */

/** The fields every object of the platform's shape has, filled in by the server. */
export const SERVER_FIELDS: Record<string, string> = { id: 'integer', url: 'string', related: 'field', summary_fields: 'field', created: 'datetime', modified: 'datetime' }

interface FieldInfo {
  type: string
  required: boolean
  read_only: boolean
  label: string
  max_length?: number
  choices?: { value: unknown; display_name: string }[]
  /** A list's items, described as DRF describes a ListField's child: required, writable, without a label. */
  child?: Omit<FieldInfo, 'label'>
}

export interface ListDescription {
  /** As DRF names a list view: "User List". */
  name: string
  description: string
  /** Who may ask (`user` when absent), as for the list itself. */
  access?: 'user' | 'superuser'
  /** The body schema of POST on this list, and who may POST (DRF lists the action only for them). */
  create?: {
    body: z.ZodObject
    /** Fields the server fills in, shown as read-only as DRF does: by type, or as a list of items of a type. */
    readOnly: Record<string, string | ListOf>
    allowed: (principal: Principal) => boolean
  }
}

export function describeList(api: GatewayApi, path: string, list: ListDescription): void {
  // Described on the first OPTIONS: turning the body schema into JSON Schema would cost every start for a rare request.
  const create = list.create
  let post: Record<string, FieldInfo> | undefined
  api.options(path, { config: { access: list.access ?? 'user' } }, async (request) => {
    const principal = request.gatehouse.principal
    return {
      name: list.name,
      description: list.description,
      renders: ['application/json'],
      parses: ['application/json', 'application/x-www-form-urlencoded'],
      ...(create && principal && create.allowed(principal) ? { actions: { POST: post ??= { ...readOnlyFields(create.readOnly), ...writableFields(create.body) } } } : {}),
    }
  })
}

/** A read-only list field's items, as `listOf` names them. */
interface ListOf { listOf: string }

/** A read-only field holding a list of items of `type` (a ListField with that child). */
export const listOf = (type: string): ListOf => ({ listOf: type })

function readOnlyFields(fields: Record<string, string | ListOf>): Record<string, FieldInfo> {
  return Object.fromEntries(Object.entries(fields).map(([name, type]) => [name, {
    ...(typeof type === 'string' ? { type } : listField({ type: type.listOf })),
    required: false,
    read_only: true,
    label: labelOf(name),
  }]))
}

/** DRF's ListField: its child is described without a label, required and writable (a child's own defaults). */
function listField(child: Pick<FieldInfo, 'type' | 'max_length' | 'choices' | 'child'>): Pick<FieldInfo, 'type' | 'child'> {
  return { type: 'list', child: { ...child, required: true, read_only: false } }
}

function writableFields(body: z.ZodObject): Record<string, FieldInfo> {
  const schema = z.toJSONSchema(body, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, JsonField>; required?: string[] }
  const required = new Set(schema.required ?? [])
  return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([name, field]) => [name, {
    ...typeOf(field),
    required: required.has(name),
    read_only: false,
    label: labelOf(name),
  }]))
}

interface JsonField {
  type?: string | string[]
  format?: string
  enum?: unknown[]
  maxLength?: number
  anyOf?: JsonField[]
  items?: JsonField
}

/** The type as Django REST framework's SimpleMetadata labels the serializer field a body field would be. */
function typeOf(field: JsonField): Pick<FieldInfo, 'type' | 'max_length' | 'choices' | 'child'> {
  const variants = field.anyOf?.filter((option) => option.type !== 'null') ?? []
  // A value of one of several types (a name or an id) is no one DRF field: its plain Field, labelled `field`.
  if (new Set(variants.map((option) => option.type)).size > 1) return { type: 'field' }
  const variant = variants[0] ?? field
  if (variant.enum) return { type: 'choice', choices: variant.enum.map((value) => ({ value, display_name: String(value) })) }
  const type = Array.isArray(variant.type) ? variant.type.find((t) => t !== 'null') : variant.type
  if (type === 'string' && variant.format === 'date-time') return { type: 'datetime' }
  if (type === 'string') return { type: variant.format === 'email' ? 'email' : 'string', ...(variant.maxLength ? { max_length: variant.maxLength } : {}) }
  if (type === 'integer' || type === 'number') return { type: 'integer' }
  if (type === 'boolean') return { type: 'boolean' }
  if (type === 'array' && variant.items) return listField(typeOf(variant.items))
  return { type: 'field' }
}

/** Django's verbose name from a field name: `first_name` → "First name", `id` → "ID". */
function labelOf(name: string): string {
  if (name === 'id') return 'ID'
  const words = name.replace(/_/g, ' ')
  return words.charAt(0).toUpperCase() + words.slice(1)
}
