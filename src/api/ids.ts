import type { FastifyRequest } from 'fastify'
import { NotFound } from '../errors.ts'

/** The `:id` of a URL as a number; anything that cannot be an id is simply not found. */
export function idParam(request: FastifyRequest, what: string): number {
  const raw = (request.params as { id: string }).id
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new NotFound(`No such ${what}.`)
  return Number(raw)
}

/** An optional `?name=value` filter that must be an id. */
export const ID_PATTERN = /^[1-9][0-9]{0,9}$/
