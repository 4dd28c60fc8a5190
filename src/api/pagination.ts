import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ValidationFailed } from '../errors.ts'

const pageQuery = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).default(1),
  page_size: z.coerce.number().int().min(1).max(200).default(25),
})

export interface Page {
  page: number
  pageSize: number
  offset: number
}

/** Reads `?page=&page_size=`; anything else in the query is left to the caller. */
export function readPage(request: FastifyRequest): Page {
  const query = request.query as Record<string, unknown>
  for (const name of ['page', 'page_size']) {
    if (Array.isArray(query[name])) throw new ValidationFailed({ [name]: ['Give this parameter once.'] })
  }
  const result = pageQuery.safeParse({ page: query.page, page_size: query.page_size })
  if (!result.success) {
    const fields: Record<string, string[]> = {}
    for (const issue of result.error.issues) (fields[String(issue.path[0])] ??= []).push(issue.message)
    throw new ValidationFailed(fields)
  }
  const { page, page_size: pageSize } = result.data
  return { page, pageSize, offset: (page - 1) * pageSize }
}

/** The platform's list shape: `{count, next, previous, results}` with next/previous as relative URLs. */
export function paged<T>(request: FastifyRequest, page: Page, count: number, results: T[]) {
  const link = (n: number) => {
    const url = new URL(request.url, 'http://gatehouse.invalid')
    url.searchParams.set('page', String(n))
    return url.pathname + url.search
  }
  return {
    count,
    next: page.offset + results.length < count ? link(page.page + 1) : null,
    previous: page.page > 1 ? link(page.page - 1) : null,
    results,
  }
}
