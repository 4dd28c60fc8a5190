import type { FastifySchemaCompiler } from 'fastify'
import { z } from 'zod'
import { NotFound, ValidationFailed } from '../errors.ts'

/**
 * The gateway API's input is declared as zod schemas on its routes (`schema: { params, querystring, body }`);
 * this module is the one place that turns a schema's complaints into the API's errors by field.
 */

/** A database id in a path (`users/<id>/`): a positive 32-bit integer, as the platform's URL patterns accept. */
export const idParam = z.object({ id: z.string().regex(/^[1-9][0-9]{0,9}$/).transform(Number).pipe(z.number().max(2 ** 31 - 1)) })

/** The message for a query parameter that must be given once (a repeated one arrives as an array). */
export function onceOr(message: string) {
  return (issue: { input?: unknown }) => Array.isArray(issue.input) ? 'Give this parameter once.' : message
}

/** A body that may be left out altogether (a POST with nothing in it): read as an empty object. */
export const optionalBody = <S extends z.ZodType>(schema: S) => z.preprocess((input) => input ?? {}, schema)

/** Django REST framework's words for a field left out that must be given. */
const REQUIRED_MESSAGE = 'This field is required.'

/**
 * The fields of every object in the platform's shape that the server fills in (`id`, `url`, `created`, ...).
 * Django REST framework drops them from input unread; here they are refused by name, as unknown fields are (a
 * change that is silently not made would leave the caller believing it was), with words that say why.
 */
const SERVER_FILLED = new Set(['id', 'type', 'url', 'related', 'summary_fields', 'created', 'created_by', 'modified', 'modified_by'])

/**
 * A field's problems by the field's dotted path; problems with the whole input under `non_field_errors`. A field
 * that is missing (the issue's input is undefined: the schema was parsed with `reportInput`) is required, however
 * its schema words a wrong value; the checks that span fields (`custom`) say what they mean themselves.
 */
export function fieldErrors(issues: readonly z.core.$ZodIssue[]): Record<string, string[]> {
  const fields: Record<string, string[]> = {}
  for (const issue of issues) {
    if (issue.path.length > 0 && issue.code !== 'custom' && 'input' in issue && issue.input === undefined) {
      ;(fields[issue.path.map(String).join('.')] ??= []).push(REQUIRED_MESSAGE)
    } else if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const message = issue.path.length === 0 && SERVER_FILLED.has(key) ? 'This field is read-only.' : 'Unknown field.'
        ;(fields[[...issue.path, key].map(String).join('.')] ??= []).push(message)
      }
    } else if (issue.path.length === 0) {
      ;(fields.non_field_errors ??= []).push(issue.code === 'invalid_type' ? 'Expected a JSON object.' : issue.message)
    } else {
      ;(fields[issue.path.map(String).join('.')] ??= []).push(issue.message)
    }
  }
  return fields
}

/**
 * Fastify's validator for the gateway API's zod schemas. A path that does not fit its pattern names nothing, so
 * it is 404 as the platform's URL patterns answer; everything else is 400 with the fields that failed.
 */
export const schemaValidator: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => (data) => {
  const result = schema.safeParse(data, { reportInput: true })
  if (result.success) return { value: result.data }
  return { error: httpPart === 'params' ? new NotFound() : new ValidationFailed(fieldErrors(result.error.issues)) }
}
