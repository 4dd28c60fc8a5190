import { isDeepStrictEqual } from 'node:util'
import type { FastifySchemaCompiler } from 'fastify'
import { z } from 'zod'
import { addSameProblem, fieldProblems, NotFound, pkDoesNotExist, ValidationFailed } from '../errors.ts'

/**
 * The gateway API's input is declared as zod schemas on its routes (`schema: { params, querystring, body }`);
 * this module is the one place that turns a schema's complaints into the API's errors by field.
 */

/** A database id in a path (`users/<id>/`): a positive 32-bit integer, as the platform's URL patterns accept. */
export const idParam = z.object({ id: z.string().regex(/^[1-9][0-9]{0,9}$/).transform(Number).pipe(z.number().max(2 ** 31 - 1)) })

/** Django REST framework's PrimaryKeyRelatedField's words for a value that is no pk at all, naming its type as Python does. */
export const pkOfWrongType = (value: unknown): string => `Incorrect type. Expected pk value, received ${pythonType(value)}.`

/**
 * An object's id in a body, read as Django REST framework's PrimaryKeyRelatedField reads it: a number, or digits as
 * forms and the platform's clients send them. Any other value, a fraction included, is of the wrong type; a whole
 * number no id can have (zero, negative, beyond the 32 bits of the path's ids, however many digits it has) names
 * nothing, as the lookup the platform makes for it finds nothing (Django 5 answers a lookup of an integer out of its
 * column's range with no object), and is quoted as it was given. Digits beyond the 4300 that Python's int() reads
 * from text (its `sys.get_int_max_str_digits()`) are of the wrong type, as the lookup's ValueError makes them there.
 */
const pkValue = z.union([z.number(), z.string().regex(/^-?[0-9]{1,4300}$/, { error: (issue) => pkOfWrongType(issue.input) })], {
  error: (issue) => issue.input === null ? 'This field may not be null.' : pkOfWrongType(issue.input),
}).transform((pk, context) => {
  const id = Number(pk)
  if (typeof pk === 'number' && !Number.isInteger(pk)) context.issues.push({ code: 'custom', input: pk, message: pkOfWrongType(pk) })
  else if (!(id >= 1 && id <= 2 ** 31 - 1)) context.issues.push({ code: 'custom', input: pk, message: pkDoesNotExist(pk) })
  else return id
  return z.NEVER
})

/** Django REST framework's RelatedField turns an empty string into None before anything else reads it (`run_validation`). */
const emptyAsNull = (input: unknown): unknown => input === '' ? null : input

/**
 * A related object's id in a body (`pkValue`) where null is refused, as these fields refuse it (`allow_null` off):
 * `""` as well, which is null to Django REST framework's related fields.
 */
export const bodyId = z.preprocess(emptyAsNull, pkValue)

/** A related object's id where the platform's field allows null (`allow_null`): `""` is taken as null too. */
export const nullableBodyId = z.preprocess(emptyAsNull, pkValue.nullable())

/** The message for a query parameter that must be given once (a repeated one arrives as an array). */
export function onceOr(message: string) {
  return (issue: { input?: unknown }) => Array.isArray(issue.input) ? 'Give this parameter once.' : message
}

/**
 * A JSON body that is `null` (src/api/body-parsers.ts): a body, and no object. Fastify gives a request without any
 * body `null` too, so the parser hands this instead, and only the routes that read a body refuse it.
 */
export const JSON_NULL: unique symbol = Symbol('JSON null')

/**
 * A body that may be left out altogether (a POST with nothing in it): read as an empty object. A JSON `null` is
 * refused as every body that is no object (a client sending its `None` by mistake must not create a token).
 */
export const optionalBody = <S extends z.ZodType>(schema: S) => z.preprocess((input) => input === JSON_NULL ? null : input ?? {}, schema)

/** Django REST framework's words for a field left out that must be given. */
const REQUIRED_MESSAGE = 'This field is required.'

