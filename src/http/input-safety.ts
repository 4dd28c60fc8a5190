import type { FastifyRequest } from 'fastify'
import { addSameProblem, fieldProblems, NUL_MESSAGE, ValidationFailed } from '../errors.ts'

const NUL = '\u0000'
/** Deeper than any input Gatehouse accepts; below it nothing is looked at (the schemas refuse such input anyway). */
const MAX_DEPTH = 16

/**
 * Refuses input carrying a NUL character anywhere in its text: PostgreSQL cannot store one (SQLite can, so the
 * two backends would differ), and no field Gatehouse reads has a use for it. Checked where input enters, on the
 * parsed query string and body of every route Gatehouse answers itself, so every text field of every endpoint is
 * covered without each one saying so. (Paths are covered by src/http/request-target.ts; the store refuses NUL
 * in any value it is given as the last line, src/store/database.ts.)
 */
export async function refuseNulCharacters(request: FastifyRequest): Promise<void> {
  const fields = nulFields(request.query, request.body)
  if (fields.length) throw new ValidationFailed(addSameProblem(fieldProblems(), fields, NUL_MESSAGE, SAME_PROBLEM))
}

/**
 * Refuses text that is not Unicode: a lone surrogate, which JSON can spell (`"\ud800"`) but UTF-8 cannot encode.
 * Both backends would store U+FFFD in its place, so what was saved would not be what was sent (and the platform's
 * PostgreSQL refuses it outright). The query cannot carry one: its escapes must be UTF-8 (src/http/request-target.ts).
 */
export async function refuseLoneSurrogates(request: FastifyRequest): Promise<void> {
  const found = new Set<string>()
  collect(request.body, '', 0, found, (text) => !text.isWellFormed())
  if (found.size) throw new ValidationFailed(addSameProblem(fieldProblems(), [...found], LONE_SURROGATE_MESSAGE, SAME_PROBLEM))
}
const SAME_PROBLEM = 'fields with the same problem'
const LONE_SURROGATE_MESSAGE = 'Text must be valid Unicode: lone surrogates (\\ud800 to \\udfff) are not allowed.'

/** The names (dotted paths) of the fields whose names or text contain NUL, in parsed inputs such as a query and a body. */
export function nulFields(...inputs: unknown[]): string[] {
  const found = new Set<string>()
  for (const input of inputs) collect(input, '', 0, found, (text) => text.includes(NUL))
  return [...found]
}

/** Adds to `found` the paths of the fields whose names or text are `bad`. */
function collect(value: unknown, path: string, depth: number, found: Set<string>, bad: (text: string) => boolean): void {
  if (typeof value === 'string') {
    if (bad(value)) found.add(path || 'non_field_errors')
  } else if (Array.isArray(value)) {
    if (depth < MAX_DEPTH) value.forEach((item, i) => collect(item, path ? `${path}.${i}` : String(i), depth + 1, found, bad))
  } else if (isPlainObject(value) && depth < MAX_DEPTH) {
    for (const [key, item] of Object.entries(value)) {
      const name = path ? `${path}.${key}` : key
      if (bad(key)) found.add(name.replace(/\u0000|\p{Cs}/gu, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`))
      else collect(item, name, depth + 1, found, bad)
    }
  }
}

/** JSON objects, and the query and form objects Fastify's parsers make (a prototype that itself has none). */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null || Object.getPrototypeOf(prototype) === null
}
