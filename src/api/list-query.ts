import { z } from 'zod'
import { type Condition, type FilterFields, type FilterValue, type ListFilter, LOOKUPS, type Lookup } from '../store/list-filter.ts'
import { fromIsoFormat } from './iso-time.ts'
import { type Page, pageOf, pageQuery } from './pagination.ts'
import { isAnsibleIdField, NO_RESOURCE_REGISTRY } from './validation.ts'

/**
 * The query string of a list endpoint, as the platform's lists take it (django-ansible-base's rest_filters and
 * paginator): `?page=&page_size=`, a filter on any listed field (`username=`, `id__in=1,2`, `email__icontains=`,
 * `or__…`, `not__…`), `search=` and `order_by=` (`-` for descending). An unknown field is refused, naming it: a
 * filter that was silently ignored would return the whole list to a client about to act on what it finds.
 *
 * Any list endpoint declares `schema: { querystring: listQuery(fields) }` with its repository's filter fields and
 * passes `request.query.filter` to the repository, which applies it in the database.
 */

/**
 * Parameters that are not filters; as in the platform, those it does not use here are ignored (django-ansible-base's
 * ANSIBLE_BASE_REST_FILTERS_RESERVED_NAMES, less `type`, which the platform filters by and Gatehouse refuses).
 */
const RESERVED = new Set(['page', 'page_size', 'order', 'order_by', 'search', 'format', 'count_disabled', 'no_truncate', 'limit', 'validate', 'host_filter'])
const MAX_CONDITIONS = 32
const MAX_IN_VALUES = 100
/**
 * The work one list query may ask of the database, which on SQLite runs on the gateway's one thread (and every other
 * request waits for it): each filter, each search term for each field it searches, and each order field count one.
 * A list's own filters, search and order come far below it; 32 of each at once kept a thread busy for seconds.
 */
const MAX_QUERY_WORK = 48
/** The longest text a matching lookup (`icontains`, `startswith`, ...) or a search term may give: each is compared with every row. */
const MAX_MATCH_LENGTH = 256
const TEXT_LOOKUPS: ReadonlySet<Lookup> = new Set(['iexact', 'contains', 'icontains', 'startswith', 'istartswith', 'endswith', 'iendswith'])

export interface ListQuery {
  page: Page
  filter: ListFilter
}

export function listQuery(fields: FilterFields): z.ZodType<ListQuery> {
  // zod copies a loose object's keys into a plain object, where `__proto__` sets the prototype instead of a key: the
  // filter would vanish unread. It is named here, as any other unknown filter is.
  const unreadable = (query: unknown, context: z.RefinementCtx) => {
    if (typeof query === 'object' && query !== null && Object.hasOwn(query, '__proto__')) {
      context.addIssue({ code: 'custom', path: ['__proto__'], message: unknownFilterField(fields, '__proto__') })
    }
    return query
  }
  return z.preprocess(unreadable, z.looseObject(pageQuery.shape)).transform((query, context) => {
    const all: Condition[] = []
    const any: Condition[] = []
    const fail = (key: string, message: string) => {
      context.addIssue({ code: 'custom', path: [key], message })
    }
    for (const [key, raw] of Object.entries(query)) {
      if (RESERVED.has(key)) continue
      for (const value of [raw].flat() as unknown[]) {
        const parsed = parseCondition(fields, key, String(value))
        if (typeof parsed === 'string') fail(key, parsed)
        else (parsed.or ? any : all).push(parsed.condition)
      }
    }
    if (all.length + any.length > MAX_CONDITIONS) fail('non_field_errors', `Give at most ${MAX_CONDITIONS} filters.`)
    const order = parseOrder(fields, values(query.order_by ?? query.order))
    if (typeof order === 'string') fail(query.order_by === undefined ? 'order' : 'order_by', order)
    // The last search given, as DRF reads it; the same term twice finds nothing more.
    const search = [...new Set(searchTerms(values(query.search).at(-1) ?? ''))]
    const searched = Object.values(fields).filter((field) => field.searched).length
    if (search.length && !searched) fail('search', 'This list cannot be searched.')
    else if (search.length > MAX_CONDITIONS) fail('search', `Give at most ${MAX_CONDITIONS} search terms.`)
    else if (search.some((term) => term.length > MAX_MATCH_LENGTH)) fail('search', `Give search terms of at most ${MAX_MATCH_LENGTH} characters.`)
    const work = all.length + any.length + search.length * searched + (typeof order === 'string' ? 0 : order.length)
    if (work > MAX_QUERY_WORK) fail('non_field_errors', `This list query asks too much at once: give fewer filters, search terms (each counts once for each of the ${searched} fields it searches) or order fields, at most ${MAX_QUERY_WORK} together.`)
    return { page: pageOf(query), filter: { all, any, search, order: typeof order === 'string' ? [] : order } }
  })
}

