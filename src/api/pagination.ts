import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import { onceOr } from './validation.ts'

const MAX_PAGE = 1_000_000
export const MAX_PAGE_SIZE = 200
export const DEFAULT_PAGE_SIZE = 25

const wholeNumber = (name: string, max: number, fallback: number) => z
  .string({ error: onceOr(`Enter a ${name} from 1 to ${max}.`) })
  .regex(/^[0-9]{1,9}$/, `Enter a ${name} from 1 to ${max}.`)
  .transform(Number)
  .pipe(z.number().min(1, `Enter a ${name} from 1 to ${max}.`).max(max, `Enter a ${name} from 1 to ${max}.`))
  .default(fallback)

/** `?page=&page_size=` of a list; list routes extend it with their own filters. */
export const pageQuery = z.object({
  page: wholeNumber('page', MAX_PAGE, 1),
  page_size: wholeNumber('page size', MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE),
})

export interface Page {
  page: number
  pageSize: number
  offset: number
}

export function pageOf(query: z.output<typeof pageQuery>): Page {
  return { page: query.page, pageSize: query.page_size, offset: (query.page - 1) * query.page_size }
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
