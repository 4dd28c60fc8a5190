import type { Expression, Selectable, SelectQueryBuilder, SqlBool } from 'kysely'
import { sql } from './kysely.ts'
import type { DialectName } from './migrations/helpers.ts'

/**
 * Filters, search and order of a list, as the platform's list endpoints take them (django-ansible-base's
 * rest_filters), turned into SQL that both backends run: the database does the filtering, so a page and its
 * count agree. The API parses the query string into a `ListFilter` (src/api/list-query.ts); a repository
 * names the fields it can be filtered on and applies the filter here.
 */

export type FieldType = 'integer' | 'text' | 'boolean' | 'time'

/** A field a list can be filtered and ordered on: its column, and the type its values are read as. */
export interface FilterField {
  /**
   * Null for a field the platform's rows have and these never hold a value of: every row is null there, and a filter
   * on it holds for all rows or none, as the platform's would on rows without one.
   */
  readonly column: string | null
  readonly type: FieldType
  /** Whether `search` looks in it (text fields only). */
  readonly searched?: boolean
  /**
   * A text field kept in an integer column: compared as the column's digits, so a value that is no number finds
   * nothing instead of being refused (the platform keeps an assignment's `object_id` as text).
   */
  readonly storedAsInteger?: boolean
  /** The only lookups it takes, where it does not take every lookup of its type. */
  readonly lookups?: readonly Lookup[]
  /**
   * Where the field is null though its column holds a value: rows whose `column` holds `equals`. A platform-wide
   * role assignment keeps `platform` and 0 for what it is on, which the API shows as null `content_type` and
   * `object_id`; filters and the order read them as shown.
   */
  readonly nullWhere?: { readonly column: string; readonly equals: string }
}

export type FilterFields = Readonly<Record<string, FilterField>>

export const LOOKUPS = ['exact', 'iexact', 'contains', 'icontains', 'startswith', 'istartswith', 'endswith', 'iendswith', 'gt', 'gte', 'lt', 'lte', 'in', 'isnull'] as const
export type Lookup = typeof LOOKUPS[number]

export type FilterValue = string | number | boolean | null
export interface Condition {
  readonly field: string
  readonly lookup: Lookup
  /** One value; a list for `in`; a boolean for `isnull`. */
  readonly value: FilterValue | readonly FilterValue[]
  readonly negate: boolean
}

export interface ListFilter {
  /** Every one must hold. */
  readonly all: readonly Condition[]
  /** At least one must hold (the `or__` conditions), when there are any. */
  readonly any: readonly Condition[]
  /** Each term must appear (case-insensitively) in one of the searched fields. */
  readonly search: readonly string[]
  readonly order: readonly { field: string; descending: boolean }[]
}

export const NO_FILTER: ListFilter = Object.freeze({ all: [], any: [], search: [], order: [] })

/** The filter's conditions and search terms (fields already checked against `fields` by the API). */
export function filtered<DB, TB extends keyof DB, O>(query: SelectQueryBuilder<DB, TB, O>, fields: FilterFields, filter: ListFilter, dialect: DialectName): SelectQueryBuilder<DB, TB, O> {
  let q = query
  for (const condition of filter.all) q = q.where(conditionSql(fields, condition, dialect))
  if (filter.any.length) q = q.where(sql<SqlBool>`(${sql.join(filter.any.map((c) => conditionSql(fields, c, dialect)), sql` OR `)})`)
  const searched = Object.values(fields).flatMap((field) => (field.searched && field.column !== null ? [field.column] : []))
  for (const term of filter.search) {
    const pattern = `%${escapeLike(term)}%`
    q = q.where(sql<SqlBool>`(${sql.join(searched.map((column) => likeIgnoringCase(dialect, sql.ref(column), pattern)), sql` OR `)})`)
  }
  return q
}

