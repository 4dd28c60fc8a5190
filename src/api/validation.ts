import type { z } from 'zod'
import { ValidationFailed } from '../errors.ts'

/** Parses a request body or query with a zod schema; every problem is reported at once, by field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  if (input === undefined || input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ValidationFailed({ non_field_errors: ['Expected a JSON object.'] })
  }
  const result = schema.safeParse(input)
  if (result.success) return result.data
  const fields: Record<string, string[]> = {}
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) (fields[key] ??= []).push('Unknown field.')
    } else {
      const key = issue.path.length ? issue.path.map(String).join('.') : 'non_field_errors'
      ;(fields[key] ??= []).push(issue.message)
    }
  }
  throw new ValidationFailed(fields)
}