/**
 * The platform's resource registry names objects by `ansible_id` as well (`object_ansible_id`, `user_ansible_id`,
 * `team_ansible_id`); there is none here. A body field or filter naming one is refused with this reason, and the
 * reason is the `detail` too: the ansible.platform collection shows a refusal's `detail` only.
 */
export const NO_RESOURCE_REGISTRY = 'This gateway keeps no resource registry and knows no ansible_id: name the object by its id (object_id, user, team) instead.'
export const isAnsibleIdField = (name: string): boolean => /(?:^|_)ansible_id$/.test(name)

/** A refusal by field, its `detail` giving the reason where the reason is the missing resource registry. */
export function refusalOf(fields: Record<string, string[]>): ValidationFailed {
  const ansibleId = Object.keys(fields).find((field) => fields[field]!.includes(NO_RESOURCE_REGISTRY))
  return new ValidationFailed(fields, ansibleId === undefined ? undefined : `Invalid value for ${ansibleId}: ${NO_RESOURCE_REGISTRY}`)
}

/**
 * The fields of every object in the platform's shape that the server keeps (`id`, `url`, `created`, when it was
 * last used, ...). Django REST framework drops read-only fields from input unread, and the platform's clients
 * (awxkit) send back what they read, so these are dropped from every body before it is checked: none of them is
 * something a caller sets, and a different value is only an older copy.
 */
const SERVER_KEPT = new Set(['id', 'type', 'url', 'related', 'summary_fields', 'created', 'created_by', 'modified', 'modified_by', 'last_login', 'last_used'])

function withoutServerKept(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body
  return Object.fromEntries(Object.entries(body).filter(([key]) => !SERVER_KEPT.has(key)))
}

/**
 * The read-only fields a resource shows (a user's `source`, a token's `user`), to extend a body schema with:
 * let through unchecked, for `assertShownValues` to compare with the object as it is shown.
 */
export function shownReadOnly<F extends string>(fields: readonly F[]) {
  return Object.fromEntries(fields.map((field) => [field, z.unknown().optional()])) as Record<F, z.ZodOptional<z.ZodUnknown>>
}

/**
 * The read-only fields of a body hold the values the object shows (a client sent back what it read): accepted.
 * Another value is refused by name rather than dropped, as a change silently not made would leave the caller
 * believing it was made.
 */
export function assertShownValues(input: Record<string, unknown>, shown: Record<string, unknown>, fields: readonly string[]): void {
  const changed = fields.filter((field) => input[field] !== undefined && !isDeepStrictEqual(input[field], shown[field]))
  if (changed.length > 0) throw new ValidationFailed(Object.fromEntries(changed.map((field) => [field, ['This field is read-only.']])))
}

/**
 * A field's problems by the field's dotted path; problems with the whole input under `non_field_errors`. A field
 * that is missing (the issue's input is undefined: the schema was parsed with `reportInput`) is required, however
 * its schema words a wrong value; the checks that span fields (`custom`) say what they mean themselves.
 */
export function fieldErrors(issues: readonly z.core.$ZodIssue[], part: 'body' | 'querystring' = 'body'): Record<string, string[]> {
  const fields = fieldProblems()
  for (const issue of issues) {
    if (issue.path.length > 0 && issue.code !== 'custom' && 'input' in issue && issue.input === undefined) {
      ;(fields[issue.path.map(String).join('.')] ??= []).push(REQUIRED_MESSAGE)
    } else if (issue.code === 'unrecognized_keys') {
      const what = part === 'querystring' ? 'parameter' : 'field'
      const keys = issue.keys.map((key) => [...issue.path, key].map(String).join('.'))
      for (const key of keys.filter(isAnsibleIdField)) (fields[key] ??= []).push(NO_RESOURCE_REGISTRY)
      addSameProblem(fields, keys.filter((key) => !isAnsibleIdField(key)), `Unknown ${what}.`, `unknown ${what}s`)
    } else if (issue.path.length === 0) {
      ;(fields.non_field_errors ??= []).push(issue.code === 'invalid_type' ? 'Expected a JSON object.' : issue.message)
    } else {
      ;(fields[issue.path.map(String).join('.')] ??= []).push(issue.message)
    }
  }
  return fields
}