/**
 * A page of a list, filtered and in its order (then id), and how many rows match in all. A search compares every row
 * of the table (on SQLite, which runs on the gateway's one thread): a search through 100,000 users took 0.1-0.2 s a
 * pass. The page is read first, and the count takes only what the page
 * does not tell:
 * - the last page (partly full, or the first and empty) tells it all: the rows before it and on it;
 * - a full page of a filtered or searched list in the order of ids tells the rows up to its last, so only those after
 *   it are counted, the page's read and the count together one pass over the table (a page deep in the list, or of a
 *   search finding few rows, read most of the table, and the count read it all again);
 * - a page past the end, or in another order, tells nothing, and every matching row is counted; so is a list the
 *   filter leaves whole, which the database counts from an index more quickly than it reads the rows after the page
 *   (on SQLite 3 ms for 100,000 users, where counting the half after an id read the rows: 9 ms).
 */
export async function listPage<DB, TB extends keyof DB>(dialect: DialectName, unfiltered: SelectQueryBuilder<DB, TB, object>, fields: FilterFields, filter: ListFilter, page: { offset: number; limit: number }): Promise<{ count: number; rows: Selectable<DB[TB]>[] }> {
  const base = filtered(unfiltered, fields, filter, dialect)
  const rows = await ordered(base.selectAll(), fields, filter).offset(page.offset).limit(page.limit).execute() as unknown as Selectable<DB[TB]>[]
  const countOf = async (query: SelectQueryBuilder<DB, TB, object>) => Number((await query.select(sql<number | string>`count(*)`.as('n')).executeTakeFirstOrThrow() as { n: number | string }).n)
  if (rows.length < page.limit && (rows.length > 0 || page.offset === 0)) return { count: page.offset + rows.length, rows }
  const last = rows.at(-1) as { id: number | string } | undefined
  if (last === undefined || !inIdOrder(fields, filter) || !matchesContent(filter)) return { count: await countOf(base), rows }
  return { count: page.offset + rows.length + await countOf(base.where(sql<SqlBool>`${sql.ref('id')} > ${last.id}`)), rows }
}

/** Whether the filter picks rows by what they hold: counting them reads the rows (or an index of what it compares). */
function matchesContent(filter: ListFilter): boolean {
  return filter.all.length > 0 || filter.any.length > 0 || filter.search.length > 0
}

/** Whether a list is in the order of its ids alone (`ordered` leaves out an order field null in every row). */
function inIdOrder(fields: FilterFields, filter: ListFilter): boolean {
  return filter.order.every(({ field }) => fields[field]!.column === null)
}

/** The filter's order, then id as the tiebreaker, so pages never overlap. */
export function ordered<DB, TB extends keyof DB, O>(query: SelectQueryBuilder<DB, TB, O>, fields: FilterFields, filter: ListFilter): SelectQueryBuilder<DB, TB, O> {
  let q = query
  // Empty values last, and first when descending, as PostgreSQL (and so the platform, Django on it) orders them:
  // SQLite's own order is the other way round, and the two backends' pages would differ.
  for (const { field, descending } of filter.order) {
    const column = fieldValue(fields[field]!)
    // Every row null there: the order is the tiebreaker's.
    if (column !== undefined) q = q.orderBy(column, (item) => descending ? item.desc().nullsFirst() : item.asc().nullsLast())
  }
  return q.orderBy(sql.ref('id'), 'asc')
}

function conditionSql(fields: FilterFields, condition: Condition, dialect: DialectName): Expression<SqlBool> {
  const field = fields[condition.field]!
  const value = fieldValue(field)
  if (value === undefined) return nullFieldHolds(condition) ? ALL_ROWS : NO_ROW
  const column = field.storedAsInteger ? sql`CAST(${value} AS TEXT)` : value
  const expression = (field.type === 'integer' ? beyondIntegerColumn(column, condition.lookup, condition.value, dialect) : undefined)
    ?? lookupSql(column, condition.lookup, condition.value, dialect)
  if (!condition.negate) return expression
  return asksAboutNull(condition) ? sql<SqlBool>`NOT (${expression})` : sql<SqlBool>`NOT (${expression} AND ${column} IS NOT NULL)`
}

/** What a field holds in a row, as the API shows it; undefined for a field null in every row. */
function fieldValue(field: FilterField): ReturnType<typeof sql.ref> | undefined {
  if (field.column === null) return undefined
  if (!field.nullWhere) return sql.ref(field.column)
  return sql`(CASE WHEN ${sql.ref(field.nullWhere.column)} = ${field.nullWhere.equals} THEN NULL ELSE ${sql.ref(field.column)} END)`
}