/**
 * A search's terms as DRF's SearchFilter splits them (search_smart_split): at spaces, a quoted phrase kept whole
 * (its quotes taken off), and what is not quoted split at commas too.
 */
function searchTerms(search: string): string[] {
  const terms: string[] = []
  for (const [word] of search.matchAll(SEARCH_WORD)) {
    const trimmed = word.replace(/^,+|,+$/g, '')
    const quote = trimmed[0]
    if ((quote === '"' || quote === "'") && trimmed.length > 1 && trimmed.at(-1) === quote) {
      const phrase = trimmed.slice(1, -1).replaceAll(`\\${quote}`, quote).replaceAll('\\\\', '\\')
      if (phrase) terms.push(phrase)
    } else {
      terms.push(...trimmed.split(',').map((term) => term.trim()).filter(Boolean))
    }
  }
  return terms
}
/** Django's smart_split: runs of non-space, where a quoted part (backslash escapes in it) may hold spaces. */
const SEARCH_WORD = /(?:[^\s'"]*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')[^\s'"]*)+|\S+/g

function values(raw: unknown): string[] {
  return raw === undefined ? [] : ([raw].flat() as unknown[]).map(String)
}

/** `[or__|chain__][not__]<field>[__<lookup>]`, with the value read as the field's type. */
function parseCondition(fields: FilterFields, key: string, raw: string): { or: boolean; condition: Condition } | string {
  let rest = key
  const or = rest.startsWith('or__')
  if (or) rest = rest.slice(4)
  else if (rest.startsWith('chain__')) rest = rest.slice(7)
  const negate = rest.startsWith('not__')
  if (negate) rest = rest.slice(5)
  const split = rest.lastIndexOf('__')
  const suffix = split === -1 ? undefined : rest.slice(split + 2)
  const lookup: Lookup = suffix !== undefined && (LOOKUPS as readonly string[]).includes(suffix) ? suffix as Lookup : 'exact'
  const given = lookup === 'exact' && suffix !== 'exact' ? rest : rest.slice(0, split)
  const name = fieldNamed(fields, given)
  const field = name === undefined ? undefined : fields[name]!
  if (!field && isAnsibleIdField(given)) return NO_RESOURCE_REGISTRY
  if (!field || name === undefined) return unknownFilterField(fields, given)
  if (TEXT_LOOKUPS.has(lookup) && field.type !== 'text') return `${name} is not a text field and cannot be filtered by ${lookup}.`
  if (field.lookups && !field.lookups.includes(lookup)) return `${name} can be filtered by ${field.lookups.join(' and ')} only.`
  if (lookup === 'isnull') {
    const isNull = readBoolean(raw)
    return isNull === undefined ? 'Enter true or false.' : { or, condition: { field: name, lookup, value: isNull, negate } }
  }
  if (lookup === 'in') {
    const items = raw.split(',')
    if (raw === '') return 'Cannot provide an empty value for __in.'
    if (items.length > MAX_IN_VALUES) return `Give at most ${MAX_IN_VALUES} values.`
    const parsed = items.map((item) => readValue(valueType(name, field), item))
    const bad = parsed.find((item) => typeof item === 'object')
    if (bad) return bad.error
    return { or, condition: { field: name, lookup, value: parsed as FilterValue[], negate } }
  }
  if ((lookup === 'gt' || lookup === 'gte' || lookup === 'lt' || lookup === 'lte') && field.type === 'boolean') return `${name} cannot be compared with ${lookup}.`
  if (TEXT_LOOKUPS.has(lookup) && lookup !== 'iexact' && raw.length > MAX_MATCH_LENGTH) return `Give at most ${MAX_MATCH_LENGTH} characters to match with ${lookup}.`
  const value = TEXT_LOOKUPS.has(lookup) ? raw : readValue(valueType(name, field), raw)
  if (typeof value === 'object' && value !== null) return value.error
  // Django's words: only an exact lookup takes none (as IS NULL).
  if (value === null && lookup !== 'exact') return 'Cannot use None as a query value'
  return { or, condition: { field: name, lookup, value, negate } }
}

function unknownFilterField(fields: FilterFields, given: string): string {
  return `Unknown filter field "${given.slice(0, 64)}". This list can be filtered on: ${Object.keys(fields).join(', ')}.`
}

/**
 * The field a parameter names: by its name, or a related object's (an integer field other than `id`) by its column's
 * name too (`user_id` for `user`), as Django takes a foreign key by either: the platform's web interface filters
 * assignments by `user_id`.
 */
function fieldNamed(fields: FilterFields, name: string): string | undefined {
  if (Object.hasOwn(fields, name)) return name
  const related = name.endsWith('_id') ? name.slice(0, -'_id'.length) : undefined
  return related !== undefined && related !== 'id' && Object.hasOwn(fields, related) && fields[related]!.type === 'integer' ? related : undefined
}

/** How a value is read: an integer field other than `id` is a related object's (fieldNamed). */
function valueType(name: string, field: FilterFields[string]): FilterFields[string]['type'] | 'related' {
  return field.type === 'integer' && name !== 'id' ? 'related' : field.type
}

function readValue(type: FilterFields[string]['type'] | 'related', raw: string): FilterValue | { error: string } {
  switch (type) {
    case 'text': return raw
    // Any whole number: one wider than the columns matches as src/store/list-filter.ts compares it.
    case 'integer': return /^-?[0-9]{1,64}$/.test(raw) ? Number(raw) : { error: `Enter a whole number, not "${raw.slice(0, 64)}".` }
    // A related object's id: `none` or `null` is none (django-ansible-base's to_python_related), as `?organization=None`.
    case 'related': return /^(?:none|null)$/i.test(raw) ? null : readValue('integer', raw)
    case 'boolean': return readBoolean(raw) ?? { error: 'Enter true or false.' }
    case 'time': return readTime(raw)
  }
}

/** Django's `parse_datetime` forms: the date, then `T` or a space, the time to minutes or more, and an offset (UTC without one). */
const DATE_TIME = /^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:[.,](\d{1,6})\d{0,6})?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/
/** Django's `parse_date`: a date alone stands for its midnight. */
const DATE = /^(\d{4})-(\d{1,2})-(\d{1,2})$/
const DATE_TIME_FORMAT = 'YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ]'

/**
 * A time filter's value, read and refused as Django's DateTimeField reads a lookup's value (the platform's filters
 * hand it over as written): a form it does not know, or a date or time that does not exist, such as February 30th
 * (which JavaScript's Date would roll over to March 1st), each in Django's words.
 */
function readTime(raw: string): number | { error: string } {
  // Django's parse_datetime tries Python's fromisoformat first, and its own pattern where that raises.
  const iso = fromIsoFormat(raw)
  if (iso !== undefined) return iso
  const quoted = `“${raw.slice(0, 64)}”`
  const dateTime = DATE_TIME.exec(raw)
  if (dateTime) {
    const [, year, month, day, hour, minute, second = '0', fraction = '', offset = 'Z'] = dateTime
    const time = utcTime(Number(year), Number(month), Number(day), Number(hour), Number(minute), Number(second), Number(fraction.padEnd(3, '0').slice(0, 3)))
    const offsetMinutes = offsetOf(offset)
    if (time === undefined || offsetMinutes === undefined) return { error: `${quoted} value has the correct format (${DATE_TIME_FORMAT}) but it is an invalid date/time.` }
    return time - offsetMinutes * 60_000
  }
  const date = DATE.exec(raw)
  if (date) {
    const time = utcTime(Number(date[1]), Number(date[2]), Number(date[3]), 0, 0, 0, 0)
    return time ?? { error: `${quoted} value has the correct format (YYYY-MM-DD) but it is an invalid date.` }
  }
  return { error: `${quoted} value has an invalid format. It must be in ${DATE_TIME_FORMAT} format.` }
}

/** The instant, if every part names one that exists (no February 30th, no 24:00): Date rolls such parts over instead. */
function utcTime(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number): number | undefined {
  if (year < 1 || hour > 23 || minute > 59 || second > 59) return undefined
  const date = new Date(0)
  // setUTCFullYear, not Date.UTC: that reads years below 100 as 19xx.
  date.setUTCFullYear(year, month - 1, day)
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined
  return date.setUTCHours(hour, minute, second, ms)
}

/** `Z`, `+HH`, `+HHMM` or `+HH:MM` in minutes east of UTC; an offset of a day or more does not exist. */
function offsetOf(offset: string): number | undefined {
  if (offset === 'Z') return 0
  const digits = offset.slice(1).replace(':', '')
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0')
  if (minutes >= 24 * 60) return undefined
  return offset.startsWith('-') ? -minutes : minutes
}

/** django-ansible-base's to_python_boolean: true, 1 or t; false, 0 or f; in any case. */
/** Adds what one value of a parameter the pattern matched becomes (under any key), or refuses it on `context`. */
export type ParameterRewrite = (match: RegExpExecArray, key: string, value: string, add: (key: string, value: unknown) => void, context: z.RefinementCtx) => void

/**
 * A query string's preprocessor: the parameters `pattern` matches are rewritten, each value of a repeated one on its
 * own, the others kept as sent; a key added more than once holds every value added, as a repeated parameter does.
 */
export function rewrittenParameters(pattern: RegExp, rewrite: ParameterRewrite): (query: unknown, context: z.RefinementCtx) => unknown {
  return (query, context) => {
    if (typeof query !== 'object' || query === null) return query
    // Without a prototype: a parameter named `__proto__` stays a key, which listQuery then names as unknown.
    const rewritten: Record<string, unknown> = Object.create(null)
    const add = (key: string, value: unknown) => {
      rewritten[key] = Object.hasOwn(rewritten, key) ? [rewritten[key], value].flat() : value
    }
    for (const [key, raw] of Object.entries(query)) {
      const match = pattern.exec(key)
      if (!match) {
        add(key, raw)
        continue
      }
      for (const value of [raw].flat()) {
        if (typeof value !== 'string') add(key, value)
        else rewrite(match, key, value, add, context)
      }
    }
    return rewritten
  }
}

export function readBoolean(raw: string): boolean | undefined {
  const lower = raw.toLowerCase()
  return lower === 'true' || lower === '1' || lower === 't' ? true : lower === 'false' || lower === '0' || lower === 'f' ? false : undefined
}

function parseOrder(fields: FilterFields, raw: string[]): ListFilter['order'] | string {
  const order: { field: string; descending: boolean }[] = []
  const items = raw.flatMap((value) => value.split(',')).map((item) => item.trim()).filter(Boolean)
  if (items.length > MAX_CONDITIONS) return `Order by at most ${MAX_CONDITIONS} fields.`
  for (const item of items) {
    const descending = item.startsWith('-')
    const given = descending ? item.slice(1) : item
    const name = fieldNamed(fields, given)
    if (name === undefined) return `Cannot order by "${given.slice(0, 64)}". This list can be ordered by: ${Object.keys(fields).join(', ')}.`
    // A field ordered by again orders nothing more: the first says how.
    if (!order.some((earlier) => earlier.field === name)) order.push({ field: name, descending })
  }
  return order
}