/** Python's names of the JSON types, as Django REST framework's messages name what they got. */
export function pythonType(input: unknown): string {
  if (input === null || input === JSON_NULL) return 'NoneType'
  if (Array.isArray(input)) return 'list'
  if (typeof input === 'string') return 'str'
  if (typeof input === 'boolean') return 'bool'
  if (typeof input === 'number') return Number.isInteger(input) ? 'int' : 'float'
  return 'dict'
}

/**
 * Django REST framework's words for what zod finds (its fields' default error messages), where a schema gives none
 * of its own: the platform's clients and the people reading their output see the messages they know.
 */
function platformWords(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return REQUIRED_MESSAGE
      if (issue.input === null) return 'This field may not be null.'
      if (issue.expected === 'string') return 'Not a valid string.'
      // Every number the API takes is a whole one (ids, seconds, counts).
      if (issue.expected === 'int' || issue.expected === 'number') return 'A valid integer is required.'
      if (issue.expected === 'boolean') return 'Must be a valid boolean.'
      if (issue.expected === 'array') return `Expected a list of items but got type "${pythonType(issue.input)}".`
      if (issue.expected === 'object') return `Expected a dictionary of items but got type "${pythonType(issue.input)}".`
      return undefined
    case 'too_small':
      if (issue.origin === 'string') return Number(issue.minimum) === 1 ? 'This field may not be blank.' : `Ensure this field has at least ${issue.minimum} characters.`
      if (issue.origin === 'array') return `Ensure this field has at least ${issue.minimum} elements.`
      if (issue.origin === 'number' || issue.origin === 'int') return `Ensure this value is greater than ${issue.inclusive ? 'or equal to ' : ''}${issue.minimum}.`
      return undefined
    case 'too_big':
      if (issue.origin === 'string') return `Ensure this field has no more than ${issue.maximum} characters.`
      if (issue.origin === 'array') return `Ensure this field has no more than ${issue.maximum} elements.`
      if (issue.origin === 'number' || issue.origin === 'int') return `Ensure this value is less than ${issue.inclusive ? 'or equal to ' : ''}${issue.maximum}.`
      return undefined
    case 'invalid_value':
      // A list or dictionary by its type only: written out, it recurses as deep as it is nested (a 500 at 100,000).
      return `"${issue.input !== null && typeof issue.input === 'object' ? pythonType(issue.input) : String(issue.input).slice(0, 64)}" is not a valid choice.`
    case 'invalid_format':
      if (issue.format === 'email') return 'Enter a valid email address.'
      if (issue.format === 'datetime') return 'Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].'
      return undefined
    case 'invalid_union': {
      // The option the value's type fits says what is wrong with it; when none fits, the first option speaks.
      const fitting = issue.errors.find((option) => option.length > 0 && !option.some((problem) => problem.code === 'invalid_type' && problem.path.length === 0))
      return (fitting ?? issue.errors[0])?.[0]?.message
    }
    default:
      return undefined
  }
}

/**
 * Fastify's validator for the gateway API's zod schemas. A path that does not fit its pattern names nothing, so
 * it is 404 as the platform's URL patterns answer; everything else is 400 with the fields that failed.
 */
export const schemaValidator: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => (data) => {
  const result = checked(schema, httpPart === 'body' ? withoutServerKept(data) : data)
  if (result.success) return { value: result.data }
  return { error: httpPart === 'params' ? new NotFound() : refusalOf(fieldErrors(result.error.issues, httpPart === 'querystring' ? 'querystring' : 'body')) }
}

function checked<S extends z.ZodType>(schema: S, data: unknown) {
  return schema.safeParse(data, { reportInput: true, error: platformWords })
}

/**
 * A body checked where no route receives it (the command line gives the API's fields as its options): the value the
 * route would read, or the refusal by field it would answer.
 */
export function parseBody<S extends z.ZodType>(schema: S, body: Record<string, unknown>): z.output<S> {
  const result = checked(schema, body)
  if (!result.success) throw refusalOf(fieldErrors(result.error.issues))
  return result.data
}