/**
 * Whether a condition asks whether the field is null (`isnull`, or `exact` with none), which holds or not of every
 * row. Any other is unknown (SQL's NULL) of a null field, and `NOT` of unknown would leave the row out; Django's
 * `exclude()`, and so the platform's `not__` filters, keep it: `not__code=x` lists the entries with no code, as Django
 * writes `NOT (col = x AND col IS NOT NULL)`. On a column that is never null the second part changes nothing.
 */
function asksAboutNull(condition: Condition): boolean {
  return condition.lookup === 'isnull' || (condition.lookup === 'exact' && condition.value === null)
}

/** Integer fields are ids, 32-bit columns: PostgreSQL refuses a wider value outright. */
const INTEGER_COLUMN_MAX = 2 ** 31 - 1
const NO_ROW = sql<SqlBool>`1 = 0`
const ALL_ROWS = sql<SqlBool>`1 = 1`

/**
 * Whether a condition holds of a field null in every row: only `isnull=true` and `exact` with none do; negated, as
 * Django negates a lookup on a nullable column (`NOT (col = 1 AND col IS NOT NULL)`), the rest hold.
 */
function nullFieldHolds(condition: Condition): boolean {
  const holds = condition.lookup === 'isnull' ? condition.value === true : condition.lookup === 'exact' && condition.value === null
  return holds !== condition.negate
}
const isBeyondIntegerColumn = (value: unknown): value is number => typeof value === 'number' && Math.abs(value) > INTEGER_COLUMN_MAX

/**
 * A whole number no integer column holds is compared as Django compares it since 5.0: equal to no value, above or
 * below all of them (and NULL never), without asking the database, which would refuse it. The collection looks
 * every numeric name up as an id too (`?or__id=98765432101&or__username=98765432101`): the name must still match.
 */
function beyondIntegerColumn(column: ReturnType<typeof sql.ref>, lookup: Lookup, value: Condition['value'], dialect: DialectName): Expression<SqlBool> | undefined {
  if (lookup === 'in') {
    const values = value as readonly FilterValue[]
    if (!values.some(isBeyondIntegerColumn)) return undefined
    const held = values.filter((item) => !isBeyondIntegerColumn(item))
    return held.length ? lookupSql(column, 'in', held, dialect) : NO_ROW
  }
  if (!isBeyondIntegerColumn(value)) return undefined
  const aboveAll = value > 0
  switch (lookup) {
    case 'exact': return NO_ROW
    case 'gt': case 'gte': return aboveAll ? NO_ROW : sql<SqlBool>`${column} IS NOT NULL`
    case 'lt': case 'lte': return aboveAll ? sql<SqlBool>`${column} IS NOT NULL` : NO_ROW
    default: return undefined
  }
}

function lookupSql(column: ReturnType<typeof sql.ref>, lookup: Lookup, value: Condition['value'], dialect: DialectName): Expression<SqlBool> {
  if (lookup === 'isnull') return value ? sql<SqlBool>`${column} IS NULL` : sql<SqlBool>`${column} IS NOT NULL`
  if (lookup === 'in') {
    // As Django's `in` lookup: none among the values matches nothing (SQL's `IN (NULL, ...)` would make the negation
    // unknown of every other row), and none alone is no row, whose negation is every row.
    const values = (value as readonly FilterValue[]).filter((item) => item !== null)
    return values.length ? sql<SqlBool>`${column} IN (${sql.join(values)})` : NO_ROW
  }
  if (value === null) return sql<SqlBool>`${column} IS NULL`
  const text = String(value)
  switch (lookup) {
    case 'exact': return sql<SqlBool>`${column} = ${value}`
    case 'iexact': return equalIgnoringCase(dialect, column, text)
    // SQLite's LIKE ignores case and PostgreSQL's does not, so the case-sensitive lookups compare substrings.
    case 'contains': return text === '' ? sql<SqlBool>`1 = 1` : sql<SqlBool>`replace(${column}, ${text}, '') <> ${column}`
    case 'startswith': return sql<SqlBool>`substr(${column}, 1, length(${text})) = ${text}`
    case 'endswith': return sql<SqlBool>`(length(${column}) >= length(${text}) AND substr(${column}, length(${column}) - length(${text}) + 1) = ${text})`
    case 'icontains': return likeIgnoringCase(dialect, column, `%${escapeLike(text)}%`)
    case 'istartswith': return likeIgnoringCase(dialect, column, `${escapeLike(text)}%`)
    case 'iendswith': return likeIgnoringCase(dialect, column, `%${escapeLike(text)}`)
    case 'gt': return sql<SqlBool>`${column} > ${value}`
    case 'gte': return sql<SqlBool>`${column} >= ${value}`
    case 'lt': return sql<SqlBool>`${column} < ${value}`
    case 'lte': return sql<SqlBool>`${column} <= ${value}`
  }
}

/*
 * The lookups that ignore case compare lower(value) with the text lowered. On SQLite lower() is a JavaScript function
 * (SQLite's own folds ASCII only; src/store/sqlite-driver.ts), and a call into JavaScript for every row and every
 * condition held a gateway's one thread for seconds: 32 `icontains` over 100,000 users took 4 s to read a page and
 * 3 s more to count it. The text is lowered here, once, and a value of ASCII characters only (as long in characters
 * as in bytes: SQLite's length() and octet_length(), both in C), which SQLite's LIKE and NOCASE already compare
 * regardless of ASCII case, is compared without the call: the same rows match, 7 s became 1. PostgreSQL's lower()
 * is its own, and is left to lower the text too, as it lowers the values.
 */
function likeIgnoringCase(dialect: DialectName, column: ReturnType<typeof sql.ref>, pattern: string): Expression<SqlBool> {
  if (dialect === 'postgres') return sql<SqlBool>`lower(${column}) LIKE lower(${pattern}) ESCAPE '\\'`
  const lowered = pattern.toLowerCase()
  return sql<SqlBool>`(CASE WHEN length(${column}) = octet_length(${column}) THEN ${column} LIKE ${lowered} ESCAPE '\\' ELSE lower(${column}) LIKE ${lowered} ESCAPE '\\' END)`
}

function equalIgnoringCase(dialect: DialectName, column: ReturnType<typeof sql.ref>, text: string): Expression<SqlBool> {
  if (dialect === 'postgres') return sql<SqlBool>`lower(${column}) = lower(${text})`
  const lowered = text.toLowerCase()
  return sql<SqlBool>`(CASE WHEN length(${column}) = octet_length(${column}) THEN ${column} = ${lowered} COLLATE NOCASE ELSE lower(${column}) = ${lowered} END)`
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`)
}

/**
 * `column` is one of `values`: the rows of a list one caller may see. Never an empty `IN ()`, which SQL does not
 * have: no values, no rows. The ids are bound as one value (a JSON array SQLite reads with `json_each`, an array
 * PostgreSQL reads with `ANY`): a caller may see more members than a statement takes parameters (SQLite 32766,
 * PostgreSQL 65535), and written into the statement they made its text as long as the list, a statement of its own
 * for every list and every filter and order beside it, each kept prepared (megabytes apiece for 20,000 members).
 */
export function oneOf(dialect: DialectName, column: string, values: Iterable<number>): Expression<SqlBool> {
  const list = [...values]
  if (!list.every(Number.isSafeInteger)) throw new TypeError('oneOf takes whole numbers only')
  if (!list.length) return NO_ROW
  return dialect === 'postgres'
    ? sql<SqlBool>`${sql.ref(column)} = ANY(CAST(${list} AS bigint[]))`
    : sql<SqlBool>`${sql.ref(column)} IN (SELECT value FROM json_each(${JSON.stringify(list)}))`
}

/** Any of the conditions; none is no rows. */
export function anyOf(conditions: readonly Expression<SqlBool>[]): Expression<SqlBool> {
  return conditions.length ? sql<SqlBool>`(${sql.join(conditions, sql` OR `)})` : NO_ROW
}
